//! One shared HTTP client per proxy setting, so connections are pooled across chats.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::error::{Error, Result};

type Key = (Option<String>, Duration);

/// The client for `proxy` (`http://`, `https://`, `socks5://`, `socks5h://`; `None` follows
/// the `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` environment), with `TCP_NODELAY` and the given
/// connect timeout. Clients are built once and shared.
pub fn shared(proxy: Option<&str>, connect_timeout: Duration) -> Result<reqwest::Client> {
    static CLIENTS: OnceLock<Mutex<HashMap<Key, reqwest::Client>>> = OnceLock::new();
    let key = (proxy.map(str::to_owned), connect_timeout);
    let clients = CLIENTS.get_or_init(Default::default);
    if let Some(c) = clients.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(c.clone());
    }
    let client = build(proxy, connect_timeout)?;
    clients
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, client.clone());
    Ok(client)
}

fn build(proxy: Option<&str>, connect_timeout: Duration) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("oy3o/", env!("CARGO_PKG_VERSION")));
    if let Some(url) = proxy {
        let shown = crate::config::redact_url(url);
        let parsed = reqwest::Proxy::all(url).map_err(|e| {
            Error::config(format!(
                "invalid proxy {shown}: {e}; use http://, https://, socks5:// or socks5h:// URLs"
            ))
        })?;
        builder = builder.proxy(parsed);
    }
    builder
        .build()
        .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))
}
