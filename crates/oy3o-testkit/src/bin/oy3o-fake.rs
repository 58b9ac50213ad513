//! `oy3o-fake copilot`: runs the Copilot simulator for tests in other processes (Python,
//! shell). Prints the base URL on the first line of stdout and the accepted cookie export (a
//! JSON list) on the second, then serves until it is killed or its stdin closes.

use std::io::Write;

use tokio::io::AsyncReadExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let kind = std::env::args().nth(1).unwrap_or_default();
    if kind != "copilot" {
        eprintln!(
            "usage: oy3o-fake copilot\n  starts the Copilot simulator; prints its URL and a cookie export"
        );
        return std::process::ExitCode::from(2);
    }
    let sim = oy3o_testkit::copilot::CopilotSim::start().await;
    let mut out = std::io::stdout().lock();
    let printed = writeln!(out, "{}", sim.url())
        .and_then(|()| writeln!(out, "{}", oy3o_testkit::copilot::cookie_export()))
        .and_then(|()| out.flush());
    drop(out);
    if printed.is_err() {
        return std::process::ExitCode::FAILURE;
    }
    // A parent that dies closes our stdin: stop with it rather than linger.
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    std::process::ExitCode::SUCCESS
}
