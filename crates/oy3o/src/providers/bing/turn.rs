//! One chat turn on the socket (`shared/wire/COPILOT.md` §A.8): open the WebSocket, send
//! `setOptions`, `reportLocalConsents` and `send`, read the events until `suggestedFollowups`
//! (or a short wait after `done`), answering challenges on the way. The socket lives for one
//! turn, as the web client's does.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::Client;
use super::answer::{Answer, Next};
use super::auth::Identity;
use super::frames;
use crate::error::{Error, ErrorCode, Result};
use crate::provider::{Delta, DeltaStream};
use crate::transport::websocket::{self, Dial, DialError, Socket};

/// How long to wait after `done` for the title and suggestions that usually follow (the
/// public client waits up to a second, COPILOT.md §A.8).
const AFTER_DONE: Duration = Duration::from_secs(1);

/// What one turn sends.
pub(super) struct TurnRequest {
    pub(super) identity: Identity,
    pub(super) conversation: String,
    pub(super) prompt: String,
    /// The uploaded attachments' `content` items (images, documents), sent before the text.
    pub(super) attachments: Vec<Value>,
    /// The context to deliver with this turn, if any.
    pub(super) context: Option<String>,
}

/// Streams one turn's deltas, ending with [`Delta::Done`] or an error.
pub(super) fn run(client: std::sync::Arc<Client>, request: TurnRequest) -> DeltaStream {
    Box::pin(async_stream::try_stream! {
        let TurnRequest { identity, conversation, prompt, attachments, context } = request;
        let mut socket = open(&client, &identity, context.is_some()).await?;
        let send = frames::send(&conversation, &attachments, &prompt, &client.mode, context.as_deref());
        for frame in [frames::set_options(), frames::report_local_consents(), send.clone()] {
            write(&mut socket, &frame).await?;
        }
        let timeouts = client.timeouts;
        let mut answer = Answer::default();
        let mut out = Vec::new();
        let mut heard = false;
        loop {
            let limit = if answer.done {
                AFTER_DONE
            } else if heard {
                timeouts.idle
            } else {
                timeouts.first_byte
            };
            let message = match tokio::time::timeout(limit, socket.next()).await {
                Ok(Some(Ok(message))) => message,
                // After `done` the answer is whole: a quiet or closed socket only means no
                // title or suggestions follow.
                _ if answer.done => break,
                Err(_) => Err(Error::new(ErrorCode::Timeout, format!(
                    "Copilot sent nothing for {limit:.0?} {}; try again, or raise \
                     first_byte_timeout_secs / idle_timeout_secs in [providers.bing]",
                    if heard { "in the middle of the answer" } else { "after the prompt" }
                )))?,
                Ok(Some(Err(e))) => Err(cut(&e.to_string()))?,
                Ok(None) => Err(cut("closed"))?,
            };
            heard = true;
            let text = match message {
                Message::Text(text) => text,
                Message::Close(_) if answer.done => break,
                Message::Close(frame) => {
                    let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    Err(cut(&format!("closed by the server {why}")))?
                }
                // Pings are answered by tungstenite; binary frames are not part of the protocol.
                _ => continue,
            };
            let step = answer.read(text.as_str(), &mut out);
            for delta in out.drain(..) {
                yield delta;
            }
            match step? {
                Next::Read => {}
                Next::Challenge(challenge) => {
                    for frame in &challenge.answer(&send).await? {
                        write(&mut socket, frame).await?;
                    }
                }
                Next::Finish => break,
            }
        }
        // Best effort: the turn is complete whether or not the close handshake is.
        let _ = tokio::time::timeout(AFTER_DONE, socket.close(None)).await;
        yield Delta::Done { finish_reason: "stop".to_owned() };
    })
}

/// The error for a socket that ends before the answer does.
fn cut(how: &str) -> Error {
    Error::network(format!(
        "the connection to Copilot broke in the middle of the answer ({}); the answer is \
         incomplete, try again",
        how.trim()
    ))
}

async fn write(socket: &mut Socket, frame: &Value) -> Result<()> {
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .map_err(|e| cut(&format!("sending failed: {e}")))
}

/// Opens the chat socket with the session's cookies and the browser's headers.
async fn open(client: &Client, identity: &Identity, page_context: bool) -> Result<Socket> {
    let url = frames::socket_url(
        &client.base,
        &frames::session_id(),
        identity.token.as_deref(),
        page_context,
    )?;
    let mut headers: Vec<(String, String, bool)> = client
        .headers()
        .into_iter()
        .map(|(n, v)| (n, v, false))
        .collect();
    if let Some(cookie) = identity.cookie_header() {
        headers.push(("cookie".to_owned(), cookie, true));
    }
    let dial = Dial {
        url: &url,
        headers,
        proxy: client.proxy.as_deref(),
        // Until the upgrade is answered: connecting, tunnelling, TLS and the handshake.
        connect_timeout: client.timeouts.first_byte,
    };
    match websocket::connect(dial).await {
        Ok(socket) => Ok(socket),
        Err(DialError::Failed(e)) => Err(Error::new(e.code(), identity.redact(e.message()))),
        Err(DialError::Rejected { status, body }) => Err(rejected(status, &identity.redact(&body))),
    }
}

/// The error for an upgrade answered with `status` (§A.11).
fn rejected(status: u16, body: &str) -> Error {
    let said = body.trim().chars().take(200).collect::<String>();
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(": {said}")
    };
    let (code, next) = match status {
        401 | 403 => (
            ErrorCode::Auth,
            "the cookies or the access token are missing or expired: export the cookies again \
             from a browser where copilot.microsoft.com works (see the README)",
        ),
        429 => (
            ErrorCode::RateLimit,
            "Copilot asks to slow down: wait and try again",
        ),
        _ => (
            ErrorCode::Provider,
            "Copilot refused the chat; if it persists, export fresh cookies or try later",
        ),
    };
    Error::new(
        code,
        format!("Copilot refused the chat socket with HTTP {status}{said} ({next})"),
    )
}
