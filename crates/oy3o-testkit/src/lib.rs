//! # oy3o-testkit
//!
//! Fake provider servers for tests: real TCP sockets on loopback, speaking each provider's
//! recorded wire format byte for byte (`shared/wire/PROVIDERS.md`), with scripted faults: error
//! statuses with headers, slow chunks, stalls, cuts mid-stream, clean ends without the terminal
//! event, events split at any byte (inside UTF-8 characters too), CRLF framing and
//! `: keep-alive` comments. Also a small HTTP proxy (CONNECT and absolute-form) to check that
//! proxy settings are honoured, and a SOCKS5 one ([`Socks5Proxy`]).
//!
//! One module per wire format, each with realistic streams and error replies: [`openai`]
//! (Chat Completions), [`responses`] (OpenAI Responses), [`anthropic`] (Messages), [`gemini`]
//! (`streamGenerateContent?alt=sse`) and [`ollama`] (native `/api/chat` NDJSON); [`copilot`]
//! simulates Copilot's web chat (HTTP start plus its WebSocket) for the `bing` provider. The
//! [`image`] holds the shared test image and the "image echo" replies each fake gives to a
//! request that carries one (`shared/wire/TOOLS.md` §7.0). The `oy3o-fake` binary runs a simulator for tests in other processes. [`postgres`] starts a
//! throwaway real PostgreSQL server for the store's tests,
//! [`redis`] a throwaway real Redis server for the limits shared by server instances.
//! [`multipart`] reads `multipart/form-data` uploads strictly, for the fakes that take them.
//!
//! Not for production use; nothing here is tuned for speed or safety.

pub mod anthropic;
pub mod copilot;
pub mod gemini;
pub mod image;
mod listen;
pub mod mcp;
pub mod multipart;
pub mod ollama;
pub mod openai;
pub mod postgres;
mod proxy;
pub mod redis;
pub mod responses;
mod server;
mod socks;
pub mod upstream;

pub use proxy::HttpProxy;
pub use server::{FakeServer, NdjsonScript, Part, RecordedRequest, Responder, Scripted, SseScript};
pub use socks::Socks5Proxy;
