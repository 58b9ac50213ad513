//! Everything a model reports besides answer text, as one [`Event`] enum with snake_case names
//! that faces pass on unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ErrorCode;

/// Token counts of one answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens read (the prompt, context and history).
    pub input_tokens: u64,
    /// Tokens written (the answer, reasoning included).
    pub output_tokens: u64,
    /// Input tokens served from a cache, when the provider says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Output tokens spent on reasoning, when the provider says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
}

/// A source the answer cites.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    /// Where the source lives.
    pub url: String,
    /// Its title, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// First character of the cited span in the answer, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    /// End (exclusive) of the cited span in the answer, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<u64>,
}

/// One thing a model or the engine reports besides answer text.
///
/// ```
/// use oy3o::Event;
/// let e = Event::Reasoning("thinking...".into());
/// assert_eq!(e.name(), "reasoning");
/// assert_eq!(e.message()["text"], "thinking...");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A session was opened for a model.
    Create {
        /// The model reference as resolved.
        model: String,
    },
    /// The context of a chat was set.
    Update {
        /// The new context.
        context: String,
    },
    /// A prompt was sent.
    Send {
        /// The prompt.
        prompt: String,
    },
    /// The whole answer, once it is complete.
    Result {
        /// The answer text.
        text: String,
        /// Why the model stopped (`stop`, `length`, ...).
        finish_reason: String,
    },
    /// A failure; the stream yields the error too.
    Error {
        /// The machine code.
        code: ErrorCode,
        /// What happened and what to do.
        message: String,
    },
    /// A piece of the model's reasoning text.
    Reasoning(String),
    /// The model searches the web for this query.
    Search(String),
    /// A search hit the model read.
    SearchResult(Citation),
    /// A source cited by the answer.
    Citation(Citation),
    /// A suggested follow-up prompt.
    ReplySuggestion(String),
    /// A title for the conversation.
    Title(String),
    /// Token counts of the answer.
    Usage(Usage),
    /// A request failed before its answer began and is tried again.
    Retry {
        /// 1 for the first retry.
        attempt: u32,
        /// How long the engine waits before it.
        delay_ms: u64,
        /// Why (`HTTP 429`, `connect error`, ...).
        reason: String,
    },
    /// A fragment of a tool call as it streams (see [`crate::tool::ToolCallDelta`]).
    ToolCallDelta(crate::tool::ToolCallDelta),
    /// A whole tool call, once its answer ended (after its fragments).
    ToolCall(crate::tool::ToolCall),
    /// What a tool the engine ran gave back ([`crate::tool_loop`]).
    ToolResult(crate::tool_loop::ToolResult),
    /// The provider reports a limit (remaining requests or turns).
    Throttle(Value),
    /// A provider-specific event with its own name (e.g. bing's `revoke`).
    Other {
        /// The event name, snake_case.
        name: String,
        /// Its payload.
        message: Value,
    },
}

impl Event {
    /// The snake_case event name used by listeners and on every wire.
    pub fn name(&self) -> &str {
        match self {
            Self::Create { .. } => "create",
            Self::Update { .. } => "update",
            Self::Send { .. } => "send",
            Self::Result { .. } => "result",
            Self::Error { .. } => "error",
            Self::Reasoning(_) => "reasoning",
            Self::Search(_) => "search",
            Self::SearchResult(_) => "search_result",
            Self::Citation(_) => "citation",
            Self::ReplySuggestion(_) => "reply_suggestion",
            Self::Title(_) => "title",
            Self::Usage(_) => "usage",
            Self::Retry { .. } => "retry",
            Self::ToolCallDelta(_) => "tool_call_delta",
            Self::ToolCall(_) => "tool_call",
            Self::ToolResult(_) => "tool_result",
            Self::Throttle(_) => "throttle",
            Self::Other { name, .. } => name,
        }
    }

    /// The payload as JSON (what faces send as `message`).
    pub fn message(&self) -> Value {
        match self {
            Self::Create { model } => json!({ "model": model }),
            Self::Update { context } => json!({ "context": context }),
            Self::Send { prompt } => json!({ "prompt": prompt }),
            Self::Result {
                text,
                finish_reason,
            } => json!({ "text": text, "finish_reason": finish_reason }),
            Self::Error { code, message } => json!({ "code": code, "message": message }),
            Self::Reasoning(t) | Self::Search(t) | Self::ReplySuggestion(t) | Self::Title(t) => {
                json!({ "text": t })
            }
            Self::SearchResult(c) | Self::Citation(c) => json!(c),
            Self::Usage(u) => json!(u),
            Self::Retry {
                attempt,
                delay_ms,
                reason,
            } => json!({ "attempt": attempt, "delay_ms": delay_ms, "reason": reason }),
            Self::ToolCallDelta(d) => json!(d),
            Self::ToolCall(c) => json!(c),
            Self::ToolResult(r) => json!(r),
            Self::Throttle(v) | Self::Other { message: v, .. } => v.clone(),
        }
    }

    /// `{"event": name, "message": payload}`: the shape listeners in other languages receive.
    pub fn to_json(&self) -> Value {
        json!({ "event": self.name(), "message": self.message() })
    }
}

/// The lifecycle events every provider emits.
pub const LIFECYCLE_EVENTS: &[&str] = &["create", "update", "send", "result", "error"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_serializes_with_its_name() {
        let e = Event::Retry {
            attempt: 1,
            delay_ms: 500,
            reason: "HTTP 429".into(),
        };
        let v = e.to_json();
        assert_eq!(v["event"], "retry");
        assert_eq!(v["message"]["delay_ms"], 500);
        let other = Event::Other {
            name: "revoke".into(),
            message: json!({"n": 1}),
        };
        assert_eq!(other.name(), "revoke");
    }
}
