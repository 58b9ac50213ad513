//! The `oy3o 'prompt'` command as a user runs it: a real process, a fake provider on a socket.

use std::process::Stdio;

use oy3o_testkit::{FakeServer, openai};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with a clean environment (no keys, no user config) plus `env`.
async fn oy3o(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let home = std::env::temp_dir().join(format!("oy3o-cli-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oy3o"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_answer_streams_to_stdout_from_an_openai_compatible_server() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Hi", " there!"]).build());
    let base = server.base_url();
    let run = oy3o(
        &[
            "Say hi",
            "--model",
            "openai:gpt-4o-mini",
            "--context",
            "Be brief.",
        ],
        &[("OPENAI_BASE_URL", &base)],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "Hi there!\n");
    assert_eq!(
        server.requests()[0].json()["messages"],
        serde_json::json!([{"role":"system","content":"Be brief."},{"role":"user","content":"Say hi"}])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn piped_stdin_becomes_the_context_of_the_prompt() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Summary."]).build());
    let base = server.base_url();
    let run = oy3o(
        &["summarize", "--model", "openai:x"],
        &[("OPENAI_BASE_URL", &base)],
        Some("notes: the meeting moved to Friday\n"),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let messages = server.requests()[0].json()["messages"].clone();
    assert_eq!(messages[0]["role"], "system");
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .contains("moved to Friday")
    );
    assert_eq!(messages[1]["content"], "summarize");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_key_exits_4_and_names_the_variable_to_set() {
    let run = oy3o(&["hi", "--model", "openai:gpt-4o"], &[], None).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("OPENAI_API_KEY"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_config_file_exits_3_naming_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("oy3o-cli-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "model = \"openai:x\"\ntemprature = 1\n").unwrap();
    let run = oy3o(&["hi", "--config", path.to_str().unwrap()], &[], None).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("bad.toml line 2"), "{}", run.stderr);
    assert!(run.stderr.contains("temprature"), "{}", run.stderr);

    let unreadable = oy3o(&["hi", "--config", "/nonexistent/oy3o.toml"], &[], None).await;
    assert_eq!(unreadable.code, 3);
    assert!(unreadable.stderr.contains("/nonexistent/oy3o.toml"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_provider_exits_3_and_lists_the_known_ones() {
    let run = oy3o(&["hi", "--model", "nosuch:model"], &[], None).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("known providers"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_from_the_environment_is_sent_but_never_printed() {
    let server = FakeServer::start().await;
    server.push(openai::invalid_key());
    let base = server.base_url();
    let run = oy3o(
        &["hi", "--model", "openai:x"],
        &[
            ("OPENAI_BASE_URL", &base),
            ("OPENAI_API_KEY", "sk-live-secret-1234"),
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 4);
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer sk-live-secret-1234")
    );
    assert!(!run.stderr.contains("sk-live-secret-1234"));
}
