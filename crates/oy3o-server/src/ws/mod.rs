//! The WebSocket face: the original library's protocol (see [`protocol`]), many chats per
//! connection, replies multiplexed by `id` / `ref`.

pub(crate) mod connection;
pub(crate) mod limits;
pub(crate) mod outbox;
pub(crate) mod panics;
pub(crate) mod protocol;
pub(crate) mod reply;

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;

use crate::state::AppState;

/// Read buffer of a connection: small, so that thousands of idle connections stay cheap; it
/// grows for large frames.
const READ_BUFFER: usize = 4 << 10;

/// Accepts the upgrade with the frame-size cap and serves the connection.
/// `owner` is whose stored chats the connection sees (see `auth::owner`).
pub(crate) fn upgrade(
    state: Arc<AppState>,
    ws: WebSocketUpgrade,
    identity: crate::auth::Identity,
) -> Response {
    let cap = limits::protocol_max(state.settings.limits.max_frame_bytes);
    ws.max_message_size(cap)
        .max_frame_size(cap)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(16 << 10)
        .on_upgrade(move |socket| connection::run(socket, state, identity))
}
