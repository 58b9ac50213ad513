//! # oy3o — the engine
//!
//! Chats with context and history, one-shot prompts, events and listeners, config, and the
//! providers that reach the models. The faces (terminal, WebSocket/HTTP server, Python) are
//! thin layers over this crate.
//!
//! - [`Conversations`] / [`Conversation`]: the one path faces take: open by owner and name,
//!   resume from the store, turns in send order, each recorded.
//! - [`Chat`]: `update(context)`, `send(prompt)` (a stream), `send_once`, `close`.
//! - [`exec`] / [`exec_once`]: one prompt, no history.
//! - [`exec_tasks`] / [`exec_tasks_chain`]: parallel tasks and staged chains across models.
//! - [`Config`]: the original library's shape, loaded from TOML or JSON.
//! - [`attachment`]: images, PDFs, documents and sounds from files, bytes or URLs, checked,
//!   and what each model can take ([`Capabilities`]).
//! - [`controls`]: which request controls each provider takes, and `extra_body`.
//! - [`structured`]: an answer that must follow a JSON Schema ([`Options::schema`]).
//! - [`Event`] and [`Listeners`]: everything a model reports besides text.
//! - [`provider`]: the [`Provider`]/[`Session`] model; [`providers`]: the registry.
//! - [`transport`]: HTTP with proxies, SSE/NDJSON decoding, retries, timeouts.
//! - [`tool_loop`]: tools the engine runs until the model answers; `mcp` (feature `mcp`):
//!   MCP servers' tools for it.
//!
//! What it is not: a UI, a server or a store; those live in their own crates.
//!
//! ```no_run
//! # async fn demo() -> oy3o::Result<()> {
//! let answer = oy3o::exec_once("What is 1+1?", None, Some("openai:gpt-4o-mini"), &oy3o::Config::default()).await?;
//! println!("{answer}");
//! # Ok(()) }
//! ```

pub mod attachment;
mod chat;
pub mod config;
pub mod controls;
pub mod conversation;
mod credential;
mod error;
mod event;
mod exec;
mod fallback;
mod listener;
#[cfg(feature = "mcp")]
pub mod mcp;
mod message;
mod model_ref;
pub mod price;
pub mod provider;
pub mod providers;
mod reply;
pub mod structured;
mod tasks;
pub mod tool;
pub mod tool_loop;
pub mod trace;
pub mod transport;

pub use attachment::Capabilities;
pub use chat::Chat;
pub use config::{
    Alias, Config, DEFAULT_MODEL, McpServerConfig, Options, ProviderSettings, Reasoning, Target,
    Timeouts,
};
pub use conversation::{Conversation, Conversations, Opening};
pub use credential::Credential;
pub use error::{Error, ErrorCode, Result};
pub use event::{Citation, Event, LIFECYCLE_EVENTS, Usage};
pub use exec::{exec, exec_once};
pub use listener::{Listener, Listeners};
pub use message::{Message, Part, Role, Source, require_supported};
pub use model_ref::ModelRef;
pub use provider::{Provider, Session};
pub use reply::{Output, Outputs, Reply};
pub use tasks::{
    Chain, DEFAULT_CONCURRENCY, Stage, StageResult, Task, TaskPlace, TaskResult, current_task,
    exec_tasks, exec_tasks_chain, exec_tasks_chain_once, exec_tasks_once,
};
pub use tool::{ToolCall, ToolCallDelta, ToolChoice, ToolSpec, Tools};

/// The event names a model's provider can emit: the lifecycle ones plus its own, so that
/// `events("bing")` can seed a listener map as in the original library.
///
/// ```
/// let names = oy3o::events("openai").unwrap();
/// assert!(names.contains(&"result") && names.contains(&"reasoning"));
/// assert!(oy3o::events("nosuch").is_err());
/// ```
pub fn events(model: &str) -> Result<Vec<&'static str>> {
    let reference = ModelRef::parse(model)?;
    let provider = providers::find(&reference.provider).ok_or_else(|| {
        Error::new(
            ErrorCode::NotFound,
            format!(
                "unknown provider {:?}; known providers: {}",
                reference.provider,
                providers::names().join(", ")
            ),
        )
    })?;
    let mut names: Vec<&'static str> = LIFECYCLE_EVENTS.to_vec();
    for name in provider.info().events {
        if !names.contains(name) {
            names.push(name);
        }
    }
    Ok(names)
}
