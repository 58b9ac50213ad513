//! Texts as PostgreSQL can hold them. Its `text` and `jsonb` cannot hold U+0000 ("invalid byte
//! sequence for encoding UTF8: 0x00", "unsupported Unicode escape sequence"), and a prompt or an
//! answer may carry one: refused as a data error, not a constraint, such a row would be retried
//! forever and hold every later turn back behind it. So U+0000 is written as U+FFFD, and chats
//! are looked up by the name they were written under. Only rows that hold one are copied: the
//! common case costs a scan.

use std::borrow::Cow;

use serde_json::Value;

use crate::record::{ChatRecord, TurnRecord};

fn has(s: &str) -> bool {
    s.contains('\0')
}

/// `text` with U+0000 replaced by U+FFFD (borrowed when it holds none).
pub(crate) fn text(text: &str) -> Cow<'_, str> {
    if has(text) {
        Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(text)
    }
}

fn scrub(s: &mut String) {
    if let Cow::Owned(clean) = text(s) {
        *s = clean;
    }
}

fn value_has(v: &Value) -> bool {
    match v {
        Value::String(s) => has(s),
        Value::Array(items) => items.iter().any(value_has),
        Value::Object(map) => map.iter().any(|(k, v)| has(k) || value_has(v)),
        _ => false,
    }
}

fn scrub_value(v: &mut Value) {
    match v {
        Value::String(s) => scrub(s),
        Value::Array(items) => items.iter_mut().for_each(scrub_value),
        Value::Object(map) => {
            for (mut k, mut v) in std::mem::take(map) {
                scrub(&mut k);
                scrub_value(&mut v);
                map.insert(k, v);
            }
        }
        _ => {}
    }
}

fn chat_has(chat: &ChatRecord) -> bool {
    [&chat.name, &chat.model, &chat.context]
        .into_iter()
        .flatten()
        .any(|s| has(s))
        || chat.handle.as_ref().is_some_and(value_has)
}

fn scrub_chat(chat: &mut ChatRecord) {
    [&mut chat.name, &mut chat.model, &mut chat.context]
        .into_iter()
        .flatten()
        .for_each(scrub);
    chat.handle.iter_mut().for_each(scrub_value);
}

fn turn_has(turn: &TurnRecord) -> bool {
    [&turn.model, &turn.error]
        .into_iter()
        .flatten()
        .any(|s| has(s))
        || [&turn.prompt, &turn.answer, &turn.reasoning]
            .into_iter()
            .any(|s| has(s))
        || turn.events.iter().any(value_has)
        || turn.parts.as_ref().is_some_and(value_has)
}

fn scrub_turn(turn: &mut TurnRecord) {
    [&mut turn.model, &mut turn.error]
        .into_iter()
        .flatten()
        .for_each(scrub);
    [&mut turn.prompt, &mut turn.answer, &mut turn.reasoning]
        .into_iter()
        .for_each(scrub);
    turn.events.iter_mut().for_each(scrub_value);
    turn.parts.iter_mut().for_each(scrub_value);
}

/// `chat` as PostgreSQL can hold it, when one of its texts holds U+0000.
pub(crate) fn chat(chat: &ChatRecord) -> Option<ChatRecord> {
    chat_has(chat).then(|| {
        let mut chat = chat.clone();
        scrub_chat(&mut chat);
        chat
    })
}

/// `turns` as PostgreSQL can hold them, when any text of them holds U+0000 (all copied then).
pub(crate) fn turns(turns: &[(ChatRecord, TurnRecord)]) -> Option<Vec<(ChatRecord, TurnRecord)>> {
    if !turns.iter().any(|(c, t)| chat_has(c) || turn_has(t)) {
        return None;
    }
    Some(
        turns
            .iter()
            .map(|(chat, turn)| {
                let (mut chat, mut turn) = (chat.clone(), turn.clone());
                scrub_chat(&mut chat);
                scrub_turn(&mut turn);
                (chat, turn)
            })
            .collect(),
    )
}
