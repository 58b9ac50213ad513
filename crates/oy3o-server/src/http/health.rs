//! `GET /health`: liveness, open without a token.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::state::AppState;

/// `{"status": "ok", "version": …, "store": {"status": …}}`: the server answers even when its
/// store is unavailable or failing (`store.status` says so).
pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "store": state.store.health(),
    }))
}
