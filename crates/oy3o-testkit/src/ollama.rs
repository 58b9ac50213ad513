//! Ollama native `/api/chat` replies as the server sends them (PROVIDERS.md §5.2–§5.4): one
//! JSON object per line, the metrics on the final `done: true` line, `{"error": "..."}` bodies.

use crate::server::{NdjsonScript, RecordedRequest, Scripted};

/// The prompt tokens the final line reports.
pub const PROMPT_EVAL_COUNT: u64 = 26;

/// A line carrying one piece of the answer.
pub fn content_line(text: &str) -> String {
    format!(
        r#"{{"model":"llama3.2","created_at":"2025-07-07T20:22:19.184789Z","message":{{"role":"assistant","content":{}}},"done":false}}"#,
        serde_json::Value::from(text)
    )
}

/// A line carrying a piece of thinking (`think: true`), with empty content.
pub fn thinking_line(text: &str) -> String {
    format!(
        r#"{{"model":"qwen3","created_at":"2025-07-07T20:22:19.184789Z","message":{{"role":"assistant","content":"","thinking":{}}},"done":false}}"#,
        serde_json::Value::from(text)
    )
}

/// The final line; counts that are `None` are left out, as Ollama omits zero counts.
pub fn done_line(prompt_eval_count: Option<u64>, eval_count: Option<u64>) -> String {
    let mut counts = String::new();
    if let Some(n) = prompt_eval_count {
        counts.push_str(&format!(
            r#""prompt_eval_count":{n},"prompt_eval_duration":24573166,"#
        ));
    }
    if let Some(n) = eval_count {
        counts.push_str(&format!(r#""eval_count":{n},"eval_duration":115959084,"#));
    }
    format!(
        r#"{{"model":"llama3.2","created_at":"2025-07-07T20:22:19.19314Z","message":{{"role":"assistant","content":""}},"done":true,"done_reason":"stop","total_duration":182242375,"load_duration":41295167,{}}}"#,
        counts.trim_end_matches(',')
    )
}

/// A streamed answer made of these text pieces, as in §5.2, ending with the `done` line.
///
/// ```no_run
/// # async fn demo() {
/// let server = oy3o_testkit::FakeServer::start().await;
/// server.push(oy3o_testkit::ollama::answer(&["Hi", " there!"]).build());
/// # }
/// ```
pub fn answer(pieces: &[&str]) -> NdjsonScript {
    let mut script = NdjsonScript::default();
    for piece in pieces {
        script = script.line(&content_line(piece));
    }
    script.line(&done_line(
        Some(PROMPT_EVAL_COUNT),
        Some(pieces.len() as u64),
    ))
}

/// A line with whole tool calls as current Ollama builds send them (TOOLS.md §5.2): `id`
/// `call_` + 8 characters, `function.index`, `arguments` an object. `calls` are
/// `(id, name, arguments)`.
pub fn tool_calls_line(calls: &[(&str, &str, serde_json::Value)]) -> String {
    let calls: Vec<serde_json::Value> = calls
        .iter()
        .enumerate()
        .map(|(index, (id, name, arguments))| {
            serde_json::json!({"id": id, "function": {"index": index, "name": name, "arguments": arguments}})
        })
        .collect();
    let message = serde_json::json!({"role": "assistant", "content": "", "tool_calls": calls});
    format!(
        r#"{{"model":"qwen3","created_at":"2025-07-07T20:22:19.184789Z","message":{message},"done":false}}"#
    )
}

/// The mid-stream error line of §5.4 (no `done` field; the status stayed 200).
pub const MID_STREAM_ERROR: &str =
    r#"{"error":"an error was encountered while running the model"}"#;

/// An error reply: `{"error": message}`.
pub fn error(status: u16, message: &str) -> Scripted {
    Scripted::json(status, &serde_json::json!({ "error": message }).to_string())
}

/// The 404 of the chat handler for a model that was never pulled.
pub fn model_not_found(model: &str) -> Scripted {
    error(404, &format!("model '{model}' not found"))
}

/// The 503 of a full request queue (the message has two spaces, as in the source).
pub fn server_busy() -> Scripted {
    error(
        503,
        "server busy, please try again.  maximum pending requests exceeded",
    )
}

/// The last user message of a request.
pub fn prompt_of(request: &RecordedRequest) -> String {
    crate::openai::prompt_of(request)
}
