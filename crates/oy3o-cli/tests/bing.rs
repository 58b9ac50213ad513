//! `oy3o --model bing --cookie cookie.json 'hello'` as a user runs it: a real process, the
//! Copilot simulator on a socket, a browser cookie export in a file.

use std::path::PathBuf;
use std::process::Stdio;

use oy3o_testkit::copilot::{self, CopilotSim, Turn};
use tokio::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A directory of its own for each test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oy3o-cli-bing-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the binary with a clean environment pointed at the simulator.
async fn oy3o(sim: &CopilotSim, dir: &std::path::Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_oy3o"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("BING_BASE_URL", sim.url())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_answer_streams_to_stdout_with_a_cookie_export_file() {
    let sim = CopilotSim::start().await;
    let dir = scratch("ok");
    std::fs::write(dir.join("cookie.json"), copilot::cookie_export()).unwrap();
    let run = oy3o(
        &sim,
        &dir,
        &["--model", "bing", "--cookie", "cookie.json", "hello"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "Turn 1: you said hello\n");
    assert_eq!(
        sim.sent()[0].cookies,
        ["MUID", "cf_clearance", "__Host-copilot-anon"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_cookies_exit_4_without_printing_them() {
    let sim = CopilotSim::start().await;
    let dir = scratch("expired");
    std::fs::write(
        dir.join("cookie.json"),
        r#"[{"name":"MUID","value":"old-muid-secret-77","domain":".microsoft.com"}]"#,
    )
    .unwrap();
    let run = oy3o(
        &sim,
        &dir,
        &["--model", "bing", "--cookie", "cookie.json", "hello"],
    )
    .await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("export them again"), "{}", run.stderr);
    assert!(!run.stderr.contains("old-muid-secret-77"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_check_exits_4_and_says_to_refresh_cf_clearance() {
    let sim = CopilotSim::start().await;
    sim.push(Turn::cloudflare());
    let dir = scratch("challenge");
    std::fs::write(dir.join("cookie.json"), copilot::cookie_export()).unwrap();
    let run = oy3o(
        &sim,
        &dir,
        &["--model", "copilot", "--cookie", "cookie.json", "hello"],
    )
    .await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("cf_clearance"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_bing_chat_resumes_in_a_second_process_on_its_copilot_conversation() {
    let sim = CopilotSim::start().await;
    let dir = scratch("resume");
    std::fs::write(dir.join("cookie.json"), copilot::cookie_export()).unwrap();
    let ask = |prompt: &'static str| {
        let (sim, dir) = (&sim, &dir);
        async move {
            let args = [
                "--chat",
                "trip",
                "--model",
                "bing",
                "--cookie",
                "cookie.json",
                prompt,
            ];
            oy3o(sim, dir, &args).await
        }
    };
    let first = ask("Plan a trip to Oslo.").await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let second = ask("And back?").await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.stdout, "Turn 2: you said And back?\n");
    assert_eq!(
        sim.starts(),
        1,
        "one Copilot conversation for both processes"
    );
    let sent = sim.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].conversation, sent[1].conversation);
    assert_eq!(sent[1].text, "And back?", "only the new prompt is sent");
}
