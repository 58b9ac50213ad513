//! Building Messages requests and reading error bodies (PROVIDERS.md §3.1, §3.7).

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName};
use serde_json::{Value, json};

use crate::config::Target;
use crate::error::ErrorCode;
use crate::message::{Message, Part, Role, Source};
use crate::provider::CompletionRequest;
use crate::tool::ToolChoice;
use crate::transport::http::{ErrorDetail, request_headers};

/// The answer-length limit sent when the options set none: the API requires one.
pub(super) const DEFAULT_MAX_TOKENS: u32 = 4096;

/// What stays the same for every request of a session.
pub(super) struct RequestShape {
    model: String,
    pub(super) headers: HeaderMap,
    /// The provider's `extra_body` setting, merged into every body.
    extra_body: Option<serde_json::Map<String, Value>>,
}

impl RequestShape {
    pub(super) fn new(target: &Target) -> Self {
        let headers = request_headers(
            target,
            |key| (HeaderName::from_static("x-api-key"), key.to_owned()),
            &[("anthropic-version", "2023-06-01")],
        );
        Self {
            model: target.model.clone(),
            headers,
            extra_body: target.settings.extra_body.clone(),
        }
    }

    /// The body, or why the options cannot go together (thinking with a temperature).
    pub(super) fn body(&self, request: &CompletionRequest) -> crate::Result<Value> {
        // The context is the top-level `system`; there is no system role in `messages`.
        let mut system = Vec::new();
        let mut messages = Vec::with_capacity(request.messages.len());
        for m in &request.messages {
            match m.role {
                Role::System => system.push(m.text()),
                // Tool results go back in a user message (TOOLS.md §3.3).
                Role::Tool => messages.push(json!({ "role": "user", "content": results(m) })),
                Role::Assistant if has_calls(m) => {
                    messages.push(json!({ "role": "assistant", "content": calling(m) }));
                }
                Role::User if !m.is_text_only() => {
                    messages.push(json!({ "role": "user", "content": blocks(m) }));
                }
                // Other parts are refused before the request is built (`require_supported`).
                Role::User | Role::Assistant => {
                    messages.push(json!({ "role": m.role.as_str(), "content": m.text() }));
                }
            }
        }
        let o = &request.options;
        let mut body = json!({
            "model": self.model,
            "max_tokens": o.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": messages,
            "stream": true,
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        if let Some(t) = o.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(p) = o.top_p {
            body["top_p"] = json!(p);
        }
        if let Some(tools) = o.tools.as_deref().filter(|t| !t.specs.is_empty()) {
            body["tools"] = tools
                .specs
                .iter()
                .map(|spec| {
                    let mut tool = json!({
                        "name": spec.name,
                        "input_schema": spec.parameters.clone()
                            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                    });
                    if let Some(d) = &spec.description {
                        tool["description"] = json!(d);
                    }
                    if let Some(strict) = spec.strict {
                        tool["strict"] = json!(strict);
                    }
                    tool
                })
                .collect();
            if let Some(choice) = choice(tools.choice.as_ref(), tools.parallel) {
                body["tool_choice"] = choice;
            }
        }
        controls(o, &mut body)?;
        cache_prefix(&mut body);
        crate::controls::merge_extra_body(&mut body, self.extra_body.as_ref(), o);
        Ok(body)
    }
}

/// Request controls (TOOLS.md §3.5–§3.7, PROVIDERS.md §3.1):
/// - reasoning: `thinking {type: enabled, budget_tokens}` with the level's budget
///   ([`crate::controls::anthropic_budget`]); `max_tokens` counts thinking too, so it becomes
///   the budget plus the answer's own limit (the options' or [`DEFAULT_MAX_TOKENS`]). The API
///   refuses `temperature` and `top_k` with thinking: refused here first, by name.
/// - schema: the native JSON outputs, `output_config.format {type: json_schema, schema}`
///   (generally available; no name, no strict flag). Chosen over a forced tool because a
///   forced `tool_choice` cannot be combined with thinking, and the answer streams as text.
/// - search: the `web_search_20250305` server tool, after the client tools.
/// - stop: `stop_sequences`.
fn controls(o: &crate::config::Options, body: &mut Value) -> crate::Result<()> {
    if let Some(level) = o.reasoning {
        if o.temperature.is_some() || o.top_p.is_some() {
            return Err(crate::Error::new(
                ErrorCode::BadRequest,
                "anthropic takes no temperature or top_p together with reasoning (extended \
                 thinking); leave one of them out",
            ));
        }
        let budget = crate::controls::anthropic_budget(level);
        let answer = o.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        body["max_tokens"] = json!(budget.saturating_add(answer));
        body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
    }
    if let Some(schema) = &o.schema {
        body["output_config"] = json!({"format": {"type": "json_schema", "schema": schema.schema}});
    }
    if o.search == Some(true) {
        let search = json!({"type": "web_search_20250305", "name": "web_search"});
        match body["tools"].as_array_mut() {
            Some(tools) => tools.push(search),
            None => body["tools"] = json!([search]),
        }
    }
    if let Some(stop) = o.stop.as_ref().filter(|s| !s.is_empty()) {
        body["stop_sequences"] = json!(stop);
    }
    Ok(())
}

/// Prompt caching on the stable prefix (TOOLS.md §3.8): `cache_control {type: ephemeral}` on
/// the context (the `system` string becomes one text block to carry it) and on the last block
/// of the history before the new prompt, so the next turn reads both from the cache. Two of
/// the four breakpoints the API allows; a prefix shorter than the model's minimum is simply
/// not cached. Never on a thinking block (the API refuses it there) nor an empty text.
fn cache_prefix(body: &mut Value) {
    let ephemeral = json!({"type": "ephemeral"});
    if let Some(system) = body["system"].as_str().filter(|s| !s.is_empty()) {
        body["system"] =
            json!([{"type": "text", "text": system, "cache_control": ephemeral.clone()}]);
    }
    let Some(messages) = body["messages"].as_array_mut() else {
        return;
    };
    let Some(at) = messages.len().checked_sub(2) else {
        return;
    };
    let last = &mut messages[at]["content"];
    if let Some(text) = last.as_str() {
        if text.is_empty() {
            return;
        }
        *last = json!([{"type": "text", "text": text}]);
    }
    if let Some(block) = last.as_array_mut().and_then(|b| b.last_mut()) {
        let kind = block["type"].as_str().unwrap_or_default();
        let empty = kind == "text" && block["text"].as_str().is_none_or(str::is_empty);
        if !kind.contains("thinking") && !empty {
            block["cache_control"] = ephemeral;
        }
    }
}

/// `tool_choice` (TOOLS.md §3.1): `auto`, `any` (required), `tool` (named) or `none`; no
/// parallel calls is `disable_parallel_tool_use` on it (so an unset choice becomes `auto`).
fn choice(choice: Option<&ToolChoice>, parallel: Option<bool>) -> Option<Value> {
    let mut wire = match choice {
        None if parallel != Some(false) => return None,
        None | Some(ToolChoice::Auto) => json!({"type": "auto"}),
        Some(ToolChoice::None) => return Some(json!({"type": "none"})),
        Some(ToolChoice::Required) => json!({"type": "any"}),
        Some(ToolChoice::Named(name)) => json!({"type": "tool", "name": name}),
    };
    if parallel == Some(false) {
        wire["disable_parallel_tool_use"] = json!(true);
    }
    Some(wire)
}

/// A user message with attachments as content blocks, in order (TOOLS.md §3.4): `image` and
/// `document` blocks with a `base64` source (raw base64, not a data URL) or a `url` source; a
/// text document as a `document` with a `text` source, its name as the `title`.
fn blocks(m: &Message) -> Value {
    let source = |mime: &str, source: &Source| match source {
        Source::Base64(data) => json!({"type": "base64", "media_type": mime, "data": data}),
        Source::Url(url) => json!({"type": "url", "url": url}),
    };
    let mut out = Vec::with_capacity(m.parts.len());
    for part in &m.parts {
        let block = match part {
            Part::Text { text } => json!({"type": "text", "text": text}),
            Part::Image { mime, source: s } => json!({"type": "image", "source": source(mime, s)}),
            Part::Document {
                mime,
                source: s,
                name,
            } => {
                let mut block = if crate::attachment::is_text(mime) {
                    let Source::Base64(data) = s else { continue };
                    let bytes = crate::attachment::decoded(data).unwrap_or_default();
                    json!({"type": "document", "source": {"type": "text",
                        "media_type": "text/plain", "data": String::from_utf8_lossy(&bytes)}})
                } else {
                    json!({"type": "document", "source": source(mime, s)})
                };
                if let Some(name) = name {
                    block["title"] = json!(name);
                }
                block
            }
            // Refused before the request is built (`require_supported`).
            _ => continue,
        };
        out.push(block);
    }
    Value::Array(out)
}

fn has_calls(m: &Message) -> bool {
    m.parts.iter().any(|p| matches!(p, Part::ToolCall { .. }))
}

/// An assistant message with tool calls as blocks: its text, then a `tool_use` per call (the
/// input must be an object: arguments the model wrote as invalid JSON go back as `{}`).
fn calling(m: &Message) -> Value {
    let mut blocks = Vec::with_capacity(m.parts.len());
    for part in &m.parts {
        match part {
            Part::Text { text } if !text.is_empty() => {
                blocks.push(json!({"type": "text", "text": text}));
            }
            Part::ToolCall {
                id,
                name,
                arguments,
                ..
            } => {
                let input = if arguments.is_object() {
                    arguments.clone()
                } else {
                    json!({})
                };
                blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
            }
            _ => {}
        }
    }
    Value::Array(blocks)
}

/// A tool message's results as `tool_result` blocks.
fn results(m: &Message) -> Value {
    m.parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolResult {
                call_id,
                content,
                is_error,
            } => {
                let mut block =
                    json!({"type": "tool_result", "tool_use_id": call_id, "content": content});
                if *is_error {
                    block["is_error"] = json!(true);
                }
                Some(block)
            }
            _ => None,
        })
        .collect()
}

/// Reads `{"type":"error","error":{"type","message"},"request_id"}`.
pub(super) fn read_error(_status: StatusCode, body: &str) -> ErrorDetail {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return ErrorDetail::default();
    };
    let error = &value["error"];
    let mut detail = ErrorDetail {
        message: error["message"].as_str().map(str::to_owned),
        ..ErrorDetail::default()
    };
    match error["type"].as_str().unwrap_or_default() {
        "authentication_error" | "permission_error" => detail.code = Some(ErrorCode::Auth),
        "not_found_error" => detail.code = Some(ErrorCode::NotFound),
        "rate_limit_error" => detail.code = Some(ErrorCode::RateLimit),
        "overloaded_error" | "api_error" => detail.code = Some(ErrorCode::Provider),
        "billing_error" => {
            // Out of credit: waiting does not help.
            detail.code = Some(ErrorCode::RateLimit);
            detail.retryable = Some(false);
            detail.advice = Some("add credit to the Anthropic account".to_owned());
        }
        _ => {}
    }
    detail
}
