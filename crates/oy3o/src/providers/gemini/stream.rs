//! Mapping Gemini stream chunks to deltas (PROVIDERS.md §4.2–§4.6): text and thought parts,
//! grounding metadata (searches, cited spans, sources read), the last cumulative usage as one
//! `usage` at the end, `{"error":...}` chunks as errors, and EOF as the end only after a
//! `finishReason`.

use std::collections::HashSet;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;

use crate::error::{Error, ErrorCode, Result};
use crate::event::{Citation, Event, Usage};
use crate::provider::{Delta, DeltaStream};
use crate::tool::{ToolCallAssembler, ToolCallDelta};

use super::request::SYNTHETIC_ID;
use crate::transport::sse::SseEvent;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    grounding_metadata: Option<Grounding>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    /// Whole, never in fragments on the Gemini API (TOOLS.md §4.2).
    #[serde(default)]
    function_call: Option<FunctionCall>,
    /// A sibling of `functionCall` on the part, to be sent back with it.
    #[serde(default)]
    thought_signature: Option<String>,
}

#[derive(Deserialize)]
struct FunctionCall {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    args: Option<serde_json::Value>,
}

/// Proto3 JSON omits zero counts: every field defaults.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Grounding {
    #[serde(default)]
    web_search_queries: Vec<String>,
    #[serde(default)]
    grounding_chunks: Vec<GroundingChunk>,
    #[serde(default)]
    grounding_supports: Vec<Support>,
}

#[derive(Deserialize, Clone)]
struct GroundingChunk {
    #[serde(default)]
    web: Option<Web>,
}

#[derive(Deserialize, Clone)]
struct Web {
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Support {
    #[serde(default)]
    segment: Option<Segment>,
    #[serde(default)]
    grounding_chunk_indices: Vec<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Segment {
    #[serde(default)]
    start_index: u64,
    #[serde(default)]
    end_index: Option<u64>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// What one answer has said so far.
#[derive(Default)]
struct Answer {
    /// The answer text, to turn grounding byte offsets into character offsets.
    text: String,
    finish_reason: Option<String>,
    usage: Option<UsageMetadata>,
    /// The sources of the latest grounding metadata that listed any.
    sources: Vec<GroundingChunk>,
    /// Metadata may repeat over the last chunks: each search and citation is reported once.
    reported: HashSet<String>,
    calls: ToolCallAssembler,
    next_call: u32,
}

/// Turns the SSE events of one answer into deltas, ending with [`Delta::Done`] when the body
/// ends after a chunk with a `finishReason`, and failing on an error chunk or an earlier end.
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
            map_chunk(&event.data, &mut answer, &mut out)?;
            for delta in out.drain(..) {
                yield delta;
            }
        }
        let Some(finish) = answer.finish_reason.take() else {
            Err(Error::network(
                "gemini: the answer stream ended before a finishReason; the answer is cut off, \
                 try again",
            ))?;
            return;
        };
        let called = !answer.calls.is_empty();
        for call in std::mem::take(&mut answer.calls).finish() {
            yield Delta::Event(Event::ToolCall(call));
        }
        if let Some(u) = answer.usage.take() {
            yield Delta::Event(Event::Usage(Usage {
                input_tokens: u.prompt_token_count,
                // Thinking tokens are billed as output but not counted in candidates (§4.4).
                output_tokens: u.candidates_token_count + u.thoughts_token_count.unwrap_or(0),
                cached_tokens: u.cached_content_token_count,
                reasoning_tokens: u.thoughts_token_count,
            }));
        }
        let finish_reason = match finish.as_str() {
            // There is no tool finish reason: a turn that called tools ends in STOP.
            "STOP" if called => "tool_calls".to_owned(),
            "STOP" => "stop".to_owned(),
            "MAX_TOKENS" => "length".to_owned(),
            other => other.to_ascii_lowercase(),
        };
        yield Delta::Done { finish_reason };
    })
}

fn map_chunk(data: &str, answer: &mut Answer, out: &mut Vec<Delta>) -> Result<()> {
    let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
        Error::provider(format!(
            "gemini sent a chunk that is not valid JSON ({e}): {}",
            data.chars().take(200).collect::<String>()
        ))
    })?;
    if let Some(error) = chunk.error {
        return Err(in_stream_error(&error));
    }
    if let Some(u) = chunk.usage_metadata {
        // Cumulative on every chunk: the last one counts (§4.4).
        answer.usage = Some(u);
    }
    let Some(candidate) = chunk.candidates.into_iter().next() else {
        if let Some(reason) = chunk.prompt_feedback.and_then(|f| f.block_reason) {
            return Err(Error::new(
                ErrorCode::BadRequest,
                format!("gemini refused the prompt (blocked: {reason}); rephrase it"),
            ));
        }
        return Ok(());
    };
    for part in candidate.content.into_iter().flat_map(|c| c.parts) {
        if let Some(call) = part.function_call {
            let index = answer.next_call;
            answer.next_call += 1;
            let fragment = ToolCallDelta {
                index,
                id: Some(call.id.unwrap_or_else(|| format!("{SYNTHETIC_ID}{index}"))),
                name: Some(call.name),
                arguments: call.args.map(|a| a.to_string()).unwrap_or_default(),
                signature: part.thought_signature,
            };
            answer.calls.push(&fragment);
            out.push(Delta::Event(Event::ToolCallDelta(fragment)));
            continue;
        }
        let Some(text) = part.text.filter(|t| !t.is_empty()) else {
            continue;
        };
        if part.thought {
            out.push(Delta::Event(Event::Reasoning(text)));
        } else {
            answer.text.push_str(&text);
            out.push(Delta::Text(text));
        }
    }
    if let Some(grounding) = candidate.grounding_metadata {
        ground(grounding, answer, out);
    }
    if let Some(reason) = candidate.finish_reason {
        answer.finish_reason = Some(reason);
    }
    Ok(())
}

/// Searches made, spans cited (with their sources) and sources read but not cited.
fn ground(grounding: Grounding, answer: &mut Answer, out: &mut Vec<Delta>) {
    for query in grounding.web_search_queries {
        if answer.reported.insert(format!("search {query}")) {
            out.push(Delta::Event(Event::Search(query)));
        }
    }
    if !grounding.grounding_chunks.is_empty() {
        answer.sources = grounding.grounding_chunks;
    }
    let web = |index: usize| answer.sources.get(index).and_then(|c| c.web.clone());
    let mut cited = vec![false; answer.sources.len()];
    let mut citations = Vec::new();
    for support in &grounding.grounding_supports {
        let (start, end) = match &support.segment {
            Some(s) => (
                char_offset(&answer.text, s.start_index),
                s.end_index.and_then(|e| char_offset(&answer.text, e)),
            ),
            None => (None, None),
        };
        for &index in &support.grounding_chunk_indices {
            if let Some(Web {
                uri: Some(url),
                title,
            }) = web(index)
            {
                cited[index] = true;
                citations.push(Citation {
                    url,
                    title,
                    start,
                    end,
                });
            }
        }
    }
    for citation in citations {
        let key = format!(
            "cite {} {:?} {:?}",
            citation.url, citation.start, citation.end
        );
        if answer.reported.insert(key) {
            out.push(Delta::Event(Event::Citation(citation)));
        }
    }
    for (index, source) in answer.sources.iter().enumerate() {
        if cited[index] {
            continue;
        }
        if let Some(Web {
            uri: Some(url),
            title,
        }) = &source.web
            && answer.reported.insert(format!("read {url}"))
        {
            out.push(Delta::Event(Event::SearchResult(Citation {
                url: url.clone(),
                title: title.clone(),
                start: None,
                end: None,
            })));
        }
    }
}

/// Gemini's offsets count UTF-8 bytes (§4.5); events count characters, as OpenAI's do.
fn char_offset(text: &str, byte: u64) -> Option<u64> {
    let byte = usize::try_from(byte).ok()?;
    text.get(..byte).map(|prefix| prefix.chars().count() as u64)
}

fn in_stream_error(error: &ErrorBody) -> Error {
    let status = error.status.as_deref().unwrap_or("UNKNOWN");
    let message = error.message.as_deref().unwrap_or("no message");
    let code = match status {
        "RESOURCE_EXHAUSTED" => ErrorCode::RateLimit,
        "DEADLINE_EXCEEDED" => ErrorCode::Timeout,
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" => ErrorCode::BadRequest,
        "UNAUTHENTICATED" | "PERMISSION_DENIED" => ErrorCode::Auth,
        _ => ErrorCode::Provider,
    };
    let http = error.code.map(|c| format!(" {c}")).unwrap_or_default();
    Error::new(
        code,
        format!(
            "gemini reported an error mid-answer: {message} ({status}{http}); the answer is \
             incomplete, try again"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stream: &str) -> (Vec<Delta>, Option<Error>) {
        let body = vec![bytes::Bytes::from(stream.to_owned())];
        crate::provider::drain(crate::providers::gemini::replay(body))
    }

    #[test]
    fn grounding_offsets_in_bytes_become_character_offsets() {
        let (out, err) = run(concat!(
            "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Ré: Rust 1.90 shipped.\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",",
            "\"groundingMetadata\": {\"webSearchQueries\": [\"rust 1.90\"],\"groundingChunks\": [{\"web\": {\"uri\": \"https://a.example/\",\"title\": \"a.example\"}},{\"web\": {\"uri\": \"https://b.example/\",\"title\": \"b.example\"}}],",
            "\"groundingSupports\": [{\"segment\": {\"startIndex\": 5,\"endIndex\": 23,\"text\": \"Rust 1.90 shipped.\"},\"groundingChunkIndices\": [0]}]}}]}\r\n\r\n",
        ));
        assert!(err.is_none(), "{err:?}");
        let events: Vec<&Delta> = out
            .iter()
            .filter(|d| matches!(d, Delta::Event(_)))
            .collect();
        assert_eq!(
            events,
            [
                &Delta::Event(Event::Search("rust 1.90".into())),
                &Delta::Event(Event::Citation(Citation {
                    url: "https://a.example/".into(),
                    title: Some("a.example".into()),
                    start: Some(4),
                    end: Some(22),
                })),
                &Delta::Event(Event::SearchResult(Citation {
                    url: "https://b.example/".into(),
                    title: Some("b.example".into()),
                    start: None,
                    end: None,
                })),
            ]
        );
    }

    #[test]
    fn a_blocked_prompt_is_a_bad_request_not_a_cut_stream() {
        let (_, err) = run(
            "data: {\"promptFeedback\": {\"blockReason\": \"SAFETY\"},\"usageMetadata\": {\"promptTokenCount\": 9}}\r\n\r\n",
        );
        let err = err.unwrap();
        assert_eq!(err.code(), ErrorCode::BadRequest);
        assert!(err.message().contains("SAFETY"), "{err}");
    }
}
