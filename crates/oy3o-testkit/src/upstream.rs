//! A lean OpenAI-compatible upstream for benchmarks. [`FakeServer`](crate::FakeServer) is built
//! for faults (one connection per request, scripted parts); this one is built to cost little:
//! keep-alive HTTP/1.1 (axum), on its own thread and runtime so it never shares the measured
//! runtime's workers. It answers `POST /v1/chat/completions` with the stream recorded from
//! llama.cpp's server (model `slow`: the same stream with 20 ms between events; model
//! `chunks64`: a longer answer in the same shape, 64 text chunks written at once; `"stream":
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

/// How many text chunks the `chunks64` stream holds.
pub const LONG_STREAM_CHUNKS: usize = 64;

/// The `chunks64` stream: the recording's first (role) event, [`LONG_STREAM_CHUNKS`] events
/// of one word each in the recording's own chunk shape, its finish event and `[DONE]`.
pub fn long_stream() -> &'static str {
    static STREAM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STREAM.get_or_init(|| {
        let events: Vec<&str> = RECORDED_STREAM
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .collect();
        // The recording: a role event, text events, a finish event, `[DONE]`.
        let text = events
            .iter()
            .find(|e| e.contains("\"content\": \"1\""))
            .expect("the recording has a text event");
        let mut out = format!("{}\n\n", events[0]);
        for i in 0..LONG_STREAM_CHUNKS {
            let word = format!("\"content\": \"w{i} \"");
            out.push_str(&text.replace("\"content\": \"1\"", &word));
            out.push_str("\n\n");
        }
        for last in &events[events.len() - 2..] {
            out.push_str(last);
            out.push_str("\n\n");
        }
        out
    })
}

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
    let (kind, body) = if field(&body, "\"stream\"") != Some("true") {
        ("application/json", Body::from(WHOLE))
    } else if body.contains("\"slow\"") && field(&body, "\"model\"") == Some("\"slow\"") {
        let events = RECORDED_STREAM
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| format!("{e}\n\n"));
        let paced = futures::stream::iter(events).then(|event| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, std::convert::Infallible>(event)
        });
        ("text/event-stream", Body::from_stream(paced))
    } else if body.contains("\"chunks64\"") && field(&body, "\"model\"") == Some("\"chunks64\"") {
        ("text/event-stream", Body::from(long_stream()))
    } else {
        ("text/event-stream", Body::from(RECORDED_STREAM))
    };
    Response::builder()
        .header(header::CONTENT_TYPE, kind)
        .body(body)
        .unwrap_or_default()
}

/// The raw JSON text of the value after the last `"key":` of a request body (`true`,
/// `"slow"`), or `None`; the last, as a JSON parser keeps the last of duplicate keys. The body
/// is searched, not parsed: a `serde_json::Value` of a request that carries a chain stage's
/// 100-answer context cost ~55,000 instructions per request on this thread, which shares the
/// benchmark's cores with the client it measures (callgrind, bench/README.md). Searching from
/// the end finds `stream` at once (clients write it after the messages), and `model` is only
/// looked for when the fast `contains` finds `"slow"` at all. Chat Completions requests name
/// `model` and `stream` once, at the top (`stream_options` is another key: the closing quote
/// is part of `quoted`).
fn field<'a>(body: &'a str, quoted: &str) -> Option<&'a str> {
    let mut before = body.len();
    while let Some(at) = body[..before].rfind(quoted) {
        before = at;
        let Some(value) = body[at + quoted.len()..].trim_start().strip_prefix(':') else {
            continue;
        };
        let value = value.trim_start();
        let end = match value.strip_prefix('"') {
            Some(string) => string.find('"')? + 2,
            None => value.find([',', '}', ']']).unwrap_or(value.len()),
        };
        return Some(value[..end].trim_end());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One raw HTTP/1.1 request on a fresh connection; the whole response as text.
    async fn post(upstream: Upstream, body: &str) -> String {
        let mut socket = tokio::net::TcpStream::connect(upstream.addr())
            .await
            .unwrap();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(body.as_bytes()).await.unwrap();
        let mut response = String::new();
        socket.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn it_streams_the_recording_or_answers_whole_and_counts_arrivals() {
        let upstream = Upstream::start(Duration::ZERO);
        let streamed = post(upstream, r#"{"model":"bench","stream":true,"messages":[]}"#).await;
        assert!(
            streamed.contains("content-type: text/event-stream"),
            "{streamed}"
        );
        assert!(streamed.ends_with(RECORDED_STREAM), "{streamed}");
        let long = post(upstream, r#"{"model":"chunks64","stream":true}"#).await;
        assert!(long.ends_with(long_stream()), "{long}");
        let events: Vec<&str> = long_stream()
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .collect();
        assert_eq!(events.len(), LONG_STREAM_CHUNKS + 3);
        assert!(events[1].contains("\"content\": \"w0 \""), "{}", events[1]);
        assert!(events[LONG_STREAM_CHUNKS].contains("\"content\": \"w63 \""));
        assert_eq!(events[LONG_STREAM_CHUNKS + 2], "data: [DONE]");
        let whole = post(upstream, r#"{"model": "bench", "stream": false}"#).await;
        assert!(whole.contains("content-type: application/json"), "{whole}");
        assert!(whole.ends_with(WHOLE), "{whole}");
        let arrivals = upstream.take_arrivals();
        assert_eq!(arrivals.count, 3);
        assert!(arrivals.first <= arrivals.last && arrivals.first.is_some());
        assert_eq!(upstream.take_arrivals().count, 0);
    }

    #[test]
    fn a_field_is_found_by_its_key_in_compact_or_spaced_json() {
        let compact = r#"{"model":"slow","messages":[{"role":"user","content":"\"stream\": false"}],"stream":true,"stream_options":{"include_usage":true}}"#;
        assert_eq!(field(compact, "\"stream\""), Some("true"));
        assert_eq!(field(compact, "\"model\""), Some("\"slow\""));
        let spaced = "{\n  \"stream\" : false ,\n  \"model\": \"bench\"\n}";
        assert_eq!(field(spaced, "\"stream\""), Some("false"));
        assert_eq!(field(spaced, "\"model\""), Some("\"bench\""));
        assert_eq!(field(r#"{"stream_options":{}}"#, "\"stream\""), None);
        assert_eq!(field(r#"{"messages":[]}"#, "\"model\""), None);
        let twice = r#"{"stream":false,"stream":true}"#;
        assert_eq!(field(twice, "\"stream\""), Some("true"));
    }
}
