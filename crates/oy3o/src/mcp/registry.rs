//! [`McpTools`]: the configured MCP servers' tools, picked by name for a turn's [`Toolbox`], and
//! listed for `oy3o mcp`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use super::connect::start_timeout;
use super::names::model_names;
use super::server::Server;
use crate::config::{Config, McpServerConfig};
use crate::error::{Error, ErrorCode, Result};
use crate::tool::ToolSpec;
use crate::tool_loop::{Tool, Toolbox};

/// The MCP servers of a config and their tools, shared by every face. Cheap to clone (clones
/// share the servers). A server is started on first use and kept; one that died is started
/// again on its next use. When the last clone, and the last toolbox made from it, is dropped,
/// child servers are stopped.
///
/// ```no_run
/// # async fn demo(config: oy3o::Config) -> oy3o::Result<()> {
/// let mcp = oy3o::mcp::McpTools::new(&config);
/// // Every tool of the server `time`, and one tool of `git`.
/// let toolbox = mcp.toolbox(&["time", "git.git_status"]).await?;
/// let options = oy3o::Options { toolbox: Some(std::sync::Arc::new(toolbox)), ..Default::default() };
/// # let _ = options; Ok(()) }
/// ```
#[derive(Clone)]
pub struct McpTools {
    servers: Arc<BTreeMap<String, Arc<Server>>>,
}

/// One tool of a server, as `oy3o mcp` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct McpToolInfo {
    /// The name models see (`time__get_current_time`).
    pub name: String,
    /// The server's own name for it (`get_current_time`); pick it with `server.tool`.
    pub mcp_name: String,
    /// What it does.
    pub description: Option<String>,
    /// The JSON Schema of its arguments.
    pub parameters: Value,
}

/// A server and its tools, or why they could not be listed.
#[derive(Debug)]
pub struct McpServerTools {
    /// The server's name (`[mcp.NAME]`).
    pub name: String,
    /// Its tools, or the error that starting it gave (it says what to check).
    pub tools: Result<Vec<McpToolInfo>>,
}

impl McpTools {
    /// The servers of `config.mcp`; none is started yet.
    pub fn new(config: &Config) -> Self {
        Self::of(&config.mcp)
    }

    /// These servers; none is started yet.
    pub fn of(servers: &BTreeMap<String, McpServerConfig>) -> Self {
        let servers = servers
            .iter()
            .map(|(name, config)| {
                let server = Server::new(name.clone(), config.clone());
                (name.clone(), Arc::new(server))
            })
            .collect();
        Self {
            servers: Arc::new(servers),
        }
    }

    /// The configured servers' names, in order.
    pub fn server_names(&self) -> Vec<&str> {
        self.servers.keys().map(String::as_str).collect()
    }

    /// The tools `names` pick, each a server (`time`: all its tools) or one tool
    /// (`time.get_current_time`), starting the servers they need. Tools are named for models
    /// as [`model_names`](super::model_names) says. An unknown name is an error that lists what
    /// exists; a server that cannot start, an error that says what to check.
    pub async fn tools(&self, names: &[&str]) -> Result<Vec<Arc<dyn Tool>>> {
        let mut wanted: Vec<(&Arc<Server>, Option<&str>)> = Vec::new();
        for name in names {
            let (server, tool) = match name.split_once('.') {
                Some((server, tool)) => (server, Some(tool)),
                None => (*name, None),
            };
            wanted.push((self.server(server)?, tool));
        }
        let mut needed: Vec<&Arc<Server>> = Vec::new();
        for (server, _) in &wanted {
            if !needed.iter().any(|n| Arc::ptr_eq(n, server)) {
                needed.push(server);
            }
        }
        let listed = futures::future::join_all(needed.iter().map(|s| s.tools())).await;
        let mut by_server = BTreeMap::new();
        for (server, tools) in needed.iter().zip(listed) {
            by_server.insert(server.name.as_str(), tools?);
        }
        let mut picked: Vec<(&Arc<Server>, &rmcp::model::Tool)> = Vec::new();
        for (server, tool) in wanted {
            let tools = &by_server[server.name.as_str()];
            let chosen: Vec<&rmcp::model::Tool> = match tool {
                None => tools.iter().collect(),
                Some(tool) => match tools.iter().find(|t| t.name == tool) {
                    Some(t) => vec![t],
                    None => {
                        let known: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
                        return Err(Error::new(
                            ErrorCode::NotFound,
                            format!(
                                "the MCP server `{}` has no tool `{tool}`; its tools are: {}",
                                server.name,
                                or_none(&known)
                            ),
                        ));
                    }
                },
            };
            for t in chosen {
                let seen = picked
                    .iter()
                    .any(|(s, p)| Arc::ptr_eq(s, server) && p.name == t.name);
                if !seen {
                    picked.push((server, t));
                }
            }
        }
        let pairs: Vec<(&str, &str)> = picked
            .iter()
            .map(|(s, t)| (s.name.as_str(), t.name.as_ref()))
            .collect();
        let names = model_names(&pairs);
        Ok(picked
            .into_iter()
            .zip(names)
            .map(|((server, tool), name)| {
                Arc::new(McpTool {
                    spec: spec_of(name, tool),
                    server: server.clone(),
                    mcp_name: tool.name.to_string(),
                }) as Arc<dyn Tool>
            })
            .collect())
    }

    /// A [`Toolbox`] of the tools `names` pick (see [`tools`](Self::tools)). Each tool is
    /// bounded by its own server's limits (to start again, then `timeout_secs` for the call),
    /// which stop a call with their clearer messages before the toolbox's would.
    pub async fn toolbox(&self, names: &[&str]) -> Result<Toolbox> {
        Toolbox::new(self.tools(names).await?)
    }

    /// Gives each task that names [`Task::tools`](crate::Task::tools) its toolbox, one per
    /// distinct list of names (tasks naming the same tools share it). An unknown name is an
    /// error naming the task.
    pub async fn equip<'a>(
        &self,
        tasks: impl IntoIterator<Item = &'a mut crate::Task>,
    ) -> Result<()> {
        let mut made: Vec<(Vec<String>, Arc<Toolbox>)> = Vec::new();
        for task in tasks {
            let Some(names) = task.tools.as_ref().filter(|n| !n.is_empty()) else {
                continue;
            };
            let toolbox = match made.iter().find(|(n, _)| n == names) {
                Some((_, toolbox)) => toolbox.clone(),
                None => {
                    let asked: Vec<&str> = names.iter().map(String::as_str).collect();
                    let toolbox = Arc::new(self.toolbox(&asked).await.map_err(|e| {
                        Error::new(e.code(), format!("task {}: {}", task.label(), e.message()))
                    })?);
                    made.push((names.clone(), toolbox.clone()));
                    toolbox
                }
            };
            task.toolbox = Some(toolbox);
        }
        Ok(())
    }

    /// Every server with its tools or its error, starting them all (at once).
    pub async fn list(&self) -> Vec<McpServerTools> {
        let listed = futures::future::join_all(self.servers.values().map(|s| s.tools())).await;
        self.servers
            .values()
            .zip(listed)
            .map(|(server, tools)| McpServerTools {
                name: server.name.clone(),
                tools: tools.map(|tools| {
                    let pairs: Vec<(&str, &str)> = tools
                        .iter()
                        .map(|t| (server.name.as_str(), t.name.as_ref()))
                        .collect();
                    tools
                        .iter()
                        .zip(model_names(&pairs))
                        .map(|(tool, name)| McpToolInfo {
                            name,
                            mcp_name: tool.name.to_string(),
                            description: tool.description.as_ref().map(|d| d.to_string()),
                            parameters: Value::Object((*tool.input_schema).clone()),
                        })
                        .collect()
                }),
            })
            .collect()
    }

    /// Stops every started server and waits for them (a child gets its stdin closed, then a
    /// signal). Dropping the registry does the same in the background.
    pub async fn close(&self) {
        futures::future::join_all(self.servers.values().map(|s| s.close())).await;
    }

    fn server(&self, name: &str) -> Result<&Arc<Server>> {
        self.servers.get(name).ok_or_else(|| {
            let message = if self.servers.is_empty() {
                format!(
                    "unknown MCP server `{name}`: no MCP servers are configured; add a \
                     section [mcp.{name}] with `command = [...]` or `url = \"...\"` to the config"
                )
            } else {
                format!(
                    "unknown MCP server `{name}`; the configured ones are: {} (name a server, \
                     or one tool as SERVER.TOOL)",
                    self.server_names().join(", ")
                )
            };
            Error::new(ErrorCode::NotFound, message)
        })
    }
}

impl std::fmt::Debug for McpTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTools")
            .field("servers", &self.server_names())
            .finish()
    }
}

fn or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn spec_of(name: String, tool: &rmcp::model::Tool) -> ToolSpec {
    ToolSpec {
        name,
        description: tool.description.as_ref().map(|d| d.to_string()),
        parameters: Some(Value::Object((*tool.input_schema).clone())),
        strict: None,
    }
}

/// One MCP tool in a [`Toolbox`]: calls go to its server under the tool's own name.
struct McpTool {
    spec: ToolSpec,
    server: Arc<Server>,
    mcp_name: String,
}

impl Tool for McpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, arguments: Value) -> BoxFuture<'static, std::result::Result<String, String>> {
        let server = self.server.clone();
        let tool = self.mcp_name.clone();
        async move { server.call(&tool, arguments).await }.boxed()
    }

    fn timeout(&self) -> Option<Duration> {
        // A second past the server's own limits, so theirs speak first.
        let config = &self.server.config;
        Some(start_timeout(config) + config.timeout + Duration::from_secs(1))
    }
}
