//! The simulator's chat socket: the upgrade checks, the handshake, and one connection's
//! frames (COPILOT.md §A.5–§A.9).

use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{Answer, Conversation, Sent, State, Turn, cookies_of, cookies_ok, lock};
use crate::server::{RecordedRequest, Scripted, write_reply};

type Ws = WebSocketStream<TcpStream>;

/// Checks the upgrade, switches protocols and runs the connection.
pub(super) async fn serve(
    mut socket: TcpStream,
    request: RecordedRequest,
    state: Arc<Mutex<State>>,
) -> std::io::Result<()> {
    let query = request
        .path
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .to_owned();
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| percent_decode(v))
    };
    let cookies = cookies_of(&request);
    let refusal = {
        let mut s = lock(&state);
        s.upgrades.push(request.clone());
        let anon_ok = cookies
            .iter()
            .any(|(n, v)| n == "__Host-copilot-anon" && s.anon.contains(v));
        let token_ok = match &s.token {
            Some(token) => param("accessToken").as_ref() == Some(token),
            None => true,
        };
        if param("api-version").as_deref() != Some("2") {
            Some(Scripted::json(
                400,
                r#"{"error":"unsupported api-version"}"#,
            ))
        } else if !cookies_ok(&s, &cookies) || !anon_ok || !token_ok {
            Some(Scripted::json(401, r#"{"error":"Unauthorized"}"#))
        } else {
            None
        }
    };
    let key = request
        .header("sec-websocket-key")
        .unwrap_or_default()
        .to_owned();
    let is_upgrade = request
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    if let Some(reply) = refusal {
        write_reply(&mut socket, &reply).await?;
        return Ok(());
    }
    if !is_upgrade || key.is_empty() {
        write_reply(
            &mut socket,
            &Scripted::json(400, r#"{"error":"not a WebSocket upgrade"}"#),
        )
        .await?;
        return Ok(());
    }
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    socket.write_all(head.as_bytes()).await?;
    let ws = WebSocketStream::from_raw_socket(socket, Role::Server, None).await;
    let mut connection = Connection {
        ws,
        state,
        next_id: 0,
        options: false,
        consents: false,
        session: param("clientSessionId").is_some(),
        query,
        cookies: cookies.into_iter().map(|(n, _)| n).collect(),
        challenge: None,
        passed: None,
    };
    connection.run().await
}

/// One chat connection.
struct Connection {
    ws: Ws,
    state: Arc<Mutex<State>>,
    next_id: u64,
    options: bool,
    consents: bool,
    /// `clientSessionId` was on the URL.
    session: bool,
    query: String,
    cookies: Vec<String>,
    /// The challenge sent and the turn it holds: `(method, parameter, id, answer)`.
    challenge: Option<(Option<String>, Value, String, Answer)>,
    /// A challenge was answered: the repeated `send` gets this answer.
    passed: Option<Answer>,
}

impl Connection {
    async fn run(&mut self) -> std::io::Result<()> {
        self.frame(json!({"event": "connected", "requestId": "sim-request"}))
            .await?;
        while let Some(message) = self.ws.next().await {
            let text = match message {
                Ok(Message::Text(t)) => t.to_string(),
                Ok(Message::Close(_)) | Err(_) => return Ok(()),
                Ok(_) => continue,
            };
            let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            lock(&self.state).frames.push(frame.clone());
            match frame["event"].as_str().unwrap_or_default() {
                "setOptions" => self.options = true,
                "reportLocalConsents" => self.consents = true,
                "send" => {
                    if !self.on_send(&frame).await? {
                        return Ok(());
                    }
                }
                "challengeResponse" => self.on_challenge_response(&frame).await?,
                _ => self.error("invalid-event").await?,
            }
        }
        Ok(())
    }

    /// Handles a `send`; false when the connection was dropped on purpose.
    async fn on_send(&mut self, frame: &Value) -> std::io::Result<bool> {
        if !(self.options && self.consents && self.session) {
            // The 2026 server's answer to a `send` before the options and consents, or
            // without a clientSessionId (sums001 protocol.py, driver.py).
            self.error("invalid-event").await?;
            return Ok(true);
        }
        let conversation = frame["conversationId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let text: String = frame["content"]
            .as_array()
            .map(|parts| {
                parts
                    .iter()
                    .filter(|p| p["type"] == "text")
                    .filter_map(|p| p["text"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let images: Vec<String> = frame["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["type"] == "image")
            .map(|p| p["url"].as_str().unwrap_or_default().to_owned())
            .collect();
        let documents: Vec<String> = frame["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["type"] == "document")
            .map(|p| p["attachmentId"].as_str().unwrap_or_default().to_owned())
            .collect();
        let unknown_attachment = {
            let s = lock(&self.state);
            images
                .iter()
                .any(|url| !s.uploads.iter().any(|u| !u.url.is_empty() && &u.url == url))
                || documents
                    .iter()
                    .any(|id| !s.uploads.iter().any(|u| !u.id.is_empty() && &u.id == id))
        };
        let mode = frame["mode"].as_str().unwrap_or("chat").to_owned();
        let context = frame["context"]["edge"]["pageContent"]
            .as_str()
            .map(str::to_owned);
        if unknown_attachment {
            lock(&self.state).sent.push(Sent {
                conversation,
                text,
                mode,
                context,
                query: self.query.clone(),
                cookies: self.cookies.clone(),
                images,
                documents,
            });
            self.error("invalid-attachment").await?;
            return Ok(true);
        }
        let turn = {
            let mut s = lock(&self.state);
            s.sent.push(Sent {
                conversation: conversation.clone(),
                text: text.clone(),
                mode: mode.clone(),
                context: context.clone(),
                query: self.query.clone(),
                cookies: self.cookies.clone(),
                images: images.clone(),
                documents: documents.clone(),
            });
            match s.conversations.get_mut(&conversation) {
                None => None,
                Some(c) => {
                    if context.is_some() {
                        c.context = context;
                    }
                    let known = c.clone();
                    Some(match self.passed.take() {
                        Some(answer) => Turn::Answer(answer),
                        None => s
                            .script
                            .pop_front()
                            .unwrap_or_else(|| from_prompt(&text, &known, &mode)),
                    })
                }
            }
        };
        let Some(turn) = turn else {
            self.error("conversation-not-found").await?;
            return Ok(true);
        };
        let first = lock(&self.state)
            .conversations
            .get(&conversation)
            .is_none_or(|c| c.turns.is_empty());
        match turn {
            Turn::Error(code) => self.error(&code).await?,
            Turn::Challenge {
                method,
                parameter,
                then,
            } => {
                let id = format!("0.{:04}", self.next_id + 1);
                self.challenge = Some((method.clone(), parameter.clone(), id.clone(), then));
                self.frame(json!({"event": "challenge", "method": method, "parameter": parameter, "id": id}))
                    .await?;
            }
            Turn::Answer(answer) => {
                self.answer(&conversation, &text, first, &answer, None)
                    .await?;
            }
            Turn::DropAfter(n, answer) => {
                self.answer(&conversation, &text, first, &answer, Some(n))
                    .await?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn on_challenge_response(&mut self, frame: &Value) -> std::io::Result<()> {
        let Some((method, parameter, id, then)) = self.challenge.take() else {
            return self.error("invalid-event").await;
        };
        let token = frame["token"].as_str().unwrap_or_default();
        let right = frame["method"].as_str() == method.as_deref()
            && frame["id"].as_str().is_none_or(|i| i == id)
            && match method.as_deref() {
                Some("hashcash") => {
                    let text = parameter.as_str().unwrap_or_default();
                    let (seed, difficulty) = text.rsplit_once(':').unwrap_or((text, "0"));
                    let difficulty: u32 = difficulty.parse().unwrap_or(0);
                    let digest = Sha256::digest(format!("{seed}{token}").as_bytes());
                    !token.is_empty() && zero_bits(&digest) >= difficulty
                }
                Some("copilot") => {
                    let a = parameter
                        .as_f64()
                        .or_else(|| parameter.as_str().and_then(|s| s.parse().ok()))
                        .unwrap_or(0.0);
                    let want = ((a.powi(3) / 100.0 + 25.0 * a).rem_euclid(22.0)).round() as i64;
                    token == want.to_string()
                }
                // Turnstile tokens come from a browser; none is valid here.
                _ => false,
            };
        if right {
            self.passed = Some(then);
            Ok(())
        } else {
            self.error("invalid-event").await
        }
    }

    /// Plays an answer; with `drop_after`, the connection dies after that many text frames.
    async fn answer(
        &mut self,
        conversation: &str,
        text: &str,
        first: bool,
        answer: &Answer,
        drop_after: Option<usize>,
    ) -> std::io::Result<()> {
        let (user, bot) = {
            let mut s = lock(&self.state);
            (s.id('u'), s.id('b'))
        };
        let at = "2026-11-26T00:00:00.000Z";
        self.frame(json!({"event": "received", "conversationId": conversation, "messageId": user, "createdAt": at}))
            .await?;
        self.frame(json!({"event": "startMessage", "conversationId": conversation, "messageId": bot, "createdAt": at}))
            .await?;
        for step in &answer.reasoning {
            self.frame(json!({"event": "chainOfThought", "text": step}))
                .await?;
        }
        for (i, chunk) in answer.chunks.iter().enumerate() {
            if drop_after == Some(i) {
                // No close frame: the TCP connection just ends.
                return Ok(());
            }
            self.frame(
                json!({"event": "appendText", "messageId": bot, "partId": "0", "text": chunk}),
            )
            .await?;
            if i == 0 {
                for (url, title) in &answer.citations {
                    self.frame(json!({"event": "citation", "url": url, "title": title, "iconUrl": format!("{url}/favicon.ico")}))
                        .await?;
                }
            }
        }
        if drop_after.is_some() {
            return Ok(());
        }
        {
            let mut s = lock(&self.state);
            if let Some(c) = s.conversations.get_mut(conversation) {
                c.turns.push(text.to_owned());
            }
        }
        self.frame(json!({"event": "partCompleted", "messageId": bot, "partId": "0"}))
            .await?;
        self.frame(json!({"event": "done", "messageId": bot}))
            .await?;
        let title = answer.title.clone().or_else(|| {
            first.then(|| {
                format!(
                    "Chat: {}",
                    text.split_whitespace()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            })
        });
        if let Some(title) = title {
            self.frame(
                json!({"event": "titleUpdate", "conversationId": conversation, "title": title}),
            )
            .await?;
        }
        self.frame(json!({"event": "suggestedFollowups", "messageId": bot, "suggestions": answer.suggestions}))
            .await
    }

    async fn error(&mut self, code: &str) -> std::io::Result<()> {
        self.frame(json!({"event": "error", "errorCode": code}))
            .await
    }

    /// Sends a frame, with the next string id unless it has one (`connected` has none).
    async fn frame(&mut self, mut frame: Value) -> std::io::Result<()> {
        let event = frame["event"].as_str().unwrap_or_default();
        if event != "connected" && frame.get("id").is_none() {
            frame["id"] = json!(self.next_id.to_string());
        }
        self.next_id += 1;
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .map_err(std::io::Error::other)
    }
}

/// The answer to a prompt nobody scripted: it echoes the prompt with the turn number and the
/// page context the conversation holds; words in brackets pick faults.
fn from_prompt(prompt: &str, conversation: &Conversation, mode: &str) -> Turn {
    if let Some(rest) = prompt.split("[error:").nth(1) {
        return Turn::Error(rest.split(']').next().unwrap_or_default().to_owned());
    }
    let mut text = format!("Turn {}: you said {prompt}", conversation.turns.len() + 1);
    if let Some(context) = &conversation.context {
        text.push_str(&format!(" (page: {context})"));
    }
    let words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    let mut answer = Answer {
        chunks: words,
        suggestions: vec!["Tell me more".to_owned(), "Give an example".to_owned()],
        ..Answer::default()
    };
    if prompt.contains("[reason]") || mode == "reasoning" {
        answer.reasoning = vec![
            "Reading the prompt. ".to_owned(),
            "Answering it.".to_owned(),
        ];
    }
    if prompt.contains("[cite]") {
        answer.citations.push((
            "https://example.com/source".to_owned(),
            "Example source".to_owned(),
        ));
    }
    if prompt.contains("[challenge]") {
        Turn::cloudflare()
    } else if prompt.contains("[hashcash]") {
        Turn::hashcash(answer)
    } else if prompt.contains("[drop]") {
        Turn::DropAfter(2, answer)
    } else {
        Turn::Answer(answer)
    }
}

fn zero_bits(bytes: &[u8]) -> u32 {
    let mut bits = 0;
    for b in bytes {
        if *b != 0 {
            return bits + b.leading_zeros();
        }
        bits += 8;
    }
    bits
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
