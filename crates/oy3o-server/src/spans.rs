//! The server's own spans, the roots of the engine's (see `oy3o::trace`): one per HTTP request
//! (OpenTelemetry HTTP server conventions:
//! <https://opentelemetry.io/docs/specs/semconv/http/http-spans/#http-server>) and one per
//! WebSocket request frame. Disabled, and free, unless `crate::otlp` installed an exporter.

use tracing::Span;
use tracing::field::Empty;

use crate::metrics::Route;

/// The span of one HTTP request, named `METHOD route`.
pub(crate) fn http_request(method: &str, route: Route, path: &str) -> Span {
    tracing::info_span!(
        target: oy3o::trace::TARGET,
        "http_request",
        otel.name = %format_args!("{method} {}", route.template()),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route.template(),
        url.path = path,
        http.response.status_code = Empty,
    )
}

/// Records the response's status on `span` (a 5xx marks it failed, as the conventions say).
pub(crate) fn http_response(span: &Span, status: u16) {
    // Signed: OTLP's integer (an unsigned field would be exported as text).
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
}

/// The span of one WebSocket request frame (a prompt, a chat's turn, a chain).
pub(crate) fn websocket_request(kind: &'static str, model: Option<&str>) -> Span {
    tracing::info_span!(
        target: oy3o::trace::TARGET,
        "websocket_request",
        otel.name = %format_args!("websocket {kind}"),
        otel.kind = "server",
        otel.status_code = Empty,
        oy3o.request = kind,
        gen_ai.request.model = model,
    )
}
