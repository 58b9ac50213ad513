//! Mapping Chat Completions stream chunks to deltas (PROVIDERS.md §1.3–§1.9, §6.3–§6.5).

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::event::{Citation, Event, Usage};
use crate::provider::{Delta, DeltaStream};
use crate::tool::{ToolCallAssembler, ToolCallDelta};
use crate::transport::sse::SseEvent;

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// The text of a stream chunk's `delta`, or of a whole answer's `message`: the same keys in
/// both (`ChatCompletionStreamResponseDelta`, `ChatCompletionResponseMessage`).
#[derive(Deserialize, Default)]
pub(super) struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    annotations: Option<Vec<Annotation>>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

/// A tool call of a whole `message`, or a fragment of one in a stream's `delta`
/// (`ChatCompletionMessageToolCallChunk`: only `index` is required; TOOLS.md §1.2).
#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    /// JSON text (a piece of it in a stream); some servers send an object.
    #[serde(default)]
    arguments: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Annotation {
    #[serde(default)]
    url_citation: Option<UrlCitation>,
}

#[derive(Deserialize)]
struct UrlCitation {
    url: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    start_index: Option<u64>,
    #[serde(default)]
    end_index: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// Turns the SSE events of one answer into deltas, ending with [`Delta::Done`] at `[DONE]`
/// (or at the end of the body when a `finish_reason` already came: servers that omit
/// `[DONE]`), and failing when the body ends before either.
pub(super) fn deltas(events: BoxStream<'static, Result<SseEvent>>) -> DeltaStream {
    Box::pin(async_stream::try_stream! {
        let mut events = events;
        let mut finish: Option<String> = None;
        let mut out = Vec::with_capacity(4);
        let mut calls = ToolCallAssembler::default();
        while let Some(event) = events.next().await {
            let event = event?;
            if event.data.starts_with("[DONE]") {
                for call in std::mem::take(&mut calls).finish() {
                    yield Delta::Event(Event::ToolCall(call));
                }
                yield Delta::Done { finish_reason: finish.unwrap_or_else(|| "stop".into()) };
                return;
            }
            if event.data.is_empty() {
                continue;
            }
            let is_error_event = event.event.as_deref() == Some("error");
            map_chunk(&event.data, is_error_event, &mut finish, &mut out)?;
            for delta in out.drain(..) {
                if let Delta::Event(Event::ToolCallDelta(d)) = &delta {
                    calls.push(d);
                }
                yield delta;
            }
        }
        for call in calls.finish() {
            yield Delta::Event(Event::ToolCall(call));
        }
        match finish {
            Some(finish_reason) => yield Delta::Done { finish_reason },
            None => Err(Error::network(
                "openai: the answer stream ended without [DONE] or a finish reason; \
                 the answer is cut off, try again",
            ))?,
        }
    })
}

fn map_chunk(
    data: &str,
    is_error_event: bool,
    finish: &mut Option<String>,
    out: &mut Vec<Delta>,
) -> Result<()> {
    let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
        Error::provider(format!(
            "openai sent a chunk that is not valid JSON ({e}): {}",
            data.chars().take(200).collect::<String>()
        ))
    })?;
    if let Some(error) = chunk.error {
        return Err(in_stream_error(&error));
    }
    if is_error_event {
        return Err(Error::provider(format!(
            "the server reported an error mid-answer: {}",
            data.chars().take(300).collect::<String>()
        )));
    }
    // `choices` may be empty (usage chunk, Azure's first chunk): never index blindly.
    for choice in chunk.choices {
        if let Some(delta) = choice.delta {
            push_text(delta, out);
        }
        if let Some(reason) = choice.finish_reason {
            *finish = Some(reason);
        }
    }
    if let Some(u) = chunk.usage {
        out.push(usage_event(u));
    }
    Ok(())
}

/// The deltas of one `delta` (or whole `message`): reasoning first, then the text (a refusal
/// is the answer's text), then tool-call fragments, then the citations.
pub(super) fn push_text(delta: WireDelta, out: &mut Vec<Delta>) {
    for reasoning in [delta.reasoning_content, delta.reasoning]
        .into_iter()
        .flatten()
    {
        if !reasoning.is_empty() {
            out.push(Delta::Event(Event::Reasoning(reasoning)));
        }
    }
    for text in [delta.content, delta.refusal].into_iter().flatten() {
        if !text.is_empty() {
            out.push(Delta::Text(text));
        }
    }
    for (position, call) in delta.tool_calls.into_iter().flatten().enumerate() {
        let (name, arguments) = match call.function {
            Some(f) => (f.name, f.arguments),
            None => (None, None),
        };
        let arguments = match arguments {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(text)) => text,
            Some(object) => object.to_string(),
        };
        out.push(Delta::Event(Event::ToolCallDelta(ToolCallDelta {
            // Servers that leave `index` out send whole calls, one per position.
            index: call.index.unwrap_or(position as u32),
            id: call.id,
            name,
            arguments,
            signature: None,
        })));
    }
    for annotation in delta.annotations.into_iter().flatten() {
        if let Some(c) = annotation.url_citation {
            out.push(Delta::Event(Event::Citation(Citation {
                url: c.url,
                title: c.title,
                start: c.start_index,
                end: c.end_index,
            })));
        }
    }
}

/// The `usage` event of an answer.
pub(super) fn usage_event(u: WireUsage) -> Delta {
    Delta::Event(Event::Usage(Usage {
        input_tokens: u.prompt_tokens,
        output_tokens: u.completion_tokens,
        cached_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens),
        reasoning_tokens: u.completion_tokens_details.and_then(|d| d.reasoning_tokens),
    }))
}

fn in_stream_error(error: &serde_json::Value) -> Error {
    let message = error["message"]
        .as_str()
        .or_else(|| error.as_str())
        .unwrap_or("no message");
    Error::provider(format!(
        "openai reported an error mid-answer: {message}; the answer is incomplete, try again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stream: &str) -> (Vec<Delta>, Option<Error>) {
        let mut decoder = crate::transport::sse::SseDecoder::default();
        let mut events = Vec::new();
        decoder.feed(stream.as_bytes(), &mut events);
        events.extend(decoder.finish());
        let source = futures::stream::iter(events.into_iter().map(Ok)).boxed();
        crate::provider::drain(deltas(source))
    }

    #[test]
    fn reasoning_content_and_reasoning_keys_both_become_reasoning_events() {
        let (out, err) = run(concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"think\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"more\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\",\"reasoning_content\":null},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n"
        ));
        assert!(err.is_none());
        assert_eq!(
            out,
            vec![
                Delta::Event(Event::Reasoning("think".into())),
                Delta::Event(Event::Reasoning("more".into())),
                Delta::Text("Hi".into()),
                Delta::Done {
                    finish_reason: "stop".into()
                },
            ]
        );
    }

    #[test]
    fn annotations_on_the_final_chunk_become_citations() {
        let (out, _) = run(concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"annotations\":[{\"type\":\"url_citation\",\"url_citation\":{\"url\":\"https://en.wikipedia.org/wiki/Legoland\",\"title\":\"Legoland\",\"start_index\":75,\"end_index\":199}}]},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n"
        ));
        assert_eq!(
            out[0],
            Delta::Event(Event::Citation(Citation {
                url: "https://en.wikipedia.org/wiki/Legoland".into(),
                title: Some("Legoland".into()),
                start: Some(75),
                end: Some(199),
            }))
        );
    }

    #[test]
    fn usage_chunk_with_empty_choices_becomes_a_usage_event() {
        let (out, _) = run(concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":null}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":3,\"total_tokens\":22,\"prompt_tokens_details\":{\"cached_tokens\":4},\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\n",
            "data: [DONE]\n\n"
        ));
        assert_eq!(
            out,
            vec![
                Delta::Event(Event::Usage(Usage {
                    input_tokens: 19,
                    output_tokens: 3,
                    cached_tokens: Some(4),
                    reasoning_tokens: Some(1)
                })),
                Delta::Done {
                    finish_reason: "length".into()
                },
            ]
        );
    }

    #[test]
    fn mid_stream_error_object_is_an_error_not_a_short_answer() {
        let (out, err) = run(concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
            "data: {\"error\":{\"message\":\"The server had an error while processing your request. Sorry about that!\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n"
        ));
        assert_eq!(out, vec![Delta::Text("Hi".into())]);
        let err = err.unwrap();
        assert_eq!(err.code(), crate::ErrorCode::Provider);
        assert!(err.message().contains("Sorry about that"));
    }

    #[test]
    fn old_llama_cpp_error_field_is_an_error() {
        let (_, err) = run(concat!(
            "error: {\"code\":400,\"message\":\"the request exceeds the available context size\",\"type\":\"invalid_request_error\"}\n\n",
            "data: [DONE]\n\n"
        ));
        assert!(err.unwrap().message().contains("context size"));
    }

    #[test]
    fn eof_after_a_finish_reason_without_done_is_a_proper_end() {
        let (out, err) = run(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\n",
        );
        assert!(err.is_none());
        assert_eq!(
            out.last(),
            Some(&Delta::Done {
                finish_reason: "stop".into()
            })
        );
    }

    #[test]
    fn eof_before_any_finish_is_a_cut_stream_error() {
        let (_, err) = run(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}\n\n",
        );
        assert_eq!(err.unwrap().code(), crate::ErrorCode::Network);
    }

    #[test]
    fn malformed_json_chunk_is_a_clear_provider_error() {
        let (_, err) = run("data: {\"choices\":[{\n\n");
        let err = err.unwrap();
        assert_eq!(err.code(), crate::ErrorCode::Provider);
        assert!(err.message().contains("not valid JSON"));
    }

    #[test]
    fn recorded_llama_cpp_python_stream_decodes_to_its_answer() {
        let recorded =
            include_str!("../../../../../tests/fixtures/llama-cpp-python-0.3-chat-stream.sse");
        let (out, err) = run(recorded);
        assert!(err.is_none(), "{err:?}");
        let text: String = out
            .iter()
            .filter_map(|d| match d {
                Delta::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert!(text.contains('2'), "{text}");
        assert!(matches!(out.last(), Some(Delta::Done { .. })));
    }
}
