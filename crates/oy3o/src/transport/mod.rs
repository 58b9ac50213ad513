//! Shared transport for every HTTP provider: pooled clients ([`client`]), Server-Sent Events
//! ([`sse`]) and NDJSON ([`ndjson`]) decoding, retry rules ([`retry`]) and the request and body
//! handling with timeouts ([`http`]), and WebSocket connections through proxies ([`websocket`]).

pub mod client;
pub mod http;
pub mod ndjson;
pub mod retry;
pub mod sse;
pub mod websocket;
