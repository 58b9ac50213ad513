//! The provider model: a [`Provider`] opens [`Session`]s. Stateless HTTP APIs implement only
//! [`Completions`] and get history keeping from [`HistorySession`]; stateful services implement
//! [`Session`] themselves.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::attachment::Capabilities;
use crate::config::{Options, Target};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::message::Message;

/// Whether a provider needs a credential before a session opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPolicy {
    /// Always (Anthropic, Gemini, bing).
    Required,
    /// Only for its default base URL: OpenAI-compatible local servers need none.
    UnlessCustomBaseUrl,
    /// Never (local models, Ollama).
    Optional,
}

/// What the engine needs to know about a provider before talking to it.
#[derive(Debug)]
pub struct ProviderInfo {
    /// The name in model references (`openai`).
    pub name: &'static str,
    /// The model used for a bare provider reference.
    pub default_model: &'static str,
    /// The API's public base URL, if it has one.
    pub default_base_url: Option<&'static str>,
    /// Environment variables that override the base URL, first wins.
    pub base_url_env: &'static [&'static str],
    /// Environment variables that hold the key, first wins.
    pub key_env: &'static [&'static str],
    /// When a key is needed.
    pub key_policy: KeyPolicy,
    /// Event names beyond the lifecycle ones that the provider can emit.
    pub events: &'static [&'static str],
}

/// A source of models. Register one in `providers/mod.rs`.
pub trait Provider: Send + Sync + 'static {
    /// Static facts about the provider.
    fn info(&self) -> &'static ProviderInfo;
    /// Opens a session for a resolved target.
    fn open(&self, target: &Target) -> Result<Box<dyn Session>>;
    /// Whether sessions for `target` take tools, tool calls and tool results
    /// ([`crate::tool`]). One that does not is never sent them: the chat refuses first.
    fn takes_tools(&self, target: &Target) -> bool {
        let _ = target;
        false
    }
    /// What sessions for `target` can take besides text: tools ([`Provider::takes_tools`])
    /// and attachments. A part a model cannot take is refused before anything is sent
    /// ([`crate::message::require_supported`]); a fallback skips that model for the turn.
    /// Text only unless the provider says more.
    fn capabilities(&self, target: &Target) -> Capabilities {
        Capabilities {
            tools: self.takes_tools(target),
            ..Capabilities::TEXT
        }
    }
    /// The request controls sessions for `target` take ([`crate::controls::Controls`]); one
    /// asked of a model that lacks it is refused before anything is sent. By default only a
    /// schema: the engine validates the answer itself, whatever the provider.
    fn controls(&self, target: &Target) -> crate::controls::Controls {
        let _ = target;
        crate::controls::Controls {
            schema: true,
            ..crate::controls::Controls::NONE
        }
    }
}

/// One piece of a provider's answer stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Delta {
    /// Answer text.
    Text(String),
    /// Anything else the provider reports.
    Event(Event),
    /// The provider's terminal marker arrived; nothing follows.
    Done {
        /// Why the model stopped (`stop`, `length`, `tool_calls`, ...).
        finish_reason: String,
    },
}

/// The error of an answer stream that ended without its provider's terminal marker: never a
/// silently short answer.
pub fn cut_off() -> Error {
    Error::network(
        "the answer stream ended before the provider said it was complete; \
         the answer is cut off, try again",
    )
}

/// A provider's answer: deltas ending with [`Delta::Done`], or an error. A stream that ends
/// without `Done` is treated as cut off.
pub type DeltaStream = BoxStream<'static, Result<Delta>>;

/// A conversation with one model, as the original library's model interface:
/// `update(context)`, `send(prompt)`, `close()`.
pub trait Session: Send + Sync {
    /// Sets the context (system prompt) for the next turns.
    fn update(&self, context: Option<String>);
    /// Sends a prompt (a user message); the stream holds the answer. Dropping it cancels the
    /// request.
    fn send(&self, prompt: Message, options: Options) -> DeltaStream;
    /// The messages so far (context excluded).
    fn history(&self) -> Vec<Message>;
    /// Replaces the messages so far, so that a conversation can move to this session (a
    /// fallback model taking over a chat). Sessions that cannot take over a conversation
    /// (stateful services) accept only an empty one.
    fn restore(&self, history: Vec<Message>) -> Result<()> {
        if history.is_empty() {
            Ok(())
        } else {
            Err(Error::config(
                "this model keeps its own conversation and cannot take over another one; \
                 do not use it as a fallback in a chat",
            ))
        }
    }
    /// What the service keeps of this conversation that a later process needs to continue it
    /// (Copilot's conversation id and the cookies it issued for it), once there is one. Stored
    /// with the chat; `None` for stateless APIs, whose conversation is the history alone.
    fn handle(&self) -> Option<serde_json::Value> {
        None
    }
    /// Continues a conversation another session (maybe another process) held: `handle` as
    /// [`Session::handle`] gave it there, and the messages so far. Stateless sessions take the
    /// history and ignore the handle.
    fn resume(&self, handle: Option<&serde_json::Value>, history: Vec<Message>) -> Result<()> {
        let _ = handle;
        self.restore(history)
    }
    /// Ends the conversation and frees what it holds.
    fn close(&self);
}

/// A request to a stateless chat API: the whole conversation, every time.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletionRequest {
    /// The messages, the context first as a system message when there is one.
    pub messages: Vec<Message>,
    /// Generation options.
    pub options: Options,
}

/// A stateless chat API: one request in, one answer stream out.
pub trait Completions: Send + Sync + 'static {
    /// Streams the answer to the conversation.
    fn complete(&self, request: CompletionRequest) -> DeltaStream;
}

#[derive(Default)]
struct HistoryState {
    context: Option<String>,
    messages: Vec<Message>,
    closed: bool,
}

/// The generic session for stateless APIs: keeps the context and the message history and
/// sends them with every prompt. A turn is added to the history only when its answer completes.
pub struct HistorySession<C: Completions> {
    completions: Arc<C>,
    state: Arc<Mutex<HistoryState>>,
    /// Held for a whole turn: the next prompt must see this turn's answer.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl<C: Completions> HistorySession<C> {
    /// A session over `completions`, starting with `context`.
    pub fn new(completions: C, context: Option<String>) -> Self {
        Self {
            completions: Arc::new(completions),
            state: Arc::new(Mutex::new(HistoryState {
                context: context.filter(|c| !c.is_empty()),
                ..HistoryState::default()
            })),
            turn: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

fn lock(state: &Mutex<HistoryState>) -> std::sync::MutexGuard<'_, HistoryState> {
    // The state holds plain data; a panic elsewhere cannot leave it half-written.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The whole conversation plus the new prompt, as the next request.
fn next_request(
    state: &Mutex<HistoryState>,
    prompt: &Message,
    options: Options,
) -> Result<CompletionRequest> {
    let s = lock(state);
    if s.closed {
        return Err(Error::config("this chat is closed; open a new one"));
    }
    let mut messages = Vec::with_capacity(s.messages.len() + 2);
    if let Some(context) = &s.context {
        messages.push(Message::system(context.clone()));
    }
    messages.extend(s.messages.iter().cloned());
    messages.push(prompt.clone());
    Ok(CompletionRequest { messages, options })
}

impl<C: Completions> Session for HistorySession<C> {
    fn update(&self, context: Option<String>) {
        lock(&self.state).context = context.filter(|c| !c.is_empty());
    }

    fn send(&self, prompt: Message, options: Options) -> DeltaStream {
        let state = self.state.clone();
        let turn = self.turn.clone();
        let completions = self.completions.clone();
        Box::pin(async_stream::try_stream! {
            let _turn = turn.lock_owned().await;
            let request = next_request(&state, &prompt, options)?;
            let mut answer = String::new();
            let mut calls = Vec::new();
            let mut upstream = completions.complete(request);
            while let Some(delta) = upstream.next().await {
                let delta = delta?;
                match &delta {
                    Delta::Text(t) => answer.push_str(t),
                    Delta::Event(Event::ToolCall(call)) => calls.push(call.clone()),
                    _ => {}
                }
                if matches!(delta, Delta::Done { .. }) {
                    {
                        let mut s = lock(&state);
                        s.messages.push(prompt.clone());
                        s.messages.push(Message::answer(std::mem::take(&mut answer), std::mem::take(&mut calls)));
                    }
                    yield delta;
                    return;
                }
                yield delta;
            }
            Err(cut_off())?;
        })
    }

    fn history(&self) -> Vec<Message> {
        lock(&self.state).messages.clone()
    }

    fn restore(&self, history: Vec<Message>) -> Result<()> {
        let mut s = lock(&self.state);
        if s.closed {
            return Err(Error::config("this chat is closed; open a new one"));
        }
        s.messages = history;
        Ok(())
    }

    fn close(&self) {
        let mut s = lock(&self.state);
        s.closed = true;
        s.messages.clear();
    }
}

/// Drains a delta stream on the current thread: every delta up to the first error, and that
/// error. For the providers' stream-mapping tests.
#[cfg(test)]
pub(crate) fn drain(mut stream: DeltaStream) -> (Vec<Delta>, Option<Error>) {
    futures::executor::block_on(async {
        let mut out = Vec::new();
        while let Some(d) = stream.next().await {
            match d {
                Ok(d) => out.push(d),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    })
}
