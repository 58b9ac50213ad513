//! OpenAI Chat Completions replies as the real API sends them (PROVIDERS.md §1.4, §1.7): streamed
//! ([`answer`]) and whole ([`whole`], for `"stream": false`), with the same error replies for both.

use crate::server::{Scripted, SseScript};

const ID: &str = "chatcmpl-C9xZk2LmQ8rT1vB4nY6pW0sD3fG7h";

fn chunk(delta: &str, finish: Option<&str>) -> String {
    let finish = finish.map_or("null".to_owned(), |f| format!("\"{f}\""));
    format!(
        r#"{{"id":"{ID}","object":"chat.completion.chunk","created":1727346168,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_5050236cbd","choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}],"usage":null,"obfuscation":"Xq3"}}"#
    )
}

/// A streamed answer made of these text pieces, with the role chunk first, the finish chunk,
/// the usage chunk and `[DONE]`, as in §1.4. Add faults on the returned script.
///
/// ```no_run
/// # async fn demo() {
/// let server = oy3o_testkit::FakeServer::start().await;
/// server.push(oy3o_testkit::openai::answer(&["Hi", " there!"]).build());
/// # }
/// ```
pub fn answer(pieces: &[&str]) -> SseScript {
    let mut script = SseScript::default()
        .header("x-request-id", "req_7f3c0a1d2e4b4c9a8e2f1b6d5c4a3b21")
        .header("openai-processing-ms", "212")
        .data(&chunk(
            r#"{"role":"assistant","content":"","refusal":null}"#,
            None,
        ));
    for piece in pieces {
        let delta = serde_json::json!({ "content": piece }).to_string();
        script = script.data(&chunk(&delta, None));
    }
    script
        .data(&chunk("{}", Some("stop")))
        .data(&format!(
            r#"{{"id":"{ID}","object":"chat.completion.chunk","created":1727346168,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{},"obfuscation":"b2"}}"#,
            usage(pieces.len())
        ))
        .data("[DONE]")
}

/// The usage object both shapes of an answer of `pieces` carry (§1.6).
fn usage(pieces: usize) -> String {
    format!(
        r#"{{"prompt_tokens":19,"completion_tokens":{pieces},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}"#,
        19 + pieces
    )
}

/// The same answer as [`answer`] for a request with `"stream": false`: one `chat.completion`
/// object, shaped as the API reference's example (`CreateChatCompletionResponse`: `message`
/// with `refusal` and `annotations`, `logprobs`, `usage` with its details, `service_tier`,
/// `system_fingerprint`), with the same usage numbers as the stream of the same pieces. Use
/// [`Scripted::cut_after_bytes`] for a body cut short.
///
/// ```no_run
/// # async fn demo() {
/// let server = oy3o_testkit::FakeServer::start().await;
/// server.push(oy3o_testkit::openai::whole(&["Hi", " there!"]));
/// # }
/// ```
pub fn whole(pieces: &[&str]) -> Scripted {
    whole_message(
        &serde_json::json!({
            "role": "assistant",
            "content": pieces.concat(),
            "refusal": null,
            "annotations": [],
        }),
        pieces.len(),
    )
}

/// A streamed answer of `text` with the usage of [`whole_with_usage`].
pub fn answer_with_usage(
    text: &str,
    prompt: u64,
    cached: u64,
    completion: u64,
    reasoning: u64,
) -> SseScript {
    let delta = serde_json::json!({ "content": text }).to_string();
    SseScript::default()
        .data(&chunk(r#"{"role":"assistant","content":"","refusal":null}"#, None))
        .data(&chunk(&delta, None))
        .data(&chunk("{}", Some("stop")))
        .data(&format!(
            r#"{{"id":"{ID}","object":"chat.completion.chunk","created":1727346168,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{},"obfuscation":"b2"}}"#,
            usage_of(prompt, cached, completion, reasoning)
        ))
        .data("[DONE]")
}

/// A usage object (§1.6) with these counts.
fn usage_of(prompt: u64, cached: u64, completion: u64, reasoning: u64) -> String {
    format!(
        r#"{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":{cached},"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":{reasoning},"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}"#,
        prompt + completion
    )
}

/// A whole answer of `text` whose usage reads `prompt` tokens (`cached` of them from the
/// cache) and `completion` written (`reasoning` of them reasoning), as OpenAI counts them
/// (§1.6: cached tokens are part of `prompt_tokens`, reasoning part of `completion_tokens`).
pub fn whole_with_usage(
    text: &str,
    prompt: u64,
    cached: u64,
    completion: u64,
    reasoning: u64,
) -> Scripted {
    let message = serde_json::json!({
        "role": "assistant", "content": text, "refusal": null, "annotations": [],
    });
    Scripted::json(
        200,
        &format!(
            r#"{{"id":"{ID}","object":"chat.completion","created":1727346168,"model":"gpt-4o-mini-2024-07-18","choices":[{{"index":0,"message":{message},"logprobs":null,"finish_reason":"stop"}}],"usage":{},"service_tier":"default","system_fingerprint":"fp_5050236cbd"}}"#,
            usage_of(prompt, cached, completion, reasoning)
        ),
    )
}

/// A whole answer whose message carries reasoning under `key` (`reasoning_content` as
/// DeepSeek and llama.cpp write it, `reasoning` as Ollama and vLLM do; §1.9) before `text`.
pub fn whole_with_reasoning(key: &str, reasoning: &str, text: &str) -> Scripted {
    whole_message(
        &serde_json::json!({ "role": "assistant", "content": text, key: reasoning }),
        1,
    )
}

fn whole_message(message: &serde_json::Value, pieces: usize) -> Scripted {
    Scripted::json(
        200,
        &format!(
            r#"{{"id":"{ID}","object":"chat.completion","created":1727346168,"model":"gpt-4o-mini-2024-07-18","choices":[{{"index":0,"message":{message},"logprobs":null,"finish_reason":"stop"}}],"usage":{},"service_tier":"default","system_fingerprint":"fp_5050236cbd"}}"#,
            usage(pieces)
        ),
    )
    .header("x-request-id", "req_7f3c0a1d2e4b4c9a8e2f1b6d5c4a3b21")
    .header("openai-processing-ms", "212")
}

/// A 200 whose body is not a whole JSON answer (a truncated object), as a broken proxy sends.
pub fn malformed_whole() -> Scripted {
    Scripted::json(
        200,
        r#"{"id":"chatcmpl-C9xZk2LmQ8rT1vB4nY6pW0sD3fG7h","object":"chat.completion","choices":[{"index":0,"message":{"role":"assist"#,
    )
}

/// The answer of `pieces` in the shape the request asks for: [`answer`] when its body says
/// `"stream": true`, else [`whole`] (the API's default is not to stream).
pub fn reply_to(request: &crate::RecordedRequest, pieces: &[&str]) -> Scripted {
    if request.json()["stream"] == serde_json::Value::Bool(true) {
        answer(pieces).build()
    } else {
        whole(pieces)
    }
}

/// A streamed answer that calls tools, as OpenAI's recorded streams do (TOOLS.md §1.2): a role
/// chunk with `content: null`, then per call a first fragment with `index`, `id`, `type` and
/// the name (arguments `""`), then its arguments in `pieces` of at most 7 characters; a finish
/// chunk with `finish_reason: "tool_calls"`, the usage chunk and `[DONE]`. `calls` are
/// `(id, name, arguments JSON text)`.
pub fn tool_calls(calls: &[(&str, &str, &str)]) -> SseScript {
    let mut script = SseScript::default().data(&chunk(
        r#"{"role":"assistant","content":null,"refusal":null}"#,
        None,
    ));
    for (index, (id, name, arguments)) in calls.iter().enumerate() {
        let first = serde_json::json!({"tool_calls": [{"index": index, "id": id, "type": "function",
            "function": {"name": name, "arguments": ""}}]});
        script = script.data(&chunk(&first.to_string(), None));
        let chars: Vec<char> = arguments.chars().collect();
        for piece in chars.chunks(7) {
            let piece: String = piece.iter().collect();
            let delta = serde_json::json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]});
            script = script.data(&chunk(&delta.to_string(), None));
        }
    }
    script
        .data(&chunk("{}", Some("tool_calls")))
        .data(&format!(
            r#"{{"id":"{ID}","object":"chat.completion.chunk","created":1727346168,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{},"obfuscation":"b2"}}"#,
            usage(calls.len())
        ))
        .data("[DONE]")
}

/// The same calls as [`tool_calls`] for `"stream": false`: `message.tool_calls` with the
/// arguments as JSON text, `content: null`, `finish_reason: "tool_calls"`.
pub fn whole_tool_calls(calls: &[(&str, &str, &str)]) -> Scripted {
    let calls: Vec<serde_json::Value> = calls
        .iter()
        .map(|(id, name, arguments)| {
            serde_json::json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
        })
        .collect();
    let message = serde_json::json!({"role": "assistant", "content": null, "refusal": null,
        "tool_calls": calls, "annotations": []});
    Scripted::json(
        200,
        &format!(
            r#"{{"id":"{ID}","object":"chat.completion","created":1727346168,"model":"gpt-4o-mini-2024-07-18","choices":[{{"index":0,"message":{message},"logprobs":null,"finish_reason":"tool_calls"}}],"usage":{},"service_tier":"default","system_fingerprint":"fp_5050236cbd"}}"#,
            usage(calls.len())
        ),
    )
}

/// A text chunk carrying a reasoning delta under `key` (`reasoning_content` or `reasoning`).
pub fn reasoning_chunk(key: &str, text: &str) -> String {
    let delta = serde_json::json!({ "content": null, key: text }).to_string();
    chunk(&delta, None)
}

/// The 401 the API returns for a wrong key.
pub fn invalid_key() -> Scripted {
    Scripted::json(
        401,
        r#"{"error":{"message":"Incorrect API key provided: sk-abc***wxyz. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
    )
    .header("x-request-id", "req_0a1b2c")
}

/// A 429 rate limit with `retry-after` (seconds, as text).
pub fn rate_limited(retry_after: &str) -> Scripted {
    Scripted::json(
        429,
        r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-XXXX on tokens per min (TPM): Limit 30000, Used 29937, Requested 385. Please try again in 644ms.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
    )
    .header("retry-after", retry_after)
    .header("x-ratelimit-remaining-requests", "0")
}

/// A 429 for an account out of credit: not worth retrying.
pub fn insufficient_quota() -> Scripted {
    Scripted::json(
        429,
        r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
    )
}

/// A 500 server error.
pub fn server_error() -> Scripted {
    Scripted::json(
        500,
        r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#,
    )
}

/// A 404 for an unknown model.
pub fn model_not_found(model: &str) -> Scripted {
    Scripted::json(
        404,
        &format!(
            r#"{{"error":{{"message":"The model `{model}` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}}}"#
        ),
    )
}

/// The mid-stream error data line (§1.7), after which the server closes.
pub const MID_STREAM_ERROR: &str = r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#;

/// The last user message of a Chat Completions request (what a responder answers to).
pub fn prompt_of(request: &crate::RecordedRequest) -> String {
    request.json()["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The system message of a Chat Completions request, if any.
pub fn system_of(request: &crate::RecordedRequest) -> Option<String> {
    request.json()["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "system"))
        .and_then(|m| m["content"].as_str())
        .map(str::to_owned)
}
