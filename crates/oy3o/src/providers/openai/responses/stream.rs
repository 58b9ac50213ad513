//! Mapping Responses API stream events to deltas (PROVIDERS.md §2.2–§2.7): text and reasoning
//! summary deltas, `url_citation` annotations, web searches, function calls (TOOLS.md §2.2),
//! usage from the terminal event, and both shapes of the `error` event.

use std::borrow::Cow;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;

use crate::error::{Error, ErrorCode, Result};
use crate::event::{Citation, Event, Usage};
use crate::provider::{Delta, DeltaStream};
use crate::tool::{ToolCall, ToolCallDelta, parse_arguments};
use crate::transport::sse::SseEvent;

#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    delta: Option<String>,
    /// Which output item an event is about, by position and by id.
    #[serde(default)]
    output_index: Option<u32>,
    #[serde(default)]
    item_id: Option<String>,
    /// The whole arguments of `response.function_call_arguments.done`.
    #[serde(default)]
    arguments: Option<String>,
    #[serde(default)]
    annotation: Option<Annotation>,
    #[serde(default)]
    item: Option<Item>,
    #[serde(default)]
    response: Option<WireResponse>,
    /// The flat `error` event's fields.
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    /// The nested `error` event's body.
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct Annotation {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    start_index: Option<u64>,
    #[serde(default)]
    end_index: Option<u64>,
}

/// An output item: a message, a reasoning or web search step, or a function call
/// (`FunctionToolCall`: `id` is the item's `fc_…`, `call_id` what its result quotes).
#[derive(Deserialize)]
struct Item {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    action: Option<Action>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct Action {
    #[serde(default)]
    query: Option<String>,
}

#[derive(Deserialize)]
struct WireResponse {
    /// `null` in some servers' early events.
    #[serde(default)]
    output: Option<Vec<Item>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<ErrorBody>,
    #[serde(default)]
    incomplete_details: Option<IncompleteDetails>,
}

#[derive(Deserialize)]
struct IncompleteDetails {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Deserialize)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct OutputDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// Turns the SSE events of one answer into deltas, ending with [`Delta::Done`] at
/// `response.completed` or `response.incomplete`, failing at `response.failed`, an `error`
/// event, or a body that ends before any of them.
pub(crate) fn deltas(events: BoxStream<'static, Result<SseEvent>>) -> DeltaStream {
    Box::pin(async_stream::try_stream! {
        let mut events = events;
        let mut out = Vec::with_capacity(2);
        let mut calls = Calls::default();
        while let Some(event) = events.next().await {
            let event = event?;
            if event.data.is_empty() {
                continue;
            }
            let done = map_event(&event, &mut calls, &mut out)?;
            for delta in out.drain(..) {
                yield delta;
            }
            if done {
                return;
            }
        }
        Err(Error::network(
            "openai: the Responses stream ended before response.completed; the answer is cut \
             off, try again",
        ))?;
    })
}

/// Maps one event; true when it was the terminal one.
fn map_event(event: &SseEvent, calls: &mut Calls, out: &mut Vec<Delta>) -> Result<bool> {
    let wire: WireEvent<'_> = serde_json::from_str(&event.data).map_err(|e| {
        Error::provider(format!(
            "openai sent a Responses event that is not valid JSON ({e}): {}",
            event.data.chars().take(200).collect::<String>()
        ))
    })?;
    let kind = wire
        .kind
        .as_deref()
        .or(event.event.as_deref())
        .unwrap_or_default();
    match kind {
        "response.output_text.delta" => {
            if let Some(text) = wire.delta.filter(|t| !t.is_empty()) {
                out.push(Delta::Text(text));
            }
        }
        "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
            if let Some(text) = wire.delta.filter(|t| !t.is_empty()) {
                out.push(Delta::Event(Event::Reasoning(text)));
            }
        }
        "response.output_text.annotation.added" => {
            if let Some(a) = wire.annotation
                && a.kind == "url_citation"
                && let Some(url) = a.url
            {
                out.push(Delta::Event(Event::Citation(Citation {
                    url,
                    title: a.title,
                    start: a.start_index,
                    end: a.end_index,
                })));
            }
        }
        "response.output_item.added" => {
            if let Some(item) = wire.item
                && item.kind == "function_call"
            {
                calls.item(wire.output_index, item, out);
            }
        }
        "response.function_call_arguments.delta" => {
            if let Some(text) = wire.delta.filter(|t| !t.is_empty()) {
                calls.delta(wire.output_index, wire.item_id.as_deref(), text, out);
            }
        }
        "response.function_call_arguments.done" => {
            if let Some(arguments) = wire.arguments {
                calls.done(wire.output_index, wire.item_id.as_deref(), arguments, out);
            }
        }
        "response.output_item.done" => match wire.item {
            Some(item) if item.kind == "web_search_call" => {
                if let Some(query) = item.action.and_then(|a| a.query) {
                    out.push(Delta::Event(Event::Search(query)));
                }
            }
            Some(item) if item.kind == "function_call" => {
                calls.item(wire.output_index, item, out);
            }
            _ => {}
        },
        "response.completed" | "response.incomplete" => {
            let mut response = wire.response;
            let output = response.as_mut().and_then(|r| r.output.take());
            let called = calls.finish(output.unwrap_or_default(), out);
            let reason = response
                .as_ref()
                .and_then(|r| r.incomplete_details.as_ref())
                .and_then(|d| d.reason.as_deref());
            // Responses has no finish reason for calls: an output with function calls is one
            // (TOOLS.md §2.2).
            let finish_reason = match (kind, reason) {
                ("response.completed", _) if called => "tool_calls",
                ("response.completed", _) => "stop",
                (_, Some("max_output_tokens")) => "length",
                (_, Some(other)) => other,
                (_, None) => "incomplete",
            }
            .to_owned();
            if let Some(u) = response.and_then(|r| r.usage) {
                out.push(Delta::Event(Event::Usage(Usage {
                    input_tokens: u.input_tokens,
                    output_tokens: u.output_tokens,
                    cached_tokens: u.input_tokens_details.and_then(|d| d.cached_tokens),
                    reasoning_tokens: u.output_tokens_details.and_then(|d| d.reasoning_tokens),
                })));
            }
            out.push(Delta::Done { finish_reason });
            return Ok(true);
        }
        "response.failed" => {
            let error = wire.response.and_then(|r| r.error).unwrap_or_default();
            return Err(in_stream_error(&error));
        }
        "error" => {
            // Documented flat; also sent nested under `error` (PROVIDERS.md §2.7, §8.3).
            let error = wire.error.unwrap_or(ErrorBody {
                code: wire.code,
                kind: None,
                message: wire.message,
            });
            return Err(in_stream_error(&error));
        }
        _ => {}
    }
    Ok(false)
}

/// The function calls of one answer as they stream (TOOLS.md §2.2), in the order they began.
/// Events name a call by `output_index` and `item_id` (the `fc_…` id), never by `call_id`; the
/// final arguments come from `.done` or `output_item.done`, not only from the deltas.
#[derive(Default)]
struct Calls {
    calls: Vec<Call>,
}

struct Call {
    output_index: Option<u32>,
    item_id: Option<String>,
    /// The `call_id` its result quotes.
    id: String,
    name: String,
    /// The arguments' JSON text as far as it came.
    arguments: String,
}

impl Calls {
    /// The position of the call an event names by `output_index` or `item_id`.
    fn position(&self, output_index: Option<u32>, item_id: Option<&str>) -> Option<usize> {
        self.calls.iter().position(|c| {
            (output_index.is_some() && c.output_index == output_index)
                || (item_id.is_some() && c.item_id.as_deref() == item_id)
        })
    }

    /// A new call, announced with its first fragment (id, name, arguments so far).
    fn start(&mut self, output_index: Option<u32>, item: Item, out: &mut Vec<Delta>) -> usize {
        let call = Call {
            output_index,
            item_id: item.id,
            id: item.call_id.unwrap_or_default(),
            name: item.name.unwrap_or_default(),
            arguments: item.arguments.unwrap_or_default(),
        };
        let at = self.calls.len();
        out.push(Delta::Event(Event::ToolCallDelta(ToolCallDelta {
            index: at as u32,
            id: Some(call.id.clone()).filter(|id| !id.is_empty()),
            name: Some(call.name.clone()).filter(|name| !name.is_empty()),
            arguments: call.arguments.clone(),
            signature: None,
        })));
        self.calls.push(call);
        at
    }

    /// The position of the call an argument event names, starting one (without id or name)
    /// for a call whose `output_item.added` never came.
    fn named_by(
        &mut self,
        output_index: Option<u32>,
        item_id: Option<&str>,
        out: &mut Vec<Delta>,
    ) -> Option<usize> {
        if output_index.is_none() && item_id.is_none() {
            return None;
        }
        let found = self.position(output_index, item_id);
        found.or_else(|| {
            let item = Item {
                kind: "function_call".into(),
                action: None,
                id: item_id.map(str::to_owned),
                call_id: None,
                name: None,
                arguments: None,
            };
            Some(self.start(output_index, item, out))
        })
    }

    /// A `function_call` item from `output_item.added` or `output_item.done`: a new call, or
    /// the final state of a known one.
    fn item(&mut self, output_index: Option<u32>, item: Item, out: &mut Vec<Delta>) {
        let Some(at) = self.position(output_index, item.id.as_deref()) else {
            self.start(output_index, item, out);
            return;
        };
        let call = &mut self.calls[at];
        // A call whose arguments came first learns its id and name here.
        let id = item.call_id.filter(|_| call.id.is_empty());
        let name = item.name.filter(|_| call.name.is_empty());
        if let Some(id) = &id {
            call.id.clone_from(id);
        }
        if let Some(name) = &name {
            call.name.clone_from(name);
        }
        if id.is_some() || name.is_some() {
            out.push(Delta::Event(Event::ToolCallDelta(ToolCallDelta {
                index: at as u32,
                id,
                name,
                ..ToolCallDelta::default()
            })));
        }
        if let Some(arguments) = item.arguments {
            self.finalize(at, arguments, out);
        }
    }

    fn delta(
        &mut self,
        output_index: Option<u32>,
        item_id: Option<&str>,
        text: String,
        out: &mut Vec<Delta>,
    ) {
        if let Some(at) = self.named_by(output_index, item_id, out) {
            self.calls[at].arguments.push_str(&text);
            out.push(fragment(at, text));
        }
    }

    /// `response.function_call_arguments.done`.
    fn done(
        &mut self,
        output_index: Option<u32>,
        item_id: Option<&str>,
        arguments: String,
        out: &mut Vec<Delta>,
    ) {
        if let Some(at) = self.named_by(output_index, item_id, out) {
            self.finalize(at, arguments, out);
        }
    }

    /// The whole arguments of a call. What the deltas missed goes out as one more fragment;
    /// arguments that differ from the streamed ones replace them in the assembled call.
    fn finalize(&mut self, at: usize, arguments: String, out: &mut Vec<Delta>) {
        let call = &mut self.calls[at];
        if let Some(rest) = arguments.strip_prefix(call.arguments.as_str())
            && !rest.is_empty()
        {
            out.push(fragment(at, rest.to_owned()));
        }
        call.arguments = arguments;
    }

    /// At the end of the answer: the function calls of the response's `output` that no event
    /// announced (an item's position in `output` is its `output_index`), then one
    /// [`ToolCall`] per call. True when there were any.
    fn finish(&mut self, output: Vec<Item>, out: &mut Vec<Delta>) -> bool {
        for (index, item) in output.into_iter().enumerate() {
            let index = u32::try_from(index).ok();
            let known = self.position(index, item.id.as_deref()).is_some()
                || self
                    .calls
                    .iter()
                    .any(|c| !c.id.is_empty() && item.call_id.as_ref() == Some(&c.id));
            if item.kind == "function_call" && !known {
                self.start(index, item, out);
            }
        }
        let calls = std::mem::take(&mut self.calls);
        let called = !calls.is_empty();
        for (at, call) in calls.into_iter().enumerate() {
            out.push(Delta::Event(Event::ToolCall(ToolCall {
                id: if call.id.is_empty() {
                    format!("call_{at}")
                } else {
                    call.id
                },
                name: call.name,
                arguments: parse_arguments(call.arguments),
                signature: None,
            })));
        }
        called
    }
}

/// A fragment of the arguments of the `at`th call.
fn fragment(at: usize, arguments: String) -> Delta {
    Delta::Event(Event::ToolCallDelta(ToolCallDelta {
        index: at as u32,
        arguments,
        ..ToolCallDelta::default()
    }))
}

fn in_stream_error(error: &ErrorBody) -> Error {
    let code = error
        .code
        .as_deref()
        .or(error.kind.as_deref())
        .unwrap_or("error");
    let message = error.message.as_deref().unwrap_or("no message");
    let kind = match code {
        "rate_limit_exceeded" | "too_many_requests" | "insufficient_quota" => ErrorCode::RateLimit,
        _ => ErrorCode::Provider,
    };
    Error::new(
        kind,
        format!(
            "openai reported an error mid-answer: {message} ({code}); the answer is incomplete, \
             try again"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stream: &str) -> (Vec<Delta>, Option<Error>) {
        let body = vec![bytes::Bytes::from(stream.to_owned())];
        crate::provider::drain(crate::providers::openai::replay_responses(body))
    }

    #[test]
    fn text_deltas_then_completed_give_text_usage_and_done() {
        let (out, err) = run(concat!(
            "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"usage\":null}}\n\n",
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"delta\":\"Hi\"}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{\"status\":\"completed\",\"usage\":{\"input_tokens\":19,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":4,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":23}}}\n\n",
        ));
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            out,
            vec![
                Delta::Text("Hi".into()),
                Delta::Event(Event::Usage(Usage {
                    input_tokens: 19,
                    output_tokens: 4,
                    cached_tokens: Some(0),
                    reasoning_tokens: Some(0),
                })),
                Delta::Done {
                    finish_reason: "stop".into()
                },
            ]
        );
    }

    #[test]
    fn incomplete_for_max_output_tokens_ends_with_length() {
        let (out, err) = run(
            "event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"response\":{\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":\"max_output_tokens\"},\"usage\":null}}\n\n",
        );
        assert!(err.is_none());
        assert_eq!(
            out,
            vec![Delta::Done {
                finish_reason: "length".into()
            }]
        );
    }

    #[test]
    fn both_error_event_shapes_keep_their_message() {
        let (_, flat) = run(
            "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"The model failed to generate a response.\",\"param\":null,\"sequence_number\":7}\n\n",
        );
        let flat = flat.unwrap();
        assert_eq!(flat.code(), ErrorCode::Provider);
        assert!(flat.message().contains("failed to generate"), "{flat}");
        let (_, nested) = run(
            "event: error\ndata: {\"type\":\"error\",\"sequence_number\":2,\"error\":{\"type\":\"too_many_requests\",\"code\":\"too_many_requests\",\"message\":\"Too Many Requests\",\"param\":null}}\n\n",
        );
        let nested = nested.unwrap();
        assert_eq!(nested.code(), ErrorCode::RateLimit);
        assert!(nested.message().contains("Too Many Requests"), "{nested}");
    }

    fn calls_of(out: &[Delta]) -> Vec<ToolCall> {
        out.iter()
            .filter_map(|d| match d {
                Delta::Event(Event::ToolCall(c)) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    fn fragments_of(out: &[Delta]) -> Vec<ToolCallDelta> {
        out.iter()
            .filter_map(|d| match d {
                Delta::Event(Event::ToolCallDelta(c)) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn function_calls_after_a_reasoning_item_stream_as_calls_numbered_from_zero() {
        // The guide's older events: no `sequence_number`; deltas with `obfuscation`.
        let (out, err) = run(concat!(
            "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"id\":\"rs_1\",\"type\":\"reasoning\",\"summary\":[]}}\n\n",
            "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"response_id\":\"resp_1\",\"output_index\":1,\"item\":{\"id\":\"fc_1\",\"type\":\"function_call\",\"status\":\"in_progress\",\"arguments\":\"\",\"call_id\":\"call_A1\",\"name\":\"get_weather\"}}\n\n",
            "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"output_index\":2,\"item\":{\"id\":\"fc_2\",\"type\":\"function_call\",\"status\":\"in_progress\",\"arguments\":\"\",\"call_id\":\"call_B2\",\"name\":\"get_weather\"}}\n\n",
            "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc_1\",\"output_index\":1,\"delta\":\"{\\\"city\\\":\\\"Pa\",\"obfuscation\":\"k1\"}\n\n",
            "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc_2\",\"delta\":\"{\\\"city\\\":\\\"Rome\\\"}\"}\n\n",
            "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc_1\",\"output_index\":1,\"delta\":\"ris\\\"\"}\n\n",
            "event: response.function_call_arguments.done\ndata: {\"type\":\"response.function_call_arguments.done\",\"item_id\":\"fc_1\",\"output_index\":1,\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}\n\n",
            "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"output_index\":2,\"item\":{\"id\":\"fc_2\",\"type\":\"function_call\",\"status\":\"completed\",\"arguments\":\"{\\\"city\\\":\\\"Roma\\\"}\",\"call_id\":\"call_B2\",\"name\":\"get_weather\"}}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"output\":[],\"usage\":null}}\n\n",
        ));
        assert!(err.is_none(), "{err:?}");
        let fragments = fragments_of(&out);
        assert_eq!(
            fragments[0].index, 0,
            "the first call, whatever its output_index"
        );
        assert_eq!(fragments[0].id.as_deref(), Some("call_A1"));
        assert_eq!(fragments[1].index, 1);
        let first: String = fragments
            .iter()
            .filter(|f| f.index == 0)
            .map(|f| f.arguments.as_str())
            .collect();
        assert_eq!(
            first, "{\"city\":\"Paris\"}",
            "the missing `}}` came from .done"
        );
        let calls = calls_of(&out);
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (calls[0].id.as_str(), &calls[0].arguments),
            ("call_A1", &serde_json::json!({"city": "Paris"}))
        );
        assert_eq!(
            calls[1].arguments,
            serde_json::json!({"city": "Roma"}),
            "output_item.done's arguments win over the deltas"
        );
        assert_eq!(
            out.last(),
            Some(&Delta::Done {
                finish_reason: "tool_calls".into()
            })
        );
    }

    #[test]
    fn calls_only_in_the_completed_output_are_still_calls() {
        let (out, err) = run(concat!(
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":1,\"response\":{\"status\":\"completed\",\"output\":[",
            "{\"id\":\"rs_1\",\"type\":\"reasoning\",\"summary\":[]},",
            "{\"id\":\"fc_1\",\"type\":\"function_call\",\"status\":\"completed\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\",\"call_id\":\"call_O\",\"name\":\"get_weather\"}",
            "],\"usage\":null}}\n\n",
        ));
        assert!(err.is_none(), "{err:?}");
        let calls = calls_of(&out);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].id, "call_O");
        assert_eq!(calls[0].arguments, serde_json::json!({"city": "Oslo"}));
        assert_eq!(fragments_of(&out)[0].index, 0);
        assert!(
            matches!(out.last(), Some(Delta::Done { finish_reason }) if finish_reason == "tool_calls")
        );
    }

    #[test]
    fn arguments_before_their_item_get_the_call_id_and_name_when_the_item_comes() {
        let (out, err) = run(concat!(
            "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc_1\",\"output_index\":0,\"delta\":\"{}\"}\n\n",
            "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"output_index\":0,\"item\":{\"id\":\"fc_1\",\"type\":\"function_call\",\"arguments\":\"{}\",\"call_id\":\"call_T\",\"name\":\"now\"}}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"output\":null}}\n\n",
        ));
        assert!(err.is_none(), "{err:?}");
        let fragments = fragments_of(&out);
        assert!(fragments[0].id.is_none() && fragments[0].name.is_none());
        assert!(
            fragments
                .iter()
                .any(|f| f.id.as_deref() == Some("call_T") && f.name.as_deref() == Some("now"))
        );
        let calls = calls_of(&out);
        assert_eq!(calls.len(), 1);
        assert_eq!(
            (calls[0].id.as_str(), calls[0].name.as_str()),
            ("call_T", "now")
        );
    }

    #[test]
    fn a_stream_without_a_terminal_event_is_cut_off() {
        let (out, err) = run(
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
        );
        assert_eq!(out, vec![Delta::Text("Hi".into())]);
        assert_eq!(err.unwrap().code(), ErrorCode::Network);
    }
}
