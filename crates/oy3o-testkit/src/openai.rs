//! OpenAI Chat Completions replies as the real API sends them (PROVIDERS.md §1.4, §1.7).

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
            r#"{{"id":"{ID}","object":"chat.completion.chunk","created":1727346168,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{{"prompt_tokens":19,"completion_tokens":{},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"obfuscation":"b2"}}"#,
            pieces.len(),
            19 + pieces.len()
        ))
        .data("[DONE]")
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
