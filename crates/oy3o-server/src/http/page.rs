//! `GET /`: the web chat page, one HTML file with its style and script inline, built into the
//! binary. It talks to the server over the WebSocket protocol, lists models from `/v1/models`
//! and the owner's stored chats from `/chats`.
//!
//! Its Content-Security-Policy allows exactly the page's own script, by its SHA-256 hash (CSP
//! Level 3, <https://www.w3.org/TR/CSP3/#grammardef-hash-source>): a hash source turns off
//! `'unsafe-inline'`, so neither an injected `<script>` nor an inline handler (`onerror=`) can
//! run, whatever an answer holds. The page itself never inserts model text as HTML (it renders
//! markdown escape-first); the policy is the second wall.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::Digest as _;

/// The page's source.
const PAGE: &str = include_str!("../../page/index.html");

/// Where the page reads the largest request frame it may send (attachments included).
const MAX_FRAME_SLOT: &str = "__MAX_FRAME_BYTES__";

/// The page's Content-Security-Policy, with the hash of its one inline script.
static POLICY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'unsafe-inline'; \
         img-src 'self' blob: data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'none'",
        script_hash(PAGE)
    )
});

/// The base64 SHA-256 of the text between the page's `<script>` and `</script>`, as a CSP
/// hash source names it.
fn script_hash(page: &str) -> String {
    let script = page
        .split_once("<script>")
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map_or("", |(script, _)| script);
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script.as_bytes()))
}

/// Serves the page; it reads `?token=` from its own address when the server needs one, and
/// learns the frame limit (`max_frame_bytes`) to check attachments before sending them.
pub(crate) async fn page(max_frame_bytes: usize) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        [(header::CONTENT_SECURITY_POLICY, POLICY.as_str())],
        PAGE.replacen(MAX_FRAME_SLOT, &max_frame_bytes.to_string(), 1),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_one_inline_script_and_no_unsafe_inline_script() {
        assert_eq!(
            PAGE.matches("<script").count(),
            1,
            "one inline script, hashed"
        );
        let policy = POLICY.as_str();
        let script_src = policy
            .split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .unwrap();
        assert!(!script_src.contains("unsafe"), "{script_src}");
        assert!(script_src.contains(&format!("'sha256-{}'", script_hash(PAGE))));
        assert_eq!(script_hash("<script>x</script>").len(), 44);
        assert!(PAGE.contains(MAX_FRAME_SLOT));
    }
}
