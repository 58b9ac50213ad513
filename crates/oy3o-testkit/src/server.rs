//! The fake server: answers each request with the next scripted reply and records what it saw.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One step of a scripted response body.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// Write these bytes as one chunk and flush.
    Bytes(Vec<u8>),
    /// Wait before the next step.
    Delay(Duration),
    /// Close the connection abruptly, without ending the chunked body.
    Cut,
    /// Stop sending but keep the connection open (for idle-timeout tests).
    Stall,
}

/// A scripted response.
#[derive(Clone, Debug, PartialEq)]
pub struct Scripted {
    /// HTTP status.
    pub status: u16,
    /// Response headers (content type included).
    pub headers: Vec<(String, String)>,
    /// Body steps. A body that is one `Bytes` part is sent with `Content-Length`; any other is
    /// sent chunked.
    pub parts: Vec<Part>,
}

impl Scripted {
    /// A JSON response with this status and body.
    pub fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            parts: vec![Part::Bytes(body.as_bytes().to_vec())],
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Waits before sending anything at all (even the status line).
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.parts.insert(0, Part::Delay(delay));
        self
    }

    /// Sends only the first `n` bytes of the body (chunked, so the client cannot tell the
    /// length), then cuts the connection: a whole answer broken off mid-body.
    pub fn cut_after_bytes(self, n: usize) -> Self {
        self.end_after_bytes(n, Part::Cut)
    }

    /// Sends only the first `n` bytes of the body, then stops sending but keeps the
    /// connection open: a whole answer that stalls mid-body.
    pub fn stall_after_bytes(self, n: usize) -> Self {
        self.end_after_bytes(n, Part::Stall)
    }

    fn end_after_bytes(mut self, n: usize, end: Part) -> Self {
        let body: Vec<u8> = self
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Bytes(b) => Some(b.as_slice()),
                _ => None,
            })
            .flatten()
            .copied()
            .collect();
        self.parts.retain(|p| matches!(p, Part::Delay(_)));
        self.parts
            .push(Part::Bytes(body[..n.min(body.len())].to_vec()));
        self.parts.push(end);
        self
    }
}

/// The faults a streamed body can show, shared by [`SseScript`] and [`NdjsonScript`].
#[derive(Clone, Debug, Default)]
struct Faults {
    split_at: Option<usize>,
    /// Extra read boundaries: this many bytes into each occurrence of this text.
    splits_inside: Vec<(String, usize)>,
    delay: Duration,
    /// How the body ends after `end_after` units: cut, stalled, or (`None`) properly.
    end: Option<Part>,
    end_after: Option<usize>,
    headers: Vec<(String, String)>,
}

impl Faults {
    /// The scripted 200 response carrying `units` (events or lines, already framed).
    fn build(self, content_type: &str, units: Vec<Vec<u8>>) -> Scripted {
        let mut parts = Vec::new();
        let count = self.end_after.unwrap_or(units.len()).min(units.len());
        for unit in &units[..count] {
            if !self.delay.is_zero() {
                parts.push(Part::Delay(self.delay));
            }
            for piece in self.pieces(unit) {
                match self.split_at {
                    Some(n) => parts.extend(piece.chunks(n).map(|c| Part::Bytes(c.to_vec()))),
                    None => parts.push(Part::Bytes(piece.to_vec())),
                }
            }
        }
        if let Some(end) = self.end {
            parts.push(end);
        }
        let mut headers = vec![
            ("content-type".to_owned(), content_type.to_owned()),
            ("cache-control".to_owned(), "no-store".to_owned()),
        ];
        headers.extend(self.headers);
        // A one-part body would be sent with Content-Length; streams are always chunked.
        if parts.len() == 1 {
            parts.push(Part::Bytes(Vec::new()));
        }
        Scripted {
            status: 200,
            headers,
            parts,
        }
    }

    /// A unit cut at every boundary `splits_inside` asks for.
    fn pieces<'a>(&self, unit: &'a [u8]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = self
            .splits_inside
            .iter()
            .filter(|(text, _)| !text.is_empty())
            .flat_map(|(text, at)| {
                let text = text.as_bytes();
                unit.windows(text.len())
                    .enumerate()
                    .filter(move |(_, w)| *w == text)
                    .map(move |(start, _)| start + at)
            })
            .filter(|&cut| 0 < cut && cut < unit.len())
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut pieces = Vec::with_capacity(cuts.len() + 1);
        let mut from = 0;
        for cut in cuts {
            pieces.push(&unit[from..cut]);
            from = cut;
        }
        pieces.push(&unit[from..]);
        pieces
    }
}

/// The fault builders of a streamed body script.
macro_rules! fault_builders {
    ($unit:literal) => {
        #[doc = concat!("Writes the body in pieces of `n` bytes, splitting ", $unit, "s and UTF-8 characters.")]
        pub fn split_every(mut self, n: usize) -> Self {
            self.faults.split_at = Some(n.max(1));
            self
        }

        #[doc = concat!("Also ends a read `at` bytes into each occurrence of `text` (which may fall inside a UTF-8 character), splitting the ", $unit, " that holds it.")]
        pub fn split_inside(mut self, text: &str, at: usize) -> Self {
            self.faults.splits_inside.push((text.to_owned(), at));
            self
        }

        #[doc = concat!("Waits this long before each ", $unit, ".")]
        pub fn delay(mut self, delay: Duration) -> Self {
            self.faults.delay = delay;
            self
        }

        #[doc = concat!("Cuts the connection after `n` ", $unit, "s.")]
        pub fn cut_after(mut self, n: usize) -> Self {
            self.faults.end = Some(Part::Cut);
            self.faults.end_after = Some(n);
            self
        }

        #[doc = concat!("Stops sending (keeping the connection open) after `n` ", $unit, "s.")]
        pub fn stall_after(mut self, n: usize) -> Self {
            self.faults.end = Some(Part::Stall);
            self.faults.end_after = Some(n);
            self
        }

        #[doc = concat!("Ends the body properly after `n` ", $unit, "s, as a server that forgets its terminal ", $unit, " does.")]
        pub fn close_after(mut self, n: usize) -> Self {
            self.faults.end = None;
            self.faults.end_after = Some(n);
            self
        }

        /// Adds a response header.
        pub fn header(mut self, name: &str, value: &str) -> Self {
            self.faults.headers.push((name.into(), value.into()));
            self
        }
    };
}

/// Builds an SSE body event by event, with the faults real servers show.
#[derive(Clone, Debug, Default)]
pub struct SseScript {
    events: Vec<String>,
    crlf: bool,
    keep_alive: bool,
    faults: Faults,
}

impl SseScript {
    /// Adds a `data:` event.
    pub fn data(mut self, data: &str) -> Self {
        self.events.push(format!("data: {data}\n\n"));
        self
    }

    /// Adds an event with an `event:` name.
    pub fn named(mut self, event: &str, data: &str) -> Self {
        self.events
            .push(format!("event: {event}\ndata: {data}\n\n"));
        self
    }

    /// Adds raw text as one event (for non-standard fields).
    pub fn raw(mut self, text: &str) -> Self {
        self.events.push(text.to_owned());
        self
    }

    /// Uses `\r\n` line ends (as Gemini does).
    pub fn crlf(mut self) -> Self {
        self.crlf = true;
        self
    }

    /// Puts a `: keep-alive` comment before every event.
    pub fn keep_alive(mut self) -> Self {
        self.keep_alive = true;
        self
    }

    fault_builders!("event");

    /// The body as sent (line ends and comments included), before the split, delay and end
    /// faults, as one string.
    pub fn body_text(&self) -> String {
        self.framed().concat()
    }

    /// Each event as it goes on the wire.
    fn framed(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|event| {
                let mut text = String::new();
                if self.keep_alive {
                    text.push_str(": keep-alive\n\n");
                }
                text.push_str(event);
                if self.crlf {
                    text = text.replace('\n', "\r\n");
                }
                text
            })
            .collect()
    }

    /// The scripted 200 response.
    pub fn build(self) -> Scripted {
        let units = self.framed().into_iter().map(String::into_bytes).collect();
        self.faults.build("text/event-stream; charset=utf-8", units)
    }
}

/// Builds a newline-delimited JSON body (Ollama's native API) line by line, with the same
/// faults as [`SseScript`].
#[derive(Clone, Debug, Default)]
pub struct NdjsonScript {
    lines: Vec<String>,
    faults: Faults,
}

impl NdjsonScript {
    /// Adds one JSON line (the newline is added).
    pub fn line(mut self, json: &str) -> Self {
        self.lines.push(format!("{json}\n"));
        self
    }

    fault_builders!("line");

    /// The body as sent, before the split, delay and end faults, as one string.
    pub fn body_text(&self) -> String {
        self.lines.concat()
    }

    /// The scripted 200 response.
    pub fn build(self) -> Scripted {
        let units = self.lines.iter().map(|l| l.clone().into_bytes()).collect();
        self.faults.build("application/x-ndjson", units)
    }
}

/// A request as the server received it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first header of that name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Builds a reply from the request, for fakes whose answer depends on what was asked.
pub type Responder = Arc<dyn Fn(&RecordedRequest) -> Scripted + Send + Sync>;

#[derive(Default)]
struct State {
    script: VecDeque<Scripted>,
    fallback: Option<Scripted>,
    responder: Option<Responder>,
    in_flight: usize,
    max_in_flight: usize,
    requests: Vec<RecordedRequest>,
    completed: usize,
    aborted_by_client: usize,
}

/// A fake provider on `127.0.0.1` with a random port. Replies come from the script in order,
/// then from the fallback; with neither, a 500.
#[derive(Clone)]
pub struct FakeServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeServer {
    /// Starts the server on the current tokio runtime.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let addr = crate::listen::serve_loopback(move |socket| {
            let state = shared.clone();
            async move {
                let _ = serve(socket, state).await;
            }
        })
        .await;
        Self { addr, state }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL an OpenAI client wants.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.url())
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a reply for the next request.
    pub fn push(&self, reply: Scripted) -> &Self {
        self.lock().script.push_back(reply);
        self
    }

    /// The reply for every request once the queue is empty.
    pub fn fallback(&self, reply: Scripted) -> &Self {
        self.lock().fallback = Some(reply);
        self
    }

    /// Answers every request the script does not cover with `f(request)`.
    pub fn respond(
        &self,
        f: impl Fn(&RecordedRequest) -> Scripted + Send + Sync + 'static,
    ) -> &Self {
        self.lock().responder = Some(Arc::new(f));
        self
    }

    /// The most requests that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Responses written to the end.
    pub fn completed(&self) -> usize {
        self.lock().completed
    }

    /// Responses the client hung up on before their end.
    pub fn aborted_by_client(&self) -> usize {
        self.lock().aborted_by_client
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn serve(mut socket: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let Some(request) = read_request(&mut socket).await? else {
        return Ok(());
    };
    let reply = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        let reply = s
            .script
            .pop_front()
            .or_else(|| s.responder.as_ref().map(|f| f(&request)))
            .or_else(|| s.fallback.clone())
            .unwrap_or_else(|| Scripted::json(500, r#"{"error":{"message":"no scripted reply"}}"#));
        s.requests.push(request);
        reply
    };
    // The request stops counting as in flight just before its last bytes go out: a client
    // that starts its next request on reading them must never be counted twice.
    let mut ended = false;
    let outcome = write_reply_ending(&mut socket, &reply, || {
        ended = true;
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.in_flight -= 1;
    })
    .await;
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    if !ended {
        s.in_flight -= 1;
    }
    match outcome {
        Ok(true) => s.completed += 1,
        Ok(false) => {}
        Err(_) => s.aborted_by_client += 1,
    }
    Ok(())
}

/// Reads one HTTP/1.1 request (headers, then a `Content-Length` body).
pub(crate) async fn read_request(
    socket: &mut TcpStream,
) -> std::io::Result<Option<RecordedRequest>> {
    let mut buf = Vec::with_capacity(4096);
    let mut tmp = [0u8; 4096];
    let header_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        let n = socket.read(&mut tmp).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[header_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Ok(Some(RecordedRequest {
        method,
        path,
        headers,
        body,
    }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        403 => "Forbidden",
        402 => "Payment Required",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}

/// Writes the reply; `Ok(true)` when it was sent to its end, `Ok(false)` when the script cut
/// or stalled it, `Err` when the client went away.
pub(crate) async fn write_reply(socket: &mut TcpStream, reply: &Scripted) -> std::io::Result<bool> {
    write_reply_ending(socket, reply, || {}).await
}

/// Writes a scripted reply like [`write_reply`], calling `before_end` once just before the
/// bytes that end it (the whole body, or the last chunk and the chunked terminator). A reply
/// cut or stalled calls nothing.
pub(crate) async fn write_reply_ending(
    socket: &mut TcpStream,
    reply: &Scripted,
    before_end: impl FnOnce(),
) -> std::io::Result<bool> {
    let mut before_end = Some(before_end);
    let mut end_now = || {
        if let Some(f) = before_end.take() {
            f();
        }
    };
    let mut parts = reply.parts.as_slice();
    while let Some(Part::Delay(d)) = parts.first() {
        tokio::time::sleep(*d).await;
        parts = &parts[1..];
    }
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (n, v) in &reply.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("connection: close\r\n");
    if let [Part::Bytes(body)] = parts {
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        end_now();
        socket.write_all(head.as_bytes()).await?;
        socket.write_all(body).await?;
        socket.flush().await?;
        return Ok(true);
    }
    head.push_str("transfer-encoding: chunked\r\n\r\n");
    socket.write_all(head.as_bytes()).await?;
    socket.flush().await?;
    let ends_here = reply_end(parts);
    for (at, part) in parts.iter().enumerate() {
        match part {
            Part::Bytes(b) if b.is_empty() => {}
            Part::Bytes(b) => {
                if at == ends_here {
                    end_now();
                }
                socket
                    .write_all(format!("{:x}\r\n", b.len()).as_bytes())
                    .await?;
                socket.write_all(b).await?;
                socket.write_all(b"\r\n").await?;
                socket.flush().await?;
            }
            Part::Delay(d) => tokio::time::sleep(*d).await,
            Part::Cut => return Ok(false),
            Part::Stall => {
                // Hold the connection open until the client gives up, without sending.
                let mut probe = [0u8; 1];
                let _ = socket.read(&mut probe).await;
                return Ok(false);
            }
        }
    }
    end_now();
    socket.write_all(b"0\r\n\r\n").await?;
    socket.flush().await?;
    Ok(true)
}

/// Where a chunked reply's ending bytes start: its last non-empty chunk when nothing but
/// delays follows it (a client may stop reading at its final event), else past the end.
fn reply_end(parts: &[Part]) -> usize {
    for (at, part) in parts.iter().enumerate().rev() {
        match part {
            Part::Bytes(b) if b.is_empty() => {}
            Part::Bytes(_) => return at,
            Part::Delay(_) => {}
            Part::Cut | Part::Stall => return parts.len(),
        }
    }
    parts.len()
}
