//! Who may use the server: the bind rule (a token beyond loopback), the bearer token (header or
//! `?token=`, compared in constant time), the browser `Origin` allow-list and, without a token,
//! a `Host` check that defeats DNS rebinding.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{Error, Result};
use crate::settings::{Settings, Token};
use crate::state::AppState;

/// Refuses to serve a non-loopback address without a token: loopback (`127.0.0.0/8`, `::1`)
/// is fine without one, anything else (`0.0.0.0`, a LAN address) needs it.
///
/// ```
/// use oy3o_server::check_bind;
/// assert!(check_bind("127.0.0.1:8443".parse().unwrap(), false).is_ok());
/// assert!(check_bind("[::1]:8443".parse().unwrap(), false).is_ok());
/// assert!(check_bind("0.0.0.0:8443".parse().unwrap(), false).is_err());
/// assert!(check_bind("0.0.0.0:8443".parse().unwrap(), true).is_ok());
/// ```
pub fn check_bind(addr: SocketAddr, has_token: bool) -> Result<()> {
    if addr.ip().is_loopback() || has_token {
        Ok(())
    } else {
        Err(Error::TokenRequired { addr })
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= usize::from(g ^ e);
    }
    std::hint::black_box(diff) == 0
}

/// The token a request carries: `Authorization: Bearer T`, else `?token=T`.
fn presented_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
    {
        return Some(token.trim().to_owned());
    }
    query?.split('&').find_map(|pair| {
        let value = pair.strip_prefix("token=")?;
        Some(percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when the request carries one of the server's tokens (or the server has none).
pub(crate) fn authorized_any(
    settings: &Settings,
    headers: &HeaderMap,
    query: Option<&str>,
) -> bool {
    if settings.tokens.is_empty() {
        return authorized(settings.token.as_ref(), headers, query);
    }
    let Some(given) = presented_token(headers, query) else {
        return false;
    };
    settings
        .token
        .iter()
        .chain(&settings.tokens)
        .fold(false, |ok, t| {
            same_secret(given.as_bytes(), t.expose().as_bytes()) | ok
        })
}

/// Who a request comes from, worked out once by [`guard`] and handed to the handlers as a
/// request extension: the owner of its chats ([`owner`]) and, when it presented a key from the
/// store, that key (its name labels metrics and logs; its limits apply).
#[derive(Clone, Debug, Default)]
pub(crate) struct Identity {
    /// The owner of its chats: the SHA-256 of its token or key, `""` without one.
    pub owner: String,
    /// The store key it presented, if it was one.
    pub key: Option<Arc<oy3o_store::KeyRecord>>,
}

impl Identity {
    /// The name of the key the request presented, if it was a store key.
    pub(crate) fn key_name(&self) -> Option<&str> {
        self.key.as_deref().map(|k| k.name.as_str())
    }
}

/// Who the request is, or `None` when it may not use the server: a static token
/// (`token`, `tokens`), else a live store key (with `keys = true`), else, on a server with
/// neither, the local user.
pub(crate) async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Option<Identity> {
    let settings = &state.settings;
    if !settings.has_token() {
        return Some(Identity::default());
    }
    let static_tokens = settings.token.is_some() || !settings.tokens.is_empty();
    if static_tokens && authorized_any(settings, headers, query) {
        return Some(Identity {
            owner: owner(settings, headers, query),
            key: None,
        });
    }
    if !settings.keys {
        return None;
    }
    let given = presented_token(headers, query)?;
    let open = state.store.open_store()?;
    let hash = owner_of(&given);
    let key = state.keys.find(&open.store, &hash).await?;
    Some(Identity {
        owner: hash,
        key: Some(key),
    })
}

/// Whose chats a client may see: the SHA-256 (hex) of its token when the server has tokens,
/// `""` when it has none. The token itself is never kept.
pub(crate) fn owner(settings: &Settings, headers: &HeaderMap, query: Option<&str>) -> String {
    if !settings.has_token() {
        return String::new();
    }
    owner_of(&presented_token(headers, query).unwrap_or_default())
}

/// The owner a token stands for: the SHA-256 (hex) of it.
pub(crate) fn owner_of(token: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True when the request carries the server's token (or the server has none).
pub(crate) fn authorized(token: Option<&Token>, headers: &HeaderMap, query: Option<&str>) -> bool {
    let Some(expected) = token else { return true };
    presented_token(headers, query)
        .is_some_and(|given| same_secret(given.as_bytes(), expected.expose().as_bytes()))
}

/// Whether a browser `Origin` may use the server: its own origin (same host and port as the
/// request's `Host`), one listed in the settings, or any with `"*"`.
pub(crate) fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(host) = host else { return false };
    let own = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    own.is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// Without a token, only hosts that cannot be rebound to us by a web page's DNS are served:
/// `localhost` and IP literals.
pub(crate) fn host_allowed(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok()
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "message": message, "type": code, "code": code } });
    (status, axum::Json(body)).into_response()
}

/// The middleware in front of every route: host and origin checks, CORS for allowed origins,
/// then the token (except for `GET /health` and CORS preflights).
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !state.settings.has_token()
        && let Some(h) = &host
        && !host_allowed(h)
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "unknown Host: without a token this server answers only to localhost and IP \
             addresses; use http://127.0.0.1:PORT or set a token",
        );
    }
    let origin = headers.get(header::ORIGIN).cloned();
    if let Some(o) = &origin {
        let allowed = o
            .to_str()
            .is_ok_and(|o| origin_allowed(o, host.as_deref(), &state.settings.origins));
        if !allowed {
            return refuse(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this browser origin is not allowed; add it to origins in [server]",
            );
        }
    }
    if request.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        cors(response.headers_mut(), origin);
        return response;
    }
    let open = request.uri().path() == "/health";
    let mut request = request;
    if !open {
        let Some(identity) = identify(&state, request.headers(), request.uri().query()).await
        else {
            state.metrics.unauthorized();
            return refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing, wrong or revoked token: send Authorization: Bearer TOKEN or add \
                 ?token=TOKEN",
            );
        };
        if let Some(key) = identity.key_name() {
            tracing::debug!(key, path = request.uri().path(), "request with a store key");
        }
        request.extensions_mut().insert(identity);
    }
    let mut response = next.run(request).await;
    cors(response.headers_mut(), origin);
    response
}

fn cors(headers: &mut HeaderMap, origin: Option<HeaderValue>) {
    let Some(origin) = origin else { return };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::VARY, HeaderValue::from_static("origin"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"abcd", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }

    #[test]
    fn the_token_is_read_from_the_header_or_the_query() {
        let token = Token::new("s3cr3t/+").unwrap();
        let mut headers = HeaderMap::new();
        assert!(!authorized(Some(&token), &headers, None));
        assert!(authorized(
            Some(&token),
            &headers,
            Some("a=1&token=s3cr3t%2F%2B")
        ));
        assert!(!authorized(Some(&token), &headers, Some("token=s3cr3t")));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cr3t/+"),
        );
        assert!(authorized(Some(&token), &headers, None));
        assert!(authorized(None, &HeaderMap::new(), None));
    }

    #[test]
    fn the_owner_is_a_hash_of_the_token_never_the_token() {
        let mut settings = Settings {
            tokens: vec![Token::new("t-alice").unwrap(), Token::new("t-bob").unwrap()],
            ..Settings::default()
        };
        let mut alice = HeaderMap::new();
        alice.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer t-alice"),
        );
        let a = owner(&settings, &alice, None);
        assert_eq!(a.len(), 64);
        assert!(!a.contains("t-alice"));
        assert_eq!(
            a,
            owner(&settings, &HeaderMap::new(), Some("token=t-alice"))
        );
        assert_ne!(a, owner(&settings, &HeaderMap::new(), Some("token=t-bob")));
        assert!(authorized_any(
            &settings,
            &HeaderMap::new(),
            Some("token=t-bob")
        ));
        assert!(!authorized_any(
            &settings,
            &HeaderMap::new(),
            Some("token=t-eve")
        ));
        settings.tokens.clear();
        assert_eq!(
            owner(&settings, &alice, None),
            "",
            "no tokens: the local user"
        );
    }

    #[test]
    fn only_the_own_or_listed_origins_are_allowed() {
        let listed = vec!["https://app.example".to_owned()];
        assert!(origin_allowed(
            "http://127.0.0.1:8443",
            Some("127.0.0.1:8443"),
            &[]
        ));
        assert!(!origin_allowed(
            "http://evil.example",
            Some("127.0.0.1:8443"),
            &[]
        ));
        assert!(!origin_allowed(
            "http://127.0.0.1:9999",
            Some("127.0.0.1:8443"),
            &[]
        ));
        assert!(origin_allowed(
            "https://app.example/",
            Some("127.0.0.1:8443"),
            &listed
        ));
        assert!(origin_allowed("null", None, &["*".to_owned()]));
    }

    #[test]
    fn rebindable_host_names_are_refused_without_a_token() {
        for ok in [
            "127.0.0.1:8443",
            "localhost:1",
            "[::1]:80",
            "LOCALHOST",
            "10.0.0.2",
            "a.localhost:3",
        ] {
            assert!(host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:8443",
            "evil.example",
            "127.0.0.1.evil.example",
        ] {
            assert!(!host_allowed(bad), "{bad}");
        }
    }
}
