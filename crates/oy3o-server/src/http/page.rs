//! `GET /`: the web chat page, one HTML file with vanilla JS, built into the binary. It talks
//! to the server over the WebSocket protocol and lists models from `/v1/models`.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page's source.
const PAGE: &str = include_str!("../../page/index.html");

/// Serves the page; it reads `?token=` from its own address when the server needs one.
pub(crate) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            // Everything the page needs is inline or on this server; no framing.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        ],
        PAGE,
    )
        .into_response()
}
