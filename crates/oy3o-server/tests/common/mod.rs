//! Helpers shared by the server's behaviour tests: a server on a free loopback port in front of
//! the test kit's fake OpenAI upstream, and a WebSocket client that reads JSON frames.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use oy3o::{Config, Credential, ProviderSettings};
use oy3o_server::{Server, Settings};
use oy3o_testkit::FakeServer;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The server-side key given to the fake upstream; frames must never show it.
pub const SERVER_KEY: &str = "sk-server-0123456789abcdef";

/// How long a test waits for a frame before it fails instead of hanging (a guard, not a
/// measurement).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A config whose `openai` provider is the fake, with a server-side key and no retries.
pub fn config_for(fake: &FakeServer) -> Config {
    let mut config = Config {
        model: Some("openai:gpt-4o-mini".into()),
        ..Config::default()
    };
    config.providers.insert(
        "openai".into(),
        ProviderSettings {
            base_url: Some(fake.base_url()),
            api_key: Some(Credential::parse(SERVER_KEY)),
            max_retries: Some(0),
            ..ProviderSettings::default()
        },
    );
    config
}

/// A fake OpenAI upstream that answers every prompt P with `ANSWER(P)`.
pub async fn echo() -> FakeServer {
    let fake = FakeServer::start().await;
    fake.respond(|r| {
        let answer = format!("ANSWER({})", oy3o_testkit::openai::prompt_of(r));
        oy3o_testkit::openai::reply_to(r, &[answer.as_str()])
    });
    fake
}

/// Loopback, a free port, default limits.
pub fn settings() -> Settings {
    Settings {
        port: 0,
        ..Settings::default()
    }
}

/// A running server; dropping it shuts it down.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Running {
    /// `ws://127.0.0.1:PORT/` plus `suffix` (a path and query).
    pub fn ws_url(&self, suffix: &str) -> String {
        format!("ws://{}/{}", self.addr, suffix.trim_start_matches('/'))
    }

    /// `http://127.0.0.1:PORT` plus `path`.
    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A WebSocket client on `/`.
    pub async fn client(&self) -> Client {
        Client::connect(&self.ws_url("/"), &[])
            .await
            .expect("websocket handshake")
    }
}

/// Binds and serves in the background.
pub async fn start(config: Config, settings: Settings) -> Running {
    let listening = Server::new(config, settings)
        .bind()
        .await
        .expect("bind loopback");
    let addr = listening.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(listening.run_until(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
    }
}

/// A WebSocket client speaking JSON text frames.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Connects with extra request headers; the error is the handshake's (e.g. HTTP 401).
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Client, WsError> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request.headers_mut().insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Client { ws })
    }

    /// Sends a JSON value as a text frame.
    pub async fn send(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: String) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send a frame");
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send a frame");
    }

    /// The next text frame as JSON; `None` once the server closed the connection.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a frame within the test's patience");
            match message? {
                Ok(Message::Text(text)) => {
                    return Some(serde_json::from_str(&text).expect("frames are JSON"));
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next frame, which must exist.
    pub async fn frame(&mut self) -> Value {
        self.next().await.expect("the connection is open")
    }

    /// Every frame up to and including the `n`th `signal`.
    pub async fn until_signals(&mut self, n: usize) -> Vec<Value> {
        let mut frames = Vec::new();
        let mut seen = 0;
        while seen < n {
            let frame = self.frame().await;
            if frame["type"] == "signal" {
                seen += 1;
            }
            frames.push(frame);
        }
        frames
    }

    /// The close code the server sent, reading past any frames before it.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a frame within the test's patience");
            match message {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// The text of the `message` frames of one id, in order.
pub fn text_of(frames: &[Value], id: &str) -> String {
    frames
        .iter()
        .filter(|f| f["type"] == "message" && f["id"] == id)
        .map(|f| f["message"].as_str().unwrap_or_default())
        .collect()
}

/// Waits (bounded) until `f` holds; returns whether it did.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..600 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
