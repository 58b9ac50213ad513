//! Shared transport for every HTTP provider: pooled clients ([`client`]), Server-Sent Events
//! ([`sse`]) and NDJSON ([`ndjson`]) decoding, retry rules ([`retry`]) and the request and body
//! handling with timeouts ([`http`]), WebSocket connections through proxies ([`websocket`]),
//! `multipart/form-data` file uploads ([`multipart`]), and the one TLS setup of them all
//! (`tls`: the platform's roots, loaded at the first handshake).

pub mod client;
pub mod http;
pub mod multipart;
pub mod ndjson;
pub mod retry;
pub mod sse;
pub(crate) mod tls;
pub mod websocket;
