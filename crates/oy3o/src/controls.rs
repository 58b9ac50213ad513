//! Request controls ([`Options::reasoning`], [`Options::schema`], [`Options::search`],
//! [`Options::stop`], [`Options::extra_body`]): what each provider takes ([`Controls`]), the
//! check that refuses one it does not take before anything is sent, the portable reasoning
//! budgets, and the `extra_body` merge every HTTP provider applies last.

use serde_json::{Map, Value};

use crate::config::{Options, Reasoning};
use crate::error::{Error, ErrorCode, Result};

/// The request controls a provider (for a target) takes. A control asked of a model that
/// does not take it is an error before anything is sent ([`require`]), never silently dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Controls {
    /// [`Options::reasoning`].
    pub reasoning: bool,
    /// [`Options::schema`]: a native structured-output mode (or a grammar). The answer is
    /// validated by the engine either way.
    pub schema: bool,
    /// [`Options::search`]: a web search tool.
    pub search: bool,
    /// [`Options::stop`].
    pub stop: bool,
    /// [`Options::extra_body`] and the provider's own `extra_body`: a JSON request body.
    pub extra_body: bool,
}

impl Controls {
    /// None of them.
    pub const NONE: Self = Self {
        reasoning: false,
        schema: false,
        search: false,
        stop: false,
        extra_body: false,
    };

    /// All of them.
    pub const ALL: Self = Self {
        reasoning: true,
        schema: true,
        search: true,
        stop: true,
        extra_body: true,
    };
}

/// The keys `extra_body` may not set: they carry what the engine itself sends (the model, the
/// conversation, streaming), and a different value would route or break the request.
pub const RESERVED_KEYS: &[&str] = &[
    "model",
    "messages",
    "input",
    "contents",
    "stream",
    "stream_options",
];

/// The most bytes an `extra_body` may take as JSON text.
pub const MAX_EXTRA_BODY_BYTES: usize = 64 * 1024;

/// Refuses the controls in `options` that `model` (its provider taking `can`) does not take,
/// naming the control and the model; checks `extra_body` ([`check_extra_body`]) and `stop`.
pub fn require(options: &Options, model: &str, can: &Controls) -> Result<()> {
    let refuse = |what: &str| {
        Err(Error::new(
            ErrorCode::BadRequest,
            format!("{model} cannot take {what}; leave it out or choose another model"),
        ))
    };
    if options.reasoning.is_some() && !can.reasoning {
        return refuse("a reasoning level (reasoning)");
    }
    if options.schema.is_some() && !can.schema {
        return refuse("a JSON Schema for its answer (schema): it has no structured output mode");
    }
    if options.search == Some(true) && !can.search {
        return refuse("web search (search): it has no search tool");
    }
    if let Some(stop) = &options.stop {
        if !stop.is_empty() && !can.stop {
            return refuse("stop sequences (stop)");
        }
        check_stop(stop)?;
    }
    if let Some(extra) = &options.extra_body {
        if !extra.is_empty() && !can.extra_body {
            return refuse("extra_body: it has no JSON request body");
        }
        check_extra_body(extra, "extra_body")?;
    }
    Ok(())
}

/// Stop sequences: at most 16, each 1 to 256 bytes (the strictest providers take 4 (OpenAI)
/// and 5 (Gemini); the provider refuses more itself, with its own message).
pub fn check_stop(stop: &[String]) -> Result<()> {
    if stop.len() > 16 {
        return Err(bad(format!("stop: {} sequences; at most 16", stop.len())));
    }
    if let Some(s) = stop.iter().find(|s| s.is_empty() || s.len() > 256) {
        return Err(bad(format!(
            "stop: the sequence {:?} must be 1 to 256 bytes",
            s.chars().take(40).collect::<String>()
        )));
    }
    Ok(())
}

/// An `extra_body` (named `what` in errors): at most [`MAX_EXTRA_BODY_BYTES`], none of the
/// [`RESERVED_KEYS`].
pub fn check_extra_body(extra: &Map<String, Value>, what: &str) -> Result<()> {
    if let Some(key) = RESERVED_KEYS.iter().find(|k| extra.contains_key(**k)) {
        return Err(bad(format!(
            "{what} may not set {key:?}: the engine sends it itself (reserved: {})",
            RESERVED_KEYS.join(", ")
        )));
    }
    let size = serde_json::to_string(extra).map_or(0, |s| s.len());
    if size > MAX_EXTRA_BODY_BYTES {
        return Err(bad(format!(
            "{what} is {size} bytes; the limit is {MAX_EXTRA_BODY_BYTES}"
        )));
    }
    Ok(())
}

fn bad(message: String) -> Error {
    Error::new(ErrorCode::BadRequest, message)
}

/// Merges the provider's `extra_body` (`[providers.NAME] extra_body`), then the request's,
/// into a JSON request body, key by key at the top level: the escape hatch for parameters
/// oy3o has no option for. The request's wins over the provider's, both over what oy3o wrote.
pub fn merge_extra_body(
    body: &mut Value,
    provider: Option<&Map<String, Value>>,
    options: &Options,
) {
    let Some(map) = body.as_object_mut() else {
        return;
    };
    for extra in [provider, options.extra_body.as_ref()]
        .into_iter()
        .flatten()
    {
        for (k, v) in extra {
            if !RESERVED_KEYS.contains(&k.as_str()) {
                map.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Whether a body needs [`merge_extra_body`] (so a serialized body is re-read only then).
pub fn has_extra_body(provider: Option<&Map<String, Value>>, options: &Options) -> bool {
    [provider, options.extra_body.as_ref()]
        .into_iter()
        .flatten()
        .any(|m| !m.is_empty())
}

/// Anthropic's thinking budget for a level, in tokens: 1,024 is the API's minimum
/// (<https://docs.claude.com/en/docs/build-with-claude/extended-thinking>); medium and high
/// quadruple it each time.
pub fn anthropic_budget(level: Reasoning) -> u32 {
    match level {
        Reasoning::Low => 1024,
        Reasoning::Medium => 4096,
        Reasoning::High => 16384,
    }
}

/// Gemini's `thinkingBudget` for a level, in tokens, within the range every 2.5 model takes
/// (Flash up to 24,576; <https://ai.google.dev/gemini-api/docs/thinking>).
pub fn gemini_budget(level: Reasoning) -> u32 {
    match level {
        Reasoning::Low => 1024,
        Reasoning::Medium => 8192,
        Reasoning::High => 24576,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_control_a_model_lacks_is_refused_by_name() {
        let o = Options {
            search: Some(true),
            ..Options::default()
        };
        let e = require(
            &o,
            "ollama:llama3.2",
            &Controls {
                search: false,
                ..Controls::ALL
            },
        )
        .unwrap_err();
        assert!(
            e.message()
                .contains("ollama:llama3.2 cannot take web search"),
            "{e}"
        );
        assert!(require(&o, "x", &Controls::ALL).is_ok());
        let o = Options {
            stop: Some(vec![String::new()]),
            ..Options::default()
        };
        assert!(require(&o, "x", &Controls::ALL).is_err());
    }

    #[test]
    fn extra_body_may_not_set_the_model_and_is_bounded() {
        let mut m = Map::new();
        m.insert("model".into(), json!("gpt-5"));
        let e = check_extra_body(&m, "extra_body").unwrap_err();
        assert!(e.message().contains("\"model\""), "{e}");
        let mut m = Map::new();
        m.insert("x".into(), json!("a".repeat(MAX_EXTRA_BODY_BYTES)));
        assert!(check_extra_body(&m, "extra_body").is_err());
    }
}
