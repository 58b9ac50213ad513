//! WebSocket connections for stateful providers (`bing`): TCP straight, or through an HTTP
//! `CONNECT` or SOCKS5 proxy, then TLS for `wss://` with the same rustls setup reqwest uses
//! (aws-lc-rs, the platform verifier, as `reqwest::async_impl::client` builds it), then the
//! WebSocket handshake by tungstenite.
//!
//! Only tungstenite's handshake is used, not its `connect`: the proxy tunnel and TLS are done
//! here so that both proxy kinds work and no second TLS stack is linked.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use reqwest::Url;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use crate::config::redact_url;
use crate::error::{Error, ErrorCode, Result};
use crate::transport::client;

/// A byte stream a WebSocket runs over: plain TCP or TLS, tunnelled or not.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// An open WebSocket.
pub type Socket = WebSocketStream<Box<dyn Io>>;

/// Why a WebSocket could not be opened.
#[derive(Debug)]
pub enum DialError {
    /// The server answered the upgrade with this HTTP status (and body) instead of 101.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The start of the body, as text.
        body: String,
    },
    /// Anything else: unreachable, proxy refused, TLS failed, timed out.
    Failed(Error),
}

/// What to open: the `ws://` or `wss://` URL, extra headers (sensitive ones marked so),
/// the proxy and the connect time limit.
pub struct Dial<'a> {
    /// `ws://host/path?query` or `wss://...`.
    pub url: &'a str,
    /// Headers sent with the upgrade request: `(name, value, sensitive)`.
    pub headers: Vec<(String, String, bool)>,
    /// `http://`, `socks5://` or `socks5h://` proxy, or [`client::NO_PROXY`] to go direct;
    /// `None` follows `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` and `NO_PROXY`, as the HTTP
    /// client does.
    pub proxy: Option<&'a str>,
    /// Time limit for TCP, proxy, TLS and the handshake together.
    pub connect_timeout: Duration,
}

/// Opens the WebSocket described by `dial`.
pub async fn connect(dial: Dial<'_>) -> std::result::Result<Socket, DialError> {
    let limit = dial.connect_timeout;
    match tokio::time::timeout(limit, open(dial)).await {
        Ok(result) => result,
        Err(_) => Err(DialError::Failed(Error::new(
            ErrorCode::Timeout,
            format!(
                "the WebSocket was not open within {limit:.0?}; check the network and the proxy"
            ),
        ))),
    }
}

async fn open(dial: Dial<'_>) -> std::result::Result<Socket, DialError> {
    let url = Url::parse(dial.url).map_err(|e| {
        DialError::Failed(Error::config(format!(
            "invalid WebSocket URL {}: {e}",
            dial.url
        )))
    })?;
    let secure = match url.scheme() {
        "wss" => true,
        "ws" => false,
        other => {
            return Err(DialError::Failed(Error::config(format!(
                "a WebSocket URL starts with ws:// or wss://, not {other}://"
            ))));
        }
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url
        .port_or_known_default()
        .unwrap_or(if secure { 443 } else { 80 });
    let proxy = match dial.proxy {
        Some(p) if client::is_no_proxy(p) => None,
        Some(p) => Some(p.to_owned()),
        None => env_proxy(&host, secure),
    };
    let tcp = match proxy.as_deref() {
        None => direct(&host, port).await,
        Some(p) => through(p, &host, port).await,
    }
    .map_err(DialError::Failed)?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = if secure {
        Box::new(tls(tcp, &host).await.map_err(DialError::Failed)?)
    } else {
        Box::new(tcp)
    };

    let mut request = dial
        .url
        .into_client_request()
        .map_err(|e| DialError::Failed(Error::config(format!("invalid WebSocket request: {e}"))))?;
    for (name, value, sensitive) in &dial.headers {
        let (Ok(name), Ok(mut value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        value.set_sensitive(*sensitive);
        request.headers_mut().insert(name, value);
    }
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(2048)]).into_owned())
                .unwrap_or_default();
            Err(DialError::Rejected { status, body })
        }
        Err(e) => Err(DialError::Failed(Error::network(format!(
            "the WebSocket handshake with {host} failed ({e}); check the base URL and the proxy"
        )))),
    }
}

async fn direct(host: &str, port: u16) -> Result<TcpStream> {
    TcpStream::connect((host, port)).await.map_err(|e| {
        Error::network(format!(
            "cannot reach {host}:{port} ({e}); check the network, the base URL and the proxy"
        ))
    })
}

/// Opens a tunnel to `host:port` through the proxy at `proxy`.
async fn through(proxy: &str, host: &str, port: u16) -> Result<TcpStream> {
    let shown = redact_url(proxy);
    let url = Url::parse(proxy).map_err(|e| {
        Error::config(format!(
            "invalid proxy {shown}: {e}; use http://, socks5:// or socks5h:// URLs"
        ))
    })?;
    let proxy_host = url.host_str().unwrap_or_default().to_owned();
    let user = (!url.username().is_empty()).then(|| {
        (
            percent_decode(url.username()),
            percent_decode(url.password().unwrap_or_default()),
        )
    });
    let failed = |what: String| {
        Error::network(format!(
            "the proxy {shown} {what}; check the proxy URL and that it allows tunnels to {host}:{port}"
        ))
    };
    match url.scheme() {
        "http" => {
            let proxy_port = url.port_or_known_default().unwrap_or(80);
            let mut tcp = TcpStream::connect((proxy_host.as_str(), proxy_port))
                .await
                .map_err(|e| failed(format!("cannot be reached ({e})")))?;
            http_connect(&mut tcp, host, port, user.as_ref())
                .await
                .map_err(failed)?;
            Ok(tcp)
        }
        "socks5" | "socks5h" => {
            let proxy_port = url.port().unwrap_or(1080);
            let mut tcp = TcpStream::connect((proxy_host.as_str(), proxy_port))
                .await
                .map_err(|e| failed(format!("cannot be reached ({e})")))?;
            // socks5h: the proxy resolves the name; socks5: we do.
            let target = if url.scheme() == "socks5" {
                let addr = tokio::net::lookup_host((host, port))
                    .await
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        Error::network(format!("cannot resolve {host}; check the host name"))
                    })?;
                SocksTarget::Ip(addr)
            } else {
                SocksTarget::Name(host, port)
            };
            socks5(&mut tcp, target, user.as_ref())
                .await
                .map_err(failed)?;
            Ok(tcp)
        }
        other => Err(Error::config(format!(
            "the proxy {shown} uses {other}://, which the WebSocket connection does not support; \
             use http://, socks5:// or socks5h://"
        ))),
    }
}

/// `%XX` escapes in proxy user names and passwords, as URLs carry them.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `CONNECT host:port` and the proxy's `200`.
async fn http_connect(
    tcp: &mut TcpStream,
    host: &str,
    port: u16,
    user: Option<&(String, String)>,
) -> std::result::Result<(), String> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((name, password)) = user {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("broke the connection ({e})"))?;
    // Read byte by byte up to the blank line so that nothing of the tunnel is consumed.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tcp
            .read(&mut byte)
            .await
            .map_err(|e| format!("broke the connection ({e})"))?;
        if n == 0 || head.len() > 16 * 1024 {
            return Err("closed the connection instead of answering CONNECT".to_owned());
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    let status = line.split(' ').nth(1).unwrap_or_default();
    if status.starts_with('2') {
        Ok(())
    } else if status == "407" {
        Err("asks for credentials (407); put user:password@ in the proxy URL".to_owned())
    } else {
        Err(format!("refused the tunnel ({line})"))
    }
}

enum SocksTarget<'a> {
    Ip(std::net::SocketAddr),
    Name(&'a str, u16),
}

/// The SOCKS5 greeting, optional user/password login (RFC 1929) and `CONNECT` (RFC 1928).
async fn socks5(
    tcp: &mut TcpStream,
    target: SocksTarget<'_>,
    user: Option<&(String, String)>,
) -> std::result::Result<(), String> {
    let io = |e: std::io::Error| format!("broke the connection ({e})");
    let method = if user.is_some() { 0x02 } else { 0x00 };
    tcp.write_all(&[0x05, 0x01, method]).await.map_err(io)?;
    let mut reply = [0u8; 2];
    tcp.read_exact(&mut reply).await.map_err(io)?;
    if reply[0] != 0x05 || reply[1] != method {
        return Err(if user.is_some() {
            "does not accept user/password login (SOCKS5)".to_owned()
        } else {
            "asks for credentials (SOCKS5); put user:password@ in the proxy URL".to_owned()
        });
    }
    if let Some((name, password)) = user {
        let (name, password) = (name.as_bytes(), password.as_bytes());
        if name.len() > 255 || password.len() > 255 {
            return Err("has a user name or password longer than SOCKS5 allows".to_owned());
        }
        let mut login = vec![0x01, name.len() as u8];
        login.extend_from_slice(name);
        login.push(password.len() as u8);
        login.extend_from_slice(password);
        tcp.write_all(&login).await.map_err(io)?;
        tcp.read_exact(&mut reply).await.map_err(io)?;
        if reply[1] != 0x00 {
            return Err("refused the user name or password (SOCKS5)".to_owned());
        }
    }
    let mut connect = vec![0x05, 0x01, 0x00];
    let port = match target {
        SocksTarget::Ip(std::net::SocketAddr::V4(a)) => {
            connect.push(0x01);
            connect.extend_from_slice(&a.ip().octets());
            a.port()
        }
        SocksTarget::Ip(std::net::SocketAddr::V6(a)) => {
            connect.push(0x04);
            connect.extend_from_slice(&a.ip().octets());
            a.port()
        }
        SocksTarget::Name(name, port) => {
            let name = name.trim_start_matches('[').trim_end_matches(']');
            if name.len() > 255 {
                return Err("cannot tunnel to a host name that long (SOCKS5)".to_owned());
            }
            connect.push(0x03);
            connect.push(name.len() as u8);
            connect.extend_from_slice(name.as_bytes());
            port
        }
    };
    connect.extend_from_slice(&port.to_be_bytes());
    tcp.write_all(&connect).await.map_err(io)?;
    let mut head = [0u8; 4];
    tcp.read_exact(&mut head).await.map_err(io)?;
    if head[1] != 0x00 {
        return Err(format!("refused the tunnel (SOCKS5 reply {})", head[1]));
    }
    // Skip the bound address the proxy reports.
    let skip = match head[3] {
        0x01 => 4,
        0x04 => 16,
        0x03 => {
            let mut len = [0u8; 1];
            tcp.read_exact(&mut len).await.map_err(io)?;
            usize::from(len[0])
        }
        other => return Err(format!("sent an unknown address type ({other})")),
    };
    let mut rest = vec![0u8; skip + 2];
    tcp.read_exact(&mut rest).await.map_err(io)?;
    Ok(())
}

/// The rustls client config (the engine's one TLS setup, `transport::tls`), ALPN `http/1.1`
/// because WebSockets need it.
fn tls_config() -> Result<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| super::tls::client_config(super::tls::ALPN_WEBSOCKET).map(Arc::new))
        .clone()
}

async fn tls(tcp: TcpStream, host: &str) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| Error::config(format!("invalid TLS server name {host}: {e}")))?;
    tokio_rustls::TlsConnector::from(tls_config()?)
        .connect(name, tcp)
        .await
        .map_err(|e| {
            Error::network(format!(
                "the TLS handshake with {host} failed ({e}); a proxy or firewall may be \
                 intercepting the connection"
            ))
        })
}

/// The proxy the environment names for `host`, as curl and reqwest read it.
fn env_proxy(host: &str, secure: bool) -> Option<String> {
    let var = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok())
            .filter(|v| !v.trim().is_empty())
    };
    let proxy = if secure {
        var(&["HTTPS_PROXY", "https_proxy"])
    } else {
        var(&["HTTP_PROXY", "http_proxy"])
    }
    .or_else(|| var(&["ALL_PROXY", "all_proxy"]))?;
    let no_proxy = var(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
    (!bypassed(&no_proxy, host)).then_some(proxy)
}

/// Whether a `NO_PROXY` list names `host` (itself, a parent domain, or `*`).
fn bypassed(no_proxy: &str, host: &str) -> bool {
    no_proxy.split(',').map(str::trim).any(|entry| {
        let entry = entry.trim_start_matches('.');
        !entry.is_empty() && (entry == "*" || host == entry || host.ends_with(&format!(".{entry}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_entries_match_hosts_and_their_subdomains() {
        assert!(bypassed(
            "localhost, .microsoft.com",
            "copilot.microsoft.com"
        ));
        assert!(!bypassed("microsoft.co", "copilot.microsoft.com"));
        assert!(!bypassed("", "copilot.microsoft.com"));
        assert!(bypassed("*", "anything"));
    }

    #[test]
    fn percent_escapes_in_proxy_credentials_are_decoded() {
        assert_eq!(percent_decode("p%40ss%3Aw"), "p@ss:w");
        assert_eq!(percent_decode("plain%"), "plain%");
        assert_eq!(percent_decode("%é%zz"), "%é%zz");
    }
}
