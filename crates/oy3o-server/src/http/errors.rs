//! Every HTTP error in OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`),
//! whoever made it: the body-size limit (413), a wrong method (405), an unreadable body (400),
//! a body that ran out of time (408), a WebSocket route asked without an upgrade. SDKs then
//! show the message instead of failing to parse the error.

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::openai::api_error;
use crate::listen::BodyTimedOut;

/// How much of a plain-text error body is kept as the message.
const MESSAGE_BYTES: usize = 4 << 10;

/// Runs the request; an error response that is not JSON is rewritten, status and headers kept.
pub(crate) async fn openai_shape(request: Request, next: Next) -> Response {
    let timed_out = request.extensions().get::<BodyTimedOut>().cloned();
    let response = next.run(request).await;
    let status = response.status();
    if status.is_success() {
        return response;
    }
    if timed_out.is_some_and(|t| t.happened()) {
        return api_error(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the request body did not arrive in time (body_timeout_secs)",
        );
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, MESSAGE_BYTES).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "too_large",
            "the request body is larger than this server accepts (max_body_bytes)".to_owned(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            format!(
                "this route does not take that method; it takes {}",
                parts
                    .headers
                    .get(header::ALLOW)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("another one")
            ),
        ),
        StatusCode::NOT_FOUND => ("not_found", "no such route".to_owned()),
        s if s.is_client_error() => ("bad_request", non_empty(&text, s)),
        s => ("internal", non_empty(&text, s)),
    };
    let mut shaped = api_error(status, code, &message);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in parts.headers {
        if let Some(name) = name {
            shaped.headers_mut().insert(name, value);
        }
    }
    shaped
}

fn non_empty(text: &str, status: StatusCode) -> String {
    match text.trim() {
        "" => status.canonical_reason().unwrap_or("error").to_owned(),
        t => t.to_owned(),
    }
}
