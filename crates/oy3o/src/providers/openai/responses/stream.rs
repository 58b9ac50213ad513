//! Mapping Responses API stream events to deltas (PROVIDERS.md §2.2–§2.7): text and reasoning
//! summary deltas, `url_citation` annotations, web searches, usage from the terminal event, and
//! both shapes of the `error` event.

use std::borrow::Cow;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;

use crate::error::{Error, ErrorCode, Result};
use crate::event::{Citation, Event, Usage};
use crate::provider::{Delta, DeltaStream};
use crate::transport::sse::SseEvent;

#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    delta: Option<String>,
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

#[derive(Deserialize)]
struct Item {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    action: Option<Action>,
}

#[derive(Deserialize)]
struct Action {
    #[serde(default)]
    query: Option<String>,
}

#[derive(Deserialize)]
struct WireResponse {
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
        while let Some(event) = events.next().await {
            let event = event?;
            if event.data.is_empty() {
                continue;
            }
            let done = map_event(&event, &mut out)?;
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
fn map_event(event: &SseEvent, out: &mut Vec<Delta>) -> Result<bool> {
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
        "response.output_item.done" => {
            if let Some(item) = wire.item
                && item.kind == "web_search_call"
                && let Some(query) = item.action.and_then(|a| a.query)
            {
                out.push(Delta::Event(Event::Search(query)));
            }
        }
        "response.completed" | "response.incomplete" => {
            let response = wire.response;
            let reason = response
                .as_ref()
                .and_then(|r| r.incomplete_details.as_ref())
                .and_then(|d| d.reason.as_deref());
            let finish_reason = match (kind, reason) {
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

    #[test]
    fn a_stream_without_a_terminal_event_is_cut_off() {
        let (out, err) = run(
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
        );
        assert_eq!(out, vec![Delta::Text("Hi".into())]);
        assert_eq!(err.unwrap().code(), ErrorCode::Network);
    }
}
