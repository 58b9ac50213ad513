//! Building Chat Completions requests and reading error bodies (PROVIDERS.md §1.2, §1.7).

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

use crate::config::Target;
use crate::error::ErrorCode;
use crate::message::{Message, Part, Role};
use crate::provider::CompletionRequest;
use crate::tool::{ToolChoice, ToolSpec, arguments_text};
use crate::transport::http::{ErrorDetail, request_headers};

/// What stays the same for every request of a session.
pub(super) struct RequestShape {
    model: String,
    /// The provider's `extra_body` setting, merged into every body.
    extra_body: Option<serde_json::Map<String, Value>>,
    max_tokens_field: String,
    pub(super) headers: HeaderMap,
}

impl RequestShape {
    pub(super) fn new(target: &Target, base_url: &str) -> Self {
        // OpenAI's own newer models reject `max_tokens`; compatible servers often read only it
        // (PROVIDERS.md §8.13). The config can say which.
        let max_tokens_field = target.settings.max_tokens_field.clone().unwrap_or_else(|| {
            if base_url.contains("api.openai.com") {
                "max_completion_tokens".into()
            } else {
                "max_tokens".into()
            }
        });
        let mut headers = headers(target);
        // The body goes out as bytes (`RequestShape::body`), so its type is set here, unless
        // the config set one (as `RequestBuilder::json` left it).
        headers
            .entry(CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json"));
        Self {
            model: target.model.clone(),
            extra_body: target.settings.extra_body.clone(),
            max_tokens_field,
            headers,
        }
    }

    /// The request body, serialized once per turn (a retry resends the same bytes) straight
    /// from the request's messages: building a `serde_json::Value` first copied every message
    /// into a tree of maps, ~6,000 instructions and a dozen allocations per request.
    /// An `extra_body` (the provider's or the request's) is merged last, over a re-read
    /// body: only requests that carry one pay for it.
    pub(super) fn body(&self, request: &CompletionRequest) -> serde_json::Result<Bytes> {
        let body = Body {
            shape: self,
            request,
        };
        let extra = self.extra_body.as_ref();
        if crate::controls::has_extra_body(extra, &request.options) {
            let mut value = serde_json::to_value(&body)?;
            crate::controls::merge_extra_body(&mut value, extra, &request.options);
            return serde_json::to_vec(&value).map(Bytes::from);
        }
        serde_json::to_vec(&body).map(Bytes::from)
    }
}

/// `{"model", "messages", "stream": true, "stream_options", options…}` for one request, or
/// `"stream": false` without `stream_options` when the caller wants the answer whole
/// ([`Options::whole`](crate::config::Options::whole)): the API refuses `stream_options` on a
/// request that does not stream, and a whole answer always carries its `usage`.
struct Body<'a> {
    shape: &'a RequestShape,
    request: &'a CompletionRequest,
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let o = &self.request.options;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", &self.shape.model)?;
        map.serialize_entry("messages", &Messages(&self.request.messages))?;
        map.serialize_entry("stream", &!o.whole)?;
        if !o.whole {
            map.serialize_entry(
                "stream_options",
                &StreamOptions {
                    include_usage: true,
                },
            )?;
        }
        // Sampling values go out as f64, as they always did (a JSON number of the f32).
        if let Some(t) = o.temperature {
            map.serialize_entry("temperature", &f64::from(t))?;
        }
        if let Some(p) = o.top_p {
            map.serialize_entry("top_p", &f64::from(p))?;
        }
        if let Some(s) = o.seed {
            map.serialize_entry("seed", &s)?;
        }
        if let Some(m) = o.max_tokens {
            map.serialize_entry(self.shape.max_tokens_field.as_str(), &m)?;
        }
        // Request controls (TOOLS.md §1.5, PROVIDERS.md §1.2).
        if let Some(level) = o.reasoning {
            map.serialize_entry("reasoning_effort", level.as_str())?;
        }
        if let Some(schema) = &o.schema {
            map.serialize_entry(
                "response_format",
                &serde_json::json!({"type": "json_schema", "json_schema": {
                    "name": schema.name, "schema": schema.schema, "strict": schema.strict,
                }}),
            )?;
        }
        if o.search == Some(true) {
            map.serialize_entry("web_search_options", &serde_json::json!({}))?;
        }
        if let Some(stop) = o.stop.as_ref().filter(|s| !s.is_empty()) {
            map.serialize_entry("stop", stop)?;
        }
        if let Some(tools) = o.tools.as_deref().filter(|t| !t.specs.is_empty()) {
            map.serialize_entry("tools", &WireTools(&tools.specs))?;
            if let Some(choice) = &tools.choice {
                map.serialize_entry("tool_choice", &WireChoice(choice))?;
            }
            if let Some(parallel) = tools.parallel {
                map.serialize_entry("parallel_tool_calls", &parallel)?;
            }
        }
        map.end()
    }
}

/// `[{"type": "function", "function": {name, description?, parameters?, strict?}}, …]`
/// (TOOLS.md §1.1).
struct WireTools<'a>(&'a [ToolSpec]);

impl Serialize for WireTools<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Entry<'a> {
            r#type: &'static str,
            function: &'a ToolSpec,
        }
        serializer.collect_seq(self.0.iter().map(|function| Entry {
            r#type: "function",
            function,
        }))
    }
}

/// `"auto"`, `"none"`, `"required"`, or `{"type": "function", "function": {"name"}}`.
struct WireChoice<'a>(&'a ToolChoice);

impl Serialize for WireChoice<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ToolChoice::Auto => serializer.serialize_str("auto"),
            ToolChoice::None => serializer.serialize_str("none"),
            ToolChoice::Required => serializer.serialize_str("required"),
            ToolChoice::Named(name) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("type", "function")?;
                map.serialize_entry("function", &serde_json::json!({ "name": name }))?;
                map.end()
            }
        }
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// The messages as `[{"role", "content"}, …]`; an assistant's tool calls as its `tool_calls`
/// (`content` null when it wrote nothing), and each tool result as a `tool` message of its
/// own (TOOLS.md §1.3).
struct Messages<'a>(&'a [Message]);

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for m in self.0 {
            if m.role == Role::Tool {
                for part in &m.parts {
                    if let Part::ToolResult {
                        call_id, content, ..
                    } = part
                    {
                        seq.serialize_element(&ToolMessage {
                            role: "tool",
                            tool_call_id: call_id,
                            content,
                        })?;
                    }
                }
                continue;
            }
            let calls = ToolCalls(&m.parts);
            if m.role == Role::User && !m.is_text_only() {
                seq.serialize_element(&serde_json::json!({
                    "role": "user",
                    "content": user_content(&m.parts),
                }))?;
            } else if calls.is_empty() {
                seq.serialize_element(&WireMessage {
                    role: m.role.as_str(),
                    content: m.text(),
                })?;
            } else {
                let text = m.text();
                seq.serialize_element(&CallingMessage {
                    role: m.role.as_str(),
                    content: (!text.is_empty()).then_some(text),
                    tool_calls: calls,
                })?;
            }
        }
        seq.end()
    }
}

/// A user message with attachments as content parts (TOOLS.md §1.4): `text`, `image_url` (a
/// data URL or the URL), `file` for a PDF (`file_data` as a data URL), `input_audio` (`wav`
/// or `mp3`); a text document as a `text` part, since Chat Completions has no text document.
fn user_content(parts: &[Part]) -> Value {
    use crate::attachment::{data_url, document_text};
    use crate::message::Source;
    let wire = |part: &Part| -> Option<Value> {
        let json = match part {
            Part::Text { text } => serde_json::json!({"type": "text", "text": text}),
            Part::Image { mime, source } => {
                let url = match source {
                    Source::Base64(data) => data_url(mime, data),
                    Source::Url(url) => url.clone(),
                };
                serde_json::json!({"type": "image_url", "image_url": {"url": url}})
            }
            Part::Document { .. } if document_text(part).is_some() => {
                serde_json::json!({"type": "text", "text": document_text(part)})
            }
            Part::Document {
                mime,
                source: Source::Base64(data),
                name,
            } => serde_json::json!({"type": "file", "file": {
                "filename": name.as_deref().unwrap_or("document.pdf"),
                "file_data": data_url(mime, data),
            }}),
            Part::Audio {
                mime,
                source: Source::Base64(data),
            } => serde_json::json!({"type": "input_audio", "input_audio": {
                "data": data,
                "format": if mime == "audio/mpeg" { "mp3" } else { "wav" },
            }}),
            // Refused before the request is built (`require_supported`).
            _ => return None,
        };
        Some(json)
    };
    parts.iter().filter_map(wire).collect()
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: std::borrow::Cow<'a, str>,
}

#[derive(Serialize)]
struct CallingMessage<'a> {
    role: &'static str,
    content: Option<std::borrow::Cow<'a, str>>,
    tool_calls: ToolCalls<'a>,
}

#[derive(Serialize)]
struct ToolMessage<'a> {
    role: &'static str,
    tool_call_id: &'a str,
    content: &'a str,
}

/// A message's tool-call parts as `[{"id", "type": "function", "function": {name, arguments}}]`,
/// the arguments as JSON text.
struct ToolCalls<'a>(&'a [Part]);

impl ToolCalls<'_> {
    fn is_empty(&self) -> bool {
        !self.0.iter().any(|p| matches!(p, Part::ToolCall { .. }))
    }
}

impl Serialize for ToolCalls<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().filter_map(|p| match p {
            Part::ToolCall {
                id,
                name,
                arguments,
                ..
            } => Some(serde_json::json!({
                "id": id,
                "type": "function",
                "function": { "name": name, "arguments": arguments_text(arguments) },
            })),
            _ => None,
        }))
    }
}

/// The headers of every request: the key as a bearer token, then the configured extras.
pub(super) fn headers(target: &Target) -> HeaderMap {
    request_headers(target, |key| (AUTHORIZATION, format!("Bearer {key}")), &[])
}

/// Reads `{"error": {"message", "type", "code"}}` (OpenAI, llama.cpp, vLLM) or
/// `{"error": "text"}` (Ollama).
pub(super) fn read_error(status: StatusCode, body: &str) -> ErrorDetail {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return ErrorDetail::default();
    };
    let error = &value["error"];
    let message = error["message"]
        .as_str()
        .or_else(|| error.as_str())
        .map(str::to_owned);
    let kind = error["code"]
        .as_str()
        .or_else(|| error["type"].as_str())
        .unwrap_or_default();
    let mut detail = ErrorDetail {
        message,
        ..ErrorDetail::default()
    };
    if kind == "insufficient_quota" {
        // Out of credit: waiting does not help (PROVIDERS.md §1.7).
        detail.code = Some(ErrorCode::RateLimit);
        detail.retryable = Some(false);
    } else if status == StatusCode::BAD_REQUEST && kind == "invalid_api_key" {
        detail.code = Some(ErrorCode::Auth);
    }
    detail
}
