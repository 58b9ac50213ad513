//! Mapping a whole Chat Completions answer (`"stream": false`, one `chat.completion` object) to
//! the deltas a stream of the same answer gives: reasoning, text, citations, usage, then
//! `Done` with the finish reason. The shape is the OpenAI API reference's chat completion
//! object (`CreateChatCompletionResponse`: `choices[].message` with `content`, `refusal`,
//! `annotations`; `finish_reason`; `usage`); compatible servers put reasoning in
//! `message.reasoning_content` (DeepSeek, llama.cpp) or `message.reasoning` (Ollama, vLLM,
//! OpenRouter), as in their stream deltas (PROVIDERS.md §1.8, §1.9).

use std::future::Future;

use bytes::Bytes;
use serde::Deserialize;

use super::stream::{WireDelta, WireUsage, push_text, usage_event};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::provider::{Delta, DeltaStream};
use crate::tool::ToolCallAssembler;

#[derive(Deserialize)]
struct Completion {
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
    message: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// The deltas of the answer `body` resolves to.
pub(super) fn deltas(body: impl Future<Output = Result<Bytes>> + Send + 'static) -> DeltaStream {
    Box::pin(async_stream::try_stream! {
        let body = body.await?;
        for delta in map(&body)? {
            yield delta;
        }
    })
}

/// One whole answer as deltas, ending with `Done`.
pub(super) fn map(body: &[u8]) -> Result<Vec<Delta>> {
    let completion: Completion = serde_json::from_slice(body).map_err(|e| {
        Error::provider(format!(
            "openai sent an answer that is not valid JSON ({e}): {}; try again",
            preview(body)
        ))
    })?;
    if let Some(error) = completion.error {
        let message = error["message"]
            .as_str()
            .or_else(|| error.as_str())
            .unwrap_or("no message");
        return Err(Error::provider(format!(
            "openai reported an error instead of an answer: {message}; try again"
        )));
    }
    if completion.choices.is_empty() {
        return Err(Error::provider(format!(
            "openai sent an answer without choices: {}; try again",
            preview(body)
        )));
    }
    let mut out = Vec::with_capacity(4);
    let mut finish = None;
    for choice in completion.choices {
        if let Some(message) = choice.message {
            push_text(message, &mut out);
        }
        finish = finish.or(choice.finish_reason);
    }
    // Whole calls come as one fragment each, then assembled, as a stream gives them.
    let mut calls = ToolCallAssembler::default();
    for delta in &out {
        if let Delta::Event(Event::ToolCallDelta(d)) = delta {
            calls.push(d);
        }
    }
    out.extend(
        calls
            .finish()
            .into_iter()
            .map(|call| Delta::Event(Event::ToolCall(call))),
    );
    if let Some(usage) = completion.usage {
        out.push(usage_event(usage));
    }
    out.push(Delta::Done {
        finish_reason: finish.unwrap_or_else(|| "stop".into()),
    });
    Ok(out)
}

fn preview(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Citation, Usage};

    #[test]
    fn the_api_references_example_answer_maps_to_text_usage_and_done() {
        let out = map(br#"{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"The image shows a wooden boardwalk.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}"#).unwrap();
        assert_eq!(
            out,
            vec![
                Delta::Text("The image shows a wooden boardwalk.".into()),
                Delta::Event(Event::Usage(Usage {
                    input_tokens: 1117,
                    output_tokens: 46,
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
    fn reasoning_comes_before_the_text_and_citations_after_it() {
        let out = map(br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi","reasoning_content":"think","annotations":[{"type":"url_citation","url_citation":{"url":"https://example.org","title":"Ex","start_index":0,"end_index":2}}]},"finish_reason":"length"}]}"#).unwrap();
        assert_eq!(
            out,
            vec![
                Delta::Event(Event::Reasoning("think".into())),
                Delta::Text("Hi".into()),
                Delta::Event(Event::Citation(Citation {
                    url: "https://example.org".into(),
                    title: Some("Ex".into()),
                    start: Some(0),
                    end: Some(2),
                })),
                Delta::Done {
                    finish_reason: "length".into()
                },
            ]
        );
        let ollama = map(br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi","reasoning":"hmm"},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!(ollama[0], Delta::Event(Event::Reasoning("hmm".into())));
    }

    #[test]
    fn a_refusal_is_the_answers_text_and_null_content_is_no_text() {
        let out = map(br#"{"choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!(out[0], Delta::Text("I can't help with that.".into()));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn malformed_json_an_error_body_and_no_choices_are_provider_errors() {
        let err = map(br#"{"choices":[{"#).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::Provider);
        assert!(
            err.message().contains("not valid JSON"),
            "{}",
            err.message()
        );
        let err =
            map(br#"{"error":{"code":500,"message":"boom","type":"server_error"}}"#).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::Provider);
        assert!(err.message().contains("boom"));
        let err = map(br#"{"id":"x","object":"chat.completion","choices":[]}"#).unwrap_err();
        assert!(err.message().contains("without choices"));
    }
}
