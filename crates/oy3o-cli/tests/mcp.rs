//! `oy3o mcp`: the config's MCP servers started and listed with their tools, against the real
//! `mcp-server-time` (and a test server of `tests/mcp/` that writes to stderr); a server that
//! cannot start is shown with its error and fails the command. Needs `scripts/setup`'s Python
//! packages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use oy3o_testkit::mcp::require_python;

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oy3o-cli-mcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn oy3o(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oy3o"))
        .args(args)
        .env_remove("OY3O_CONFIG")
        .env("HOME", home)
        .output()
        .unwrap()
}

#[test]
fn mcp_lists_each_servers_tools_and_a_server_that_cannot_start_fails_the_command() {
    require_python("mcp_server_time");
    require_python("mcp");
    let dir = dir();
    let dying = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/mcp/dying_server.py");
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[mcp.time]\ncommand = [\"python3\", \"-m\", \"mcp_server_time\", \"--local-timezone\", \"UTC\"]\n\
             [mcp.ghost]\ncommand = [\"oy3o-no-such-program\"]\n\
             [mcp.noisy]\ncommand = [\"python3\", {:?}]\n",
            dying.to_string_lossy()
        ),
    )
    .unwrap();
    let out = oy3o(&["mcp", "--config", config.to_str().unwrap()], &dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("time  ok, 2 tools"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("time__get_current_time") && l.contains(" get_current_time ")),
        "{stdout}"
    );
    assert!(
        stdout.contains("ghost  failed: MCP server `ghost`: cannot start \"oy3o-no-such-program\""),
        "{stdout}"
    );
    assert!(stdout.contains("noisy  ok, 3 tools"), "{stdout}");
    assert!(
        stderr.contains("1 of 3 MCP servers could not be reached"),
        "{stderr}"
    );
    // A child's stderr is captured, never shown.
    assert!(!stderr.contains("stderr noise"), "{stderr}");
}

#[test]
fn mcp_json_prints_one_line_per_server_with_options_before_the_subcommand() {
    require_python("mcp_server_time");
    let dir = dir();
    let config = dir.join("time.toml");
    std::fs::write(
        &config,
        "[mcp.time]\ncommand = [\"python3\", \"-m\", \"mcp_server_time\", \"--local-timezone\", \"UTC\"]\n",
    )
    .unwrap();
    let out = oy3o(
        &["--config", config.to_str().unwrap(), "mcp", "--json"],
        &dir,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["server"], "time");
    assert_eq!(lines[0]["ok"], true);
    let tools = lines[0]["tools"].as_array().unwrap();
    assert!(
        tools.iter().any(|t| t["name"] == "time__convert_time"
            && t["mcp_name"] == "convert_time"
            && t["parameters"]["type"] == "object"),
        "{stdout}"
    );
}

#[test]
fn mcp_with_a_bad_section_is_a_config_error_naming_its_line() {
    let dir = dir();
    let config = dir.join("bad.toml");
    std::fs::write(
        &config,
        "model = \"openai:gpt-4o-mini\"\n[mcp.both]\ncommand = [\"x\"]\nurl = \"http://127.0.0.1:1/mcp\"\n",
    )
    .unwrap();
    let out = oy3o(&["mcp", "--config", config.to_str().unwrap()], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("bad.toml line 2, key `mcp.both`"),
        "{stderr}"
    );
    // With no servers configured it says how to add one.
    let empty = dir.join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let out = oy3o(&["mcp", "--config", empty.to_str().unwrap()], &dir);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[mcp.time]"));
}
