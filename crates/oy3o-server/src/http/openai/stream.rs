//! An answer as server-sent `chat.completion.chunk` events, ending with `data: [DONE]`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{FutureExt as _, StreamExt};
use oy3o::{Event, Output, Reply, ToolCallDelta, Usage};
use serde_json::json;

use super::whole::usage_json;
use super::{Answering, Meta, engine_error};
use crate::state::AppState;

/// Pre-rendered pieces of every `chat.completion.chunk` of one answer. Each chunk is written
/// straight into the frame being built (the text escaped into it): formatting it from pieces
/// cost ~3,000 instructions and four allocations per chunk.
struct ChunkWriter {
    head: String,
}

/// What follows a chunk's `delta` when the answer goes on.
const GOING_ON: &[u8] = b",\"logprobs\":null,\"finish_reason\":null}]}\n\n";

impl ChunkWriter {
    fn new(meta: &Meta) -> Self {
        let model = serde_json::to_string(&meta.model).unwrap_or_else(|_| "\"\"".into());
        Self {
            head: format!(
                "data: {{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{model},\"choices\":[{{\"index\":0,\"delta\":",
                meta.id, meta.created
            ),
        }
    }

    fn start(&self, out: &mut Vec<u8>, room: usize) {
        out.reserve(self.head.len() + room + GOING_ON.len() + 16);
        out.extend_from_slice(self.head.as_bytes());
    }

    /// The first chunk: the assistant's role and empty content.
    fn role(&self, out: &mut Vec<u8>) {
        self.start(out, 32);
        out.extend_from_slice(br#"{"role":"assistant","content":""}"#);
        out.extend_from_slice(GOING_ON);
    }

    /// A chunk whose delta is `{key: text}`.
    fn text(&self, out: &mut Vec<u8>, key: &str, text: &str) {
        self.start(out, key.len() + text.len() + 8);
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        // Escaping a `str` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
        out.push(b'}');
        out.extend_from_slice(GOING_ON);
    }

    /// A chunk whose delta is one tool-call fragment, in OpenAI's shape (TOOLS.md §1.2): the
    /// first of a call with its `id`, `type` and name, the next ones with argument pieces.
    fn tool_call(&self, out: &mut Vec<u8>, d: &ToolCallDelta) {
        let mut call = json!({ "index": d.index });
        if let Some(id) = &d.id {
            call["id"] = json!(id);
            call["type"] = json!("function");
        }
        let mut function = json!({ "arguments": d.arguments });
        if let Some(name) = &d.name {
            function["name"] = json!(name);
        }
        call["function"] = function;
        let delta = json!({ "tool_calls": [call] }).to_string();
        self.start(out, delta.len());
        out.extend_from_slice(delta.as_bytes());
        out.extend_from_slice(GOING_ON);
    }

    /// The last chunk of the choice: an empty delta and the finish reason.
    fn finish(&self, out: &mut Vec<u8>, reason: &str) {
        self.start(out, reason.len() + 48);
        out.extend_from_slice(br#"{},"logprobs":null,"finish_reason":"#);
        let _ = serde_json::to_writer(&mut *out, reason);
        out.extend_from_slice(b"}]}\n\n");
    }

    fn usage(&self, out: &mut Vec<u8>, usage: &Usage) {
        // The head ends inside `choices`, which the usage chunk leaves empty.
        let head = &self.head[..self.head.len() - r#"{"index":0,"delta":"#.len()];
        out.extend_from_slice(format!("{head}],\"usage\":{}}}\n\n", usage_json(usage)).as_bytes());
    }
}

fn error_event(out: &mut Vec<u8>, code: &str, message: &str) {
    let body =
        json!({ "error": { "message": message, "type": code, "param": null, "code": code } });
    out.extend_from_slice(format!("data: {body}\n\n").as_bytes());
}

/// The answer as server-sent events. The head waits for the first item, so a failure before
/// the answer starts is a plain HTTP error with its status.
pub(super) async fn stream(
    state: Arc<AppState>,
    reply: Reply,
    meta: Meta,
    include_usage: bool,
) -> Response {
    let mut outputs = reply.outputs();
    let first = loop {
        match outputs.next().await {
            Some(Ok(Output::Event(e)))
                if !(matches!(e, Event::Reasoning(_))
                    || matches!(e, Event::ToolCallDelta(_)) && !meta.server_tools) => {}
            other => break other,
        }
    };
    if let Some(Err(e)) = &first {
        meta.series.error(e.code().as_str());
        meta.settle(outputs.reply().usage());
        return engine_error(&state, e);
    }
    let elapsed = meta.started.elapsed();
    state.metrics.first_chunk(elapsed);
    meta.series.first_chunk(elapsed);
    let series = meta.series.clone();
    let answering = Answering::start(&state, meta.started);
    let writer = ChunkWriter::new(&meta);
    let server_tools = meta.server_tools;
    let body = async_stream::stream! {
        let mut frame = Vec::with_capacity(1024);
        writer.role(&mut frame);
        let mut next = first;
        loop {
            // Every output already here joins this frame: chunks that arrive together (an
            // upstream's read holding many events) leave in one frame and one write, instead
            // of one frame each through the body and hyper's write queue.
            let ended = loop {
                match next {
                    Some(Ok(Output::Text(t))) => writer.text(&mut frame, "content", &t),
                    Some(Ok(Output::Event(Event::Reasoning(t)))) => {
                        writer.text(&mut frame, "reasoning_content", &t)
                    }
                    Some(Ok(Output::Event(Event::ToolCallDelta(d)))) if !server_tools => {
                        writer.tool_call(&mut frame, &d)
                    }
                    Some(Ok(Output::Event(_))) => {}
                    Some(Err(e)) => {
                        meta.settle(outputs.reply().usage());
                        state.metrics.error(e.code().as_str());
                        series.error(e.code().as_str());
                        series.usage(outputs.reply().usage());
                        error_event(&mut frame, e.code().as_str(), e.message());
                        break true;
                    }
                    None => {
                        let reply = outputs.reply();
                        series.usage(reply.usage());
                        meta.settle(reply.usage());
                        writer.finish(&mut frame, reply.finish_reason().unwrap_or("stop"));
                        if let Some(usage) = reply.usage().filter(|_| include_usage) {
                            writer.usage(&mut frame, usage);
                        }
                        frame.extend_from_slice(b"data: [DONE]\n\n");
                        break true;
                    }
                }
                match outputs.next().now_or_never() {
                    Some(ready) => next = ready,
                    None => break false,
                }
            };
            // (The `&Reply` above ends before this yield: held across one, it would make the
            // body stream non-Send; the engine's stream is Send, not Sync.)
            if !frame.is_empty() {
                yield Ok::<_, Infallible>(Bytes::from(std::mem::take(&mut frame)));
            }
            if ended {
                break;
            }
            next = outputs.next().await;
        }
        drop(answering);
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
