//! What a conversation needs from a store: the [`ConversationStore`] trait (implemented by the
//! `oy3o-store` crate over SQLite or PostgreSQL) and the plain records it reads and writes.
//!
//! The engine never names a database: a face hands its store to [`super::Conversations`], and
//! every face then resumes, orders and records turns the same way.

use futures::future::BoxFuture;
use serde_json::Value;

use crate::error::Result;
use crate::event::{Event, Usage};
use crate::message::Message;

/// A stored conversation's own fields (not its turns).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConversationRecord {
    /// Its id in the store (time-ordered, unguessable).
    pub id: String,
    /// Whose it is: `""` for the local user, a hash of a client token on a server.
    pub owner: String,
    /// Its name, unique per owner; `None` for a one-shot prompt.
    pub name: Option<String>,
    /// The model reference it last used.
    pub model: Option<String>,
    /// Its context (system prompt).
    pub context: Option<String>,
    /// What the provider keeps of it on the service's side ([`crate::Session::handle`]).
    pub handle: Option<Value>,
}

/// How a stored turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnOutcome {
    /// Still streaming (its process may have died: the store marks such turns `interrupted`).
    Streaming,
    /// Answered completely: it belongs to the conversation's history.
    Done,
    /// Failed.
    Error,
    /// Stopped by the person.
    Cancelled,
    /// Its process died mid-answer.
    Interrupted,
}

/// One stored turn as a conversation needs it to resume.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTurn {
    /// Its place in the conversation.
    pub seq: i64,
    /// What was asked.
    pub prompt: Message,
    /// The tool steps between the prompt and the answer, in order: each an assistant message
    /// holding the model's tool calls (and any text before them), then a `tool` message with
    /// their results. Empty for a turn without tools.
    pub steps: Vec<Message>,
    /// What was answered last (possibly partial; it holds tool calls when the client runs the
    /// tools itself).
    pub answer: Message,
    /// How it ended.
    pub outcome: TurnOutcome,
}

/// A conversation as the store holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredConversation {
    /// Its fields.
    pub record: ConversationRecord,
    /// Its turns, in order.
    pub turns: Vec<StoredTurn>,
}

impl StoredConversation {
    /// The history a resumed conversation continues: every turn answered completely, prompt,
    /// tool steps and answer. Failed, cancelled and interrupted turns stay in the store (and the log) but the
    /// model never sees them, exactly as a live conversation never keeps them.
    pub fn history(&self) -> Vec<Message> {
        self.turns
            .iter()
            .filter(|t| t.outcome == TurnOutcome::Done)
            .flat_map(|t| {
                std::iter::once(t.prompt.clone())
                    .chain(t.steps.iter().cloned())
                    .chain(std::iter::once(t.answer.clone()))
            })
            .collect()
    }

    /// The number the next turn takes: one past the last stored turn's (never reused, even
    /// when older turns were pruned).
    pub fn next_seq(&self) -> i64 {
        self.turns.last().map_or(0, |t| t.seq + 1)
    }
}

/// How a turn ended, as it is recorded.
#[derive(Clone, Debug, PartialEq)]
pub enum TurnEnd {
    /// The answer is complete.
    Done {
        /// Token counts, when reported.
        usage: Option<Usage>,
    },
    /// The model or the network failed.
    Error {
        /// Why.
        message: String,
    },
    /// The person stopped it; what was answered so far is kept.
    Cancelled,
}

/// A store that conversations resume from and record into. Implemented by `oy3o-store`.
///
/// Reads are async (they happen when a conversation opens, and before a turn when other
/// instances may write). Recording is synchronous and non-blocking ([`TurnLog`]); only waiting
/// for a finished turn to be durable is async.
pub trait ConversationStore: Send + Sync + 'static {
    /// A new conversation id, as the store makes them.
    fn new_id(&self) -> String;

    /// The conversation `name` of `owner`, with its turns, if stored.
    fn load<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredConversation>>>;

    /// Whether other processes may write the same conversations (a shared database): then a
    /// conversation checks before each turn that no turn was added elsewhere
    /// ([`ConversationStore::last_seq`]).
    fn shared(&self) -> bool;

    /// The number of the last turn stored for conversation `id` of `owner`, if any.
    fn last_seq<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<i64>>>;

    /// Starts recording turn `seq` of `conversation`, asked with `prompt`. Non-blocking.
    fn begin_turn(
        &self,
        conversation: &ConversationRecord,
        seq: i64,
        prompt: &Message,
    ) -> Box<dyn TurnLog>;
}

/// Records one turn as it streams. Every method is synchronous and non-blocking. Dropped
/// before [`TurnLog::finish`], the turn is recorded as cancelled.
pub trait TurnLog: Send + Sync {
    /// Appends answer text.
    fn chunk(&self, text: &str);
    /// Keeps an event of note (reasoning, usage, citations...).
    fn event(&self, event: &Event);
    /// Updates the conversation's provider handle, written with the turn.
    fn handle(&self, handle: Option<&Value>);
    /// Ends the turn. The future resolves once the turn is durable in the store, or the store
    /// said it cannot be (an outage: it stays queued and is written later); a face that tells
    /// its client "done" after it lets any other process continue the conversation at once.
    fn finish(&self, end: TurnEnd) -> BoxFuture<'static, Result<()>>;
}
