//! Structured output: a JSON Schema the answer must follow ([`OutputSchema`]), checked when the
//! schema is given and again when the answer arrives.
//!
//! Providers with a native mode receive the schema in their own field (OpenAI
//! `response_format`, Gemini `responseJsonSchema`, Ollama `format`, ...); whatever arrives is
//! validated here with the `jsonschema` crate, so every provider and face gets the same check.
//! Schemas are compiled without remote or file references: a schema never makes the engine
//! fetch anything (<https://json-schema.org/draft/2020-12/json-schema-core>).

use std::fmt;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::Value;

use crate::config::Options;
use crate::error::{Error, ErrorCode, Result};
use crate::event::Event;
use crate::message::Message;
use crate::provider::{Delta, DeltaStream, Session};

/// The largest schema accepted, in bytes of its JSON text: a schema travels with every
/// request, so a huge one is a mistake (or an attack on a server).
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;

/// A JSON Schema the answer must follow, with the name providers ask for (OpenAI's
/// `json_schema.name`, the Anthropic tool's name). Build one with [`OutputSchema::new`].
///
/// ```
/// use serde_json::json;
/// let schema = oy3o::structured::OutputSchema::new(
///     "point",
///     json!({"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}),
/// ).unwrap();
/// assert_eq!(schema.check_answer("{\"x\": 1}").unwrap(), json!({"x": 1}));
/// let err = schema.check_answer("{\"x\": \"one\"}").unwrap_err();
/// assert!(err.message().contains("/x: \"one\" is not of type \"number\""), "{err}");
///
/// // An invalid schema is refused with what is wrong.
/// let err = oy3o::structured::OutputSchema::new("bad", json!({"type": "nosuch"})).unwrap_err();
/// assert!(err.message().contains("nosuch"), "{err}");
/// ```
#[derive(Clone)]
pub struct OutputSchema {
    /// The schema's name: letters, digits, `_` and `-`, at most 64 (OpenAI's rule, the
    /// strictest of the providers).
    pub name: String,
    /// The JSON Schema itself, as given.
    pub schema: Value,
    /// Whether a provider with a strict mode should enforce the schema while generating
    /// (OpenAI `strict: true`). [`OutputSchema::new`] turns it on when the schema fits
    /// OpenAI's strict subset (an object root; every object closed with
    /// `additionalProperties: false` and all its properties required), since a strict request
    /// with another schema is refused. The answer is validated on arrival either way.
    pub strict: bool,
    validator: Arc<jsonschema::Validator>,
}

impl OutputSchema {
    /// A schema checked against its meta-schema (the draft it names in `$schema`, else
    /// 2020-12); the error names what is wrong and where in the schema. The name defaults to
    /// `answer` when empty. Strict mode is on; see [`OutputSchema::with_strict`].
    pub fn new(name: impl Into<String>, schema: Value) -> Result<Self> {
        let mut name = name.into();
        if name.is_empty() {
            name = "answer".into();
        }
        if name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(format!(
                "the schema name {name:?} must be 1 to 64 letters, digits, '_' or '-'"
            )));
        }
        if !schema.is_object() && !schema.is_boolean() {
            return Err(invalid(
                "the schema must be a JSON object (or true/false), e.g. {\"type\": \"object\", ...}"
                    .to_owned(),
            ));
        }
        let size = serde_json::to_string(&schema).map_or(0, |s| s.len());
        if size > MAX_SCHEMA_BYTES {
            return Err(invalid(format!(
                "the schema is {size} bytes; the limit is {MAX_SCHEMA_BYTES}"
            )));
        }
        if let Err(e) = jsonschema::meta::validate(&schema) {
            return Err(invalid(format!(
                "{e} (at {})",
                pointer(e.instance_path().as_str())
            )));
        }
        let validator = jsonschema::validator_for(&schema).map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            name,
            strict: strict_ready(&schema, true),
            schema,
            validator: Arc::new(validator),
        })
    }

    /// Reads a schema from JSON text (a file's contents, a request field); `origin` names it
    /// in errors. The name is the schema's `title` when it has a usable one, else `answer`.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let schema: Value = serde_json::from_str(text)
            .map_err(|e| invalid(format!("{origin} is not JSON: {e}")))?;
        let name = schema
            .get("title")
            .and_then(Value::as_str)
            .map(title_name)
            .unwrap_or_default();
        Self::new(name, schema).map_err(|e| invalid(format!("{origin}: {}", strip(e.message()))))
    }

    /// The same schema with strict mode set as given.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Checks a JSON value against the schema; the error names the first failing path and
    /// why (`/items/0/price: "x" is not of type "number"`).
    pub fn check(&self, value: &Value) -> Result<()> {
        match self.validator.iter_errors(value).next() {
            None => Ok(()),
            Some(e) => Err(Error::new(
                ErrorCode::Provider,
                format!(
                    "the answer does not follow the schema {:?}: {}: {e}",
                    self.name,
                    pointer(e.instance_path().as_str())
                ),
            )),
        }
    }

    /// Parses an answer's text as JSON (a Markdown code fence around it is tolerated) and
    /// checks it against the schema. Returns the parsed value.
    pub fn check_answer(&self, text: &str) -> Result<Value> {
        let body = unfence(text);
        let value: Value = serde_json::from_str(body).map_err(|e| {
            Error::new(
                ErrorCode::Provider,
                format!(
                    "the answer is not JSON as the schema {:?} asks: {e}",
                    self.name
                ),
            )
        })?;
        self.check(&value)?;
        Ok(value)
    }
}

impl fmt::Debug for OutputSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputSchema")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

impl PartialEq for OutputSchema {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.schema == other.schema && self.strict == other.strict
    }
}

/// Reads a schema given as data: `{"name"?, "schema": {...}, "strict"?}`, or the JSON Schema
/// itself (named by its `title`). Checked as [`OutputSchema::new`] checks it; the error says
/// what is wrong.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Arc<OutputSchema>>, D::Error> {
    use serde::Deserialize;
    let Some(value) = Option::<Value>::deserialize(d)? else {
        return Ok(None);
    };
    let wrapped = value
        .get("schema")
        .is_some_and(|s| s.is_object() || s.is_boolean());
    let schema = if wrapped {
        let name = value["name"].as_str().unwrap_or_default().to_owned();
        let schema = OutputSchema::new(name, value["schema"].clone());
        match value.get("strict").and_then(Value::as_bool) {
            Some(strict) => schema.map(|s| s.with_strict(strict)),
            None => schema,
        }
    } else {
        let name = value
            .get("title")
            .and_then(Value::as_str)
            .map(title_name)
            .unwrap_or_default();
        OutputSchema::new(name, value)
    };
    schema
        .map(|s| Some(Arc::new(s)))
        .map_err(|e| serde::de::Error::custom(e.message()))
}

/// One answer, as `chat.rs` runs it (with or without a tool loop).
pub(crate) type Answer = fn(Arc<dyn Session>, Message, Options) -> DeltaStream;

/// A turn whose answer must follow `schema`: the answer text is held until the turn ends
/// (events such as reasoning, citations and usage still stream), then validated. A valid one
/// goes out as one text chunk; an invalid one is forgotten (the history goes back to where it
/// was), a `retry` event says why, and the prompt is sent once more. A second invalid answer
/// is the turn's error, naming the first failing path; the history keeps neither.
///
/// The text is held, not streamed, because an answer that may be withdrawn cannot be taken
/// back from a terminal or an SSE client once shown. An answer that ends in tool calls left
/// for the caller is not the structured answer yet and passes as it is.
pub(crate) fn turn(
    session: Arc<dyn Session>,
    prompt: Message,
    options: Options,
    schema: Arc<OutputSchema>,
    answer: Answer,
) -> DeltaStream {
    Box::pin(async_stream::try_stream! {
        let before = session.history();
        let mut attempt = 0;
        loop {
            let mut text = String::new();
            let mut finish = None;
            let mut upstream = answer(session.clone(), prompt.clone(), options.clone());
            while let Some(delta) = upstream.next().await {
                match delta? {
                    Delta::Text(t) => text.push_str(&t),
                    Delta::Done { finish_reason } => {
                        finish = Some(finish_reason);
                        break;
                    }
                    other => yield other,
                }
            }
            let Some(finish_reason) = finish else {
                Err(crate::provider::cut_off())?;
                return;
            };
            let checked = if finish_reason == "tool_calls" {
                Ok(())
            } else {
                schema.check_answer(&text).map(|_| ())
            };
            match checked {
                Ok(()) => {
                    if !text.is_empty() {
                        yield Delta::Text(text);
                    }
                    yield Delta::Done { finish_reason };
                    return;
                }
                Err(e) => {
                    // Forget the invalid answer; a session that cannot go back (a service
                    // keeping its own conversation) cannot be asked again.
                    let back = session.restore(before.clone()).is_ok();
                    if attempt > 0 || !back {
                        Err(e)?;
                        return;
                    }
                    attempt += 1;
                    yield Delta::Event(Event::Retry {
                        attempt,
                        delay_ms: 0,
                        reason: format!("{}; asking once more", e.message()),
                    });
                }
            }
        }
    })
}

fn invalid(message: String) -> Error {
    Error::new(
        ErrorCode::BadRequest,
        format!("invalid JSON Schema: {message}"),
    )
}

/// The message of an [`invalid`] error without its prefix (to re-prefix it with an origin).
fn strip(message: &str) -> &str {
    message
        .strip_prefix("invalid JSON Schema: ")
        .unwrap_or(message)
}

/// Whether `schema` fits OpenAI's strict subset as far as objects go
/// (<https://platform.openai.com/docs/guides/structured-outputs#supported-schemas>): the root
/// an object, every object with `additionalProperties: false` and all its properties in
/// `required`; sub-schemas under `properties`, `items`, `anyOf`, `$defs` and `definitions`.
fn strict_ready(schema: &Value, root: bool) -> bool {
    let Some(map) = schema.as_object() else {
        return !root;
    };
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = map
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if map.get("additionalProperties") != Some(&Value::Bool(false))
            || !props.keys().all(|k| required.contains(&k.as_str()))
            || !props.values().all(|p| strict_ready(p, false))
        {
            return false;
        }
    } else if map.get("type").and_then(Value::as_str) == Some("object")
        && map.get("additionalProperties") != Some(&Value::Bool(false))
    {
        return false;
    }
    if root && map.get("type").and_then(Value::as_str) != Some("object") {
        return false;
    }
    let nested = |key: &str| match map.get(key) {
        Some(Value::Array(list)) => list.iter().all(|s| strict_ready(s, false)),
        Some(Value::Object(o)) if key == "$defs" || key == "definitions" => {
            o.values().all(|s| strict_ready(s, false))
        }
        Some(other) => strict_ready(other, false),
        None => true,
    };
    ["items", "anyOf", "$defs", "definitions"]
        .into_iter()
        .all(nested)
}

/// A JSON Pointer for messages: the root is `/`.
fn pointer(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

/// A schema title turned into a usable name (`Price list` -> `Price_list`), at most 64.
fn title_name(title: &str) -> String {
    title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// The JSON inside a Markdown code fence (```` ```json ... ``` ````), or the text trimmed.
fn unfence(text: &str) -> &str {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("```")
        && let Some(body) = rest.strip_suffix("```")
    {
        let body = body.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
        return body.trim();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items() -> OutputSchema {
        OutputSchema::new(
            "items",
            json!({
                "type": "object",
                "properties": {"items": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"price": {"type": "number"}},
                    "required": ["price"]
                }}},
                "required": ["items"]
            }),
        )
        .unwrap()
    }

    #[test]
    fn the_first_failing_path_is_named() {
        let err = items()
            .check_answer(r#"{"items": [{"price": "x"}]}"#)
            .unwrap_err();
        assert!(
            err.message()
                .contains("/items/0/price: \"x\" is not of type \"number\""),
            "{err}"
        );
    }

    #[test]
    fn a_fenced_answer_is_read() {
        let v = items()
            .check_answer("```json\n{\"items\": [{\"price\": 2.5}]}\n```")
            .unwrap();
        assert_eq!(v["items"][0]["price"], json!(2.5));
    }

    #[test]
    fn text_that_is_not_json_is_refused() {
        let err = items().check_answer("Sure! Here it is").unwrap_err();
        assert!(err.message().contains("not JSON"), "{err}");
    }

    #[test]
    fn invalid_schemas_and_names_are_refused() {
        let e = OutputSchema::new("x", json!({"type": 3})).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadRequest);
        assert!(e.message().contains("/type"), "{e}");
        assert!(OutputSchema::new("x", json!("string")).is_err());
        assert!(OutputSchema::new("a b", json!({})).is_err());
        assert_eq!(OutputSchema::new("", json!({})).unwrap().name, "answer");
        let e = OutputSchema::parse("{nope", "schema.json").unwrap_err();
        assert!(e.message().contains("schema.json is not JSON"), "{e}");
        let p = OutputSchema::parse(r#"{"title": "Price list", "type": "object"}"#, "f").unwrap();
        assert_eq!(p.name, "Price_list");
    }

    #[test]
    fn strict_mode_only_for_schemas_in_the_strict_subset() {
        let closed = json!({"type": "object", "properties": {"a": {"type": "string"}},
            "required": ["a"], "additionalProperties": false});
        assert!(OutputSchema::new("x", closed).unwrap().strict);
        let open = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        assert!(!OutputSchema::new("x", open).unwrap().strict);
        let optional = json!({"type": "object", "properties": {"a": {"type": "string"}},
            "additionalProperties": false});
        assert!(!OutputSchema::new("x", optional).unwrap().strict);
        let nested = json!({"type": "object", "properties": {"l": {"type": "array",
            "items": {"type": "object", "properties": {"b": {}}}}},
            "required": ["l"], "additionalProperties": false});
        assert!(!OutputSchema::new("x", nested).unwrap().strict);
        assert!(
            !OutputSchema::new("x", json!({"type": "array"}))
                .unwrap()
                .strict
        );
    }
}
