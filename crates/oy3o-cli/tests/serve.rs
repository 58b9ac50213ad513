//! `oy3o serve` as a process: it prints the address it listens on, answers over WebSocket and
//! HTTP with the fake upstream, reads `[server]` from the config, and refuses an open bind
//! without a token.

use std::process::Stdio;

use futures::{SinkExt, StreamExt};
use oy3o_testkit::{FakeServer, openai};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

fn oy3o(args: &[&str], base: &str, tag: &str) -> Command {
    let home = std::env::temp_dir().join(format!("oy3o-serve-home-{tag}-{}", std::process::id()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_oy3o"));
    command
        .args(args)
        .env_clear()
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("OPENAI_BASE_URL", base)
        .env("OY3O_MODEL", "openai:gpt-4o-mini")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts `oy3o serve ARGS` and returns the child and the address from its first line.
async fn serve(args: &[&str], base: &str, tag: &str) -> (Child, String) {
    let mut child = oy3o(args, base, tag).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .expect("the server starts")
        .unwrap()
        .expect("a first line");
    let addr = line
        .strip_prefix("listening on http://")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    (child, addr)
}

async fn echo() -> FakeServer {
    let fake = FakeServer::start().await;
    fake.respond(|r| {
        let answer = format!("ANSWER({})", openai::prompt_of(r));
        openai::answer(&[answer.as_str()]).build()
    });
    fake
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_prints_its_address_and_answers_over_websocket_and_http() {
    let fake = echo().await;
    let (mut child, addr) = serve(&["serve", "--port", "0"], &fake.base_url(), "plain").await;
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    ws.send(Message::Text(
        json!({"id": "a", "model": "openai", "prompt": "hi"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut text = String::new();
    while let Some(Ok(Message::Text(frame))) = ws.next().await {
        let frame: Value = serde_json::from_str(&frame).unwrap();
        match frame["type"].as_str() {
            Some("message") => text.push_str(frame["message"].as_str().unwrap()),
            Some("signal") => break,
            _ => {}
        }
    }
    assert_eq!(text, "ANSWER(hi)");

    let body: Value = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&json!({"messages": [{"role": "user", "content": "http"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "ANSWER(http)");
    assert_eq!(body["model"], "openai:gpt-4o-mini");
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_takes_the_token_and_limits_from_the_config_file() {
    let fake = echo().await;
    let dir = std::env::temp_dir().join(format!("oy3o-serve-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("oy3o.toml");
    std::fs::write(
        &path,
        "[server]\nport = 0\ntoken = \"from-file\"\nmax_chats = 1\n",
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let (mut child, addr) = serve(&["serve", "--config", config], &fake.base_url(), "file").await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/v1/models");
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        http.get(&url)
            .bearer_auth("from-file")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/?token=from-file"))
        .await
        .unwrap();
    for id in ["a", "b"] {
        ws.send(Message::Text(
            json!({"id": id, "model": "openai"}).to_string().into(),
        ))
        .await
        .unwrap();
    }
    let mut frames = Vec::new();
    while frames.len() < 2 {
        if let Some(Ok(Message::Text(frame))) = ws.next().await {
            frames.push(serde_json::from_str::<Value>(&frame).unwrap());
        }
    }
    assert_eq!(frames[0]["event"], "create");
    assert_eq!(frames[1]["code"], "limit");
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_an_open_address_without_a_token() {
    let out = oy3o(
        &["serve", "--host", "0.0.0.0", "--port", "0"],
        "http://127.0.0.1:9/v1",
        "open",
    )
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without a token") && stderr.contains("--token"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_port_in_use_is_a_network_error_exit_5() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = oy3o(
        &["serve", "--port", &port, "--store", "none"],
        "http://127.0.0.1:9/v1",
        "busy",
    )
    .output()
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("choose another --port"), "{stderr}");
    drop(taken);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_help_shows_the_default_address() {
    let out = oy3o(&["serve", "--help"], "http://127.0.0.1:9/v1", "help")
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("default: 127.0.0.1"), "{help}");
    let port = format!("default: {}", oy3o_server::DEFAULT_PORT);
    assert!(help.contains(&port), "{help}");
}
