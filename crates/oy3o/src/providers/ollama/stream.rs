//! Mapping `/api/chat` NDJSON lines to deltas (PROVIDERS.md §5.2–§5.4): `message.content` as
//! text, `message.thinking` as reasoning, the final `done: true` line's counts as usage (absent
//! counts are 0), and `{"error": ...}` lines as errors.

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::event::{Event, Usage};
use crate::provider::{Delta, DeltaStream};
use crate::tool::{ToolCallAssembler, ToolCallDelta};

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    /// Omitted when zero, e.g. a prompt served from the cache (§5.3).
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    /// Whole calls, possibly spread over lines (TOOLS.md §5.2).
    #[serde(default)]
    tool_calls: Option<Vec<WireCall>>,
}

#[derive(Deserialize)]
struct WireCall {
    #[serde(default)]
    id: Option<String>,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: serde_json::Value,
}

/// Turns the lines of one answer into deltas, ending with [`Delta::Done`] at the `done: true`
/// line and failing at an error line or a body that ends before it.
pub(super) fn deltas(lines: BoxStream<'static, Result<String>>) -> DeltaStream {
    Box::pin(async_stream::try_stream! {
        let mut lines = lines;
        let mut calls = ToolCallAssembler::default();
        let mut next_call = 0;
        while let Some(line) = lines.next().await {
            let line = line?;
            let parsed: Line = serde_json::from_str(&line).map_err(|e| {
                Error::provider(format!(
                    "ollama sent a line that is not valid JSON ({e}): {}",
                    line.chars().take(200).collect::<String>()
                ))
            })?;
            if let Some(error) = parsed.error {
                let message = error.as_str().map_or_else(|| error.to_string(), str::to_owned);
                Err(Error::provider(format!(
                    "ollama reported an error mid-answer: {message}; the answer is incomplete, \
                     try again"
                )))?;
            }
            if let Some(message) = parsed.message {
                if let Some(thinking) = message.thinking.filter(|t| !t.is_empty()) {
                    yield Delta::Event(Event::Reasoning(thinking));
                }
                if let Some(text) = message.content.filter(|t| !t.is_empty()) {
                    yield Delta::Text(text);
                }
                for call in message.tool_calls.into_iter().flatten() {
                    let arguments = match call.function.arguments {
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::String(text) => text,
                        object => object.to_string(),
                    };
                    let fragment = ToolCallDelta {
                        index: next_call,
                        id: call.id,
                        name: Some(call.function.name),
                        arguments,
                        signature: None,
                    };
                    next_call += 1;
                    calls.push(&fragment);
                    yield Delta::Event(Event::ToolCallDelta(fragment));
                }
            }
            if parsed.done {
                let called = !calls.is_empty();
                for call in std::mem::take(&mut calls).finish() {
                    yield Delta::Event(Event::ToolCall(call));
                }
                yield Delta::Event(Event::Usage(Usage {
                    input_tokens: parsed.prompt_eval_count.unwrap_or(0),
                    output_tokens: parsed.eval_count.unwrap_or(0),
                    cached_tokens: None,
                    reasoning_tokens: None,
                }));
                // Ollama says `stop` after tool calls too; faces expect `tool_calls` then.
                let finish_reason = match parsed.done_reason {
                    Some(reason) if !(called && reason == "stop") => reason,
                    _ if called => "tool_calls".into(),
                    _ => "stop".into(),
                };
                yield Delta::Done { finish_reason };
                return;
            }
        }
        Err(Error::network(
            "ollama: the answer stream ended before its done line; the answer is cut off, \
             try again",
        ))?;
    })
}
