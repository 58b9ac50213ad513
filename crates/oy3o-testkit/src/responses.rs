//! OpenAI Responses API streams as the real API sends them (PROVIDERS.md §2.2–§2.7): named
//! events with increasing `sequence_number`s, the whole output-item lifecycle, reasoning
//! summaries, web searches with `url_citation` annotations, function calls (TOOLS.md §2.2,
//! §7.2), and the terminal events. Errors
//! before the stream have the Chat Completions shape: use [`crate::openai`]'s replies.

use crate::server::{RecordedRequest, SseScript};

const RESPONSE_ID: &str = "resp_68b0f3c2a1d08190b2c5e7f9a3d4c6e80b1a2c3d4e5f6a7b";
const MESSAGE_ID: &str = "msg_68b0f3c31f648190a1b2c3d4e5f6a7b80b1a2c3d4e5f6a7b";

/// The input tokens `response.completed` reports.
pub const INPUT_TOKENS: u64 = 19;

/// Builds a stream event by event, numbering them.
struct Events {
    script: SseScript,
    seq: usize,
}

impl Events {
    fn new() -> Self {
        Self {
            script: SseScript::default().header("x-request-id", "req_5f0c1a2b3c4d5e6f"),
            seq: 0,
        }
    }

    /// Adds `event: kind` whose JSON is `{"type":kind,"sequence_number":n,<fields>}`.
    fn add(mut self, kind: &str, fields: &str) -> Self {
        let data = format!(
            r#"{{"type":"{kind}","sequence_number":{},{fields}}}"#,
            self.seq
        );
        self.seq += 1;
        self.script = self.script.named(kind, &data);
        self
    }

    fn response(status: &str, extra: &str, output: &str, usage: &str) -> String {
        format!(
            r#""response":{{"id":"{RESPONSE_ID}","object":"response","created_at":1756427202,"status":"{status}",{extra}"error":null,"instructions":"You are terse.","max_output_tokens":null,"model":"gpt-4.1-mini-2025-04-14","output":{output},"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{{"effort":null,"summary":null}},"store":true,"temperature":1.0,"text":{{"format":{{"type":"text"}}}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":{usage},"user":null,"metadata":{{}}}}"#
        )
    }

    fn opened() -> Self {
        let in_progress = Self::response("in_progress", "", "[]", "null");
        Self::new()
            .add("response.created", &in_progress)
            .add("response.in_progress", &in_progress)
    }

    /// The message item at `output_index` with these text pieces, and `annotation` events
    /// after its deltas.
    fn message(self, output_index: usize, pieces: &[&str], annotations: &[String]) -> Self {
        let text: String = pieces.concat();
        let text_json = serde_json::Value::from(text.as_str()).to_string();
        let ids =
            format!(r#""item_id":"{MESSAGE_ID}","output_index":{output_index},"content_index":0"#);
        let mut events = self
            .add(
                "response.output_item.added",
                &format!(
                    r#""output_index":{output_index},"item":{{"id":"{MESSAGE_ID}","type":"message","status":"in_progress","content":[],"role":"assistant"}}"#
                ),
            )
            .add(
                "response.content_part.added",
                &format!(r#"{ids},"part":{{"type":"output_text","annotations":[],"logprobs":[],"text":""}}"#),
            );
        for piece in pieces {
            let delta = serde_json::Value::from(*piece).to_string();
            events = events.add(
                "response.output_text.delta",
                &format!(r#"{ids},"delta":{delta},"logprobs":[],"obfuscation":"uY0fQz8a1K2b3""#),
            );
        }
        for (i, annotation) in annotations.iter().enumerate() {
            events = events.add(
                "response.output_text.annotation.added",
                &format!(r#"{ids},"annotation_index":{i},"annotation":{annotation}"#),
            );
        }
        let all = format!("[{}]", annotations.join(","));
        events
            .add(
                "response.output_text.done",
                &format!(r#"{ids},"text":{text_json},"logprobs":[]"#),
            )
            .add(
                "response.content_part.done",
                &format!(r#"{ids},"part":{{"type":"output_text","annotations":{all},"logprobs":[],"text":{text_json}}}"#),
            )
            .add(
                "response.output_item.done",
                &format!(
                    r#""output_index":{output_index},"item":{{"id":"{MESSAGE_ID}","type":"message","status":"completed","content":[{{"type":"output_text","annotations":{all},"logprobs":[],"text":{text_json}}}],"role":"assistant"}}"#
                ),
            )
    }

    fn completed(self, output_tokens: usize) -> SseScript {
        self.completed_with(output_tokens, "[]")
    }

    /// `response.completed` with these `output` items (a JSON array).
    fn completed_with(self, output_tokens: usize, output: &str) -> SseScript {
        let usage = format!(
            r#"{{"input_tokens":{INPUT_TOKENS},"input_tokens_details":{{"cached_tokens":0}},"output_tokens":{output_tokens},"output_tokens_details":{{"reasoning_tokens":0}},"total_tokens":{}}}"#,
            INPUT_TOKENS as usize + output_tokens
        );
        let done = Self::response(
            "completed",
            r#""completed_at":1756427203,"incomplete_details":null,"#,
            output,
            &usage,
        );
        self.add("response.completed", &done).script
    }
}

/// A streamed answer made of these text pieces, as in §2.3, ending with
/// `response.completed` and its usage.
///
/// ```no_run
/// # async fn demo() {
/// let server = oy3o_testkit::FakeServer::start().await;
/// server.push(oy3o_testkit::responses::answer(&["Hi", " there!"]).build());
/// # }
/// ```
pub fn answer(pieces: &[&str]) -> SseScript {
    Events::opened()
        .message(0, pieces, &[])
        .completed(pieces.len() + 2)
}

/// An answer with a reasoning summary item first (§2.5), then the message.
pub fn reasoning_answer(summary: &[&str], pieces: &[&str]) -> SseScript {
    let ids = r#""item_id":"rs_68b0f5d0e1f2","output_index":0,"summary_index":0"#;
    let mut events = Events::opened()
        .add(
            "response.output_item.added",
            r#""output_index":0,"item":{"id":"rs_68b0f5d0e1f2","type":"reasoning","summary":[]}"#,
        )
        .add(
            "response.reasoning_summary_part.added",
            &format!(r#"{ids},"part":{{"type":"summary_text","text":""}}"#),
        );
    for piece in summary {
        let delta = serde_json::Value::from(*piece).to_string();
        events = events.add(
            "response.reasoning_summary_text.delta",
            &format!(r#"{ids},"delta":{delta},"obfuscation":"a""#),
        );
    }
    let text = serde_json::Value::from(summary.concat()).to_string();
    events
        .add(
            "response.reasoning_summary_text.done",
            &format!(r#"{ids},"text":{text}"#),
        )
        .add(
            "response.output_item.done",
            &format!(
                r#""output_index":0,"item":{{"id":"rs_68b0f5d0e1f2","type":"reasoning","summary":[{{"type":"summary_text","text":{text}}}]}}"#
            ),
        )
        .message(1, pieces, &[])
        .completed(pieces.len() + 30)
}

/// The query the search answer runs.
pub const SEARCH_QUERY: &str = "rust 1.90 release date";
/// The page the search answer cites.
pub const CITED_URL: &str = "https://blog.rust-lang.org/2025/09/18/Rust-1.90.0/?utm_source=openai";

/// An answer that searches the web first (§2.6): the `web_search_call` item, then the message
/// with a flat `url_citation` annotation.
pub fn web_search_answer(pieces: &[&str]) -> SseScript {
    let call = r#""output_index":0,"item_id":"ws_68b0f6aa01""#;
    let annotation = format!(
        r#"{{"type":"url_citation","start_index":0,"end_index":12,"title":"Announcing Rust 1.90.0","url":"{CITED_URL}"}}"#
    );
    Events::opened()
        .add(
            "response.output_item.added",
            r#""output_index":0,"item":{"id":"ws_68b0f6aa01","type":"web_search_call","status":"in_progress","action":{"type":"search"}}"#,
        )
        .add("response.web_search_call.in_progress", call)
        .add("response.web_search_call.searching", call)
        .add("response.web_search_call.completed", call)
        .add(
            "response.output_item.done",
            &format!(
                r#""output_index":0,"item":{{"id":"ws_68b0f6aa01","type":"web_search_call","status":"completed","action":{{"type":"search","query":"{SEARCH_QUERY}"}}}}"#
            ),
        )
        .message(1, pieces, &[annotation])
        .completed(pieces.len() + 20)
}

/// An answer that calls functions (TOOLS.md §2.2, §7.2 (a) and (b)): per call, at
/// `output_index` 0, 1, …, the `function_call` item added with empty arguments, the
/// arguments in `function_call_arguments.delta` pieces of at most 7 characters (with
/// `obfuscation`), `.done` with the whole arguments, and `output_item.done`; then
/// `response.completed` with every item in its `output`. `calls` are
/// `(call_id, name, arguments JSON text)`. Each call's first delta event is split in the
/// middle of its argument text, and every `°` in the middle of its two bytes (§7.0).
///
/// ```no_run
/// # async fn demo() {
/// let server = oy3o_testkit::FakeServer::start().await;
/// server.push(
///     oy3o_testkit::responses::function_calls(&[("call_A1", "get_weather", r#"{"city":"Paris"}"#)])
///         .build(),
/// );
/// # }
/// ```
pub fn function_calls(calls: &[(&str, &str, &str)]) -> SseScript {
    let mut events = Events::opened();
    let mut items = Vec::with_capacity(calls.len());
    let mut split_deltas = Vec::with_capacity(calls.len());
    for (output_index, (call_id, name, arguments)) in calls.iter().enumerate() {
        let item_id = format!("fc_68b0f4a1c2d{output_index}");
        let item = |status: &str, arguments: &str| {
            serde_json::json!({"id": item_id, "type": "function_call", "status": status,
                "arguments": arguments, "call_id": call_id, "name": name})
            .to_string()
        };
        let ids = format!(r#""item_id":"{item_id}","output_index":{output_index}"#);
        events = events.add(
            "response.output_item.added",
            &format!(
                r#""output_index":{output_index},"item":{}"#,
                item("in_progress", "")
            ),
        );
        let chars: Vec<char> = arguments.chars().collect();
        for (n, piece) in chars.chunks(7).enumerate() {
            let piece: String = piece.iter().collect();
            let value = serde_json::Value::from(piece).to_string();
            let delta = format!(r#""delta":{value}"#);
            if n == 0 {
                // Inside the argument text, past `"delta":"`.
                split_deltas.push((delta.clone(), delta.len() - value.len() / 2));
            }
            events = events.add(
                "response.function_call_arguments.delta",
                &format!(r#"{ids},{delta},"obfuscation":"k1""#),
            );
        }
        let whole = serde_json::Value::from(*arguments).to_string();
        let done = item("completed", arguments);
        events = events
            .add(
                "response.function_call_arguments.done",
                &format!(r#"{ids},"name":"{name}","arguments":{whole}"#),
            )
            .add(
                "response.output_item.done",
                &format!(r#""output_index":{output_index},"item":{done}"#),
            );
        items.push(done);
    }
    let mut script = events
        .completed_with(calls.len() * 12, &format!("[{}]", items.join(",")))
        .split_inside("°", 1);
    for (delta, middle) in split_deltas {
        script = script.split_inside(&delta, middle);
    }
    script
}

/// An answer cut by `max_output_tokens`: it ends with `response.incomplete`.
pub fn incomplete(pieces: &[&str]) -> SseScript {
    let events = Events::opened().message(0, pieces, &[]);
    let usage = format!(
        r#"{{"input_tokens":{INPUT_TOKENS},"input_tokens_details":{{"cached_tokens":0}},"output_tokens":{},"output_tokens_details":{{"reasoning_tokens":0}},"total_tokens":{}}}"#,
        pieces.len(),
        INPUT_TOKENS as usize + pieces.len()
    );
    let response = Events::response(
        "incomplete",
        r#""incomplete_details":{"reason":"max_output_tokens"},"#,
        "[]",
        &usage,
    );
    events.add("response.incomplete", &response).script
}

/// Text pieces, then `response.failed` with `response.error` (§2.7).
pub fn failed(pieces: &[&str]) -> SseScript {
    let events = Events::opened().message(0, pieces, &[]);
    let response = format!(
        r#""response":{{"id":"{RESPONSE_ID}","object":"response","status":"failed","error":{{"code":"server_error","message":"The model failed to generate a response."}},"incomplete_details":null,"usage":null}}"#
    );
    events.add("response.failed", &response).script
}

/// The documented, flat `error` event (§2.7).
pub const ERROR_FLAT: &str = r#"{"type":"error","code":"server_error","message":"The model failed to generate a response.","param":null,"sequence_number":7}"#;

/// The nested `error` event production also sends (§2.7, §8.3).
pub const ERROR_NESTED: &str = r#"{"type":"error","sequence_number":2,"error":{"type":"too_many_requests","code":"too_many_requests","message":"Too Many Requests","param":null}}"#;

/// The opening events of an answer with these text pieces and no end, for scripts that add
/// their own (an `error` event) or none.
pub fn unfinished(pieces: &[&str]) -> SseScript {
    Events::opened().message(0, pieces, &[]).script
}

/// The last user input of a request.
pub fn prompt_of(request: &RecordedRequest) -> String {
    request.json()["input"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}
