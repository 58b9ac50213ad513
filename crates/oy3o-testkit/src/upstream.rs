//! A lean OpenAI-compatible upstream for benchmarks. [`FakeServer`](crate::FakeServer) is built
//! for faults (one connection per request, scripted parts); this one is built to cost little:
//! keep-alive HTTP/1.1 (axum), on its own thread and runtime so it never shares the measured
//! runtime's workers. It answers `POST /v1/chat/completions` with the stream recorded from
//! llama.cpp's server (model `slow`: the same stream with 20 ms between events; `"stream":
//! false`: the whole JSON answer), after an optional fixed delay, and `GET /v1/models`.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use axum::routing::{get, post};
use futures::StreamExt;

/// The recorded stream (llama-cpp-python 0.3 serving SmolLM2; the answer is "1 + 1 = 2 in
/// mathematics.").
pub const RECORDED_STREAM: &str =
    include_str!("../../../tests/fixtures/llama-cpp-python-0.3-chat-stream.sse");

/// The whole (non-streamed) answer, in the Chat Completions shape.
const WHOLE: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1795712512,"model":"smollm2","choices":[{"index":0,"message":{"role":"assistant","content":"1 + 1 = 2 in mathematics."},"finish_reason":"stop"}],"usage":{"prompt_tokens":37,"completion_tokens":9,"total_tokens":46}}"#;

/// A running upstream; it lives as long as the process.
#[derive(Clone, Copy, Debug)]
pub struct Upstream {
    addr: SocketAddr,
    arrivals: &'static Mutex<Arrivals>,
}

/// When chat requests reached the upstream (their head and body read, before the delay):
/// how many, the first and the last, since the last [`Upstream::take_arrivals`]. Constant
/// size, so a load bench's millions of requests cost nothing to keep.
#[derive(Clone, Copy, Debug, Default)]
pub struct Arrivals {
    /// How many requests arrived.
    pub count: usize,
    /// When the first arrived.
    pub first: Option<Instant>,
    /// When the last arrived.
    pub last: Option<Instant>,
}

impl Arrivals {
    fn record(&mut self, at: Instant) {
        self.count += 1;
        self.first.get_or_insert(at);
        self.last = Some(at);
    }
}

impl Upstream {
    /// Starts the upstream on a free loopback port; every answer waits `delay` first.
    ///
    /// ```
    /// let upstream = oy3o_testkit::upstream::Upstream::start(std::time::Duration::ZERO);
    /// assert!(upstream.base_url().ends_with("/v1"));
    /// ```
    pub fn start(delay: Duration) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        // The server thread never ends, so its log lives as long as the process too.
        let arrivals: &'static Mutex<Arrivals> = Box::leak(Box::default());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("upstream runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = Router::new()
                    .route(
                        "/v1/chat/completions",
                        post(move |body: String| {
                            if let Ok(mut log) = arrivals.lock() {
                                log.record(Instant::now());
                            }
                            answer(body, delay)
                        }),
                    )
                    .route(
                        "/v1/models",
                        get(|| async {
                            r#"{"object":"list","data":[{"id":"bench","object":"model"}]}"#
                        }),
                    );
                let _ = axum::serve(listener, app).await;
            });
        });
        Self { addr, arrivals }
    }

    /// The chat requests that arrived since the last call, and starts counting afresh.
    pub fn take_arrivals(&self) -> Arrivals {
        self.arrivals
            .lock()
            .map(|mut log| std::mem::take(&mut *log))
            .unwrap_or_default()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL an OpenAI client takes.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

async fn answer(body: String, delay: Duration) -> Response {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let request: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let (kind, body) = if request["stream"] != serde_json::Value::Bool(true) {
        ("application/json", Body::from(WHOLE))
    } else if request["model"] == "slow" {
        let events = RECORDED_STREAM
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| format!("{e}\n\n"));
        let paced = futures::stream::iter(events).then(|event| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, std::convert::Infallible>(event)
        });
        ("text/event-stream", Body::from_stream(paced))
    } else {
        ("text/event-stream", Body::from(RECORDED_STREAM))
    };
    Response::builder()
        .header(header::CONTENT_TYPE, kind)
        .body(body)
        .unwrap_or_default()
}
