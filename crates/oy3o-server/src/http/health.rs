//! `GET /health`: liveness, open without a token.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::state::AppState;

/// `{"status": "ok", "version": …}`.
pub(crate) async fn health(State(_state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
