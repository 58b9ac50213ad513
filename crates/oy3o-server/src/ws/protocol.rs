//! The WebSocket protocol: request frames in, and the four kinds of frames out.
//!
//! In: `{id?, ref?, model?, cookie?, key?, proxy?, context?, prompt?, options?, cancel?, close?,
//! chain?, history?, attachments?}`. Out: `message`, `event`, `error` and `signal` frames, each carrying the request's
//! `id` and `ref` as given.

use std::sync::Arc;

use oy3o::{Chain, Credential, Options, Task, Usage};
use serde::Deserialize;
use serde_json::Value;

/// The `"id":…,"ref":…,` prefix of every frame of one request, serialized once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tag(Arc<str>);

impl Tag {
    /// The tag for these (already validated) id and ref values.
    fn new(id: Option<&Value>, reference: Option<&Value>) -> Self {
        let mut text = String::new();
        if let Some(id) = id {
            text.push_str("\"id\":");
            text.push_str(&id.to_string());
            text.push(',');
        }
        if let Some(r) = reference {
            text.push_str("\"ref\":");
            text.push_str(&r.to_string());
            text.push(',');
        }
        Self(text.into())
    }

    fn as_str(&self) -> &str {
        &self.0
    }
}

/// A chain given inline or by the name of a chain the server serves.
#[derive(Debug)]
pub(crate) enum ChainSpec {
    Inline(Chain),
    Named(String),
}

/// One parsed request frame.
#[derive(Debug, Default)]
pub(crate) struct Request {
    pub tag: Tag,
    /// The chat id, as text (numbers are accepted and keyed by their decimal form).
    pub id: Option<String>,
    /// The model; `None` when absent or empty (the server's default).
    pub model: Option<String>,
    /// True when the request (re)creates chat `id`: it has a `model` key (even an empty one,
    /// for the default model) or a credential.
    pub creates: bool,
    pub credential: Option<Credential>,
    pub proxy: Option<String>,
    pub context: Option<String>,
    pub prompt: Option<String>,
    pub options: Option<Options>,
    pub cancel: bool,
    pub close: bool,
    pub chain: Option<ChainSpec>,
    /// `history: true`: send the chat's stored turns as `history` events.
    pub history: bool,
    /// `tools: ["time", "git.git_status"]`: tools the server runs for this turn (as
    /// `server.tools` grants), their calls and results sent as `tool_call` / `tool_result`.
    pub tools: Option<Vec<String>>,
    /// `attachments: [{mime, data | url, name?}]`: sent with the prompt, as given (loaded and
    /// checked by the connection with the engine's loader, then kept in `parts`).
    pub attachments: Vec<oy3o::attachment::Input>,
    /// The loaded attachment parts, in order.
    pub parts: Vec<oy3o::Part>,
}

impl Request {
    /// The user message of this request's prompt: its text, then its attachments.
    pub(crate) fn message(&self, prompt: String) -> oy3o::Message {
        let mut message = oy3o::Message::user(prompt);
        message.parts.extend(self.parts.iter().cloned());
        message
    }

    /// True when the request asks for a reply (a prompt, a chain or its history), which
    /// then ends with a `signal` whatever happens.
    pub(crate) fn asks(&self) -> bool {
        self.prompt.is_some() || self.chain.is_some() || self.history
    }
}

/// A request that could not be understood: answered with an `error` frame, and a `signal`
/// when it carried a prompt, a chain or `history` (a reply was asked for, so it ends).
#[derive(Debug)]
pub(crate) struct Rejected {
    pub tag: Tag,
    pub code: &'static str,
    pub message: String,
    pub signal: bool,
}

/// The tag of a frame from its `id` and `ref`, leaving out one longer than `max_id_bytes`
/// (the `ref` measured as JSON); the complaint names what was left out.
fn tag_within(
    id: Option<&Value>,
    reference: Option<&Value>,
    max_id_bytes: usize,
) -> (Tag, Option<String>) {
    let id_len = match id {
        Some(Value::String(s)) => s.len(),
        Some(v) => v.to_string().len(),
        None => 0,
    };
    let ref_len = reference.map_or(0, |r| r.to_string().len());
    let too_long = |field: &str, len: usize| {
        format!(
            "field `{field}`: {len} bytes, more than this server echoes (max_id_bytes = {max_id_bytes})"
        )
    };
    let complaint = if id_len > max_id_bytes {
        Some(too_long("id", id_len))
    } else if ref_len > max_id_bytes {
        Some(too_long("ref", ref_len))
    } else {
        None
    };
    let tag = Tag::new(
        id.filter(|_| id_len <= max_id_bytes),
        reference.filter(|_| ref_len <= max_id_bytes),
    );
    (tag, complaint)
}

/// What can be read of a frame too large to handle: its tag (within `max_id_bytes`) and
/// whether it asked for a reply (so the error is followed by a `signal`).
pub(crate) fn peek(text: &str, max_id_bytes: usize) -> (Tag, bool) {
    #[derive(Deserialize)]
    struct Peek {
        #[serde(default)]
        id: Option<Value>,
        #[serde(default, rename = "ref")]
        reference: Option<Value>,
        #[serde(default)]
        prompt: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        chain: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        history: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_str::<Peek>(text) {
        Ok(p) => {
            let id = p.id.as_ref().filter(|v| v.is_string() || v.is_number());
            let reference = p.reference.as_ref().filter(|v| !v.is_null());
            let asks = p.prompt.is_some() || p.chain.is_some() || p.history.is_some();
            (tag_within(id, reference, max_id_bytes).0, asks)
        }
        Err(_) => (Tag::default(), false),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    id: Option<Value>,
    // Read from the raw map (any JSON value is echoed); declared so that it is not unknown.
    #[serde(default, rename = "ref")]
    _reference: Option<Value>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    cookie: Option<Value>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    proxy: Option<String>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    options: Option<Options>,
    #[serde(default)]
    cancel: Option<bool>,
    #[serde(default)]
    close: Option<bool>,
    #[serde(default)]
    chain: Option<Value>,
    #[serde(default)]
    history: Option<bool>,
    #[serde(default)]
    tools: Option<Vec<String>>,
    #[serde(default)]
    attachments: Option<Vec<RawAttachment>>,
}

/// One of `attachments`: inline base64 `data` or a `url`, with its media type and name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttachment {
    #[serde(default)]
    mime: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// The attachments of a request as the engine's loader takes them; one with neither or both
/// of `data` and `url`, or without a prompt to go with, is refused by its index.
fn attachments(
    raw: Option<Vec<RawAttachment>>,
    has_prompt: bool,
) -> Result<Vec<oy3o::attachment::Input>, String> {
    use oy3o::attachment::{Input, Origin};
    let raw = raw.unwrap_or_default();
    if !raw.is_empty() && !has_prompt {
        return Err("field `attachments`: attachments go with a prompt; send one".into());
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let origin = match (a.data, a.url) {
                (Some(data), None) => Origin::Base64(data),
                (None, Some(url)) => Origin::Url(url),
                _ => {
                    return Err(format!(
                        "field `attachments[{i}]`: give either `data` (base64) or `url`"
                    ));
                }
            };
            Ok(Input {
                origin,
                mime: a.mime,
                name: a.name,
            })
        })
        .collect()
}

/// Parses one text frame with no bound on the `id` and `ref` (tests).
#[cfg(test)]
pub(crate) fn parse(text: &str) -> Result<Request, Rejected> {
    parse_limited(text, usize::MAX)
}

/// Parses one text frame; an `id` or `ref` longer than `max_id_bytes` is refused (and not
/// echoed). Never panics; every failure names what to fix.
pub(crate) fn parse_limited(text: &str, max_id_bytes: usize) -> Result<Request, Rejected> {
    let rejected = |tag: &Tag, message: String, signal: bool| Rejected {
        tag: tag.clone(),
        code: "bad_request",
        message,
        signal,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        rejected(
            &Tag::default(),
            format!("malformed JSON: {e}; send one JSON object per frame"),
            false,
        )
    })?;
    let Value::Object(map) = &value else {
        return Err(rejected(
            &Tag::default(),
            "a request must be a JSON object such as {\"prompt\": \"hello\"}".into(),
            false,
        ));
    };
    // A frame that asked for a reply gets its `signal` even when refused.
    let signal = ["prompt", "chain", "history"]
        .iter()
        .any(|k| map.get(*k).is_some_and(|v| !v.is_null()));
    let reject = |tag: &Tag, message: String| rejected(tag, message, signal);
    // The id and ref are echoed on the error too, when they are usable.
    let id = map.get("id").filter(|v| v.is_string() || v.is_number());
    let reference = map.get("ref").filter(|v| !v.is_null());
    let (tag, too_long) = tag_within(id, reference, max_id_bytes);
    if let Some(message) = too_long {
        return Err(Rejected {
            code: "limit",
            ..reject(&tag, message)
        });
    }
    if let Some(bad) = map
        .get("id")
        .filter(|v| !(v.is_string() || v.is_number() || v.is_null()))
    {
        return Err(reject(
            &tag,
            format!(
                "field `id`: expected a string or a number, got {}",
                kind(bad)
            ),
        ));
    }
    let raw: Raw = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            reject(&tag, format!("{inner}"))
        } else {
            reject(&tag, format!("field `{path}`: {inner}"))
        }
    })?;
    let id = match raw.id {
        Some(Value::String(s)) if s.is_empty() => {
            return Err(reject(&tag, "field `id`: must not be empty".into()));
        }
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let mut credential = match raw.cookie {
        None | Some(Value::Null) => None,
        Some(v) => Some(cookie(v).map_err(|m| reject(&tag, m))?),
    };
    if let Some(key) = raw.key.filter(|k| !k.trim().is_empty()) {
        credential = Some(Credential::Key(key.trim().to_owned()));
    }
    let attachments =
        attachments(raw.attachments, raw.prompt.is_some()).map_err(|m| reject(&tag, m))?;
    let chain = match raw.chain {
        None | Some(Value::Null) => None,
        Some(v) => Some(chain(v).map_err(|m| reject(&tag, m))?),
    };
    Ok(Request {
        tag,
        id,
        creates: raw.model.is_some() || credential.is_some(),
        model: raw.model.filter(|m| !m.trim().is_empty()),
        credential,
        proxy: raw.proxy.filter(|p| !p.trim().is_empty()),
        context: raw.context,
        prompt: raw.prompt,
        options: raw.options,
        cancel: raw.cancel.unwrap_or(false),
        close: raw.close.unwrap_or(false),
        chain,
        history: raw.history.unwrap_or(false),
        tools: raw.tools,
        attachments,
        parts: Vec::new(),
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A `cookie`: a key as text, a `{name: value}` object or a list of `{name, value}` (a browser
/// cookie export), as in the original library.
fn cookie(value: Value) -> Result<Credential, String> {
    let bad = || {
        "field `cookie`: expected a key (text), a {name: value} object or a list of \
         {name, value} cookies"
            .to_owned()
    };
    match value {
        Value::String(s) if !s.trim().is_empty() => Ok(Credential::parse(&s)),
        v @ (Value::Object(_) | Value::Array(_)) => match Credential::parse(&v.to_string()) {
            c @ Credential::Cookies(_) => Ok(c),
            Credential::Key(_) => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// A `chain`: a list of stages (each a list of tasks), `{"stage": [{"task": [...]}]}`, or the
/// name of a chain the server serves.
fn chain(value: Value) -> Result<ChainSpec, String> {
    let located = |e: serde_path_to_error::Error<serde_json::Error>| {
        let path = e.path().to_string();
        format!(
            "field `chain{}`: {}",
            match path.as_str() {
                "." => String::new(),
                p if p.starts_with('[') => p.to_owned(),
                p => format!(".{p}"),
            },
            e.into_inner()
        )
    };
    match value {
        Value::String(name) => Ok(ChainSpec::Named(name)),
        v @ Value::Array(_) => {
            let stages: Vec<Vec<Task>> = serde_path_to_error::deserialize(v).map_err(located)?;
            Ok(ChainSpec::Inline(Chain::from(stages)))
        }
        v @ Value::Object(_) => Ok(ChainSpec::Inline(
            serde_path_to_error::deserialize(v).map_err(located)?,
        )),
        other => Err(format!(
            "field `chain`: expected a list of stages (lists of tasks) or a chain name, got {}",
            kind(&other)
        )),
    }
}

/// Appends `text` as a JSON string.
fn push_json_str(out: &mut String, text: &str) {
    // Serializing a &str into a String cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into()));
}

fn open(kind: &str, tag: &Tag, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity + 48 + tag.as_str().len());
    out.push_str("{\"type\":\"");
    out.push_str(kind);
    out.push_str("\",");
    out.push_str(tag.as_str());
    out
}

/// `{"type":"message",…,"message":chunk}`.
pub(crate) fn message(tag: &Tag, chunk: &str) -> String {
    let mut out = open("message", tag, chunk.len());
    out.push_str("\"message\":");
    push_json_str(&mut out, chunk);
    out.push('}');
    out
}

/// `{"type":"event",…,"event":name,"message":payload}`.
pub(crate) fn event(tag: &Tag, name: &str, payload: &Value) -> String {
    let mut out = open("event", tag, 64);
    out.push_str("\"event\":");
    push_json_str(&mut out, name);
    out.push_str(",\"message\":");
    out.push_str(&payload.to_string());
    out.push('}');
    out
}

/// `{"type":"error",…,"code":code,"message":text}`.
pub(crate) fn error(tag: &Tag, code: &str, text: &str) -> String {
    let mut out = open("error", tag, text.len() + 32);
    out.push_str("\"code\":");
    push_json_str(&mut out, code);
    out.push_str(",\"message\":");
    push_json_str(&mut out, text);
    out.push('}');
    out
}

/// An `error` frame with `retry_after` (seconds) when the client should wait before trying
/// again (a key over its rate limits or budget).
pub(crate) fn error_after(tag: &Tag, code: &str, text: &str, retry_after: Option<u64>) -> String {
    let mut out = error(tag, code, text);
    if let Some(seconds) = retry_after {
        out.pop();
        out.push_str(&format!(",\"retry_after\":{seconds}}}"));
    }
    out
}

/// How a reply ended, for its `signal` frame.
#[derive(Debug, Default)]
pub(crate) struct Ending<'a> {
    pub usage: Option<&'a Usage>,
    pub finish_reason: Option<&'a str>,
    pub cancelled: bool,
}

/// `{"type":"signal",…,"message":"done","usage"?:…,"finish_reason"?:…,"cancelled"?:true}`.
pub(crate) fn signal(tag: &Tag, ending: &Ending<'_>) -> String {
    let mut out = open("signal", tag, 96);
    out.push_str("\"message\":\"done\"");
    if let Some(usage) = ending.usage {
        out.push_str(",\"usage\":");
        out.push_str(&serde_json::to_string(usage).unwrap_or_else(|_| "null".into()));
    }
    if let Some(reason) = ending.finish_reason {
        out.push_str(",\"finish_reason\":");
        push_json_str(&mut out, reason);
    }
    if ending.cancelled {
        out.push_str(",\"cancelled\":true");
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_original_demo_clients_frames_parse() {
        let r = parse(r#"{"id":"IdOfThisAi","model":"bing","cookie":{"_U":"x"},"prompt":"hello"}"#)
            .unwrap();
        assert_eq!(r.id.as_deref(), Some("IdOfThisAi"));
        assert_eq!(
            r.credential
                .and_then(|c| c.cookie("_U").map(str::to_owned))
                .as_deref(),
            Some("x")
        );
        let r = parse(r#"{"model":"bing","cookie":[{"name":"_U","value":"y"}],"prompt":"hello"}"#)
            .unwrap();
        assert!(r.id.is_none() && r.prompt.as_deref() == Some("hello"));
    }

    #[test]
    fn bad_frames_are_rejected_with_the_field_named_and_the_tag_kept() {
        let e = parse(r#"{"id":"a","ref":7,"prompt":5}"#).unwrap_err();
        assert!(e.message.contains("`prompt`"), "{}", e.message);
        assert_eq!(
            error(&e.tag, e.code, "x"),
            r#"{"type":"error","id":"a","ref":7,"code":"bad_request","message":"x"}"#
        );
        for bad in [
            "{",
            "[1]",
            "\"x\"",
            r#"{"promt":"x"}"#,
            r#"{"id":{"a":1}}"#,
            r#"{"cookie":5}"#,
            r#"{"cancel":"yes"}"#,
            r#"{"chain":[[{"prompt":1}]]}"#,
            r#"{"cookie":{"a":1}}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.code, "bad_request", "{bad}");
        }
        let e = parse(r#"{"chain":[[{"prompt":1}]]}"#).unwrap_err().message;
        assert!(e.contains("chain[0][0].prompt"), "{e}");
    }

    #[test]
    fn long_ids_and_refs_are_refused_by_name_and_not_echoed() {
        let long = "r".repeat(2000);
        let frame = json!({"id": "a", "ref": long, "prompt": "p"}).to_string();
        let e = parse_limited(&frame, 1024).unwrap_err();
        assert_eq!(e.code, "limit");
        assert!(
            e.message.contains("`ref`") && e.message.contains("max_id_bytes"),
            "{}",
            e.message
        );
        assert!(e.signal, "a prompt was sent: the reply ends with a signal");
        let shown = error(&e.tag, e.code, "x");
        assert!(
            shown.contains("\"id\":\"a\"") && !shown.contains("rrrr"),
            "{shown}"
        );
        assert!(parse_limited(&frame, 4096).is_ok());
        let (tag, asks) = peek(&frame, 1024);
        assert!(asks);
        assert_eq!(tag.as_str(), "\"id\":\"a\",");
        assert!(!parse(r#"{"id":"a","key":{"env":"X"}}"#).unwrap_err().signal);
        assert!(
            parse(r#"{"prompt":"p","key":{"env":"X"}}"#)
                .unwrap_err()
                .signal
        );
    }

    #[test]
    fn numeric_ids_are_echoed_as_numbers_and_keyed_as_text() {
        let r = parse(r#"{"id":12,"prompt":"p"}"#).unwrap();
        assert_eq!(r.id.as_deref(), Some("12"));
        assert_eq!(
            message(&r.tag, "hi \"x\""),
            r#"{"type":"message","id":12,"message":"hi \"x\""}"#
        );
    }

    #[test]
    fn signals_carry_usage_and_the_finish_reason() {
        let usage = Usage {
            input_tokens: 3,
            output_tokens: 2,
            ..Usage::default()
        };
        let text = signal(
            &Tag::default(),
            &Ending {
                usage: Some(&usage),
                finish_reason: Some("stop"),
                cancelled: false,
            },
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "signal");
        assert_eq!(v["message"], "done");
        assert_eq!(v["usage"]["output_tokens"], 2);
        assert_eq!(v["finish_reason"], "stop");
    }
}
