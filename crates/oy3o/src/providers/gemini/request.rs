//! Building `streamGenerateContent` requests and reading Google API error bodies
//! (PROVIDERS.md §4.1, §4.6).

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName};
use serde_json::{Map, Value, json};

use crate::config::Target;
use crate::error::ErrorCode;
use crate::message::{Message, Part, Role, Source};
use crate::provider::CompletionRequest;
use crate::tool::ToolChoice;
use crate::transport::http::{ErrorDetail, request_headers};

/// What stays the same for every request of a session.
pub(super) struct RequestShape {
    pub(super) headers: HeaderMap,
}

impl RequestShape {
    pub(super) fn new(target: &Target) -> Self {
        let headers = request_headers(
            target,
            |key| (HeaderName::from_static("x-goog-api-key"), key.to_owned()),
            &[],
        );
        Self { headers }
    }
}

/// The request body: `contents` with roles `user` and `model`, the context as
/// `systemInstruction`, options in `generationConfig`.
pub(super) fn body(request: &CompletionRequest) -> Value {
    let mut system = Vec::new();
    let mut contents = Vec::with_capacity(request.messages.len());
    for m in &request.messages {
        let role = match m.role {
            Role::System => {
                system.push(m.text());
                continue;
            }
            Role::User | Role::Tool => "user",
            Role::Assistant => "model",
        };
        contents.push(json!({ "role": role, "parts": parts(m, &request.messages) }));
    }
    let mut body = json!({ "contents": contents });
    if !system.is_empty() {
        body["systemInstruction"] = json!({ "parts": [{ "text": system.join("\n\n") }] });
    }
    let o = &request.options;
    let mut config = Map::new();
    if let Some(t) = o.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = o.top_p {
        config.insert("topP".into(), json!(p));
    }
    if let Some(m) = o.max_tokens {
        config.insert("maxOutputTokens".into(), json!(m));
    }
    if let Some(s) = o.seed {
        config.insert("seed".into(), json!(s));
    }
    // Request controls (TOOLS.md §4.5, §4.6): a thinking budget with thought summaries (so
    // reasoning arrives as events), JSON with the schema as plain JSON Schema, stop sequences.
    if let Some(level) = o.reasoning {
        config.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": crate::controls::gemini_budget(level), "includeThoughts": true}),
        );
    }
    if let Some(schema) = &o.schema {
        config.insert("responseMimeType".into(), json!("application/json"));
        config.insert("responseJsonSchema".into(), schema.schema.clone());
    }
    if let Some(stop) = o.stop.as_ref().filter(|s| !s.is_empty()) {
        config.insert("stopSequences".into(), json!(stop));
    }
    if !config.is_empty() {
        body["generationConfig"] = Value::Object(config);
    }
    if let Some(tools) = o.tools.as_deref().filter(|t| !t.specs.is_empty()) {
        // Plain JSON Schema goes in `parametersJsonSchema` (TOOLS.md §4.1).
        let declarations: Vec<Value> = tools
            .specs
            .iter()
            .map(|spec| {
                let mut d = json!({ "name": spec.name });
                if let Some(text) = &spec.description {
                    d["description"] = json!(text);
                }
                if let Some(schema) = &spec.parameters {
                    d["parametersJsonSchema"] = schema.clone();
                }
                d
            })
            .collect();
        body["tools"] = json!([{ "functionDeclarations": declarations }]);
        // No parallel switch on Gemini: several calls are several parts.
        let config = match &tools.choice {
            None => None,
            Some(ToolChoice::Auto) => Some(json!({ "mode": "AUTO" })),
            Some(ToolChoice::None) => Some(json!({ "mode": "NONE" })),
            Some(ToolChoice::Required) => Some(json!({ "mode": "ANY" })),
            Some(ToolChoice::Named(name)) => {
                Some(json!({ "mode": "ANY", "allowedFunctionNames": [name] }))
            }
        };
        if let Some(config) = config {
            body["toolConfig"] = json!({ "functionCallingConfig": config });
        }
    }
    // Web search: the `google_search` tool beside the function declarations (PROVIDERS.md §4.7).
    if o.search == Some(true) {
        let search = json!({ "google_search": {} });
        match body["tools"].as_array_mut() {
            Some(tools) => tools.push(search),
            None => body["tools"] = json!([search]),
        }
    }
    body
}

/// A message's parts: text, `functionCall` parts (with the `thoughtSignature` they came with,
/// at the same place, TOOLS.md §4.2) and `functionResponse` parts named after the call they
/// answer (§4.3); the call's id goes back only when the model gave one.
fn parts(m: &Message, all: &[Message]) -> Vec<Value> {
    let mut out = Vec::with_capacity(m.parts.len());
    for part in &m.parts {
        match part {
            Part::ToolCall {
                id,
                name,
                arguments,
                signature,
            } => {
                let mut call = json!({ "name": name, "args": if arguments.is_object() { arguments.clone() } else { json!({}) } });
                if !id.starts_with(SYNTHETIC_ID) {
                    call["id"] = json!(id);
                }
                let mut wire = json!({ "functionCall": call });
                if let Some(signature) = signature {
                    wire["thoughtSignature"] = json!(signature);
                }
                out.push(wire);
            }
            Part::ToolResult {
                call_id,
                content,
                is_error,
            } => {
                let name = crate::message::tool_name_of(all, call_id);
                let key = if *is_error { "error" } else { "output" };
                let mut response = json!({ "name": name, "response": { key: content } });
                if !call_id.starts_with(SYNTHETIC_ID) {
                    response["id"] = json!(call_id);
                }
                out.push(json!({ "functionResponse": response }));
            }
            // Attachments (TOOLS.md §4.4), in camelCase as every other field here: inline bytes
            // as `inlineData` (raw base64, not a data URL), File API URIs as `fileData`, a
            // text document as text.
            Part::Image { mime, source }
            | Part::Audio { mime, source }
            | Part::Document { mime, source, .. } => {
                if let Some(text) = crate::attachment::document_text(part) {
                    out.push(json!({ "text": text }));
                    continue;
                }
                out.push(match source {
                    Source::Base64(data) => {
                        json!({ "inlineData": { "mimeType": mime, "data": data } })
                    }
                    Source::Url(uri) => json!({ "fileData": { "mimeType": mime, "fileUri": uri } }),
                });
            }
            other => {
                if let Some(text) = other.as_text() {
                    out.push(json!({ "text": text }));
                }
            }
        }
    }
    if out.is_empty() {
        out.push(json!({ "text": "" }));
    }
    out
}

/// The start of the ids this provider makes up for calls that came without one (the Gemini API
/// usually sends none); such ids are not sent back.
pub(super) const SYNTHETIC_ID: &str = "gemini-call-";

/// Reads `{"error":{"code","message","status","details"}}`: a bad key (a 400, not a 401) is an
/// auth error, `RetryInfo.retryDelay` is the wait a 429 asks for (there is no `Retry-After`),
/// and a per-day quota is not worth retrying.
pub(super) fn read_error(_status: StatusCode, body: &str) -> ErrorDetail {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return ErrorDetail::default();
    };
    let error = &value["error"];
    let message = error["message"].as_str().unwrap_or_default();
    let mut detail = ErrorDetail {
        message: (!message.is_empty()).then(|| message.to_owned()),
        ..ErrorDetail::default()
    };
    // A bad key is a 400 `INVALID_ARGUMENT`; not every answer carries the `ErrorInfo` detail
    // that says so, but its message always does.
    if matches!(
        error["status"].as_str(),
        Some("UNAUTHENTICATED" | "PERMISSION_DENIED")
    ) || message.starts_with("API key not valid")
        || message.starts_with("API key expired")
    {
        detail.code = Some(ErrorCode::Auth);
    }
    for d in error["details"].as_array().into_iter().flatten() {
        let kind = d["@type"].as_str().unwrap_or_default();
        if kind.ends_with("google.rpc.ErrorInfo") && d["reason"] == "API_KEY_INVALID" {
            detail.code = Some(ErrorCode::Auth);
        } else if kind.ends_with("google.rpc.RetryInfo") {
            detail.retry_hint = d["retryDelay"].as_str().and_then(duration);
        } else if kind.ends_with("google.rpc.QuotaFailure") {
            let per_day = d["violations"].as_array().into_iter().flatten().any(|v| {
                v["quotaId"]
                    .as_str()
                    .is_some_and(|id| id.contains("PerDay"))
            });
            if per_day {
                detail.code = Some(ErrorCode::RateLimit);
                detail.retryable = Some(false);
                detail.advice = Some(
                    "the daily quota is used up: waiting minutes will not help; try tomorrow, \
                     another model, or a paid key"
                        .to_owned(),
                );
            }
        }
    }
    detail
}

/// A protobuf duration as JSON writes it: `"36s"`, `"45.837906927s"`.
fn duration(text: &str) -> Option<Duration> {
    let secs: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_with_fractions_parse() {
        assert_eq!(duration("36s"), Some(Duration::from_secs(36)));
        assert_eq!(duration("0.25s"), Some(Duration::from_millis(250)));
        assert_eq!(duration("soon"), None);
        assert_eq!(duration("-1s"), None);
    }

    #[test]
    fn a_bad_key_without_the_error_info_detail_is_still_an_auth_error() {
        let body = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#;
        let d = read_error(StatusCode::BAD_REQUEST, body);
        assert_eq!(d.code, Some(ErrorCode::Auth));
    }

    #[test]
    fn a_bad_key_reads_as_an_auth_error() {
        let body = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        let d = read_error(StatusCode::BAD_REQUEST, body);
        assert_eq!(d.code, Some(ErrorCode::Auth));
        assert_eq!(
            d.message.as_deref(),
            Some("API key not valid. Please pass a valid API key.")
        );
    }
}
