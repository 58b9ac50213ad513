//! One shared HTTP client per proxy setting, so connections are pooled across chats; and the
//! one check of a proxy URL that every face (CLI, server, Python) relies on.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use reqwest::Url;

use crate::error::{Error, Result};

type Key = (Option<String>, Duration);

/// The proxy schemes oy3o can use.
pub const PROXY_SCHEMES: &[&str] = &["http", "https", "socks5", "socks5h"];

/// How many clients [`shared`] keeps: past it the one used longest ago is dropped (its pooled
/// connections close once the last request on it ends), so endless distinct proxy strings
/// cannot grow the process.
pub const CACHED_CLIENTS: usize = 64;

/// Where a proxy URL points: its scheme, host (lowercase) and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyAddr {
    /// `http`, `https`, `socks5` or `socks5h`.
    pub scheme: String,
    /// The host name or IP address, lowercase (IPv6 without brackets).
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
}

/// The proxy setting that means no proxy: requests go out directly, even when `HTTPS_PROXY`
/// or `HTTP_PROXY` is set (as curl's `--proxy ""`). Given with a call it turns a global proxy
/// off for that call; as `proxies.openai = ""` it does so for one model. (An unset proxy,
/// `None`, follows the environment.)
pub const NO_PROXY: &str = "";

/// Whether a proxy setting is [`NO_PROXY`] (white space around it aside).
pub fn is_no_proxy(setting: &str) -> bool {
    setting.trim().is_empty()
}

/// Checks a proxy setting: [`NO_PROXY`] (`Ok(None)`: go direct), or a URL [`check_proxy`]
/// accepts. Config layers, files and faces check their `proxy` values with it.
///
/// ```
/// use oy3o::transport::client::{NO_PROXY, check_proxy_setting};
/// assert_eq!(check_proxy_setting(NO_PROXY).unwrap(), None);
/// assert_eq!(check_proxy_setting("http://127.0.0.1:3128").unwrap().unwrap().port, 3128);
/// assert!(check_proxy_setting("htp://127.0.0.1:3128").is_err());
/// ```
pub fn check_proxy_setting(setting: &str) -> Result<Option<ProxyAddr>> {
    if is_no_proxy(setting) {
        return Ok(None);
    }
    check_proxy(setting).map(Some)
}

/// Checks a proxy URL: one of [`PROXY_SCHEMES`] written out, and a host. Anything else (an
/// `ftp://` proxy, a typo such as `htp://`, text without a scheme) is a config error, so a
/// request is never sent directly when a proxy was meant. The password is never shown.
///
/// ```
/// use oy3o::transport::client::check_proxy;
/// let addr = check_proxy("socks5h://user:pw@Proxy.example:1080").unwrap();
/// assert_eq!((addr.host.as_str(), addr.port), ("proxy.example", 1080));
/// assert_eq!(check_proxy("http://127.0.0.1").unwrap().port, 80);
/// for bad in ["ftp://proxy.example", "htp://127.0.0.1:3128", "garbage", "http://"] {
///     assert!(check_proxy(bad).is_err(), "{bad}");
/// }
/// ```
pub fn check_proxy(url: &str) -> Result<ProxyAddr> {
    let fix = "use http://, https://, socks5:// or socks5h:// URLs such as http://127.0.0.1:3128";
    if !url.contains("://") {
        // Not shown: without a scheme a password cannot be told apart to hide it.
        return Err(Error::config(format!(
            "invalid proxy: it has no scheme; {fix}"
        )));
    }
    let shown = crate::config::redact_url(url);
    let parsed =
        Url::parse(url).map_err(|e| Error::config(format!("invalid proxy {shown}: {e}; {fix}")))?;
    let scheme = parsed.scheme();
    if !PROXY_SCHEMES.contains(&scheme) {
        return Err(Error::config(format!(
            "invalid proxy {shown}: {scheme}:// proxies are not supported; {fix}"
        )));
    }
    let host = match parsed.host_str() {
        Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
        _ => {
            return Err(Error::config(format!(
                "invalid proxy {shown}: no host; {fix}"
            )));
        }
    };
    let port = parsed.port_or_known_default().unwrap_or(match scheme {
        "socks5" | "socks5h" => 1080,
        _ => 80,
    });
    Ok(ProxyAddr {
        scheme: scheme.to_owned(),
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// A client and when it was last handed out (a counter, for dropping the oldest).
struct Cached {
    client: reqwest::Client,
    used: u64,
}

#[derive(Default)]
struct Cache {
    clients: HashMap<Key, Cached>,
    clock: u64,
}

impl Cache {
    fn get(&mut self, key: &Key) -> Option<reqwest::Client> {
        self.clock += 1;
        let now = self.clock;
        self.clients.get_mut(key).map(|c| {
            c.used = now;
            c.client.clone()
        })
    }

    fn insert(&mut self, key: Key, client: reqwest::Client) {
        if self.clients.len() >= CACHED_CLIENTS
            && !self.clients.contains_key(&key)
            && let Some(oldest) = self
                .clients
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k.clone())
        {
            self.clients.remove(&oldest);
        }
        self.clock += 1;
        let used = self.clock;
        self.clients.insert(key, Cached { client, used });
    }
}

fn cache() -> std::sync::MutexGuard<'static, Cache> {
    static CLIENTS: OnceLock<Mutex<Cache>> = OnceLock::new();
    CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// The client for `proxy` (`http://`, `https://`, `socks5://`, `socks5h://`; [`NO_PROXY`]
/// goes direct; `None` follows the `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` environment), with
/// `TCP_NODELAY` and the given connect timeout. Clients are built once and shared; at most
/// [`CACHED_CLIENTS`] are kept.
pub fn shared(proxy: Option<&str>, connect_timeout: Duration) -> Result<reqwest::Client> {
    let key = (proxy.map(str::to_owned), connect_timeout);
    if let Some(c) = cache().get(&key) {
        return Ok(c);
    }
    let client = build(proxy, connect_timeout)?;
    cache().insert(key, client.clone());
    Ok(client)
}

/// How many clients are cached now.
#[cfg(test)]
fn cached() -> usize {
    cache().clients.len()
}

fn build(proxy: Option<&str>, connect_timeout: Duration) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("oy3o/", env!("CARGO_PKG_VERSION")))
        // Our config, so the platform's roots load at the first https handshake, not here.
        .tls_backend_preconfigured(super::tls::client_config(super::tls::ALPN_HTTP)?);
    match proxy {
        Some(url) if is_no_proxy(url) => builder = builder.no_proxy(),
        Some(url) => {
            check_proxy(url)?;
            let shown = crate::config::redact_url(url);
            let parsed = reqwest::Proxy::all(url).map_err(|e| {
                Error::config(format!(
                    "invalid proxy {shown}: {e}; use http://, https://, socks5:// or socks5h:// URLs"
                ))
            })?;
            builder = builder.proxy(parsed);
        }
        None => {}
    }
    builder
        .build()
        .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_proxy_schemes_are_config_errors_that_hide_the_password() {
        for bad in [
            "ftp://u:hunter2@127.0.0.1:21",
            "htp://u:hunter2@127.0.0.1:3128",
            "garbage",
            "u:hunter2@127.0.0.1:3128",
        ] {
            let e = shared(Some(bad), Duration::from_secs(1)).unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::Config, "{bad}");
            assert!(!e.message().contains("hunter2"), "{}", e.message());
            assert!(e.message().contains("socks5h://"), "{}", e.message());
        }
        assert!(shared(Some("socks5h://127.0.0.1:1"), Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn the_client_cache_is_bounded() {
        let timeout = Duration::from_millis(1234);
        for i in 0..CACHED_CLIENTS + 20 {
            let proxy = format!("http://u{i}:x@127.0.0.1:9");
            shared(Some(&proxy), timeout).unwrap();
        }
        assert!(cached() <= CACHED_CLIENTS, "{}", cached());
    }
}
