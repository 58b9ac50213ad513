//! Tools from MCP servers (the Model Context Protocol), through the official Rust SDK
//! (`rmcp`). The servers are the config's `[mcp.NAME]` sections: a child process over stdio
//! (`command = [...]`) or streamable HTTP (`url = "..."`). [`McpTools`] starts each on first
//! use, keeps it, and starts it again after it died; its tools go into a turn's
//! [`Toolbox`](crate::tool_loop::Toolbox) by name (`time` for all of a server's tools,
//! `time.get_current_time` for one), named for models as [`model_names`] says.
//!
//! What a call gives back becomes the text the model reads: text joined, structured content as
//! JSON text, other content as a short note; an MCP error result, a server that dies during a
//! call and a call that runs out of time are all error results, never a failed turn.
//!
//! What it is not: an MCP server, or a client of MCP prompts and resources (tools only).

mod connect;
mod content;
mod names;
mod registry;
mod server;
mod stderr;

pub use names::{SEPARATOR, model_names};
pub use registry::{McpServerTools, McpToolInfo, McpTools};
