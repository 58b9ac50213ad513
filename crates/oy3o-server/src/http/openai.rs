//! The OpenAI-compatible API: `POST /v1/chat/completions` (whole or streamed as SSE, ending
//! with `data: [DONE]`, usage on request) and `GET /v1/models`. Any OpenAI SDK or tool can
//! use every oy3o model, and a named chain as the model `chain:NAME`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use oy3o::provider::Delta;
use oy3o::{
    Chain, Config, Event, Listeners, Message, Opening, Options, Output, Reply, Role, Usage,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::state::AppState;

/// An OpenAI-style error body with this status.
pub(crate) fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        json!({ "error": { "message": message, "type": code, "param": null, "code": code } });
    (status, Json(body)).into_response()
}

fn engine_error(state: &AppState, e: &oy3o::Error) -> Response {
    let code = e.code().as_str();
    state.metrics.error(code);
    let status = match e.code() {
        oy3o::ErrorCode::BadRequest | oy3o::ErrorCode::Config => StatusCode::BAD_REQUEST,
        oy3o::ErrorCode::NotFound => StatusCode::NOT_FOUND,
        oy3o::ErrorCode::Auth => StatusCode::UNAUTHORIZED,
        oy3o::ErrorCode::RateLimit => StatusCode::TOO_MANY_REQUESTS,
        oy3o::ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        oy3o::ErrorCode::Network | oy3o::ErrorCode::Provider => StatusCode::BAD_GATEWAY,
        oy3o::ErrorCode::Cancelled => StatusCode::INTERNAL_SERVER_ERROR,
    };
    api_error(status, code, e.message())
}

fn bad_request(state: &AppState, message: &str) -> Response {
    state.metrics.error("bad_request");
    api_error(StatusCode::BAD_REQUEST, "bad_request", message)
}

#[derive(Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    seed: Option<u32>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

/// A request's messages as the engine sees them: a context, the turns so far, the prompt.
struct Conversation {
    context: Option<String>,
    history: Vec<Message>,
    prompt: Message,
}

fn conversation(messages: Vec<InMessage>) -> Result<Conversation, String> {
    let mut context: Vec<String> = Vec::new();
    let mut turns: Vec<Message> = Vec::new();
    for (i, m) in messages.into_iter().enumerate() {
        let text = match m.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(t)) => text.push_str(&t),
                        (kind, _) => {
                            return Err(format!(
                                "messages[{i}]: content parts of type {kind:?} are not supported; send text"
                            ));
                        }
                    }
                }
                text
            }
        };
        match m.role.as_str() {
            "system" | "developer" => context.push(text),
            "user" => turns.push(Message::user(text)),
            "assistant" => turns.push(Message::assistant(text)),
            other => {
                return Err(format!(
                    "messages[{i}]: role {other:?} is not supported; use system, user or assistant"
                ));
            }
        }
    }
    match turns.pop() {
        Some(prompt) if prompt.role == Role::User => Ok(Conversation {
            context: (!context.is_empty()).then(|| context.join("\n\n")),
            history: turns,
            prompt,
        }),
        _ => Err("the last message must be from the user".into()),
    }
}

/// Ids and timestamps of responses.
fn completion_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(now());
        h.finish()
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("chatcmpl-{seed:016x}{n:08x}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The request body, or what is wrong with it and where. The path is tracked only once a body
/// has failed: tracking it on every request cloned each key (~7,000 instructions a request).
fn parse_request(body: &[u8]) -> Result<CompletionRequest, String> {
    if let Ok(request) = serde_json::from_slice(body) {
        return Ok(request);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, CompletionRequest>(&mut de) {
        Ok(request) => Ok(request),
        Err(e) => {
            let path = e.path().to_string();
            Err(format!(
                "invalid request body at `{path}`: {}",
                e.into_inner()
            ))
        }
    }
}

/// `POST /v1/chat/completions`. With a store, the answer is recorded as a turn of a chat of
/// its own (the request's last user message as the prompt, its system messages as the
/// context), owned like a WebSocket chat by the token that asked.
pub(crate) async fn completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    if let Err(refused) = super::openai_fields::check(&state, &headers, &body) {
        return refused;
    }
    let request: CompletionRequest = match parse_request(&body) {
        Ok(r) => r,
        Err(message) => return bad_request(&state, &message),
    };
    if request.n.is_some_and(|n| n != 1) {
        return bad_request(&state, "n must be 1: this server returns one choice");
    }
    if request.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return bad_request(&state, "tools are not supported by this server");
    }
    let conversation = match conversation(request.messages) {
        Ok(c) => c,
        Err(m) => return bad_request(&state, &m),
    };
    // Only a server with a store keeps answers, so only then is the owner worked out.
    let owner = if state.store.open_store().is_some() {
        crate::auth::owner(&state.settings, &headers, uri.query())
    } else {
        String::new()
    };
    let streamed = request.stream.unwrap_or(false);
    let options = Options {
        temperature: request.temperature,
        top_p: request.top_p,
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        seed: request.seed,
        // A whole reply is asked for whole upstream where the provider can (one JSON body
        // instead of a stream to decode: about half the engine's work per answer).
        whole: !streamed,
    };
    let model = request.model.filter(|m| !m.trim().is_empty());
    let reply = match model.as_deref().and_then(|m| m.strip_prefix("chain:")) {
        Some(name) => match state.chains.get(name) {
            Some(chain) => chain_reply(chain.clone(), conversation, state.config.clone()),
            None => {
                state.metrics.error("not_found");
                let known: Vec<String> =
                    state.chains.keys().map(|k| format!("chain:{k}")).collect();
                let m = format!(
                    "no chain named {name:?}; served chains: {}",
                    known.join(", ")
                );
                return api_error(StatusCode::NOT_FOUND, "not_found", &m);
            }
        },
        None => match start(&state, model.as_deref(), conversation, &options, &owner) {
            Ok(reply) => reply,
            Err(e) => return engine_error(&state, &e),
        },
    };
    let shown_model = model.unwrap_or_else(|| {
        state
            .targets(None)
            .ok()
            .and_then(|t| t.first().map(|t| t.reference.to_string()))
            .unwrap_or_else(|| "default".into())
    });
    let meta = Meta {
        id: completion_id(),
        created: now(),
        model: shown_model,
        started,
    };
    if streamed {
        let usage = request
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        stream(state, reply, meta, usage).await
    } else {
        whole(state, reply, meta).await
    }
}

/// Starts the answer as a one-turn conversation of `owner` (recorded when the server has a
/// store; the history the request carries is restored, not stored again), over every model of
/// the name: a model that fails before answering hands the turn, history and all, to the next.
fn start(
    state: &AppState,
    model: Option<&str>,
    c: Conversation,
    options: &Options,
    owner: &str,
) -> oy3o::Result<Reply> {
    let targets = state.targets(model)?;
    let opening = Opening::one_shot(owner)
        .targets(Some(&targets))
        .context(c.context.as_deref());
    let conversation = state.conversations.one_shot(&opening, &state.config)?;
    if !c.history.is_empty() {
        conversation.restore(c.history)?;
    }
    Ok(conversation.send(c.prompt, options))
}

/// A chain as a model: the user's last message comes before the first stage's contexts as an
/// `[input]: …\n[/input]\n` block (the same shape stages hand each other; chain files cannot
/// name it in a template, the engine checks their references at load); the answer is the last
/// stage's answers, and the usage the sum over every task.
fn chain_reply(mut chain: Chain, c: Conversation, config: Arc<Config>) -> Reply {
    if let Some(first) = chain.stages.first_mut() {
        for task in &mut first.tasks {
            let own = task.context.take().unwrap_or_default();
            task.context = Some(format!("[input]: {}\n[/input]\n{own}", c.prompt.text()));
        }
    }
    let upstream = async_stream::try_stream! {
        let stages = oy3o::exec_tasks_chain_once(chain, &config).await?;
        let mut usage = Usage::default();
        for r in stages.iter().flat_map(|s| s.results.iter()) {
            if let Some(u) = &r.usage {
                usage.input_tokens += u.input_tokens;
                usage.output_tokens += u.output_tokens;
            }
        }
        let last: Vec<_> = stages
            .last()
            .map(|s| s.results.iter().filter(|r| r.response.is_some()).collect())
            .unwrap_or_default();
        let answer = match last.as_slice() {
            [one] => one.response.clone().unwrap_or_default(),
            many => many
                .iter()
                .map(|r| format!("[{}]: {}", r.task.label(), r.response.as_deref().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("\n\n"),
        };
        yield Delta::Text(answer);
        yield Delta::Event(Event::Usage(usage));
        yield Delta::Done { finish_reason: "stop".into() };
    };
    Reply::new(Box::pin(upstream), Listeners::default(), Vec::new())
}

struct Meta {
    id: String,
    created: u64,
    model: String,
    started: Instant,
}

fn usage_json(usage: &Usage) -> Value {
    let mut v = json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    });
    if let Some(cached) = usage.cached_tokens {
        v["prompt_tokens_details"] = json!({ "cached_tokens": cached });
    }
    if let Some(reasoning) = usage.reasoning_tokens {
        v["completion_tokens_details"] = json!({ "reasoning_tokens": reasoning });
    }
    v
}

/// The whole answer as one `chat.completion`.
async fn whole(state: Arc<AppState>, reply: Reply, meta: Meta) -> Response {
    let answering = Answering::start(&state, meta.started);
    let mut outputs = reply.outputs();
    let mut reasoning = String::new();
    let mut failure = None;
    while let Some(item) = outputs.next().await {
        match item {
            Ok(output) => {
                if let Output::Event(Event::Reasoning(t)) = output {
                    reasoning.push_str(&t);
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(answering);
    let reply = outputs.reply();
    if let Some(e) = failure {
        return engine_error(&state, &e);
    }
    let body = Completion {
        id: &meta.id,
        object: "chat.completion",
        created: meta.created,
        model: &meta.model,
        choices: [CompletionChoice {
            index: 0,
            message: CompletionMessage {
                role: "assistant",
                content: reply.answer(),
                reasoning_content: &reasoning,
            },
            logprobs: None,
            finish_reason: reply.finish_reason().unwrap_or("stop"),
        }],
        usage: reply.usage().map(usage_json),
    };
    // Serialized straight from borrowed fields, no JSON tree of the answer first.
    match serde_json::to_vec(&body) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &format!("cannot write the answer: {e}"),
        ),
    }
}

/// A whole `chat.completion`, in the order OpenAI writes its fields.
#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    usage: Option<Value>,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: CompletionMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct CompletionMessage<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reasoning_content: &'a str,
}

/// An answer being written, counted in the metrics until it is dropped: at its end, or when
/// the client hangs up on a stream (the body is dropped then).
struct Answering {
    state: Arc<AppState>,
    started: Instant,
}

impl Answering {
    fn start(state: &Arc<AppState>, started: Instant) -> Self {
        state.metrics.reply_started();
        Self {
            state: state.clone(),
            started,
        }
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.state.metrics.reply_finished(self.started.elapsed());
    }
}

/// Pre-rendered pieces of every `chat.completion.chunk` of one answer. Each chunk is written
/// into one buffer of the right size (the text escaped straight into it): formatting it from
/// pieces cost ~3,000 instructions and four allocations per chunk.
struct ChunkWriter {
    head: String,
}

/// What follows a chunk's `delta` when the answer goes on.
const GOING_ON: &[u8] = b",\"logprobs\":null,\"finish_reason\":null}]}\n\n";

impl ChunkWriter {
    fn new(meta: &Meta) -> Self {
        let model = serde_json::to_string(&meta.model).unwrap_or_else(|_| "\"\"".into());
        Self {
            head: format!(
                "data: {{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{model},\"choices\":[{{\"index\":0,\"delta\":",
                meta.id, meta.created
            ),
        }
    }

    fn buffer(&self, room: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + room + GOING_ON.len() + 16);
        out.extend_from_slice(self.head.as_bytes());
        out
    }

    /// The first chunk: the assistant's role and empty content.
    fn role(&self) -> Bytes {
        let mut out = self.buffer(32);
        out.extend_from_slice(br#"{"role":"assistant","content":""}"#);
        out.extend_from_slice(GOING_ON);
        Bytes::from(out)
    }

    /// A chunk whose delta is `{key: text}`.
    fn text(&self, key: &str, text: &str) -> Bytes {
        let mut out = self.buffer(key.len() + text.len() + 8);
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        // Escaping a `str` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, text);
        out.push(b'}');
        out.extend_from_slice(GOING_ON);
        Bytes::from(out)
    }

    /// The last chunk of the choice: an empty delta and the finish reason.
    fn finish(&self, reason: &str) -> Bytes {
        let mut out = self.buffer(reason.len() + 48);
        out.extend_from_slice(br#"{},"logprobs":null,"finish_reason":"#);
        let _ = serde_json::to_writer(&mut out, reason);
        out.extend_from_slice(b"}]}\n\n");
        Bytes::from(out)
    }

    fn usage(&self, usage: &Usage) -> Bytes {
        // The head ends inside `choices`, which the usage chunk leaves empty.
        let head = &self.head[..self.head.len() - r#"{"index":0,"delta":"#.len()];
        Bytes::from(format!("{head}],\"usage\":{}}}\n\n", usage_json(usage)))
    }
}

fn error_event(code: &str, message: &str) -> Bytes {
    let body =
        json!({ "error": { "message": message, "type": code, "param": null, "code": code } });
    Bytes::from(format!("data: {body}\n\n"))
}

/// The answer as server-sent events. The head waits for the first item, so a failure before
/// the answer starts is a plain HTTP error with its status.
async fn stream(state: Arc<AppState>, reply: Reply, meta: Meta, include_usage: bool) -> Response {
    let mut outputs = reply.outputs();
    let first = loop {
        match outputs.next().await {
            Some(Ok(Output::Event(e))) if !matches!(e, Event::Reasoning(_)) => {}
            other => break other,
        }
    };
    if let Some(Err(e)) = &first {
        return engine_error(&state, e);
    }
    state.metrics.first_chunk(meta.started.elapsed());
    let answering = Answering::start(&state, meta.started);
    let writer = ChunkWriter::new(&meta);
    let body = async_stream::stream! {
        yield Ok::<_, Infallible>(writer.role());
        let mut next = first;
        loop {
            match next {
                Some(Ok(Output::Text(t))) => yield Ok(writer.text("content", &t)),
                Some(Ok(Output::Event(Event::Reasoning(t)))) => yield Ok(writer.text("reasoning_content", &t)),
                Some(Ok(Output::Event(_))) => {}
                Some(Err(e)) => {
                    state.metrics.error(e.code().as_str());
                    yield Ok(error_event(e.code().as_str(), e.message()));
                    break;
                }
                None => {
                    // Built before the yields: a `&Reply` held across one would make the body
                    // stream non-Send (the engine's stream is Send, not Sync).
                    let reply = outputs.reply();
                    let finish = writer.finish(reply.finish_reason().unwrap_or("stop"));
                    let usage = reply.usage().filter(|_| include_usage).map(|u| writer.usage(u));
                    yield Ok(finish);
                    if let Some(usage) = usage {
                        yield Ok(usage);
                    }
                    yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
                    break;
                }
            }
            next = outputs.next().await;
        }
        drop(answering);
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// `GET /v1/models`: every model a client can name here.
pub(crate) async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let data: Vec<Value> = state
        .model_names()
        .into_iter()
        .map(|(id, owner)| json!({ "id": id, "object": "model", "created": 0, "owned_by": owner }))
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(v: Value) -> Vec<InMessage> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn system_messages_become_the_context_and_earlier_turns_the_history() {
        let c = conversation(msgs(json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": [{"type": "text", "text": "how "}, {"type": "text", "text": "are you"}]},
        ])))
        .unwrap();
        assert_eq!(c.context.as_deref(), Some("Be brief."));
        assert_eq!(c.history.len(), 2);
        assert_eq!(c.prompt.text(), "how are you");
    }

    #[test]
    fn a_conversation_must_end_with_the_user() {
        assert!(conversation(msgs(json!([{"role": "assistant", "content": "x"}]))).is_err());
        assert!(conversation(Vec::new()).is_err());
        assert!(conversation(msgs(json!([{"role": "tool", "content": "x"}]))).is_err());
        let image = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]);
        assert!(conversation(msgs(image)).is_err());
    }
}
