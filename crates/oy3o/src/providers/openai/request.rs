//! Building Chat Completions requests and reading error bodies (PROVIDERS.md §1.2, §1.7).

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde_json::{Value, json};

use crate::config::Target;
use crate::error::ErrorCode;
use crate::provider::CompletionRequest;
use crate::transport::http::{ErrorDetail, request_headers};

/// What stays the same for every request of a session.
pub(super) struct RequestShape {
    model: String,
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
        Self {
            model: target.model.clone(),
            max_tokens_field,
            headers: headers(target),
        }
    }

    pub(super) fn body(&self, request: &CompletionRequest) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| json!({ "role": m.role.as_str(), "content": m.content }))
            .collect();
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "stream_options": { "include_usage": true },
        });
        let o = &request.options;
        if let Some(t) = o.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(p) = o.top_p {
            body["top_p"] = json!(p);
        }
        if let Some(s) = o.seed {
            body["seed"] = json!(s);
        }
        if let Some(m) = o.max_tokens {
            body[self.max_tokens_field.as_str()] = json!(m);
        }
        body
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
