//! # oy3o-testkit
//!
//! Fake provider servers for tests: real TCP sockets on loopback, speaking each provider's
//! recorded wire format byte for byte (`shared/wire/PROVIDERS.md`), with scripted faults: error
//! statuses with headers, slow chunks, stalls, cuts mid-stream, events split at any byte
//! (inside UTF-8 characters too), CRLF framing and `: keep-alive` comments. Also a small HTTP
//! proxy (CONNECT and absolute-form) to check that proxy settings are honoured.
//!
//! Not for production use; nothing here is tuned for speed or safety.

pub mod openai;
mod proxy;
mod server;

pub use proxy::HttpProxy;
pub use server::{FakeServer, Part, RecordedRequest, Responder, Scripted, SseScript};
