//! Building `/api/chat` requests and reading Ollama's error bodies (PROVIDERS.md §5.1, §5.4).

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde_json::{Map, Value, json};

use crate::config::Target;
use crate::error::ErrorCode;
use crate::message::{Message, Part, Role, Source};
use crate::provider::CompletionRequest;
use crate::transport::http::{ErrorDetail, request_headers};

/// What stays the same for every request of a session.
pub(super) struct RequestShape {
    model: String,
    pub(super) headers: HeaderMap,
    /// The provider's `extra_body` setting, merged into every body.
    extra_body: Option<Map<String, Value>>,
}

impl RequestShape {
    pub(super) fn new(target: &Target) -> Self {
        // Local servers need no key; ollama.com takes a bearer token.
        let headers = request_headers(target, |key| (AUTHORIZATION, format!("Bearer {key}")), &[]);
        Self {
            model: target.model.clone(),
            headers,
            extra_body: target.settings.extra_body.clone(),
        }
    }

    pub(super) fn body(&self, request: &CompletionRequest) -> Value {
        let mut messages: Vec<Value> = Vec::with_capacity(request.messages.len());
        for m in &request.messages {
            match m.role {
                Role::Tool => messages.extend(results(m, &request.messages)),
                Role::User if !m.is_text_only() => messages.push(with_images(m)),
                _ => {
                    let mut wire = json!({ "role": m.role.as_str(), "content": m.text() });
                    let calls = calls(m);
                    if !calls.is_empty() {
                        wire["tool_calls"] = Value::Array(calls);
                    }
                    messages.push(wire);
                }
            }
        }
        let mut body = json!({ "model": self.model, "messages": messages, "stream": true });
        // No tool_choice and no parallel switch in Ollama's request (TOOLS.md §5.1).
        if let Some(tools) = request
            .options
            .tools
            .as_deref()
            .filter(|t| !t.specs.is_empty())
        {
            body["tools"] = tools
                .specs
                .iter()
                .map(|spec| json!({ "type": "function", "function": spec }))
                .collect();
        }
        let o = &request.options;
        let mut options = Map::new();
        if let Some(t) = o.temperature {
            options.insert("temperature".into(), json!(t));
        }
        if let Some(p) = o.top_p {
            options.insert("top_p".into(), json!(p));
        }
        if let Some(m) = o.max_tokens {
            options.insert("num_predict".into(), json!(m));
        }
        if let Some(s) = o.seed {
            options.insert("seed".into(), json!(s));
        }
        // Request controls (PROVIDERS.md §5.1, TOOLS.md §5.5, §5.6): `think` takes the level
        // itself, `format` the schema, `options.stop` the stop sequences. No search tool.
        if let Some(stop) = o.stop.as_ref().filter(|s| !s.is_empty()) {
            options.insert("stop".into(), json!(stop));
        }
        if !options.is_empty() {
            body["options"] = Value::Object(options);
        }
        if let Some(level) = o.reasoning {
            body["think"] = json!(level.as_str());
        }
        if let Some(schema) = &o.schema {
            body["format"] = schema.schema.clone();
        }
        crate::controls::merge_extra_body(&mut body, self.extra_body.as_ref(), o);
        body
    }
}

/// A user message with attachments (TOOLS.md §5.4): images as raw base64 in `images`, text
/// documents after the text in `content` (Ollama has one text field, no document type). URL
/// images never get here: the chat fetches them first, as Ollama takes bytes only.
fn with_images(m: &Message) -> Value {
    let mut content = String::new();
    let mut images = Vec::new();
    for part in &m.parts {
        match part {
            Part::Text { text } => content.push_str(text),
            Part::Image {
                source: Source::Base64(data),
                ..
            } => images.push(json!(data)),
            other => {
                if let Some(text) = crate::attachment::document_text(other) {
                    if !content.is_empty() {
                        content.push_str("\n\n");
                    }
                    content.push_str(&text);
                }
            }
        }
    }
    let mut wire = json!({ "role": "user", "content": content });
    if !images.is_empty() {
        wire["images"] = Value::Array(images);
    }
    wire
}

/// An assistant's calls as `[{"type": "function", "function": {index, name, arguments}}]`,
/// the arguments an object (TOOLS.md §5.3).
fn calls(m: &Message) -> Vec<Value> {
    m.parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall {
                name, arguments, ..
            } => Some((name, arguments)),
            _ => None,
        })
        .enumerate()
        .map(|(index, (name, arguments))| {
            let arguments = if arguments.is_object() {
                arguments.clone()
            } else {
                json!({})
            };
            json!({"type": "function", "function": {"index": index, "name": name, "arguments": arguments}})
        })
        .collect()
}

/// A tool message's results, one `tool` message each with the tool's name (found on the call
/// it answers) and the call's id.
fn results<'a>(m: &'a Message, all: &'a [Message]) -> impl Iterator<Item = Value> + 'a {
    m.parts.iter().filter_map(move |p| match p {
        Part::ToolResult {
            call_id, content, ..
        } => Some(json!({
            "role": "tool",
            "tool_name": crate::message::tool_name_of(all, call_id),
            "tool_call_id": call_id,
            "content": content,
        })),
        _ => None,
    })
}

/// Reads `{"error": "text"}`; a model that is not there says how to get it.
pub(super) fn read_error(status: StatusCode, body: &str) -> ErrorDetail {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned));
    let mut detail = ErrorDetail {
        message,
        ..ErrorDetail::default()
    };
    if status == StatusCode::NOT_FOUND
        && let Some(text) = &detail.message
        && text.contains("not found")
    {
        let model = quoted(text).unwrap_or("MODEL");
        detail.code = Some(ErrorCode::NotFound);
        detail.advice = Some(format!("pull it first: ollama pull {model}"));
    }
    detail
}

/// The model name in `model 'x' not found` or `model "x" not found, try pulling it first`.
fn quoted(text: &str) -> Option<&str> {
    let start = text.find(['\'', '"'])?;
    let quote = text[start..].chars().next()?;
    let rest = &text[start + 1..];
    rest.find(quote).map(|end| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_not_found_messages_name_the_model_to_pull() {
        for body in [
            r#"{"error":"model 'llama3.3' not found"}"#,
            r#"{"error":"model \"llama3.3\" not found, try pulling it first"}"#,
        ] {
            let d = read_error(StatusCode::NOT_FOUND, body);
            assert_eq!(d.code, Some(ErrorCode::NotFound));
            assert_eq!(
                d.advice.as_deref(),
                Some("pull it first: ollama pull llama3.3")
            );
        }
    }
}
