//! `GET /chats`: the stored chats of the client's owner (the token it sent), the last used
//! first, for the web page's list. A listed chat is reopened over the WebSocket with
//! `{"id": ID, "history": true}` (its turns come back as `history` events, and the next prompt
//! on that id continues it), so this route only lists.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use oy3o_store::ChatSummary;
use serde_json::{Value, json};

use super::openai::api_error;
use crate::state::AppState;

/// `{"store": "off" | "ok" | "failing" | "unavailable", "chats": [{id, title, model, turns,
/// created_at, last_at}]}`: only named chats (one-shot prompts cannot be continued), and only
/// the owner's. Without a store the list is empty and `store` says why.
pub(crate) async fn chats(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let status = state.store.health()["status"].clone();
    let Some(open) = state.store.open_store() else {
        return Json(json!({ "store": status, "chats": [] })).into_response();
    };
    let owner = crate::auth::owner(&state.settings, &headers, uri.query());
    match open.chats(&owner).await {
        Some(chats) => {
            let listed: Vec<Value> = chats.iter().filter_map(listed).collect();
            Json(json!({ "store": status, "chats": listed })).into_response()
        }
        None => {
            state.metrics.error("store_unavailable");
            api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store could not be read (the server's log says why); try again later",
            )
        }
    }
}

/// One named chat as the list shows it; `None` for a one-shot prompt's chat.
fn listed(summary: &ChatSummary) -> Option<Value> {
    let name = summary.chat.name.as_deref()?;
    Some(json!({
        "id": name,
        "title": summary.first_prompt,
        "model": summary.chat.model,
        "turns": summary.turns,
        "created_at": summary.chat.created_at,
        "last_at": summary.last_at,
    }))
}
