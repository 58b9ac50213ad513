//! The HTTP face on the same port: the routes, the request metrics and the guard in front.

pub(crate) mod chats;
pub(crate) mod errors;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod openai;
pub(crate) mod page;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use tracing::Instrument as _;

use crate::metrics::Route;
use crate::state::AppState;

/// Every route, behind the guard (token, origin, host) and the request metrics.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/ws", get(websocket))
        .route("/chats", get(chats::chats))
        .route("/v1/chat/completions", post(openai::completions))
        .route("/v1/models", get(openai::models))
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.settings.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::guard,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

/// `GET /`: the WebSocket for clients that upgrade (the original protocol lives at the root),
/// the web chat page for browsers.
async fn root(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<crate::auth::Identity>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match ws {
        Ok(ws) => crate::ws::upgrade(state, ws, identity),
        Err(_) => page::page(state.settings.limits.max_frame_bytes).await,
    }
}

/// `GET /ws`: the WebSocket only.
async fn websocket(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<crate::auth::Identity>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match ws {
        Ok(ws) => crate::ws::upgrade(state, ws, identity),
        Err(e) => e.into_response(),
    }
}

async fn not_found() -> Response {
    openai::api_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; try POST /v1/chat/completions, GET /v1/models, GET /chats, GET /health, GET /metrics or GET /",
    )
}

/// Counts and times every request (to its response head), and gives every error OpenAI's
/// shape (one layer for both: each layer costs every request a boxed future).
async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let upgrade = request.headers().contains_key(header::UPGRADE);
    let route = Route::of(request.uri().path(), upgrade);
    let started = Instant::now();
    state.metrics.http_started();
    let span = crate::spans::http_request(request.method().as_str(), route, request.uri().path());
    let response = errors::openai_shape(request, next)
        .instrument(span.clone())
        .await;
    let status = response.status().as_u16();
    crate::spans::http_response(&span, status);
    state
        .metrics
        .http_finished(route, status, started.elapsed());
    response
}
