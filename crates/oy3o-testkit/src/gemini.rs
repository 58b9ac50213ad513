//! Gemini `streamGenerateContent?alt=sse` replies as the real API sends them (PROVIDERS.md
//! §4.2–§4.6): CRLF framing, `": "` spacing, no end marker, cumulative usage on every chunk, and
//! the Google error model with its `details`.

use crate::server::{RecordedRequest, Scripted, SseScript};

const RESPONSE_ID: &str = "mOa0aJ3uK5ns1PIP0v2-qAE";

/// The prompt tokens every chunk of these streams reports.
pub const PROMPT_TOKENS: u64 = 9;

fn usage(candidates: usize, thoughts: usize) -> String {
    let mut fields = format!(r#""promptTokenCount": {PROMPT_TOKENS}"#);
    // Proto3 JSON omits zero counts.
    if candidates > 0 {
        fields.push_str(&format!(r#","candidatesTokenCount": {candidates}"#));
    }
    fields.push_str(&format!(
        r#","totalTokenCount": {}"#,
        PROMPT_TOKENS as usize + candidates + thoughts
    ));
    if thoughts > 0 {
        fields.push_str(&format!(r#","thoughtsTokenCount": {thoughts}"#));
    }
    format!(
        r#"{{{fields},"promptTokensDetails": [{{"modality": "TEXT","tokenCount": {PROMPT_TOKENS}}}]}}"#
    )
}

/// One chunk whose candidate holds `parts` (a JSON array), with `extra` candidate fields
/// (e.g. `"finishReason": "STOP",`) and the cumulative counts so far.
pub fn chunk(parts: &str, extra: &str, candidates: usize, thoughts: usize) -> String {
    format!(
        r#"{{"candidates": [{{"content": {{"parts": {parts},"role": "model"}},{extra}"index": 0}}],"usageMetadata": {},"modelVersion": "gemini-2.5-flash","responseId": "{RESPONSE_ID}"}}"#,
        usage(candidates, thoughts)
    )
}

fn text_part(text: &str) -> String {
    format!(r#"[{{"text": {}}}]"#, serde_json::Value::from(text))
}

/// A streamed answer made of these text pieces, as in §4.3: one chunk per piece, the last
/// with `finishReason: STOP`, CRLF line ends, and the body ending with no marker.
///
/// ```no_run
/// # async fn demo() {
/// let server = oy3o_testkit::FakeServer::start().await;
/// server.push(oy3o_testkit::gemini::answer(&["Hi", " there!"]).build());
/// # }
/// ```
pub fn answer(pieces: &[&str]) -> SseScript {
    let mut script = SseScript::default().crlf();
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        let extra = if last {
            r#""finishReason": "STOP","#
        } else {
            ""
        };
        script = script.data(&chunk(&text_part(piece), extra, i + 1, 0));
    }
    script
}

/// Chunks of these text pieces with no `finishReason` (an answer that has not ended), for
/// scripts that add their own end or none.
pub fn unfinished(pieces: &[&str]) -> SseScript {
    let mut script = SseScript::default().crlf();
    for (i, piece) in pieces.iter().enumerate() {
        script = script.data(&chunk(&text_part(piece), "", i + 1, 0));
    }
    script
}

/// A thought-summary chunk (`"thought": true`, §4.3), as sent before the answer when thoughts
/// are included.
pub fn thought_chunk(text: &str) -> String {
    let parts = format!(
        r#"[{{"text": {},"thought": true}}]"#,
        serde_json::Value::from(text)
    );
    chunk(&parts, "", 0, 52)
}

/// An answer with thought summaries first, then the text pieces; usage counts 52 thoughts.
pub fn thinking_answer(thoughts: &[&str], pieces: &[&str]) -> SseScript {
    let mut script = SseScript::default().crlf();
    for thought in thoughts {
        script = script.data(&thought_chunk(thought));
    }
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        let extra = if last {
            r#""finishReason": "STOP","#
        } else {
            ""
        };
        script = script.data(&chunk(&text_part(piece), extra, i + 1, 52));
    }
    script
}

/// The text of the grounded answer.
pub const GROUNDED_TEXT: &str = "Rust 1.90 shipped on 18 September 2025.";
/// The search the grounded answer ran.
pub const SEARCH_QUERY: &str = "rust 1.90 release date";
/// The redirect URL of the source it cites.
pub const CITED_URL: &str =
    "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIYQE9kd0rust";
/// The redirect URL of a source it read but did not cite.
pub const READ_URL: &str =
    "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIYQHx2releases";

/// A grounded answer (§4.5): the text, then a last chunk with `groundingMetadata` (the
/// search, two sources, one support covering the whole text, with `startIndex` omitted as
/// proto3 does for 0).
pub fn grounded_answer() -> SseScript {
    let grounding = format!(
        r#""finishReason": "STOP","groundingMetadata": {{"webSearchQueries": ["{SEARCH_QUERY}"],"searchEntryPoint": {{"renderedContent": "<style>.container{{}}</style><div class=\"container\">...</div>"}},"groundingChunks": [{{"web": {{"uri": "{CITED_URL}","title": "rust-lang.org"}}}},{{"web": {{"uri": "{READ_URL}","title": "releases.rs"}}}}],"groundingSupports": [{{"segment": {{"endIndex": {},"text": "{GROUNDED_TEXT}"}},"groundingChunkIndices": [0],"confidenceScores": [0.97]}}]}},"#,
        GROUNDED_TEXT.len()
    );
    SseScript::default()
        .crlf()
        .data(&chunk(&text_part(GROUNDED_TEXT), "", 12, 0))
        .data(&chunk("[]", &grounding, 12, 0))
}

/// The in-stream error of §4.6, after which the server closes.
pub const MID_STREAM_ERROR: &str = r#"{"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}"#;

/// An error reply in the Google API error model.
pub fn error(status: u16, canonical: &str, message: &str, details: &str) -> Scripted {
    let message = serde_json::Value::from(message).to_string();
    Scripted::json(
        status,
        &format!(
            r#"{{"error":{{"code":{status},"message":{message},"status":"{canonical}","details":[{details}]}}}}"#
        ),
    )
}

/// The 400 (not 401) for a wrong key.
pub fn invalid_key() -> Scripted {
    error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        r#"{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}},{"@type":"type.googleapis.com/google.rpc.LocalizedMessage","locale":"en-US","message":"API key not valid. Please pass a valid API key."}"#,
    )
}

fn quota_exceeded(quota_id: &str, retry_delay: &str) -> Scripted {
    error(
        429,
        "RESOURCE_EXHAUSTED",
        &format!(
            "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 20, model: gemini-2.5-flash\nPlease retry in {retry_delay}."
        ),
        &format!(
            r#"{{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"{quota_id}","quotaDimensions":{{"location":"global","model":"gemini-2.5-flash"}},"quotaValue":"20"}}]}},{{"@type":"type.googleapis.com/google.rpc.Help","links":[{{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}}]}},{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{retry_delay}"}}"#
        ),
    )
}

/// A per-minute 429 whose body asks for `retry_delay` (e.g. `"0.3s"`; there is no
/// `Retry-After` header).
pub fn rate_limited(retry_delay: &str) -> Scripted {
    quota_exceeded(
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        retry_delay,
    )
}

/// A 429 for a used-up daily quota: waiting a few seconds does not help.
pub fn daily_quota_exhausted() -> Scripted {
    quota_exceeded("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "36s")
}

/// The 503 of an overloaded model.
pub fn overloaded() -> Scripted {
    error(
        503,
        "UNAVAILABLE",
        "The model is overloaded. Please try again later.",
        "",
    )
}

/// A 404 for an unknown model.
pub fn model_not_found(model: &str) -> Scripted {
    error(
        404,
        "NOT_FOUND",
        &format!(
            "models/{model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods."
        ),
        "",
    )
}

/// The last user turn of a request.
pub fn prompt_of(request: &RecordedRequest) -> String {
    request.json()["contents"]
        .as_array()
        .and_then(|c| c.iter().rev().find(|c| c["role"] == "user"))
        .and_then(|c| c["parts"][0]["text"].as_str())
        .unwrap_or_default()
        .to_owned()
}
