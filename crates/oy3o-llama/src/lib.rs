//! In-process chat inference on GGUF models through llama.cpp, and pulling known models.
//!
//! This crate is the engine behind oy3o's `local` provider, and knows nothing of the engine:
//! - [`Runtime`] loads models lazily (one OS thread per loaded model, never a tokio worker),
//!   queues requests per model in arrival order, streams [`Piece`]s back, stops when the
//!   receiver is dropped, and keeps the KV cache between turns so a chat's next turn reads only
//!   its new tokens.
//! - [`ChatTemplate`] renders conversations with the model's own Jinja template, tools
//!   included when the template shows them; tool calls in the answer come out as
//!   [`Piece::ToolCall`]s.
//! - [`Grammar`] holds an answer to JSON of a schema, or to a tool call.
//! - [`ensure_model`] turns `smollm2` (see [`CATALOG`]) or a path into a verified `.gguf` file,
//!   downloading with resume and checking size and SHA-256.
//!
//! It does not speak any HTTP API and holds no conversation state beyond the KV cache.

#![warn(missing_docs)]

mod backend;
mod catalog;
mod chat;
mod error;
mod grammar;
mod model_thread;
mod pull;
mod repetition;
mod runtime;
mod stop;
mod template;
mod text;
mod tool_calls;
mod tools;

pub use catalog::{CATALOG, CatalogModel, TEMPLATE_CHECK_QUESTION, find_model};
pub use chat::{
    ChatMessage, ChatRequest, DEFAULT_MIN_P, DEFAULT_REPEAT_PENALTY, DEFAULT_TOP_K, DEFAULT_TOP_P,
    Finish, GenerateOptions, Loop, Piece, REPEAT_WINDOW, RenderedPrompt, Stats, ToolCall,
    ToolDefinition,
};
pub use error::{LlamaError, PullError, SourceFailure};
pub use grammar::Grammar;
pub use pull::{
    PullProgress, SOURCES_ENV, Source, default_cache_dir, ensure_model, ensure_model_from,
};
pub use runtime::{Runtime, RuntimeOptions};
pub use template::{CHATML_TEMPLATE, ChatTemplate};
pub use tools::file_takes_tools;
