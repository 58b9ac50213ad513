//! `GET /health`: liveness, open without a token; the details (version, store) only with one.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use serde_json::{Value, json};

use crate::state::AppState;

/// `{"status": "ok"}` for anyone; with the token (or on a server without one) also the
/// version and `{"store": {"status": …}}`: the server answers even when its store is
/// unavailable or failing (`store.status` says so), but its connection string and errors are
/// not for whoever can reach the port.
pub(crate) async fn health(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Json<Value> {
    if crate::auth::identify(&state, &headers, uri.query())
        .await
        .is_none()
    {
        return Json(json!({ "status": "ok" }));
    }
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "store": state.store.health(),
        "limits": state.quotas.counters_kind(),
    }))
}
