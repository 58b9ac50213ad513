//! What the store keeps: chats, turns and chain runs, as plain values.
//!
//! Times are Unix milliseconds (UTC), the same on both backends, so rows compare and sort
//! without time-zone questions.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use oy3o::Usage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new id: 32 lowercase hex digits, time first. The first 12 digits are the Unix time in
/// milliseconds, the other 20 are random (80 bits), so ids stay unique and unguessable while
/// newer ids sort after older ones (as UUIDv7 does, RFC 9562 §5.7). That order is what keeps
/// the store fast: chats and turns are keyed by these ids, and a B-tree takes time-ordered keys
/// at its right edge, a few pages a transaction, where random keys dirty one page per row
/// (SQLite then rewrites each of those pages into its WAL, PostgreSQL into its own; measured in
/// `bench/README.md`).
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    let millis = now_ms().max(0) as u64;
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    if getrandom::fill(&mut bytes[6..]).is_err() {
        // No OS randomness (very unusual): a process counter still makes ids unique here.
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        bytes[6..14].copy_from_slice(&(n ^ u64::from(std::process::id()) << 32).to_le_bytes());
    }
    // By hand, not `format!` per byte: this runs once per turn on the streaming path, where 16
    // formatted strings cost ~10,000 instructions (callgrind) and this one allocation ~200.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for b in bytes {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    id
}

/// A conversation: a named chat (continued with `--chat NAME`) or the one turn of a one-shot
/// prompt (no name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRecord {
    /// Id from [`new_id`] (time first, then random), unique across owners and instances.
    pub id: String,
    /// Whose chat this is: `""` for the local user, a hash of the client token on a server.
    pub owner: String,
    /// The name; unique per owner. `None` for one-shot prompts.
    pub name: Option<String>,
    /// The model reference it last used.
    pub model: Option<String>,
    /// Its context (system prompt).
    pub context: Option<String>,
    /// What the provider keeps of the conversation on its side (`oy3o::Session::handle`),
    /// needed to continue it in another process; `None` for stateless APIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<Value>,
    /// When it was created (Unix ms).
    pub created_at: i64,
    /// When it last changed (Unix ms).
    pub updated_at: i64,
}

impl ChatRecord {
    /// A new chat with a fresh id, created now. It is written with its first turn (see
    /// [`crate::Recorder::begin_turn`]) or by [`crate::Store::open_chat`].
    pub fn new(
        owner: &str,
        name: Option<&str>,
        model: Option<&str>,
        context: Option<&str>,
    ) -> Self {
        let now = now_ms();
        Self {
            id: new_id(),
            owner: owner.to_owned(),
            name: name.map(str::to_owned),
            model: model.map(str::to_owned),
            context: context.map(str::to_owned),
            handle: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl ChatRecord {
    /// An empty record (no allocation), left in a finished turn's place while the writer holds
    /// the real one.
    pub(crate) fn taken() -> Self {
        Self {
            id: String::new(),
            owner: String::new(),
            name: None,
            model: None,
            context: None,
            handle: None,
            created_at: 0,
            updated_at: 0,
        }
    }
}

/// A chat as [`crate::Store::chats`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatSummary {
    /// The chat.
    pub chat: ChatRecord,
    /// How many turns it holds.
    pub turns: u64,
    /// When its last turn changed, else when the chat did (Unix ms).
    pub last_at: i64,
    /// The first prompt, cut to [`TITLE_CHARS`] characters (a title for lists); `None` before
    /// the first turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_prompt: Option<String>,
}

/// How much of a chat's first prompt [`ChatSummary::first_prompt`] holds, in characters: enough
/// for a title, while a pasted document stays in its turn.
pub const TITLE_CHARS: usize = 200;

/// Where a turn's answer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TurnState {
    /// The answer is still being written.
    Streaming,
    /// The answer is complete.
    Done,
    /// The model or the network failed; `error` says why.
    Error,
    /// The person stopped it (Ctrl+C, a cancel frame, a dropped stream).
    Cancelled,
    /// Its process died mid-answer (a crash, `kill -9`); found at the next start.
    Interrupted,
}

impl TurnState {
    /// `streaming`, `done`, `error`, `cancelled` or `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Streaming => "streaming",
            Self::Done => "done",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }

    /// Whether the answer will not change any more.
    pub fn is_final(self) -> bool {
        self != Self::Streaming
    }
}

impl fmt::Display for TurnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TurnState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "streaming" => Self::Streaming,
            "done" => Self::Done,
            "error" => Self::Error,
            "cancelled" => Self::Cancelled,
            "interrupted" => Self::Interrupted,
            other => return Err(format!("unknown turn state {other:?}")),
        })
    }
}

/// One prompt and its answer in a chat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TurnRecord {
    /// Id from [`new_id`].
    pub id: String,
    /// The chat it belongs to.
    pub chat_id: String,
    /// Its place in the chat: the number of turns before it.
    pub seq: i64,
    /// The chat's owner (kept on the turn too, for owner-scoped search).
    pub owner: String,
    /// What the person asked.
    pub prompt: String,
    /// The answer so far.
    pub answer: String,
    /// The model's reasoning, when it shows it.
    pub reasoning: String,
    /// Events of note (citations, search results, title, suggestions…) as their JSON form
    /// (`oy3o::Event::to_json`).
    pub events: Vec<Value>,
    /// Token counts, when reported.
    pub usage: Option<Usage>,
    /// The parts of the prompt and answer that are not plain text, as
    /// `{"prompt": [parts], "answer": [parts], "steps": [messages]}` (`oy3o::Part` and
    /// `oy3o::Message` in JSON); `None` when both are text only and no tool ran. `steps` are the
    /// tool steps between the prompt and the last answer (see `oy3o::StoredTurn::steps`).
    /// `prompt` and `answer` always hold their text (`answer`: every step's text, in order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Value>,
    /// The model reference that answered.
    pub model: Option<String>,
    /// What the turn cost in US dollars: its usage at the [`crate::Recorder`]'s price table
    /// (`oy3o::price`); `None` without usage or a price for its model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Milliseconds from the request to the first answer text.
    pub first_token_ms: Option<i64>,
    /// Milliseconds from the request to the end (or to the last write while streaming).
    pub elapsed_ms: Option<i64>,
    /// Where the answer stands.
    pub state: TurnState,
    /// Why it failed, for `error`.
    pub error: Option<String>,
    /// The process instance that wrote it (see [`crate::Store::instance`]).
    pub instance: String,
    /// When the prompt was sent (Unix ms).
    pub created_at: i64,
    /// When the row last changed (Unix ms).
    pub updated_at: i64,
}

impl TurnRecord {
    /// An empty, final record (no allocation; its empty id marks it), left in a finished turn's
    /// place while the writer holds the real one.
    pub(crate) fn taken() -> Self {
        Self {
            id: String::new(),
            chat_id: String::new(),
            seq: 0,
            owner: String::new(),
            prompt: String::new(),
            answer: String::new(),
            reasoning: String::new(),
            events: Vec::new(),
            usage: None,
            parts: None,
            model: None,
            cost_usd: None,
            first_token_ms: None,
            elapsed_ms: None,
            state: TurnState::Done,
            error: None,
            instance: String::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    /// The prompt as a message: its stored parts when it has some beyond text, else its text.
    pub fn prompt_message(&self) -> oy3o::Message {
        self.message(oy3o::Role::User, "prompt", &self.prompt)
    }

    /// The answer as a message, as [`TurnRecord::prompt_message`].
    pub fn answer_message(&self) -> oy3o::Message {
        self.message(oy3o::Role::Assistant, "answer", &self.answer)
    }

    fn message(&self, role: oy3o::Role, key: &str, text: &str) -> oy3o::Message {
        let parts = self
            .parts
            .as_ref()
            .and_then(|p| p.get(key))
            .and_then(|p| serde_json::from_value::<Vec<oy3o::Part>>(p.clone()).ok());
        match parts {
            Some(parts) if !parts.is_empty() => oy3o::Message { role, parts },
            _ => oy3o::Message::new(role, text),
        }
    }

    /// The tool steps between the prompt and the last answer: assistant messages with tool
    /// calls, each followed by a `tool` message with their results.
    pub fn steps(&self) -> Vec<oy3o::Message> {
        self.parts
            .as_ref()
            .and_then(|p| p.get("steps"))
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .unwrap_or_default()
    }

    /// The chat history this turn adds: the prompt, its tool steps and the answer.
    pub fn messages(&self) -> Vec<oy3o::Message> {
        let mut messages = vec![self.prompt_message()];
        messages.extend(self.steps());
        messages.push(self.answer_message());
        messages
    }
}

/// The history of a list of turns in order, ready for `oy3o::Chat::restore`: each prompt and its
/// answer, of the turns answered completely (`done`). A failed, cancelled or interrupted turn
/// stays in the store and the log but is not part of the conversation the model sees, exactly
/// as a live chat never keeps it (one rule for a live and a resumed conversation).
pub fn history(turns: &[TurnRecord]) -> Vec<oy3o::Message> {
    turns
        .iter()
        .filter(|t| t.state == TurnState::Done)
        .flat_map(TurnRecord::messages)
        .collect()
}

/// The `parts` column of a turn asked with `prompt`: `{"prompt": [...]}` when the prompt holds
/// parts beyond text, else `None`.
pub fn prompt_parts(prompt: &oy3o::Message) -> Option<Value> {
    (!prompt.is_text_only()).then(|| serde_json::json!({ "prompt": prompt.parts }))
}

/// A turn as the log shows it: with its chat's name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggedTurn {
    /// The turn.
    pub turn: TurnRecord,
    /// Its chat's name (`None` for one-shot prompts).
    pub chat_name: Option<String>,
}

/// One run of a task chain with every task's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainRunRecord {
    /// Id from [`new_id`].
    pub id: String,
    /// Whose run this is.
    pub owner: String,
    /// The chain's name (its file name, for the CLI).
    pub name: String,
    /// The whole result: every task's answer, error, usage and timing.
    pub result: Value,
    /// `done`, `error` or `cancelled`.
    pub state: TurnState,
    /// When it ran (Unix ms).
    pub created_at: i64,
}

/// What [`crate::Store::prune`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    /// Turns removed.
    pub turns: u64,
    /// Chats removed because no turn was left in them.
    pub chats: u64,
    /// Chain runs removed.
    pub chain_runs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_lowercase_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
            "{a}"
        );
        assert_ne!(a, b);
    }

    #[test]
    fn ids_start_with_the_time_and_sort_by_it() {
        let before = now_ms();
        let first = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_id();
        let after = now_ms();
        let millis = |id: &str| i64::from_str_radix(&id[..12], 16).expect("hex");
        assert!((before..=after).contains(&millis(&first)), "{first}");
        assert!(millis(&second) > millis(&first), "{first} {second}");
        assert!(second > first, "a later id sorts after an earlier one");
        // Within one millisecond the random part still tells ids apart.
        let many: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(many.len(), 10_000);
    }
}
