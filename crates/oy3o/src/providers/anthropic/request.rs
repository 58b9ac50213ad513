//! Building Messages requests and reading error bodies (PROVIDERS.md §3.1, §3.7).

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName};
use serde_json::{Value, json};

use crate::config::Target;
use crate::error::ErrorCode;
use crate::message::Role;
use crate::provider::CompletionRequest;
use crate::transport::http::{ErrorDetail, request_headers};

/// The answer-length limit sent when the options set none: the API requires one.
pub(super) const DEFAULT_MAX_TOKENS: u32 = 4096;

/// What stays the same for every request of a session.
pub(super) struct RequestShape {
    model: String,
    pub(super) headers: HeaderMap,
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
        }
    }

    pub(super) fn body(&self, request: &CompletionRequest) -> Value {
        // The context is the top-level `system`; there is no system role in `messages`.
        let mut system = Vec::new();
        let mut messages = Vec::with_capacity(request.messages.len());
        for m in &request.messages {
            match m.role {
                Role::System => system.push(m.text()),
                // Other roles are refused before the request is built (`require_text`).
                Role::User | Role::Assistant | Role::Tool => {
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
        body
    }
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
