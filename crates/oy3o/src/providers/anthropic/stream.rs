//! Mapping Messages stream events to deltas (PROVIDERS.md §3.2–§3.7): text, thinking, web
//! search queries and results, citations, cumulative usage (one `usage` at the end), `ping`
//! ignored, `error` events as errors, and `message_stop` as the only proper end.

use std::borrow::Cow;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};
use crate::event::{Citation, Event, Usage};
use crate::provider::{Delta, DeltaStream};
use crate::tool::{ToolCallAssembler, ToolCallDelta};
use crate::transport::sse::SseEvent;

/// Every event type in one flat shape: each fills only its own fields.
#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    /// The content block an event belongs to.
    #[serde(default)]
    index: Option<u32>,
    /// `message_start`.
    #[serde(default)]
    message: Option<StartMessage>,
    /// `content_block_start`.
    #[serde(default)]
    content_block: Option<Block>,
    /// `content_block_delta` (text, thinking, ...) and `message_delta` (stop reason).
    #[serde(default)]
    delta: Option<WireDelta>,
    /// `message_delta`: cumulative.
    #[serde(default)]
    usage: Option<WireUsage>,
    /// `error`.
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    /// `web_search_tool_result`: the results, or an error object.
    #[serde(default)]
    content: Option<Value>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    citation: Option<WireCitation>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireCitation {
    #[serde(default)]
    url: Option<String>,
    /// `search_result_location` names its source here.
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// What one answer has said so far.
#[derive(Default)]
struct Answer {
    usage: Option<WireUsage>,
    stop_reason: Option<String>,
    /// The JSON input of a `web_search` server tool call being streamed.
    search_input: Option<String>,
    /// Content block index → tool call number, for `tool_use` blocks.
    tool_blocks: Vec<(u32, u32)>,
    calls: ToolCallAssembler,
}

impl Answer {
    /// Cumulative counts: each field present overwrites, never adds (§3.4).
    fn count(&mut self, u: WireUsage) {
        let mine = self.usage.get_or_insert_with(WireUsage::default);
        mine.input_tokens = u.input_tokens.or(mine.input_tokens);
        mine.cache_creation_input_tokens = u
            .cache_creation_input_tokens
            .or(mine.cache_creation_input_tokens);
        mine.cache_read_input_tokens = u.cache_read_input_tokens.or(mine.cache_read_input_tokens);
        mine.output_tokens = u.output_tokens.or(mine.output_tokens);
    }

    /// Our tool-call number of content block `index`, when it is a `tool_use` block.
    fn call_of(&self, index: Option<u32>) -> Option<u32> {
        let index = index?;
        self.tool_blocks
            .iter()
            .find(|(block, _)| *block == index)
            .map(|(_, call)| *call)
    }

    fn tool_fragment(&mut self, fragment: ToolCallDelta, out: &mut Vec<Delta>) {
        self.calls.push(&fragment);
        out.push(Delta::Event(Event::ToolCallDelta(fragment)));
    }

    fn finish(&mut self, out: &mut Vec<Delta>) {
        for call in std::mem::take(&mut self.calls).finish() {
            out.push(Delta::Event(Event::ToolCall(call)));
        }
        if let Some(u) = self.usage.take() {
            let cached = u.cache_read_input_tokens;
            out.push(Delta::Event(Event::Usage(Usage {
                input_tokens: u.input_tokens.unwrap_or(0)
                    + u.cache_creation_input_tokens.unwrap_or(0)
                    + cached.unwrap_or(0),
                output_tokens: u.output_tokens.unwrap_or(0),
                cached_tokens: cached,
                reasoning_tokens: None,
            })));
        }
        let finish_reason = match self.stop_reason.take().as_deref() {
            None | Some("end_turn" | "stop_sequence") => "stop".to_owned(),
            Some("max_tokens") => "length".to_owned(),
            Some("tool_use") => "tool_calls".to_owned(),
            Some(other) => other.to_owned(),
        };
        out.push(Delta::Done { finish_reason });
    }
}

/// Turns the SSE events of one answer into deltas, ending with [`Delta::Done`] at
/// `message_stop` and failing at an `error` event or a body that ends before `message_stop`.
pub(super) fn deltas(events: BoxStream<'static, Result<SseEvent>>) -> DeltaStream {
    Box::pin(async_stream::try_stream! {
        let mut events = events;
        let mut answer = Answer::default();
        let mut out = Vec::with_capacity(2);
        while let Some(event) = events.next().await {
            let event = event?;
            if event.data.is_empty() {
                continue;
            }
            let done = map_event(&event, &mut answer, &mut out)?;
            for delta in out.drain(..) {
                yield delta;
            }
            if done {
                return;
            }
        }
        Err(Error::network(
            "anthropic: the answer stream ended before message_stop; the answer is cut off, \
             try again",
        ))?;
    })
}

/// Maps one event; true at `message_stop`.
fn map_event(event: &SseEvent, answer: &mut Answer, out: &mut Vec<Delta>) -> Result<bool> {
    let wire: WireEvent<'_> = serde_json::from_str(&event.data).map_err(|e| {
        Error::provider(format!(
            "anthropic sent an event that is not valid JSON ({e}): {}",
            event.data.chars().take(200).collect::<String>()
        ))
    })?;
    let kind = wire
        .kind
        .as_deref()
        .or(event.event.as_deref())
        .unwrap_or_default();
    match kind {
        "content_block_delta" => {
            let Some(delta) = wire.delta else {
                return Ok(false);
            };
            match delta.kind.as_deref() {
                Some("text_delta") => {
                    if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                        out.push(Delta::Text(text));
                    }
                }
                Some("thinking_delta") => {
                    if let Some(text) = delta.thinking.filter(|t| !t.is_empty()) {
                        out.push(Delta::Event(Event::Reasoning(text)));
                    }
                }
                Some("input_json_delta") => {
                    if let Some(call) = answer.call_of(wire.index) {
                        let fragment = ToolCallDelta {
                            index: call,
                            arguments: delta.partial_json.unwrap_or_default(),
                            ..ToolCallDelta::default()
                        };
                        answer.tool_fragment(fragment, out);
                    } else if let (Some(input), Some(part)) =
                        (&mut answer.search_input, delta.partial_json)
                    {
                        input.push_str(&part);
                    }
                }
                Some("citations_delta") => {
                    // Only citations of web pages have a URL; document locations have none.
                    if let Some(c) = delta.citation
                        && let Some(url) = c.url.or(c.source)
                    {
                        out.push(Delta::Event(Event::Citation(Citation {
                            url,
                            title: c.title,
                            start: None,
                            end: None,
                        })));
                    }
                }
                _ => {}
            }
        }
        "message_start" => {
            if let Some(u) = wire.message.and_then(|m| m.usage) {
                answer.count(u);
            }
        }
        "content_block_start" => {
            if let Some(block) = wire.content_block {
                start_block(block, wire.index, answer, out);
            }
        }
        "content_block_stop" => {
            if let Some(input) = answer.search_input.take()
                && let Ok(value) = serde_json::from_str::<Value>(&input)
                && let Some(query) = value["query"].as_str()
            {
                out.push(Delta::Event(Event::Search(query.to_owned())));
            }
        }
        "message_delta" => {
            if let Some(reason) = wire.delta.and_then(|d| d.stop_reason) {
                answer.stop_reason = Some(reason);
            }
            if let Some(u) = wire.usage {
                answer.count(u);
            }
        }
        "message_stop" => {
            answer.finish(out);
            return Ok(true);
        }
        "error" => return Err(in_stream_error(&wire.error.unwrap_or_default())),
        // `ping`, `content_block_stop` of other blocks, and event types added later.
        _ => {}
    }
    Ok(false)
}

fn start_block(block: Block, index: Option<u32>, answer: &mut Answer, out: &mut Vec<Delta>) {
    match block.kind.as_str() {
        "tool_use" => {
            // Numbered in the order the calls come; the input streams as `input_json_delta`,
            // or comes whole in the block.
            let call = answer.tool_blocks.len() as u32;
            answer.tool_blocks.push((index.unwrap_or(u32::MAX), call));
            let given = block
                .input
                .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                .map(|i| i.to_string())
                .unwrap_or_default();
            let fragment = ToolCallDelta {
                index: call,
                id: block.id,
                name: block.name,
                arguments: given,
                signature: None,
            };
            answer.tool_fragment(fragment, out);
        }
        "server_tool_use" if block.name.as_deref() == Some("web_search") => {
            // The query streams as `input_json_delta`; a complete input may come at once.
            let given = block
                .input
                .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                .map(|i| i.to_string());
            answer.search_input = Some(given.unwrap_or_default());
        }
        "web_search_tool_result" => {
            let results = block.content.unwrap_or_default();
            for result in results.as_array().into_iter().flatten() {
                if let Some(url) = result["url"].as_str() {
                    out.push(Delta::Event(Event::SearchResult(Citation {
                        url: url.to_owned(),
                        title: result["title"].as_str().map(str::to_owned),
                        start: None,
                        end: None,
                    })));
                }
            }
        }
        _ => {}
    }
}

fn in_stream_error(error: &ErrorBody) -> Error {
    let kind = error.kind.as_deref().unwrap_or("error");
    let message = error.message.as_deref().unwrap_or("no message");
    let code = match kind {
        "rate_limit_error" => ErrorCode::RateLimit,
        "authentication_error" | "permission_error" => ErrorCode::Auth,
        "invalid_request_error" | "request_too_large" => ErrorCode::BadRequest,
        "timeout_error" => ErrorCode::Timeout,
        _ => ErrorCode::Provider,
    };
    Error::new(
        code,
        format!(
            "anthropic reported an error mid-answer: {message} ({kind}); the answer is \
             incomplete, try again"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stream: &str) -> (Vec<Delta>, Option<Error>) {
        let body = vec![bytes::Bytes::from(stream.to_owned())];
        crate::provider::drain(crate::providers::anthropic::replay(body))
    }

    #[test]
    fn usage_starts_from_message_start_and_takes_the_last_cumulative_values() {
        let (out, err) = run(concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":2679,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":100,\"output_tokens\":3}}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":50}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"input_tokens\":10682,\"output_tokens\":510}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ));
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            out,
            vec![
                Delta::Event(Event::Usage(Usage {
                    input_tokens: 10782,
                    output_tokens: 510,
                    cached_tokens: Some(100),
                    reasoning_tokens: None,
                })),
                Delta::Done {
                    finish_reason: "length".into()
                },
            ]
        );
    }

    #[test]
    fn a_streamed_web_search_query_becomes_a_search_event() {
        let (out, _) = run(concat!(
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"srvtoolu_1\",\"name\":\"web_search\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"query\\\": \\\"rust 1.90\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" release date\\\"}\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1 }\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ));
        assert_eq!(
            out[0],
            Delta::Event(Event::Search("rust 1.90 release date".into()))
        );
    }

    #[test]
    fn an_error_event_after_text_is_an_error_not_a_short_answer() {
        let (out, err) = run(concat!(
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
            "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
        ));
        assert_eq!(out, vec![Delta::Text("Hi".into())]);
        let err = err.unwrap();
        assert_eq!(err.code(), ErrorCode::Provider);
        assert!(err.message().contains("Overloaded"), "{err}");
    }
}
