//! MCP tools by name for the Python face: one [`McpTools`] per distinct set of `[mcp.NAME]`
//! sections, shared by every call made under it, so each server starts once and is kept until
//! the interpreter exits ([`close_mcp_servers`], registered with `atexit` by the package).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use oy3o::config::McpServerConfig;
use oy3o::mcp::McpTools;
use oy3o::tool_loop::Tool;
use pyo3::prelude::*;

use crate::convert;
use crate::runtime::runtime;

type Registries = Vec<(BTreeMap<String, McpServerConfig>, McpTools)>;

fn registries() -> MutexGuard<'static, Registries> {
    static REGISTRIES: Mutex<Registries> = Mutex::new(Vec::new());
    REGISTRIES.lock().unwrap_or_else(|p| p.into_inner())
}

/// The registry of `config`'s MCP servers: the one already made for the same sections, else a
/// new one (no server started yet).
pub fn registry(config: &oy3o::Config) -> McpTools {
    let mut all = registries();
    if let Some((_, mcp)) = all.iter().find(|(servers, _)| *servers == config.mcp) {
        return mcp.clone();
    }
    let mcp = McpTools::new(config);
    all.push((config.mcp.clone(), mcp.clone()));
    mcp
}

/// The tools `names` pick from `mcp` (starting the servers they need), waited for with the GIL
/// released. An unknown name is an error that lists what exists.
pub fn resolve(py: Python<'_>, mcp: &McpTools, names: &[String]) -> PyResult<Vec<Arc<dyn Tool>>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rt = runtime()?;
    let asked: Vec<&str> = names.iter().map(String::as_str).collect();
    py.detach(|| rt.block_on(mcp.tools(&asked)))
        .map_err(convert::to_py_err)
}

/// Gives the tasks that name tools their toolboxes from `config`'s shared registry, before any
/// task runs: an unknown name is raised now.
pub fn equip<'a>(
    py: Python<'_>,
    config: &oy3o::Config,
    tasks: impl IntoIterator<Item = &'a mut oy3o::Task>,
) -> PyResult<()> {
    let named: Vec<&mut oy3o::Task> = tasks
        .into_iter()
        .filter(|t| t.tools.as_ref().is_some_and(|n| !n.is_empty()))
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    let mcp = registry(config);
    let rt = runtime()?;
    py.detach(|| rt.block_on(mcp.equip(named)))
        .map_err(convert::to_py_err)
}

/// Stops every MCP server the face started, waiting up to 5 s (the GIL released). The package
/// calls it at interpreter exit, so no child server outlives the program.
#[pyfunction]
pub fn close_mcp_servers(py: Python<'_>) {
    let all: Registries = std::mem::take(&mut *registries());
    if all.is_empty() {
        return;
    }
    let Ok(rt) = runtime() else { return };
    py.detach(|| {
        rt.block_on(async {
            let closing = futures::future::join_all(all.iter().map(|(_, mcp)| mcp.close()));
            let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
        })
    });
}
