//! Conversations: the one path every face (terminal, app, WebSocket, HTTP, Python, chains)
//! takes to talk to a model with history. A [`Conversation`] is opened by owner and name (or
//! new, or one-shot) through [`Conversations`], which resumes its history, context, model and
//! provider handle from the store; it orders its turns strictly as they were sent, records each
//! turn's start, stream and end, and hands back the reply stream.
//!
//! What a face keeps is its own protocol; resume, order, numbering and recording live here.

mod log;
mod order;
mod registry;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

pub use log::{
    ConversationRecord, ConversationStore, StoredConversation, StoredTurn, TurnEnd, TurnLog,
    TurnOutcome,
};
pub use registry::{Conversations, Opening};

use crate::chat::Chat;
use crate::config::{Options, Target};
use crate::error::Result;
use crate::event::Event;
use crate::message::Message;
use crate::provider::{Delta, DeltaStream};
use crate::reply::Reply;
use order::{Ticket, TurnOrder};

/// The longest a finished turn of a named conversation waits to be durable before its reply
/// ends anyway (with a `store` event saying the turn waits in memory).
pub const DURABLE_PATIENCE: Duration = Duration::from_secs(3);

/// A conversation with a model: cheap to clone; clones (and every face that opened the same
/// owner and name in this process) share one history and one turn order.
///
/// ```no_run
/// # async fn demo() -> oy3o::Result<()> {
/// use oy3o::{Config, Conversations, Opening};
/// let conversations = Conversations::new(None);
/// let chat = conversations.open(Opening::named("", "work"), &Config::default()).await?;
/// let first = chat.send(oy3o::Message::user("My name is Ada."), &Default::default());
/// // Sent before the first answer ended: it still runs second, and sees the first turn.
/// let second = chat.send(oy3o::Message::user("What is my name?"), &Default::default());
/// println!("{}", first.text().await?);
/// println!("{}", second.text().await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Conversation {
    inner: Arc<Inner>,
}

struct Inner {
    store: Option<Arc<dyn ConversationStore>>,
    order: TurnOrder,
    state: Mutex<State>,
}

struct State {
    chat: Arc<Chat>,
    /// A chat this one replaced (another model): the next turn takes its conversation over
    /// when it starts, so a turn still running on it is not left out.
    replaced: Option<Arc<Chat>>,
    record: ConversationRecord,
    next_seq: i64,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Plain data: a panic elsewhere cannot leave it half-written.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Conversation {
    fn new(
        chat: Chat,
        record: ConversationRecord,
        next_seq: i64,
        store: Option<Arc<dyn ConversationStore>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                order: TurnOrder::new(),
                state: Mutex::new(State {
                    chat: Arc::new(chat),
                    replaced: None,
                    record,
                    next_seq,
                }),
            }),
        }
    }

    /// The stored record: id, owner, name, model, context, handle.
    pub fn record(&self) -> ConversationRecord {
        lock(&self.inner.state).record.clone()
    }

    /// The model reference it talks to (with fallbacks, the first).
    pub fn model(&self) -> String {
        lock(&self.inner.state).chat.model().to_owned()
    }

    /// The number the next turn will take.
    pub fn next_seq(&self) -> i64 {
        lock(&self.inner.state).next_seq
    }

    /// The conversation so far (turns answered completely).
    pub fn history(&self) -> Vec<Message> {
        lock(&self.inner.state).chat.history()
    }

    /// Whether `other` is this very conversation (the same shared state).
    pub fn same_as(&self, other: &Conversation) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Sets the context for the next turns (written with the next turn); fires `update`.
    pub fn update(&self, context: impl Into<String>) {
        let context = context.into();
        let mut s = lock(&self.inner.state);
        s.chat.update(context.clone());
        s.record.context = Some(context).filter(|c| !c.is_empty());
    }

    /// Continues a conversation kept elsewhere (an OpenAI-style request that carries its
    /// history): the messages so far, before the next turn. See [`Chat::restore`].
    pub fn restore(&self, history: Vec<Message>) -> Result<()> {
        lock(&self.inner.state).chat.restore(history)
    }

    /// Continues on other models from the next turn on (a `model` given again): the
    /// conversation, context and stored record stay. Fires `create`.
    pub fn switch(&self, targets: &[Target]) -> Result<()> {
        let chat = Chat::open_targets(targets)?;
        let mut s = lock(&self.inner.state);
        if let Some(context) = s.record.context.clone() {
            chat.update(context);
        }
        let old = std::mem::replace(&mut s.chat, Arc::new(chat));
        if s.replaced.is_none() {
            s.replaced = Some(old);
        }
        let model = s.chat.model().to_owned();
        s.record.model = Some(model);
        Ok(())
    }

    /// Sends `prompt` and streams the answer. The turn takes its place now: it runs after every
    /// turn sent before it (on any face sharing this conversation) and sees their answers.
    pub fn send(&self, prompt: Message, options: &Options) -> Reply {
        let ticket = self.inner.order.ticket();
        let chat = lock(&self.inner.state).chat.clone();
        let text = prompt.text().into_owned();
        let stream = turn(self.inner.clone(), ticket, prompt, options.clone());
        chat.reply(stream, text)
    }

    /// Ends the conversation here: later sends fail with a clear error.
    pub fn close(&self) {
        lock(&self.inner.state).chat.close();
    }
}

impl std::fmt::Debug for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.inner.state);
        f.debug_struct("Conversation")
            .field("id", &s.record.id)
            .field("name", &s.record.name)
            .field("model", &s.chat.model())
            .finish()
    }
}

/// One turn: waits for its place, catches up with turns other processes added, records itself
/// and streams the answer; the answer's end waits until a named conversation's turn is durable.
fn turn(inner: Arc<Inner>, mut ticket: Ticket, prompt: Message, options: Options) -> DeltaStream {
    Box::pin(async_stream::try_stream! {
        ticket.wait().await;
        catch_up(&inner).await;
        let (chat, log, named) = {
            let mut s = lock(&inner.state);
            let carried = match s.replaced.take() {
                Some(old) => {
                    let carried = s.chat.resume(old.handle().as_ref(), old.history());
                    old.close();
                    carried
                }
                None => Ok(()),
            };
            match carried {
                Err(e) => (Err(e), None, false),
                Ok(()) => {
                    let seq = s.next_seq;
                    s.next_seq += 1;
                    if s.record.model.as_deref() != Some(s.chat.model()) {
                        s.record.model = Some(s.chat.model().to_owned());
                    }
                    let log = inner
                        .store
                        .as_ref()
                        .map(|store| store.begin_turn(&s.record, seq, &prompt));
                    (Ok(s.chat.clone()), log, s.record.name.is_some())
                }
            }
        };
        let chat = chat?;
        let mut upstream = chat.deltas(prompt, &options);
        let mut usage = None;
        while let Some(delta) = upstream.next().await {
            let delta = match delta {
                Ok(delta) => delta,
                Err(error) => {
                    if let Some(log) = &log {
                        // Failed turns are not in the history: no one waits for their write.
                        drop(log.finish(TurnEnd::Error { message: error.message().to_owned() }));
                    }
                    Err(error)?;
                    return;
                }
            };
            match &delta {
                Delta::Text(text) => {
                    if let Some(log) = &log {
                        log.chunk(text);
                    }
                }
                Delta::Event(event) => {
                    if let Event::Usage(u) = event {
                        usage = Some(u.clone());
                    }
                    if let Some(log) = &log {
                        log.event(event);
                    }
                }
                Delta::Done { .. } => {
                    let handle = chat.handle();
                    let durable = {
                        let mut s = lock(&inner.state);
                        if s.record.handle != handle {
                            s.record.handle.clone_from(&handle);
                        }
                        log.as_ref().map(|log| {
                            log.handle(handle.as_ref());
                            log.finish(TurnEnd::Done { usage: usage.take() })
                        })
                    };
                    // The next turn may start: this one is in the history.
                    ticket.release();
                    if let (Some(durable), true) = (durable, named)
                        && let Some(event) = wait_durable(durable).await
                    {
                        yield Delta::Event(event);
                    }
                    yield delta;
                    return;
                }
            }
            yield delta;
        }
        Err(crate::provider::cut_off())?;
    })
}

/// Before a turn of a conversation other processes may write: when the store holds turns this
/// process has not seen, reload them, so the turn sees them and takes the next number. A store
/// that cannot answer is logged and the turn goes on with what this process knows.
async fn catch_up(inner: &Inner) {
    let Some(store) = inner.store.as_ref().filter(|s| s.shared()) else {
        return;
    };
    let (owner, id, name, next_seq) = {
        let s = lock(&inner.state);
        let Some(name) = s.record.name.clone() else {
            return;
        };
        (
            s.record.owner.clone(),
            s.record.id.clone(),
            name,
            s.next_seq,
        )
    };
    match store.last_seq(&owner, &id).await {
        Ok(Some(last)) if last >= next_seq => {}
        Ok(_) => return,
        Err(e) => {
            tracing::warn!("store: cannot check conversation {name:?} for newer turns: {e}");
            return;
        }
    }
    match store.load(&owner, &name).await {
        Ok(Some(stored)) => {
            let s = &mut *lock(&inner.state);
            match s
                .chat
                .resume(stored.record.handle.as_ref(), stored.history())
            {
                Ok(()) => {
                    s.next_seq = stored.next_seq().max(s.next_seq);
                    s.record.handle = stored.record.handle;
                }
                Err(e) => tracing::warn!("conversation {name:?}: cannot take newer turns: {e}"),
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!("store: cannot reload conversation {name:?}: {e}"),
    }
}

/// Waits for a finished turn to be durable, at most [`DURABLE_PATIENCE`]; when it is not, the
/// `store` event that tells the face so (the turn stays queued and is written later).
async fn wait_durable(durable: futures::future::BoxFuture<'static, Result<()>>) -> Option<Event> {
    let error = match tokio::time::timeout(DURABLE_PATIENCE, durable).await {
        Ok(Ok(())) => return None,
        Ok(Err(e)) => e.message().to_owned(),
        Err(_) => format!(
            "the turn was not written within {}s",
            DURABLE_PATIENCE.as_secs()
        ),
    };
    Some(Event::Other {
        name: "store".into(),
        message: json!({ "status": "pending", "error": error }),
    })
}
