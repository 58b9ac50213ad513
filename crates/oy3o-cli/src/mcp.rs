//! `oy3o mcp [--json]`: the config's MCP servers, each started, with its tools (the name a
//! model sees, the server's own name, the first line of the description), or its error and
//! what to check. Fails (exit code by the first error's kind) when any server failed.

use oy3o::mcp::{McpServerTools, McpTools};
use oy3o::{Config, Error};
use serde_json::json;

/// Lists the servers: text, or one JSON line per server with `--json`.
pub async fn run(config: &Config, as_json: bool) -> Result<(), Error> {
    if config.mcp.is_empty() {
        eprintln!(
            "no MCP servers are configured; add one to the config (oy3o config path), e.g.\n\n\
             [mcp.time]\ncommand = [\"mcp-server-time\", \"--local-timezone\", \"UTC\"]\n\n\
             or, for a server over HTTP: url = \"http://127.0.0.1:8000/mcp\""
        );
        return Ok(());
    }
    let registry = McpTools::new(config);
    let servers = registry.list().await;
    registry.close().await;
    for server in &servers {
        if as_json {
            println!("{}", json_line(server));
        } else {
            print!("{}", text(server));
        }
    }
    let failed: Vec<&Error> = servers
        .iter()
        .filter_map(|s| s.tools.as_ref().err())
        .collect();
    match failed.first() {
        None => Ok(()),
        Some(first) => Err(Error::new(
            first.code(),
            format!(
                "{} of {} MCP servers could not be reached (see above)",
                failed.len(),
                servers.len()
            ),
        )),
    }
}

/// A server's block: its name and state, then one line per tool.
fn text(server: &McpServerTools) -> String {
    match &server.tools {
        Err(e) => format!("{}  failed: {}\n", server.name, e.message()),
        Ok(tools) => {
            let mut out = format!(
                "{}  ok, {} tool{}\n",
                server.name,
                tools.len(),
                if tools.len() == 1 { "" } else { "s" }
            );
            let width = tools.iter().map(|t| t.name.len()).max().unwrap_or(0);
            let mcp_width = tools.iter().map(|t| t.mcp_name.len()).max().unwrap_or(0);
            for tool in tools {
                let about = tool
                    .description
                    .as_deref()
                    .and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
                    .unwrap_or("");
                let line = format!(
                    "  {:<width$}  {:<mcp_width$}  {about}",
                    tool.name, tool.mcp_name
                );
                out.push_str(line.trim_end());
                out.push('\n');
            }
            out
        }
    }
}

/// A server as one JSON object.
fn json_line(server: &McpServerTools) -> serde_json::Value {
    match &server.tools {
        Err(e) => json!({
            "server": server.name,
            "ok": false,
            "error": {"code": e.code(), "message": e.message()},
        }),
        Ok(tools) => json!({
            "server": server.name,
            "ok": true,
            "tools": tools.iter().map(|t| json!({
                "name": t.name,
                "mcp_name": t.mcp_name,
                "description": t.description,
                "parameters": t.parameters,
            })).collect::<Vec<_>>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oy3o::ErrorCode;
    use oy3o::mcp::McpToolInfo;

    #[test]
    fn a_server_lists_each_tool_on_one_aligned_line_and_a_failure_says_why() {
        let ok = McpServerTools {
            name: "time".into(),
            tools: Ok(vec![
                McpToolInfo {
                    name: "time__get_current_time".into(),
                    mcp_name: "get_current_time".into(),
                    description: Some("\nGet the time.\nMore detail.".into()),
                    parameters: json!({"type": "object"}),
                },
                McpToolInfo {
                    name: "time__x".into(),
                    mcp_name: "x".into(),
                    description: None,
                    parameters: json!({"type": "object"}),
                },
            ]),
        };
        let listed = text(&ok);
        let lines: Vec<&str> = listed.lines().collect();
        assert_eq!(lines[0], "time  ok, 2 tools");
        assert_eq!(
            lines[1],
            "  time__get_current_time  get_current_time  Get the time."
        );
        assert_eq!(lines[2], format!("  {:<22}  x", "time__x"));
        let failed = McpServerTools {
            name: "ghost".into(),
            tools: Err(Error::new(
                ErrorCode::Config,
                "cannot start it; check `command`",
            )),
        };
        assert_eq!(
            text(&failed),
            "ghost  failed: cannot start it; check `command`\n"
        );
        assert_eq!(json_line(&failed)["error"]["code"], "config");
    }
}
