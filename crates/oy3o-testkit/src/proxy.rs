//! A minimal HTTP proxy for tests: `CONNECT host:port` tunnels and absolute-form requests
//! (`GET http://host/path`), counting what passes through it.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy on `127.0.0.1` with a random port.
#[derive(Clone)]
pub struct HttpProxy {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl HttpProxy {
    /// Starts the proxy on the current tokio runtime.
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let addr = crate::listen::serve_loopback(move |socket| {
            let log = log.clone();
            async move {
                let _ = relay(socket, log).await;
            }
        })
        .await;
        Self {
            url: format!("http://{addr}"),
            seen,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The request lines seen (`CONNECT host:port`, `POST http://...`).
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn relay(mut client: TcpStream, seen: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = client.read(&mut tmp).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let line = head.lines().next().unwrap_or_default().to_owned();
    seen.lock().unwrap_or_else(|p| p.into_inner()).push(
        line.rsplit_once(' ')
            .map(|(l, _)| l.to_owned())
            .unwrap_or(line.clone()),
    );
    let mut words = line.split(' ');
    let method = words.next().unwrap_or_default();
    let target = words.next().unwrap_or_default();
    if method == "CONNECT" {
        let mut upstream = TcpStream::connect(target).await?;
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
        upstream.write_all(&buf[end..]).await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        return Ok(());
    }
    // Absolute form: http://host:port/path -> connect to host:port, send origin form.
    let rest = target.strip_prefix("http://").unwrap_or(target);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut upstream = TcpStream::connect(host).await?;
    let rewritten = head.replacen(target, path, 1);
    upstream.write_all(rewritten.as_bytes()).await?;
    upstream.write_all(&buf[end..]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
