//! `oy3o 'prompt' --tools NAME` and `oy3o chain` with tools, as a user runs them: a fake model
//! that calls `time__get_current_time`, the real `mcp-server-time` answering it (installed by
//! `scripts/setup`), the tool steps on stderr (or as `--json` events) and in `oy3o log`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use oy3o_testkit::{FakeServer, openai};
use tokio::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A fresh home with a config naming the `time` server; returns (home, config path).
fn home(test: &str) -> (PathBuf, PathBuf) {
    oy3o_testkit::mcp::require_python("mcp_server_time");
    let home = std::env::temp_dir().join(format!("oy3o-cli-tools-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join("c.toml");
    std::fs::write(&config, oy3o_testkit::mcp::TIME_SERVER_TOML).unwrap();
    (home, config)
}

async fn oy3o(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_oy3o"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_DATA_HOME", home.join("data"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fake model that calls the time tool, then answers.
async fn model_calling_the_time_tool() -> FakeServer {
    let server = FakeServer::start().await;
    server.push(
        openai::tool_calls(&[("call_t", "time__get_current_time", r#"{"timezone":"UTC"}"#)])
            .build(),
    );
    server.push(openai::answer(&["It is ", "noon."]).build());
    server
}

/// The tool message of the second request: what the real server answered.
fn tool_result_sent(server: &FakeServer) -> String {
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one request per model step");
    let messages = requests[1].json()["messages"].clone();
    let tool = messages
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap_or_else(|| panic!("no tool message in {messages}"))
        .clone();
    assert_eq!(tool["tool_call_id"], "call_t");
    tool["content"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_loop_prints_the_answer_alone_on_stdout_and_the_tool_steps_on_stderr() {
    let (home, config) = home("text");
    let server = model_calling_the_time_tool().await;
    let base = server.base_url();
    let run = oy3o(
        &home,
        &[
            "What time is it?",
            "--model",
            "openai:gpt-4o-mini",
            "--tools",
            "time",
            "--config",
            config.to_str().unwrap(),
            "--store",
            "none",
        ],
        &[("OPENAI_BASE_URL", &base)],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "It is noon.\n");
    assert!(
        run.stderr
            .lines()
            .any(|l| l == r#"→ time__get_current_time {"timezone":"UTC"}"#),
        "{}",
        run.stderr
    );
    let result = run
        .stderr
        .lines()
        .find(|l| l.starts_with("← time__get_current_time ("))
        .unwrap_or_else(|| panic!("no result line in {}", run.stderr));
    assert!(
        result.contains(" ms): ") && result.contains("UTC"),
        "{result}"
    );
    // The model was offered the tool and got the real server's answer.
    let first = server.requests()[0].json();
    assert_eq!(
        first["tools"][0]["function"]["name"],
        "time__get_current_time"
    );
    let content = tool_result_sent(&server);
    assert!(
        content.contains("\"timezone\"") && content.contains("UTC"),
        "{content}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_mode_emits_the_tool_call_and_result_as_event_lines() {
    let (home, config) = home("json");
    let server = model_calling_the_time_tool().await;
    let base = server.base_url();
    let run = oy3o(
        &home,
        &[
            "What time is it?",
            "--model",
            "openai:x",
            "--json",
            "--tools=time.get_current_time",
            "--config",
            config.to_str().unwrap(),
            "--store",
            "none",
        ],
        &[("OPENAI_BASE_URL", &base)],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let call = lines.iter().find(|l| l["event"] == "tool_call").unwrap();
    assert_eq!(call["message"]["name"], "time__get_current_time");
    assert_eq!(call["message"]["arguments"]["timezone"], "UTC");
    let result = lines.iter().find(|l| l["event"] == "tool_result").unwrap();
    assert_eq!(result["message"]["call_id"], "call_t");
    assert_eq!(result["message"]["is_error"], false);
    assert!(
        result["message"]["content"]
            .as_str()
            .unwrap()
            .contains("UTC")
    );
    assert!(!run.stderr.contains('→'), "{}", run.stderr);
    tool_result_sent(&server);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_tool_name_exits_3_naming_what_exists_before_anything_is_sent() {
    let (home, config) = home("unknown");
    let server = FakeServer::start().await;
    let base = server.base_url();
    for (tools, says) in [
        (
            "nosuch",
            "unknown MCP server `nosuch`; the configured ones are: time",
        ),
        ("time,time.nosuch", "has no tool `nosuch`"),
    ] {
        let run = oy3o(
            &home,
            &[
                "hi",
                "--model",
                "openai:x",
                "--tools",
                tools,
                "--config",
                config.to_str().unwrap(),
            ],
            &[("OPENAI_BASE_URL", &base)],
        )
        .await;
        assert_eq!(run.code, 3, "{tools}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{}", run.stderr);
        assert_eq!(run.stdout, "");
    }
    assert!(server.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_chat_turn_with_tools_shows_its_steps_in_the_log() {
    let (home, config) = home("log");
    let server = model_calling_the_time_tool().await;
    let base = server.base_url();
    let store = format!("sqlite:{}", home.join("s.db").display());
    let run = oy3o(
        &home,
        &[
            "--chat",
            "t",
            "What time is it?",
            "--model",
            "openai:x",
            "--tools",
            "time",
            "--config",
            config.to_str().unwrap(),
            "--store",
            &store,
        ],
        &[("OPENAI_BASE_URL", &base)],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = oy3o(&home, &["log", "--store", &store], &[]).await;
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(
        log.stdout
            .contains(r#"→ time__get_current_time {"timezone":"UTC"}"#),
        "{}",
        log.stdout
    );
    assert!(
        log.stdout.contains("← time__get_current_time ("),
        "{}",
        log.stdout
    );
    assert!(log.stdout.contains("It is noon."), "{}", log.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_task_naming_tools_runs_them() {
    let (home, config) = home("chain");
    let server = model_calling_the_time_tool().await;
    let base = server.base_url();
    let chain = home.join("chain.toml");
    std::fs::write(
        &chain,
        "[[stage]]\n[[stage.task]]\nprompt = \"What time is it?\"\nmodel = \"openai:x\"\ntools = [\"time\"]\n",
    )
    .unwrap();
    let run = oy3o(
        &home,
        &[
            "chain",
            chain.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--store",
            "none",
        ],
        &[("OPENAI_BASE_URL", &base)],
    )
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("It is noon."), "{}", run.stdout);
    tool_result_sent(&server);
}
