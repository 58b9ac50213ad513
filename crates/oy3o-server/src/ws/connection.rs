//! One WebSocket connection: reads request frames, keeps its chats, starts replies as tasks
//! (so many chats stream at once), and writes every frame through one writer task.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use futures::StreamExt;
use futures::stream::{SplitSink, SplitStream};
use oy3o::{Conversation, Conversations, Event, Opening, Options};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::limits::{self, InFlight};
use super::outbox::{self, Inbox, Outbox};
use super::panics;
use super::protocol::{self, ChainSpec, Request, Tag};
use super::reply::{self, Job};
use crate::client::ClientOverrides;
use crate::policy;
use crate::state::AppState;

/// What the writer task sends.
#[derive(Debug)]
pub(crate) enum Out {
    /// A JSON text frame.
    Text(String),
    /// A close frame with its code and reason; nothing is written after it.
    Close(u16, &'static str),
}

/// One chat open on this connection.
struct ChatSlot {
    /// The conversation (shared with any other connection of this owner on the same id).
    conversation: Conversation,
    /// Cancels this chat's replies in flight on this connection; replaced after each cancel.
    cancel: CancellationToken,
    client: ClientOverrides,
}

struct Connection {
    state: Arc<AppState>,
    out: Outbox,
    chats: HashMap<String, ChatSlot>,
    /// Where this connection's chats open: the server's (shared with every connection and
    /// recorded) when it has a store, else one of its own, so that without a store a chat is
    /// this connection's alone, as in the original library.
    conversations: Arc<Conversations>,
    /// Chains started with an id, so that `{id, cancel: true}` can stop them.
    chains: HashMap<String, CancellationToken>,
    in_flight: InFlight,
    /// Cancelled when the connection ends: stops every reply it started.
    alive: CancellationToken,
    /// Whose stored chats this connection sees: a hash of its token, `""` without tokens.
    owner: String,
    /// The store key the connection presented, whose limits its requests count against.
    key: Option<Arc<oy3o_store::KeyRecord>>,
}

/// What a request frame asks, for its span's name.
fn request_kind(request: &Request) -> &'static str {
    if request.cancel || request.close {
        "control"
    } else if request.chain.is_some() {
        "chain"
    } else if request.id.is_some() {
        "chat"
    } else {
        "prompt"
    }
}

/// Serves one upgraded connection until the client leaves, it idles out, or the server stops.
pub(crate) async fn run(socket: WebSocket, state: Arc<AppState>, identity: crate::auth::Identity) {
    state.metrics.ws_opened();
    let (sink, stream) = socket.split();
    let (out, queue) = outbox::channel(&state.settings.limits);
    let alive = state.shutdown.child_token();
    let writer = tokio::spawn(write(sink, queue, alive.clone()));
    let mut connection = Connection {
        alive,
        state: state.clone(),
        out,
        chats: HashMap::new(),
        conversations: if state.store.open_store().is_some() {
            state.conversations.clone()
        } else {
            Arc::new(Conversations::new(None))
        },
        chains: HashMap::new(),
        in_flight: InFlight::default(),
        owner: identity.owner,
        key: identity.key,
    };
    if state.store.open_store().is_some() {
        let (out, alive) = (connection.out.clone(), connection.alive.clone());
        tokio::spawn(tell_store_health(state.clone(), out, alive));
    }
    connection.read(stream).await;
    connection.alive.cancel();
    drop(connection);
    let _ = writer.await;
    state.metrics.ws_closed();
}

/// Tells the client of every change in the store's health as a `store` event (no `id`): the
/// answers go on while the database fails, but the client learns that its turns wait in memory,
/// and when they are written again; and of turns the store lost (`{"status": "dropped"}`). A
/// connection opened during an outage hears of it at once.
async fn tell_store_health(state: Arc<AppState>, out: Outbox, alive: CancellationToken) {
    let Some(open) = state.store.open_store() else {
        return;
    };
    let mut health = open.health_changes();
    let mut losses = open.losses();
    let mut told_failing = false;
    let mut loss = None;
    loop {
        let message = match loss.take() {
            Some(message) => Some(message),
            None => {
                let failing = health.borrow_and_update().clone();
                (failing.is_some() || told_failing).then(|| {
                    told_failing = failing.is_some();
                    open.health_event(failing.as_deref())
                })
            }
        };
        if let Some(message) = message {
            let frame = protocol::event(&Tag::default(), "store", &message);
            if out.send(Out::Text(frame)).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = alive.cancelled() => return,
            changed = health.changed() => if changed.is_err() { return },
            lost = losses.recv() => match lost {
                Ok(message) => loss = Some(message),
                // Missed notices: a slow client hears the later ones.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Writes the connection's frames until it ends (see `outbox::write`: bounded in bytes, and a
/// client that reads nothing for `idle_timeout` is closed).
async fn write(sink: SplitSink<WebSocket, Message>, queue: Inbox, alive: CancellationToken) {
    outbox::write(sink, queue, alive).await;
}

impl Connection {
    async fn send(&self, frame: String) {
        let _ = self.out.send(Out::Text(frame)).await;
    }

    async fn error(&self, tag: &Tag, code: &str, message: &str) {
        self.state.metrics.error(code);
        self.send(protocol::error(tag, code, message)).await;
    }

    /// An error for a request that asked for a reply: the reply is that error, so it ends
    /// with a `signal` like every reply.
    async fn error_reply(&self, request: &Request, code: &str, message: &str) {
        self.refused(&request.tag, code, message, request.asks())
            .await;
    }

    /// Answers a refusal of a key's limits: an error frame with the code and, when the client
    /// should wait, `retry_after` (seconds); then the request's signal.
    async fn refusal(&self, request: &Request, refusal: &crate::policy::Refusal) {
        self.state.metrics.error(refusal.code);
        let frame = protocol::error_after(
            &request.tag,
            refusal.code,
            &refusal.message,
            refusal.retry_after,
        );
        self.send(frame).await;
        if request.asks() {
            self.send(protocol::signal(&request.tag, &protocol::Ending::default()))
                .await;
        }
    }

    /// An error, then a `signal` when the request asked for a reply (`asks`).
    async fn refused(&self, tag: &Tag, code: &str, message: &str, asks: bool) {
        self.error(tag, code, message).await;
        if asks {
            self.send(protocol::signal(tag, &protocol::Ending::default()))
                .await;
        }
    }

    async fn read(&mut self, mut stream: SplitStream<WebSocket>) {
        let limits = self.state.settings.limits.clone();
        loop {
            let next = tokio::select! {
                _ = self.alive.cancelled() => {
                    let _ = self.out.send(Out::Close(1001, "the server is shutting down")).await;
                    return;
                }
                next = tokio::time::timeout(limits.idle_timeout, stream.next()) => next,
            };
            let message = match next {
                Err(_) if self.in_flight.count() > 0 => continue,
                Err(_) => {
                    let text = format!(
                        "no request for {:?} and no reply running; closing the connection",
                        limits.idle_timeout
                    );
                    self.error(&Tag::default(), "idle_timeout", &text).await;
                    let _ = self.out.send(Out::Close(1000, "idle timeout")).await;
                    return;
                }
                Ok(None) => return,
                Ok(Some(Err(e))) => {
                    // Past the protocol cap (4× max_frame_bytes) the frame is not even read:
                    // say why, then close as RFC 6455 asks (1009, message too big).
                    tracing::debug!("websocket read error: {e}");
                    let m = format!(
                        "frame refused ({e}); frames must stay under {} bytes (max_frame_bytes); \
                         closing the connection",
                        limits.max_frame_bytes
                    );
                    self.error(&Tag::default(), "too_large", &m).await;
                    let _ = self
                        .out
                        .send(Out::Close(1009, "frame too large or malformed"))
                        .await;
                    return;
                }
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    self.state.metrics.ws_frame_in();
                    if text.len() > limits.max_frame_bytes {
                        let m = format!(
                            "frame of {} bytes is larger than the limit of {} bytes (max_frame_bytes)",
                            text.len(),
                            limits.max_frame_bytes
                        );
                        let (tag, asks) = protocol::peek(&text, limits.max_id_bytes);
                        self.refused(&tag, "too_large", &m, asks).await;
                        continue;
                    }
                    match protocol::parse_limited(&text, limits.max_id_bytes) {
                        Ok(request) => {
                            let (tag, asks, out) =
                                (request.tag.clone(), request.asks(), self.out.clone());
                            let span = crate::spans::websocket_request(
                                request_kind(&request),
                                request.model.as_deref(),
                            );
                            let work = self.handle(request).instrument(span);
                            panics::guard(tag, asks, &out, work).await;
                        }
                        Err(r) => self.refused(&r.tag, r.code, &r.message, r.signal).await,
                    }
                }
                Message::Binary(_) => {
                    self.state.metrics.ws_frame_in();
                    let m = "binary frames are not supported; send JSON text frames";
                    self.error(&Tag::default(), "bad_request", m).await;
                }
                Message::Close(_) => return,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    }

    async fn handle(&mut self, mut request: Request) {
        let settings = &self.state.settings;
        if request.credential.is_some() && !settings.allow_client_credentials {
            let m = "this server uses its own credentials (allow_client_credentials = false); \
                     send the request without cookie or key";
            return self.error_reply(&request, "forbidden", m).await;
        }
        if request.proxy.is_some() && settings.allow_client_proxy != Some(true) {
            let m = "this server does not accept a proxy from clients (allow_client_proxy = false)";
            return self.error_reply(&request, "forbidden", m).await;
        }
        if let Err(refusal) = limits::check_request(&self.state, &request, &self.owner) {
            return self
                .error_reply(&request, refusal.code, &refusal.message)
                .await;
        }
        // Only a request that goes upstream names a model (a cancel, a close or a context does not).
        let upstream = request.prompt.is_some() || request.chain.is_some();
        if upstream
            && let Some(key) = &self.key
            && let Err(refusal) = crate::policy::quota::check_models(
                key,
                &limits::requested_models(&self.state, &request),
            )
        {
            return self.refusal(&request, &refusal).await;
        }
        // Attachments are loaded and checked before anything is opened or sent.
        match policy::load_attachments(&self.state, &request.attachments, "attachments") {
            Ok(parts) => request.parts = parts,
            Err(e) => {
                return self
                    .error_reply(&request, e.code().as_str(), e.message())
                    .await;
            }
        }
        if request.cancel || request.close {
            let Some(id) = request.id.clone() else {
                let m = "cancel and close need the id of a chat: {\"id\": ..., \"cancel\": true}";
                return self.error(&request.tag, "bad_request", m).await;
            };
            if request.close {
                return self.close(&id, &request.tag).await;
            }
            if !self.cancel(&id) {
                return self.not_initialized(&request, &id).await;
            }
            if request.prompt.is_none() && request.context.is_none() && request.chain.is_none() {
                return;
            }
        }
        if request.chain.is_some() {
            return self.start_chain(request).await;
        }
        match request.id.clone() {
            Some(id) => self.on_chat(id, request).await,
            None => self.one_shot(request).await,
        }
    }

    async fn not_initialized(&self, request: &Request, id: &str) {
        let m = format!("chat {id} is not initialized; create it with {{\"id\", \"model\"}} first");
        self.error_reply(request, "not_found", &m).await;
    }

    /// Stops every reply in flight of chat or chain `id`; false when there is no such id.
    fn cancel(&mut self, id: &str) -> bool {
        let mut known = false;
        if let Some(slot) = self.chats.get_mut(id) {
            slot.cancel.cancel();
            slot.cancel = self.alive.child_token();
            known = true;
        }
        if let Some(token) = self.chains.remove(id) {
            token.cancel();
            known = true;
        }
        known
    }

    async fn close(&mut self, id: &str, tag: &Tag) {
        let chain = self.chains.remove(id);
        if let Some(token) = &chain {
            token.cancel();
        }
        match self.chats.remove(id) {
            Some(slot) => {
                slot.cancel.cancel();
                self.send(protocol::event(tag, "close", &json!({}))).await;
            }
            None if chain.is_some() => self.send(protocol::event(tag, "close", &json!({}))).await,
            None => {
                let m = format!("chat {id} is not initialized; nothing to close");
                self.error(tag, "not_found", &m).await;
            }
        }
    }

    /// `{id, …}`: creates chat `id` when the request has a `model` (an empty one is the
    /// server's default) or brings a credential, resumes it when it is not open here but live
    /// or stored for this owner, else continues it; then sends the stored turns when asked
    /// (`history: true`), applies the context and sends the prompt. Turns of one chat run in
    /// the order they arrive, whichever connection sent them.
    async fn on_chat(&mut self, id: String, request: Request) {
        let creates = request.creates;
        if (creates || !self.chats.contains_key(&id))
            && let Err(()) = self.open_chat(&id, &request).await
        {
            return;
        }
        if !creates && request.proxy.is_some() {
            let m = "proxy applies when a chat is created: send it with model or cookie";
            return self.error_reply(&request, "bad_request", m).await;
        }
        let Some(slot) = self.chats.get(&id) else {
            return self.not_initialized(&request, &id).await;
        };
        if let Some(context) = &request.context {
            slot.conversation.update(context.clone());
            let event = Event::Update {
                context: context.clone(),
            };
            self.send(protocol::event(&request.tag, "update", &event.message()))
                .await;
        }
        if request.history {
            self.send_history(&id, &request).await;
        }
        let Some(prompt) = request.prompt.clone() else {
            if !creates && request.context.is_none() && !request.cancel && !request.history {
                let m = "nothing to do: send a prompt, a context, cancel or close with the id";
                self.error(&request.tag, "bad_request", m).await;
            }
            return;
        };
        let Some(slot) = self.chats.get(&id) else {
            return;
        };
        let conversation = slot.conversation.clone();
        let (cancel, client) = (slot.cancel.clone(), slot.client.clone());
        let Some(options) = self.options(&request).await else {
            return;
        };
        let model = conversation.model();
        let Some(job) = self.job(&request, cancel, client, &model).await else {
            return;
        };
        // The turn takes its place now, before the next frame is read.
        let reply = conversation.send(request.message(prompt), &options);
        panics::spawn_reply(job, |job| reply::stream_reply(reply, job));
    }

    /// Opens chat `id` on this connection: created (`model` or credential given: on that
    /// model, keeping the conversation when it is live or stored), or found live or stored
    /// with its model, context and history. Errors (and an unknown id) are answered.
    async fn open_chat(&mut self, id: &str, request: &Request) -> Result<(), ()> {
        if !self.chats.contains_key(id) && self.chats.len() >= self.state.settings.limits.max_chats
        {
            let m = format!(
                "too many chats on this connection (max_chats = {}); close one first",
                self.state.settings.limits.max_chats
            );
            self.error_reply(request, "limit", &m).await;
            return Err(());
        }
        let client = ClientOverrides::new(
            request.credential.clone(),
            request.proxy.clone(),
            &self.state.settings,
        );
        let config = client.apply(&self.state.config, request.model.as_deref());
        let opening = Opening::named(&self.owner, id)
            .model(request.model.as_deref())
            .context(request.context.as_deref())
            .renew(request.creates);
        let opened = if request.creates {
            self.conversations.open(opening, &config).await.map(Some)
        } else {
            self.conversations.find(opening, &config).await
        };
        let conversation = match opened {
            Ok(Some(conversation)) => conversation,
            Ok(None) => {
                self.not_initialized(request, id).await;
                return Err(());
            }
            Err(e) => {
                let m = client.redact(e.message());
                self.error_reply(request, e.code().as_str(), &m).await;
                return Err(());
            }
        };
        let model = conversation.model();
        let slot = ChatSlot {
            conversation,
            cancel: self.alive.child_token(),
            client,
        };
        if let Some(old) = self.chats.insert(id.to_owned(), slot) {
            old.cancel.cancel();
        }
        if request.creates {
            self.send(protocol::event(
                &request.tag,
                "create",
                &Event::Create { model }.message(),
            ))
            .await;
        }
        Ok(())
    }

    /// `{id, history: true}`: the chat's stored turns, one `history` event each, oldest first;
    /// then a `signal` unless a prompt follows (its reply ends with its own).
    async fn send_history(&self, id: &str, request: &Request) {
        let Some(open) = self.state.store.open_store() else {
            let m = "this server keeps no chats (no store is configured), so there is no history";
            return self.error_reply(request, "not_found", m).await;
        };
        let turns = match open.find(&self.owner, id).await {
            Some((_, turns)) => turns,
            // Open here, but nothing written yet.
            None => Vec::new(),
        };
        for turn in &turns {
            self.send(protocol::event(
                &request.tag,
                "history",
                &crate::store::turn_json(turn),
            ))
            .await;
        }
        if request.prompt.is_none() {
            self.send(protocol::signal(&request.tag, &protocol::Ending::default()))
                .await;
        }
    }

    /// `{prompt, model?, context?}` without an id: one answer, no chat kept.
    async fn one_shot(&mut self, request: Request) {
        let Some(prompt) = request.prompt.clone() else {
            let m = if request.context.is_some() {
                "a context alone needs the id of a chat to update"
            } else {
                "a request without an id is a one-shot prompt: it needs a prompt"
            };
            return self.error(&request.tag, "bad_request", m).await;
        };
        let client = ClientOverrides::new(
            request.credential.clone(),
            request.proxy.clone(),
            &self.state.settings,
        );
        let config = client.apply(&self.state.config, request.model.as_deref());
        let opening = Opening::one_shot(&self.owner)
            .model(request.model.as_deref())
            .context(request.context.as_deref());
        // One-shot answers are recorded (with a store) as chats without a name.
        let conversation = match self.state.conversations.one_shot(&opening, &config) {
            Ok(conversation) => conversation,
            Err(e) => {
                let m = client.redact(e.message());
                return self.error_reply(&request, e.code().as_str(), &m).await;
            }
        };
        let Some(options) = self.options(&request).await else {
            return;
        };
        let model = conversation.model();
        let Some(job) = self
            .job(&request, self.alive.child_token(), client, &model)
            .await
        else {
            return;
        };
        let reply = conversation.send(request.message(prompt), &options);
        panics::spawn_reply(job, |job| reply::stream_reply(reply, job));
    }

    /// A turn's options: the request's, with the tools it names (checked against this owner's
    /// grant with the request); `None` when they cannot be had (answered here).
    async fn options(&self, request: &Request) -> Option<Options> {
        let mut options = request.options.clone().unwrap_or_default();
        match self.state.toolbox(request.tools.as_deref()).await {
            Ok(toolbox) => {
                options.toolbox = toolbox;
                Some(options)
            }
            Err(e) => {
                self.error_reply(request, e.code().as_str(), e.message())
                    .await;
                None
            }
        }
    }

    async fn start_chain(&mut self, request: Request) {
        if request.prompt.is_some() {
            let m = "a request carries a prompt or a chain, not both";
            return self.error_reply(&request, "bad_request", m).await;
        }
        let mut chain = match &request.chain {
            Some(ChainSpec::Inline(chain)) => chain.clone(),
            Some(ChainSpec::Named(name)) => match self.state.chains.get(name) {
                Some(chain) => chain.clone(),
                None => {
                    let known: Vec<&str> = self.state.chains.keys().map(String::as_str).collect();
                    let m = format!(
                        "no chain named {name:?}; this server serves: {}",
                        known.join(", ")
                    );
                    return self.error_reply(&request, "not_found", &m).await;
                }
            },
            None => return,
        };
        if let Err(e) = self.state.equip(&mut chain).await {
            return self
                .error_reply(&request, e.code().as_str(), e.message())
                .await;
        }
        let client = ClientOverrides::new(
            request.credential.clone(),
            request.proxy.clone(),
            &self.state.settings,
        );
        let mut config = client
            .apply(&self.state.config, request.model.as_deref())
            .into_owned();
        if let Some(model) = &request.model {
            config.model = Some(model.clone());
        }
        let cancel = self.alive.child_token();
        let model = match &request.chain {
            Some(ChainSpec::Named(name)) => format!("chain:{name}"),
            _ => "chain".to_owned(),
        };
        let Some(job) = self.job(&request, cancel.clone(), client, &model).await else {
            return;
        };
        // Its tasks run at most as wide as its share of max_in_flight.
        config.task_concurrency = Some(job.running.width());
        if let Some(id) = &request.id {
            self.chains.retain(|_, token| !token.is_cancelled());
            self.chains.insert(id.clone(), cancel);
        }
        let log = self.state.store.open_store().map(|open| reply::ChainLog {
            recorder: open.recorder.clone(),
            owner: self.owner.clone(),
            name: match &request.chain {
                Some(ChainSpec::Named(name)) => name.clone(),
                _ => request.id.clone().unwrap_or_else(|| "inline".into()),
            },
        });
        panics::spawn_reply(job, |job| reply::stream_chain(chain, config, job, log));
    }

    /// A job for a new reply, if the connection may run one more.
    async fn job(
        &self,
        request: &Request,
        cancel: CancellationToken,
        client: ClientOverrides,
        model: &str,
    ) -> Option<Job> {
        let charge = match &self.key {
            Some(key) => {
                let models = limits::requested_models(&self.state, request);
                let store = self.state.store.open_store().map(|open| &open.store);
                match self.state.quotas.admit(key, &models, store).await {
                    Ok(charge) => Some(charge),
                    Err(refusal) => {
                        self.refusal(request, &refusal).await;
                        return None;
                    }
                }
            }
            None => None,
        };
        let max = self.state.settings.limits.max_in_flight;
        let wanted = limits::upstream_wanted(&self.state, request);
        match self.in_flight.try_start_wide(max, wanted, &self.state) {
            Some(running) => Some(Job {
                tag: request.tag.clone(),
                out: self.out.clone(),
                cancel,
                running,
                client,
                series: self.state.metrics.series(
                    &crate::auth::Identity {
                        owner: self.owner.clone(),
                        key: self.key.clone(),
                    },
                    model,
                ),
                charge,
            }),
            None => {
                let m = format!(
                    "too many upstream requests in flight on this connection, chain tasks \
                     included (max_in_flight = {max}); wait for a signal before sending more"
                );
                self.error_reply(request, "limit", &m).await;
                None
            }
        }
    }
}
