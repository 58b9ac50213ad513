//! The OpenAI-compatible API: `POST /v1/chat/completions` (whole or streamed as SSE, ending
//! with `data: [DONE]`, usage on request) and `GET /v1/models`. Any OpenAI SDK or tool can
//! use every oy3o model, and a named chain as the model `chain:NAME`. Laid out like the
//! engine's `providers/openai/`: the request read in one pass (`request`), the answer whole
//! (`whole`) or as a stream of chunks (`stream`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use oy3o::provider::Delta;
use oy3o::{Chain, Config, Event, Listeners, Opening, Options, Reply, Usage};
use serde_json::{Value, json};

use crate::state::AppState;
use request::Conversation;

mod request;
mod stream;
mod whole;

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

/// `POST /v1/chat/completions`. With a store, the answer is recorded as a turn of a chat of
/// its own (the request's last user message as the prompt, its system messages as the
/// context), owned like a WebSocket chat by the token that asked.
pub(crate) async fn completions(
    State(state): State<Arc<AppState>>,
    axum::Extension(identity): axum::Extension<crate::auth::Identity>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let (request, conversation) = match request::read(&state, &headers, &body) {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let charge = match &identity.key {
        Some(key) => {
            let models = models_named(&state, request.model.as_deref());
            let store = state.store.open_store().map(|open| &open.store);
            match state.quotas.admit(key, &models, store).await {
                Ok(charge) => Some(charge),
                Err(refusal) => return refused(&state, &refusal),
            }
        }
        None => None,
    };
    // Only a server with a store keeps answers, so only then is the owner worked out.
    let owner = if state.store.open_store().is_some() {
        identity.owner.clone()
    } else {
        String::new()
    };
    let streamed = request.stream.unwrap_or(false);
    let toolbox = match server_tools(&state, &request, &headers, &uri, &owner).await {
        Ok(toolbox) => toolbox,
        Err(refused) => return refused,
    };
    // The request controls (response_format, reasoning_effort, stop, web_search_options,
    // extra_body), under the fields set here.
    let options = request.controls.overlay(&Options {
        // In range (checked when read): narrowing cannot overflow.
        temperature: request.temperature.map(|t| t as f32),
        top_p: request.top_p.map(|p| p as f32),
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        seed: request.seed,
        // A whole reply is asked for whole upstream where the provider can (one JSON body
        // instead of a stream to decode: about half the engine's work per answer).
        whole: !streamed,
        tools: request.tools_asked.clone(),
        // Tools the client names in `server_tools` the server runs; those it defines in
        // `tools`, the client runs.
        toolbox: toolbox.clone(),
        ..Options::default()
    });
    let model = request.model.filter(|m| !m.trim().is_empty());
    // A failure before the answer starts counts in the key's and model's series too.
    let refused = |e: &oy3o::Error| {
        let name = model.as_deref().unwrap_or("default");
        state
            .metrics
            .series(&identity, name)
            .error(e.code().as_str());
        engine_error(&state, e)
    };
    let reply = match model.as_deref().and_then(|m| m.strip_prefix("chain:")) {
        Some(name) => match state.chains.get(name) {
            Some(chain) => {
                let mut chain = chain.clone();
                if let Err(e) = state.equip(&mut chain).await {
                    return refused(&e);
                }
                chain_reply(chain, conversation, state.config.clone())
            }
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
            Err(e) => return refused(&e),
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
        series: state.metrics.series(&identity, &shown_model),
        model: shown_model,
        started,
        server_tools: toolbox.is_some(),
        charge,
    };
    if streamed {
        let usage = request.include_usage.unwrap_or(false);
        stream::stream(state, reply, meta, usage).await
    } else {
        whole::whole(state, reply, meta).await
    }
}

/// The toolbox of the tools a request names in `server_tools`, as granted to its client; a
/// refusal is the response to send. Mixing them with tools the client runs is refused: a call
/// could not say who runs it.
async fn server_tools(
    state: &AppState,
    request: &request::CompletionRequest,
    headers: &HeaderMap,
    uri: &Uri,
    owner: &str,
) -> Result<Option<Arc<oy3o::tool_loop::Toolbox>>, Response> {
    let Some(names) = request.server_tools.as_deref().filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if request.tools_asked.is_some() {
        return Err(request::refuse(
            state,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "a request names tools the server runs (server_tools) or defines tools the client \
             runs (tools), not both",
        ));
    }
    // Without a store the owner was not worked out: the grant needs it.
    let owner = match owner {
        "" => crate::auth::owner(&state.settings, headers, uri.query()),
        known => known.to_owned(),
    };
    let granted = crate::policy::granted_tools(&state.settings, &owner);
    crate::policy::check_tools(granted, names).map_err(|r| {
        let status = match r.code {
            "forbidden" => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        request::refuse(state, status, r.code, &r.message)
    })?;
    state
        .toolbox(Some(names))
        .await
        .map_err(|e| engine_error(state, &e))
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

/// What every response of one answer says about it.
struct Meta {
    id: String,
    created: u64,
    model: String,
    started: Instant,
    /// The server runs the answer's tools: their calls are not the client's to see as
    /// `tool_calls`.
    server_tools: bool,
    /// The answer's series in the metrics (its key and model).
    series: Arc<crate::metrics::Series>,
    /// The key's admission, settled with the answer's usage.
    charge: Option<crate::policy::quota::Charge>,
}

impl Meta {
    /// Counts the answer's usage against its key, if it has one.
    fn settle(&self, usage: Option<&Usage>) {
        if let Some(charge) = &self.charge {
            charge.settle(usage);
        }
    }
}

/// The models a request's `model` stands for (no name: the server's default), as a key's
/// globs judge them; a name that does not resolve is judged as written.
fn models_named(state: &AppState, model: Option<&str>) -> Vec<String> {
    let model = model.map(str::trim).filter(|m| !m.is_empty());
    match state.targets(model) {
        Ok(targets) => targets.iter().map(|t| t.reference.to_string()).collect(),
        Err(_) => model.map(str::to_owned).into_iter().collect(),
    }
}

/// A key's refusal as an HTTP answer: 403 for a model it may not use, 429 with `Retry-After`
/// over a rate limit or its budget, 503 when its limits cannot be checked.
fn refused(state: &AppState, refusal: &crate::policy::Refusal) -> Response {
    state.metrics.error(refusal.code);
    let status = match refusal.code {
        "forbidden" => StatusCode::FORBIDDEN,
        "rate_limited" | "budget_exceeded" => StatusCode::TOO_MANY_REQUESTS,
        "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response = api_error(status, refusal.code, &refusal.message);
    if let Some(seconds) = refusal.retry_after
        && let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string())
    {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, value);
    }
    response
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

/// `GET /v1/models`: every model a client can name here.
pub(crate) async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let data: Vec<Value> = state
        .model_names()
        .into_iter()
        .map(|(id, owner)| json!({ "id": id, "object": "model", "created": 0, "owned_by": owner }))
        .collect();
    Json(json!({ "object": "list", "data": data }))
}
