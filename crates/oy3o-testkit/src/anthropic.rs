//! Anthropic Messages replies as the real API sends them (PROVIDERS.md §3.3–§3.7): the event
//! sequence with its `ping`, thinking and web-search blocks, and the error envelope.

use crate::server::{RecordedRequest, Scripted, SseScript};

const MESSAGE_ID: &str = "msg_01XFDUDYJgAACzvnptvVoYEL";
const REQUEST_ID: &str = "req_011CSHoEeqs5C35K2UUqR7Fy";

/// The input tokens `message_start` reports in these streams.
pub const INPUT_TOKENS: u64 = 11;

fn message_start() -> String {
    format!(
        r#"{{"type":"message_start","message":{{"id":"{MESSAGE_ID}","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{INPUT_TOKENS},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}}}}"#
    )
}

fn start_text_block(script: SseScript, index: usize) -> SseScript {
    script.named(
        "content_block_start",
        &format!(
            r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"text","text":""}}}}"#
        ),
    )
}

/// A `content_block_delta` of type `kind` (`text_delta`, `thinking_delta`) carrying `text`
/// under `field` (`text`, `thinking`).
pub fn delta(index: usize, kind: &str, field: &str, text: &str) -> String {
    let text = serde_json::Value::from(text).to_string();
    format!(
        r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"{kind}","{field}":{text}}}}}"#
    )
}

fn stop_block(script: SseScript, index: usize) -> SseScript {
    // Padded as in the docs' example: parse JSON, never match strings.
    script.named(
        "content_block_stop",
        &format!(r#"{{"type":"content_block_stop","index":{index} }}"#),
    )
}

fn finish(script: SseScript, stop_reason: &str, output_tokens: usize) -> SseScript {
    script
        .named(
            "message_delta",
            &format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":"{stop_reason}","stop_sequence":null}},"usage":{{"output_tokens":{output_tokens}}}}}"#
            ),
        )
        .named("message_stop", r#"{"type":"message_stop"}"#)
}

fn opened() -> SseScript {
    SseScript::default()
        .header("request-id", REQUEST_ID)
        .header(
            "anthropic-organization-id",
            "0a1b2c3d-4e5f-6789-abcd-ef0123456789",
        )
        .named("message_start", &message_start())
}

/// A streamed answer made of these text pieces, as in §3.3: `message_start`, one text block
/// (with a `ping` in it), `message_delta` with the stop reason and usage, `message_stop`.
///
/// ```no_run
/// # async fn demo() {
/// let server = oy3o_testkit::FakeServer::start().await;
/// server.push(oy3o_testkit::anthropic::answer(&["Hi", " there!"]).build());
/// # }
/// ```
pub fn answer(pieces: &[&str]) -> SseScript {
    let mut script = start_text_block(opened(), 0).named("ping", r#"{"type": "ping"}"#);
    for piece in pieces {
        script = script.named(
            "content_block_delta",
            &delta(0, "text_delta", "text", piece),
        );
    }
    finish(stop_block(script, 0), "end_turn", pieces.len() + 5)
}

/// An answer that says `text` and then calls tools, as the SDK's recorded `tool_use` stream
/// does (TOOLS.md §3.2): a text block, then per call a `tool_use` block (`input: {}`, a
/// `caller`) whose input streams as `input_json_delta` pieces of at most 6 characters (the
/// first one empty), then `stop_reason: "tool_use"`. `calls` are `(id, name, input JSON text)`.
pub fn tool_use(text: &str, calls: &[(&str, &str, &str)]) -> SseScript {
    let mut script = start_text_block(opened(), 0)
        .named("content_block_delta", &delta(0, "text_delta", "text", text));
    script = stop_block(script, 0);
    for (i, (id, name, input)) in calls.iter().enumerate() {
        let index = i + 1;
        script = script.named(
            "content_block_start",
            &format!(
                r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"tool_use","id":"{id}","name":"{name}","caller":{{"type":"direct"}},"input":{{}}}}}}"#
            ),
        );
        let chars: Vec<char> = input.chars().collect();
        let pieces = std::iter::once(String::new())
            .chain(chars.chunks(6).map(|c| c.iter().collect::<String>()));
        for piece in pieces {
            script = script.named(
                "content_block_delta",
                &delta(index, "input_json_delta", "partial_json", &piece),
            );
        }
        script = stop_block(script, index);
    }
    finish(script, "tool_use", 65)
}

/// The start of an answer with these text pieces and no end, for scripts that add their own
/// (an `error` event) or none.
pub fn unfinished(pieces: &[&str]) -> SseScript {
    let mut script = start_text_block(opened(), 0);
    for piece in pieces {
        script = script.named(
            "content_block_delta",
            &delta(0, "text_delta", "text", piece),
        );
    }
    script
}

/// An answer with extended thinking first (§3.6): a thinking block with its deltas and the
/// `signature_delta`, then the text block.
pub fn thinking_answer(thoughts: &[&str], pieces: &[&str]) -> SseScript {
    let mut script = opened().named(
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
    );
    for thought in thoughts {
        script = script.named(
            "content_block_delta",
            &delta(0, "thinking_delta", "thinking", thought),
        );
    }
    script = script.named(
        "content_block_delta",
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."}}"#,
    );
    script = start_text_block(stop_block(script, 0), 1);
    for piece in pieces {
        script = script.named(
            "content_block_delta",
            &delta(1, "text_delta", "text", piece),
        );
    }
    finish(stop_block(script, 1), "end_turn", 40)
}

/// The web page the search answer cites.
pub const CITED_URL: &str = "https://blog.rust-lang.org/2025/09/18/Rust-1.90.0/";
/// The query the search answer runs.
pub const SEARCH_QUERY: &str = "rust 1.90 release date";

/// An answer that searches the web first (§3.6): the `server_tool_use` block streaming its
/// query, the `web_search_tool_result` block with two results, then a text block whose
/// `citations_delta` precedes its text, and usage that grows past `message_start`'s (§3.4).
pub fn web_search_answer() -> SseScript {
    let script = start_text_block(opened(), 0).named(
        "content_block_delta",
        &delta(0, "text_delta", "text", "I'll search for that."),
    );
    let script = stop_block(script, 0)
        .named(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"server_tool_use","id":"srvtoolu_014hJH82Qum7Td6UV8gDXThB","name":"web_search","input":{}}}"#,
        )
        .named(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        )
        .named(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"query\": \"rust 1.90"}}"#,
        )
        .named(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" release date\"}"}}"#,
        );
    let script = stop_block(script, 1)
        .named(
            "content_block_start",
            &format!(
                r#"{{"type":"content_block_start","index":2,"content_block":{{"type":"web_search_tool_result","tool_use_id":"srvtoolu_014hJH82Qum7Td6UV8gDXThB","content":[{{"type":"web_search_result","title":"Announcing Rust 1.90.0","url":"{CITED_URL}","encrypted_content":"EqgfCioIARgBIiQ3YTAwMjY1Mi1mZjM5LTQ1NGUtODgxNC1kNjNjNTk1ZWI3Y...","page_age":"September 18, 2025"}},{{"type":"web_search_result","title":"Rust 1.90.0 | Rust Changelogs","url":"https://releases.rs/docs/1.90.0/","encrypted_content":"EpMHCioIARgBIiQ...","page_age":null}}]}}}}"#
            ),
        );
    let script = stop_block(script, 2)
        .named(
            "content_block_start",
            r#"{"type":"content_block_start","index":3,"content_block":{"citations":[],"type":"text","text":""}}"#,
        )
        .named(
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":3,"delta":{{"type":"citations_delta","citation":{{"type":"web_search_result_location","cited_text":"Rust 1.90.0 was released on September 18, 2025","url":"{CITED_URL}","title":"Announcing Rust 1.90.0","encrypted_index":"Eo8BCioIAhgBIiQ..."}}}}}}"#
            ),
        )
        .named(
            "content_block_delta",
            &delta(
                3,
                "text_delta",
                "text",
                "Rust 1.90 shipped on 18 September 2025.",
            ),
        );
    stop_block(script, 3)
        .named(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":10682,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":510,"server_tool_use":{"web_search_requests":1}}}"#,
        )
        .named("message_stop", r#"{"type":"message_stop"}"#)
}

/// The in-stream error of §3.7 as a real capture sends it, after which the server closes
/// without `message_delta` or `message_stop`.
pub const OVERLOADED_EVENT: &str = r#"{"type": "error", "error": {"details": null, "type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}"#;

/// An error reply in the Anthropic envelope.
pub fn error(status: u16, kind: &str, message: &str) -> Scripted {
    let message = serde_json::Value::from(message).to_string();
    Scripted::json(
        status,
        &format!(
            r#"{{"type":"error","error":{{"type":"{kind}","message":{message}}},"request_id":"{REQUEST_ID}"}}"#
        ),
    )
    .header("request-id", REQUEST_ID)
}

/// The 401 for a wrong key.
pub fn invalid_key() -> Scripted {
    error(401, "authentication_error", "invalid x-api-key")
}

/// A 429 with `retry-after` (seconds) and the rate-limit headers (RFC 3339 resets).
pub fn rate_limited(retry_after: &str) -> Scripted {
    error(
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization (0a1b2c3d-4e5f-6789-abcd-ef0123456789) of 20,000 input tokens per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
    )
    .header("retry-after", retry_after)
    .header("anthropic-ratelimit-input-tokens-limit", "20000")
    .header("anthropic-ratelimit-input-tokens-remaining", "0")
    .header("anthropic-ratelimit-input-tokens-reset", "2025-02-24T22:25:32Z")
}

/// The 529 of a system-wide overload.
pub fn overloaded() -> Scripted {
    error(529, "overloaded_error", "Overloaded")
}

/// A 404 for an unknown model.
pub fn model_not_found(model: &str) -> Scripted {
    error(404, "not_found_error", &format!("model: {model}"))
}

/// The last user message of a Messages request.
pub fn prompt_of(request: &RecordedRequest) -> String {
    request.json()["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}
