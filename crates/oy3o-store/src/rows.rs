//! Reading rows back into records, the same way on both backends (JSON columns come back as
//! text: PostgreSQL selects cast `jsonb` to `text`).

use serde_json::Value;

use crate::error::{Result, StoreError};
use crate::record::TurnState;

/// Parses a stored turn state.
pub(crate) fn state(text: &str) -> Result<TurnState> {
    text.parse().map_err(StoreError::Corrupt)
}

/// Parses the stored events of a turn.
pub(crate) fn events(text: &str) -> Result<Vec<Value>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("turn events: {e}")))
}

/// Parses stored usage.
pub(crate) fn usage(text: Option<String>) -> Result<Option<oy3o::Usage>> {
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("turn usage: {e}")))
}

/// Parses an optional JSON text column (a chat's handle, a turn's parts).
pub(crate) fn json_opt(text: Option<String>, what: &str) -> Result<Option<Value>> {
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A turn's parts as text for writing, each inline attachment replaced by its digest and its
/// bytes added to `blobs` (each once) for the `attachments` table.
pub(crate) fn stored_parts(
    parts: Option<&Value>,
    blobs: &mut Vec<crate::attachments::Blob>,
) -> Option<String> {
    let (stored, found) = crate::attachments::extract(parts?);
    for blob in found {
        if !blobs.iter().any(|b| b.digest == blob.digest) {
            blobs.push(blob);
        }
    }
    Some(stored.to_string())
}

/// An optional JSON value as text, for writing.
pub(crate) fn json_text(value: Option<&Value>) -> Option<String> {
    value.map(Value::to_string)
}

/// Parses a stored chain result.
pub(crate) fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("chain result: {e}")))
}

/// The JSON text of a turn's events and usage, for writing.
pub(crate) fn turn_json(turn: &crate::record::TurnRecord) -> (String, Option<String>) {
    let events = serde_json::to_string(&turn.events).unwrap_or_else(|_| "[]".into());
    let usage = turn
        .usage
        .as_ref()
        .and_then(|u| serde_json::to_string(u).ok());
    (events, usage)
}

/// The chats of a batch of turns, each once (its last record in the batch) with the latest
/// update time among its turns: one chat upsert per chat, not per turn.
pub(crate) fn chats_of(
    turns: &[(crate::record::ChatRecord, crate::record::TurnRecord)],
) -> Vec<(&crate::record::ChatRecord, i64)> {
    let mut out: Vec<(&crate::record::ChatRecord, i64)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (chat, turn) in turns {
        let updated = turn.updated_at.max(chat.updated_at);
        match index.get(chat.id.as_str()) {
            Some(&i) => {
                let at = out[i].1.max(updated);
                out[i] = (chat, at);
            }
            None => {
                index.insert(chat.id.as_str(), out.len());
                out.push((chat, updated));
            }
        }
    }
    out
}

/// The turns of a batch, each once (its last record in the batch), in batch order: a multi-row
/// upsert may not touch a row twice (PostgreSQL refuses it).
pub(crate) fn unique_turns(
    turns: &[(crate::record::ChatRecord, crate::record::TurnRecord)],
) -> Vec<&crate::record::TurnRecord> {
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, (_, turn)) in turns.iter().enumerate() {
        last.insert(turn.id.as_str(), i);
    }
    turns
        .iter()
        .enumerate()
        .filter(|(i, (_, turn))| last.get(turn.id.as_str()) == Some(i))
        .map(|(_, (_, turn))| turn)
        .collect()
}

/// The chats of a batch as one vector per column (PostgreSQL binds each as an array).
#[derive(Default)]
pub(crate) struct ChatColumns<'a> {
    pub id: Vec<&'a str>,
    pub owner: Vec<&'a str>,
    pub name: Vec<Option<&'a str>>,
    pub model: Vec<Option<&'a str>>,
    pub context: Vec<Option<&'a str>>,
    pub handle: Vec<Option<String>>,
    pub created_at: Vec<i64>,
    pub updated_at: Vec<i64>,
}

impl<'a> ChatColumns<'a> {
    /// The columns of the chats of `turns`, each chat once (see [`chats_of`]).
    pub fn of(turns: &'a [(crate::record::ChatRecord, crate::record::TurnRecord)]) -> Self {
        let mut out = Self::default();
        for (chat, updated_at) in chats_of(turns) {
            out.id.push(&chat.id);
            out.owner.push(&chat.owner);
            out.name.push(chat.name.as_deref());
            out.model.push(chat.model.as_deref());
            out.context.push(chat.context.as_deref());
            out.handle.push(json_text(chat.handle.as_ref()));
            out.created_at.push(chat.created_at);
            out.updated_at.push(updated_at);
        }
        out
    }
}

/// The turns of a batch as one vector per column, each turn once (see [`unique_turns`]);
/// events and usage as JSON text.
#[derive(Default)]
pub(crate) struct TurnColumns<'a> {
    pub id: Vec<&'a str>,
    pub chat_id: Vec<&'a str>,
    pub seq: Vec<i64>,
    pub owner: Vec<&'a str>,
    pub prompt: Vec<&'a str>,
    pub answer: Vec<&'a str>,
    pub reasoning: Vec<&'a str>,
    pub events: Vec<String>,
    pub usage: Vec<Option<String>>,
    pub parts: Vec<Option<String>>,
    /// The attachments the parts refer to, each once.
    pub blobs: Vec<crate::attachments::Blob>,
    pub model: Vec<Option<&'a str>>,
    pub cost_usd: Vec<Option<f64>>,
    pub first_token_ms: Vec<Option<i64>>,
    pub elapsed_ms: Vec<Option<i64>>,
    pub state: Vec<&'static str>,
    pub error: Vec<Option<&'a str>>,
    pub instance: Vec<&'a str>,
    pub created_at: Vec<i64>,
    pub updated_at: Vec<i64>,
}

impl<'a> TurnColumns<'a> {
    /// The columns of `turns`.
    pub fn of(turns: &'a [(crate::record::ChatRecord, crate::record::TurnRecord)]) -> Self {
        let mut out = Self::default();
        for turn in unique_turns(turns) {
            let (events, usage) = turn_json(turn);
            out.id.push(&turn.id);
            out.chat_id.push(&turn.chat_id);
            out.seq.push(turn.seq);
            out.owner.push(&turn.owner);
            out.prompt.push(&turn.prompt);
            out.answer.push(&turn.answer);
            out.reasoning.push(&turn.reasoning);
            out.events.push(events);
            out.usage.push(usage);
            let parts = stored_parts(turn.parts.as_ref(), &mut out.blobs);
            out.parts.push(parts);
            out.model.push(turn.model.as_deref());
            out.cost_usd.push(turn.cost_usd);
            out.first_token_ms.push(turn.first_token_ms);
            out.elapsed_ms.push(turn.elapsed_ms);
            out.state.push(turn.state.as_str());
            out.error.push(turn.error.as_deref());
            out.instance.push(&turn.instance);
            out.created_at.push(turn.created_at);
            out.updated_at.push(turn.updated_at);
        }
        out
    }
}

/// Builds a `ChatRecord` from a row with the chat columns.
macro_rules! chat_from_row {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        $crate::record::ChatRecord {
            id: row.try_get("id")?,
            owner: row.try_get("owner")?,
            name: row.try_get("name")?,
            model: row.try_get("model")?,
            context: row.try_get("context")?,
            handle: $crate::rows::json_opt(row.try_get("handle")?, "chat handle")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        }
    }};
}

/// Builds a `TurnRecord` from a row with the turn columns (`events` and `usage` as text).
macro_rules! turn_from_row {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        let events: String = row.try_get("events")?;
        let state: String = row.try_get("state")?;
        $crate::record::TurnRecord {
            id: row.try_get("id")?,
            chat_id: row.try_get("chat_id")?,
            seq: row.try_get("seq")?,
            owner: row.try_get("owner")?,
            prompt: row.try_get("prompt")?,
            answer: row.try_get("answer")?,
            reasoning: row.try_get("reasoning")?,
            events: $crate::rows::events(&events)?,
            usage: $crate::rows::usage(row.try_get("usage")?)?,
            parts: $crate::rows::json_opt(row.try_get("parts")?, "turn parts")?,
            model: row.try_get("model")?,
            cost_usd: row.try_get("cost_usd")?,
            first_token_ms: row.try_get("first_token_ms")?,
            elapsed_ms: row.try_get("elapsed_ms")?,
            state: $crate::rows::state(&state)?,
            error: row.try_get("error")?,
            instance: row.try_get("instance")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        }
    }};
}

/// Builds a `ChainRunRecord` from a row (`result` as text).
macro_rules! chain_run_from_row {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        let result: String = row.try_get("result")?;
        let state: String = row.try_get("state")?;
        $crate::record::ChainRunRecord {
            id: row.try_get("id")?,
            owner: row.try_get("owner")?,
            name: row.try_get("name")?,
            result: $crate::rows::json(&result)?,
            state: $crate::rows::state(&state)?,
            created_at: row.try_get("created_at")?,
        }
    }};
}

pub(crate) use {chain_run_from_row, chat_from_row, turn_from_row};

/// An FTS5 query matching every word of `text`: each word quoted, so punctuation and operators
/// in the user's text are searched for, not interpreted.
pub(crate) fn fts5_query(text: &str) -> String {
    text.split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An instance with streaming turns: its id, and its host, pid and last heartbeat when it is
/// registered.
pub(crate) type Candidate = (String, Option<String>, Option<i64>, Option<i64>);

/// Decides which instances with streaming turns are dead (see `Store::recover`).
pub(crate) fn dead_instances(
    candidates: Vec<crate::rows::Candidate>,
    grace: std::time::Duration,
    own: &str,
) -> Vec<String> {
    let now = crate::record::now_ms();
    let host = crate::store::host_name();
    let grace_ms = grace.as_millis() as i64;
    candidates
        .into_iter()
        .filter(|(id, ..)| id != own)
        .filter(|(_, h, pid, seen)| match (h, pid, seen) {
            (Some(h), Some(pid), Some(seen)) => {
                now - seen > grace_ms || (*h == host && crate::store::process_gone(*pid))
            }
            // A turn whose instance never registered (or was removed) has no one to finish it.
            _ => true,
        })
        .map(|(id, ..)| id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts5_queries_quote_every_word() {
        assert_eq!(fts5_query("rust  OR \"x"), "\"rust\" \"OR\" \"\"\"x\"");
    }
}
