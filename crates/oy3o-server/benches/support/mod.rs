//! What the server's bench binaries share: `oy3o serve` started against a fake upstream (and
//! killed when dropped), and a process's resident memory.

// Each bench binary uses its own part of these.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The processes under test; killed when dropped, also when a check panics.
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("port")
        .port()
}

/// The `oy3o` binary next to this benchmark (scripts/bench builds it), or the one
/// `OY3O_BENCH_BINARY` names (to compare two builds in turn).
pub fn oy3o_binary() -> PathBuf {
    if let Some(given) = std::env::var_os("OY3O_BENCH_BINARY") {
        return PathBuf::from(given);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let binary = dir.join("oy3o");
    assert!(
        binary.exists(),
        "build the CLI first: cargo build --release -p oy3o-cli"
    );
    binary
}

pub fn spawn_oy3o(dir: &std::path::Path, upstream: SocketAddr, store: &str) -> (Child, SocketAddr) {
    spawn_oy3o_with(&oy3o_binary(), dir, upstream, store)
}

/// `oy3o serve` from `binary` on a free port in front of `upstream`.
pub fn spawn_oy3o_with(
    binary: &std::path::Path,
    dir: &std::path::Path,
    upstream: SocketAddr,
    store: &str,
) -> (Child, SocketAddr) {
    let port = free_port();
    // One file per server: several may start at once.
    let config = dir.join(format!("oy3o-{port}.toml"));
    std::fs::write(
        &config,
        format!(
            "model = \"openai:bench\"\nstore = {store:?}\n\n[providers.openai]\nbase_url = \"http://{upstream}/v1\"\napi_key = \"sk-bench\"\nmax_retries = 0\n"
        ),
    )
    .expect("config");
    let child = Command::new(binary)
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--config",
        ])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start oy3o serve");
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Resident memory of a process, in KiB, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
