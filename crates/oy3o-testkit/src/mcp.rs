//! The real MCP servers the tests run (installed from the Python package registry by
//! `scripts/setup`): how to start them, and a clear failure when they are missing.

/// The reference time server over stdio, in UTC.
pub const TIME_SERVER: [&str; 5] = [
    "python3",
    "-m",
    "mcp_server_time",
    "--local-timezone",
    "UTC",
];

/// The time server as a config's `[mcp.time]` section.
pub const TIME_SERVER_TOML: &str = "[mcp.time]\ncommand = [\"python3\", \"-m\", \"mcp_server_time\", \"--local-timezone\", \"UTC\"]\n";

/// Fails, saying to run `scripts/setup`, unless Python can import `module` (`mcp_server_time`,
/// `mcp_server_git`, `mcp`).
pub fn require_python(module: &str) {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the Python module `{module}` is missing: run scripts/setup (it installs mcp-server-time, \
         mcp-server-git and mcp)"
    );
}
