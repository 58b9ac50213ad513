//! A simulator of Microsoft Copilot's web chat (`shared/wire/COPILOT.md` Part A, built from
//! public client code): `POST /c/api/start` and `/c/api/conversations` over HTTP, and the chat
//! WebSocket `/c/api/chat?api-version=2` on the same port.
//!
//! It checks what a real server checks, as far as public clients tell: the browser's cookies
//! (401 at start and at the upgrade when they are missing, wrong or expired), the
//! `__Host-copilot-anon` cookie it set at start riding on the upgrade, `api-version=2`,
//! `clientSessionId`, `setOptions` + `reportLocalConsents` before `send` (else
//! `error/invalid-event`), a known conversation id, and challenge answers. It answers with the
//! frames of a captured turn, in order, with string ids counting per connection: `connected`,
//! `received`, `startMessage`, `chainOfThought`, `appendText` deltas, `citation`,
//! `partCompleted`, `done`, `titleUpdate` (first turn), `suggestedFollowups`. The server keeps
//! each conversation, so a second connection with the same id continues it.
//!
//! Replies are scripted with [`CopilotSim::push`], or derived from the prompt, which also picks
//! faults for tests that cannot reach the API (Python, processes): `[challenge]` (a Cloudflare
//! gate), `[hashcash]` (a proof of work, then the answer), `[drop]` (the connection dies after
//! two text frames), `[error:CODE]`, `[cite]`, `[reason]`. `GET /_sim/state` returns what it
//! saw as JSON.
//!
//! Images are uploaded with `POST /c/api/attachments` (COPILOT.md §A.2): the raw bytes with
//! their `content-type`, the browser's cookies; it answers `{"url": …}` (400 for an empty body,
//! a type it does not take or bytes that are not that type, 401 without the cookies).
//! Documents come to the same path as `multipart/form-data` with one `file` part (a file name,
//! its `Content-Type`, its bytes); it answers `{"id": …}` (400 for a form it cannot read, no
//! `file` part, no file name, an empty file, a type it does not take, or bytes that are not
//! that type). [`CopilotSim::refuse_next_upload`] makes the next upload fail with a status. A
//! `send` whose `content` names an image URL or a document `attachmentId` it did not hand out
//! is answered `error/invalid-attachment`.

mod chat;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::server::{RecordedRequest, Scripted, read_request, write_reply};

/// The cookies the simulator accepts, as `(name, value)`.
pub const COOKIES: &[(&str, &str)] = &[
    ("MUID", "sim-muid-3f2a9c41d07e"),
    ("cf_clearance", "sim-clearance-8b1e55c0a9d4"),
];

/// The accepted cookies as a browser extension exports them (a JSON list of `{name, value,
/// domain, ...}`).
pub fn cookie_export() -> String {
    let list: Vec<Value> = COOKIES
        .iter()
        .map(|(name, value)| {
            json!({"name": name, "value": value, "domain": ".microsoft.com", "path": "/",
                   "secure": true, "httpOnly": false, "session": false})
        })
        .collect();
    Value::Array(list).to_string()
}

/// One scripted answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    /// The text, one `appendText` frame per chunk.
    pub chunks: Vec<String>,
    /// `chainOfThought` frames sent before the text.
    pub reasoning: Vec<String>,
    /// `citation` frames `(url, title)`, sent after the first chunk.
    pub citations: Vec<(String, String)>,
    /// The `titleUpdate` after `done` (the first turn of a conversation gets one by default).
    pub title: Option<String>,
    /// The `suggestedFollowups`.
    pub suggestions: Vec<String>,
}

impl Answer {
    /// An answer of these text chunks, with two suggestions.
    pub fn text(chunks: &[&str]) -> Self {
        Self {
            chunks: chunks.iter().map(|c| (*c).to_owned()).collect(),
            suggestions: vec!["Tell me more".to_owned(), "Give an example".to_owned()],
            ..Self::default()
        }
    }

    /// Adds `chainOfThought` frames.
    pub fn reasoning(mut self, steps: &[&str]) -> Self {
        self.reasoning = steps.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Adds a `citation` frame.
    pub fn cite(mut self, url: &str, title: &str) -> Self {
        self.citations.push((url.to_owned(), title.to_owned()));
        self
    }

    /// Sets the `titleUpdate`.
    pub fn title(mut self, title: &str) -> Self {
        self.title = Some(title.to_owned());
        self
    }

    /// The whole text.
    pub fn whole(&self) -> String {
        self.chunks.concat()
    }
}

/// What the simulator does with one `send`.
#[derive(Clone, Debug, PartialEq)]
pub enum Turn {
    /// Answers.
    Answer(Answer),
    /// Sends a challenge instead of `received`; once it is answered correctly and the `send`
    /// repeated, answers. `method`: `None` or `cloudflare` (only a browser can answer),
    /// `hashcash` (`parameter` = `"seed:difficulty"`) or `copilot` (a number).
    Challenge {
        /// The challenge method.
        method: Option<String>,
        /// Its parameter.
        parameter: Value,
        /// The answer after a correct response.
        then: Answer,
    },
    /// Sends `{"event":"error","errorCode":CODE}`.
    Error(String),
    /// Answers, but the connection dies (no close frame) after this many `appendText` frames.
    DropAfter(usize, Answer),
}

impl Turn {
    /// The Cloudflare gate: `{"event":"challenge","method":null,"parameter":null}`.
    pub fn cloudflare() -> Self {
        Turn::Challenge {
            method: None,
            parameter: Value::Null,
            then: Answer::text(&["unreachable"]),
        }
    }

    /// A hashcash proof of work of difficulty 8, then `then`.
    pub fn hashcash(then: Answer) -> Self {
        Turn::Challenge {
            method: Some("hashcash".to_owned()),
            parameter: json!("sim-seed-41:8"),
            then,
        }
    }
}

/// A `send` the simulator received.
#[derive(Clone, Debug, PartialEq)]
pub struct Sent {
    /// `conversationId`.
    pub conversation: String,
    /// The text of the `content` parts.
    pub text: String,
    /// `mode`.
    pub mode: String,
    /// `context.edge.pageContent`, if sent.
    pub context: Option<String>,
    /// The query of the socket URL.
    pub query: String,
    /// Names of the cookies on the upgrade.
    pub cookies: Vec<String>,
    /// The `url`s of the `image` items of `content`, in order.
    pub images: Vec<String>,
    /// The `attachmentId`s of the `document` items of `content`, in order.
    pub documents: Vec<String>,
}

/// An attachment uploaded with `POST /c/api/attachments`: an image (raw bytes) or a document
/// (a multipart `file` part).
#[derive(Clone, Debug, PartialEq)]
pub struct Upload {
    /// The image's `content-type`, or the document part's `Content-Type`.
    pub mime: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The URL handed back (images; empty for documents).
    pub url: String,
    /// The id handed back (documents; empty for images).
    pub id: String,
    /// The document part's file name (`None` for images).
    pub name: Option<String>,
}

/// A conversation the server keeps.
#[derive(Clone, Debug, Default)]
struct Conversation {
    /// The user texts so far.
    turns: Vec<String>,
    /// The last page context received.
    context: Option<String>,
}

#[derive(Default)]
struct State {
    script: VecDeque<Turn>,
    conversations: HashMap<String, Conversation>,
    /// `__Host-copilot-anon` values handed out.
    anon: Vec<String>,
    expired: bool,
    token: Option<String>,
    starts: usize,
    upgrades: Vec<RecordedRequest>,
    frames: Vec<Value>,
    sent: Vec<Sent>,
    uploads: Vec<Upload>,
    /// Statuses the next uploads are refused with.
    refusals: VecDeque<u16>,
    counter: u64,
}

impl State {
    /// A fresh id shaped like the service's (21 URL-safe characters).
    fn id(&mut self, prefix: char) -> String {
        self.counter += 1;
        let n = self.counter;
        let mut id = format!("{prefix}{n:0>6}");
        let alphabet = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        while id.len() < 21 {
            id.push(alphabet[(x % alphabet.len() as u64) as usize] as char);
            x = x.rotate_left(7) ^ 0x5bd1_e995;
        }
        id
    }
}

/// The simulator on `127.0.0.1` with a random port.
#[derive(Clone)]
pub struct CopilotSim {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl CopilotSim {
    /// Starts the simulator on the current tokio runtime.
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

    /// `http://127.0.0.1:PORT`, the base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues the reply to the next `send`.
    pub fn push(&self, turn: Turn) -> &Self {
        self.lock().script.push_back(turn);
        self
    }

    /// From now on the cookies are refused, as when they expire.
    pub fn expire_cookies(&self) {
        self.lock().expired = true;
    }

    /// Requires this access token (`accessToken=` on the socket URL).
    pub fn require_token(&self, token: &str) {
        self.lock().token = Some(token.to_owned());
    }

    /// How many conversations were started.
    pub fn starts(&self) -> usize {
        self.lock().starts
    }

    /// The WebSocket upgrade requests, accepted or not.
    pub fn upgrades(&self) -> Vec<RecordedRequest> {
        self.lock().upgrades.clone()
    }

    /// Every frame clients sent, in order.
    pub fn frames(&self) -> Vec<Value> {
        self.lock().frames.clone()
    }

    /// Every `send` that was answered or failed, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    /// The next upload is refused with `status` (and a JSON error body), whatever it carries.
    pub fn refuse_next_upload(&self, status: u16) {
        self.lock().refusals.push_back(status);
    }

    /// The images and documents uploaded, in order.
    pub fn uploads(&self) -> Vec<Upload> {
        self.lock().uploads.clone()
    }

    /// The user texts of a conversation, as the server remembers it.
    pub fn conversation(&self, id: &str) -> Vec<String> {
        self.lock()
            .conversations
            .get(id)
            .map(|c| c.turns.clone())
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `(name, value)` pairs of a `Cookie:` header.
fn cookies_of(request: &RecordedRequest) -> Vec<(String, String)> {
    request
        .header("cookie")
        .unwrap_or_default()
        .split(';')
        .filter_map(|p| p.split_once('='))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Whether the request carries every accepted cookie with its value, and they have not expired.
fn cookies_ok(state: &State, cookies: &[(String, String)]) -> bool {
    !state.expired
        && COOKIES
            .iter()
            .all(|(name, value)| cookies.iter().any(|(n, v)| n == name && v == value))
}

async fn serve(mut socket: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let Some(request) = read_request(&mut socket).await? else {
        return Ok(());
    };
    let path = request
        .path
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let reply = match (request.method.as_str(), path.as_str()) {
        ("GET", "/c/api/chat") => return chat::serve(socket, request, state).await,
        ("POST", "/c/api/start") | ("POST", "/c/api/conversations") => {
            start(&state, &request, path == "/c/api/start")
        }
        ("POST", "/c/api/attachments") => upload(&state, &request),
        ("GET", "/_sim/state") => Scripted::json(200, &snapshot(&state).to_string()),
        _ => Scripted::json(404, r#"{"error":"not found"}"#),
    };
    write_reply(&mut socket, &reply).await?;
    Ok(())
}

/// `/c/api/start` (`currentConversationId`, sets `__Host-copilot-anon`) or the older
/// `/c/api/conversations` (`id`); 401 without the right cookies.
fn start(state: &Mutex<State>, request: &RecordedRequest, current: bool) -> Scripted {
    let mut s = lock(state);
    if !cookies_ok(&s, &cookies_of(request)) {
        return Scripted::json(
            401,
            r#"{"error":"Unauthorized","message":"Invalid session"}"#,
        );
    }
    s.starts += 1;
    let id = s.id('c');
    s.conversations.insert(id.clone(), Conversation::default());
    let anon = format!("anon-{}", s.id('a'));
    s.anon.push(anon.clone());
    let body = if current {
        json!({"currentConversationId": id, "isNewUser": false, "remainingTurns": null})
    } else {
        json!({"id": id})
    };
    Scripted::json(200, &body.to_string()).header(
        "set-cookie",
        &format!("__Host-copilot-anon={anon}; Path=/; Secure; HttpOnly; SameSite=None"),
    )
}

/// `POST /c/api/attachments`: an image's bytes (`{"url": …}`) or a document's multipart form
/// (`{"id": …}`), or the error a client sees for what it cannot take.
fn upload(state: &Mutex<State>, request: &RecordedRequest) -> Scripted {
    let mut s = lock(state);
    if !cookies_ok(&s, &cookies_of(request)) {
        return Scripted::json(
            401,
            r#"{"error":"Unauthorized","message":"Invalid session"}"#,
        );
    }
    if let Some(status) = s.refusals.pop_front() {
        return Scripted::json(
            status,
            r#"{"error":"UploadFailed","message":"The attachment could not be processed"}"#,
        );
    }
    let content_type = request.header("content-type").unwrap_or_default();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime == "multipart/form-data" {
        return match document(&request.body, content_type) {
            Ok((name, mime, bytes)) => {
                let id = s.id('d');
                s.uploads.push(Upload {
                    mime,
                    bytes,
                    url: String::new(),
                    id: id.clone(),
                    name: Some(name),
                });
                Scripted::json(200, &json!({ "id": id }).to_string())
            }
            Err((error, message)) => Scripted::json(
                400,
                &json!({"error": error, "message": message}).to_string(),
            ),
        };
    }
    let magic: &[u8] = match mime.as_str() {
        "image/png" => b"\x89PNG",
        "image/jpeg" => b"\xff\xd8\xff",
        "image/gif" => b"GIF8",
        "image/webp" => b"RIFF",
        _ => {
            return Scripted::json(
                400,
                r#"{"error":"UnsupportedMediaType","message":"Unsupported file type"}"#,
            );
        }
    };
    if !request.body.starts_with(magic) {
        return Scripted::json(
            400,
            r#"{"error":"InvalidImage","message":"The image could not be read"}"#,
        );
    }
    let url = format!(
        "https://copilot.microsoft.com/c/api/attachments/{}",
        s.id('i')
    );
    s.uploads.push(Upload {
        mime,
        bytes: request.body.clone(),
        url: url.clone(),
        id: String::new(),
        name: None,
    });
    Scripted::json(200, &json!({ "url": url }).to_string())
}

/// The document types taken as a multipart `file`: PDFs and text.
const DOCUMENT_TYPES: &[&str] = &[
    "application/pdf",
    "text/plain",
    "text/markdown",
    "text/csv",
    "text/html",
    "text/xml",
    "application/json",
];

/// Why an upload is refused: the error name and message the service answers.
type Refusal = (&'static str, String);

/// The `file` part of a document upload: its file name, media type and bytes.
fn document(body: &[u8], content_type: &str) -> Result<(String, String, Vec<u8>), Refusal> {
    let parts = crate::multipart::parse(content_type, body).map_err(|e| ("InvalidForm", e))?;
    let file = parts
        .into_iter()
        .find(|p| p.name == "file")
        .ok_or(("InvalidForm", "no part named file".to_owned()))?;
    let name = file
        .filename
        .filter(|n| !n.is_empty())
        .ok_or(("InvalidForm", "the file part has no filename".to_owned()))?;
    let mime = file
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !DOCUMENT_TYPES.contains(&mime.as_str()) {
        return Err((
            "UnsupportedMediaType",
            format!("Unsupported file type {mime}"),
        ));
    }
    if file.bytes.is_empty() {
        return Err(("EmptyFile", "The file is empty".to_owned()));
    }
    let readable = if mime == "application/pdf" {
        file.bytes.starts_with(b"%PDF-")
    } else {
        std::str::from_utf8(&file.bytes).is_ok()
    };
    if !readable {
        return Err((
            "InvalidDocument",
            format!("{name} could not be read as {mime}"),
        ));
    }
    Ok((name, mime, file.bytes))
}

/// What the simulator saw, for tests in other processes.
fn snapshot(state: &Mutex<State>) -> Value {
    let s = lock(state);
    let sent: Vec<Value> = s
        .sent
        .iter()
        .map(|t| {
            json!({"conversation": t.conversation, "text": t.text, "mode": t.mode,
                   "context": t.context, "query": t.query, "cookies": t.cookies,
                   "images": t.images, "documents": t.documents})
        })
        .collect();
    let uploads: Vec<Value> = s
        .uploads
        .iter()
        .map(|u| {
            json!({"mime": u.mime, "size": u.bytes.len(), "url": u.url, "id": u.id,
                   "name": u.name})
        })
        .collect();
    json!({"starts": s.starts, "upgrades": s.upgrades.len(), "sent": sent, "frames": s.frames,
           "uploads": uploads})
}
