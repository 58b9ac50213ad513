//! A minimal SOCKS5 proxy for tests (RFC 1928 `CONNECT`, no authentication or RFC 1929
//! user/password), recording the targets it tunnels to.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A SOCKS5 proxy on `127.0.0.1` with a random port.
#[derive(Clone)]
pub struct Socks5Proxy {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Socks5Proxy {
    /// Starts the proxy; with `login`, clients must log in with that user and password.
    pub async fn start(login: Option<(&str, &str)>) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let login = login.map(|(u, p)| (u.to_owned(), p.to_owned()));
        let addr = crate::listen::serve_loopback(move |socket| {
            let (log, login) = (log.clone(), login.clone());
            async move {
                let _ = relay(socket, log, login).await;
            }
        })
        .await;
        Self { addr, seen }
    }

    /// `socks5h://127.0.0.1:PORT` (names resolved by the proxy).
    pub fn url(&self) -> String {
        format!("socks5h://{}", self.addr)
    }

    /// The targets tunnelled to, as `host:port`.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn relay(
    mut client: TcpStream,
    seen: Arc<Mutex<Vec<String>>>,
    login: Option<(String, String)>,
) -> std::io::Result<()> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods).await?;
    let wanted = if login.is_some() { 0x02 } else { 0x00 };
    if head[0] != 0x05 || !methods.contains(&wanted) {
        client.write_all(&[0x05, 0xff]).await?;
        return Ok(());
    }
    client.write_all(&[0x05, wanted]).await?;
    if let Some((user, password)) = login {
        let mut version_len = [0u8; 2];
        client.read_exact(&mut version_len).await?;
        let mut name = vec![0u8; usize::from(version_len[1])];
        client.read_exact(&mut name).await?;
        let mut len = [0u8; 1];
        client.read_exact(&mut len).await?;
        let mut pass = vec![0u8; usize::from(len[0])];
        client.read_exact(&mut pass).await?;
        let ok = name == user.as_bytes() && pass == password.as_bytes();
        client.write_all(&[0x01, if ok { 0 } else { 1 }]).await?;
        if !ok {
            return Ok(());
        }
    }
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    let host = match request[3] {
        0x01 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        0x04 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await?;
            format!("[{}]", std::net::Ipv6Addr::from(ip))
        }
        _ => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    let target = format!("{host}:{}", u16::from_be_bytes(port));
    seen.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(target.clone());
    let Ok(mut upstream) = TcpStream::connect(&target).await else {
        client
            .write_all(&[0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0])
            .await?;
        return Ok(());
    };
    client
        .write_all(&[0x05, 0x00, 0x00, 0x01, 127, 0, 0, 1, 0, 0])
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
