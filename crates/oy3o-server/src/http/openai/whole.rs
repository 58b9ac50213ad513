//! A whole answer as one `chat.completion`, serialized straight from borrowed fields.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use oy3o::{Event, Output, Reply, ToolCall, Usage};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Answering, Meta, api_error, engine_error};
use crate::state::AppState;

pub(super) fn usage_json(usage: &Usage) -> Value {
    let mut v = json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    });
    if let Some(cached) = usage.cached_tokens {
        v["prompt_tokens_details"] = json!({ "cached_tokens": cached });
    }
    if let Some(reasoning) = usage.reasoning_tokens {
        v["completion_tokens_details"] = json!({ "reasoning_tokens": reasoning });
    }
    v
}

/// The whole answer as one `chat.completion`.
pub(super) async fn whole(state: Arc<AppState>, reply: Reply, meta: Meta) -> Response {
    let answering = Answering::start(&state, meta.started);
    let mut outputs = reply.outputs();
    let mut reasoning = String::new();
    let mut failure = None;
    while let Some(item) = outputs.next().await {
        match item {
            Ok(output) => {
                if let Output::Event(Event::Reasoning(t)) = output {
                    reasoning.push_str(&t);
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(answering);
    let reply = outputs.reply();
    meta.series.usage(reply.usage());
    meta.settle(reply.usage());
    if let Some(e) = failure {
        meta.series.error(e.code().as_str());
        return engine_error(&state, &e);
    }
    let body = Completion {
        id: &meta.id,
        object: "chat.completion",
        created: meta.created,
        model: &meta.model,
        choices: [CompletionChoice {
            index: 0,
            message: CompletionMessage {
                role: "assistant",
                // OpenAI writes `null` content beside tool calls when there is no text.
                content: Some(reply.answer())
                    .filter(|text| !text.is_empty() || reply.tool_calls().is_empty()),
                reasoning_content: &reasoning,
                tool_calls: WireCalls(reply.tool_calls()),
            },
            logprobs: None,
            finish_reason: reply.finish_reason().unwrap_or("stop"),
        }],
        usage: reply.usage().map(usage_json),
    };
    // Serialized straight from borrowed fields, no JSON tree of the answer first.
    match serde_json::to_vec(&body) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &format!("cannot write the answer: {e}"),
        ),
    }
}

/// A whole `chat.completion`, in the order OpenAI writes its fields.
#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    usage: Option<Value>,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: CompletionMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct CompletionMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    reasoning_content: &'a str,
    #[serde(skip_serializing_if = "WireCalls::is_empty")]
    tool_calls: WireCalls<'a>,
}

/// `[{"id", "type": "function", "function": {"name", "arguments"}}]`, the arguments as JSON
/// text (TOOLS.md §1.2).
struct WireCalls<'a>(&'a [ToolCall]);

impl WireCalls<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for WireCalls<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|call| {
            json!({
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": oy3o::tool::arguments_text(&call.arguments),
                },
            })
        }))
    }
}
