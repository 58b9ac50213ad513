//! MCP servers' tools through `oy3o::mcp::McpTools`, against real servers: the reference
//! `mcp-server-time` and `mcp-server-git` over stdio, a streamable-HTTP server and a server that
//! dies on demand, both written with the official `mcp` Python SDK (`tests/mcp/`). A two-step
//! tool loop runs a fake OpenAI model that calls the real time server. The Python packages come
//! from `scripts/setup`; without them these tests fail and say so.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Run, config_for};
use oy3o::mcp::McpTools;
use oy3o::tool_loop::{ToolResult, Toolbox};
use oy3o::{Chat, Config, ErrorCode, Event, McpServerConfig, Options, ToolCall};
use oy3o_testkit::mcp::{TIME_SERVER, require_python};
use oy3o_testkit::{FakeServer, openai};
use serde_json::{Value, json};

/// A script of `tests/mcp/`.
fn script(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/mcp")
        .join(name);
    path.to_string_lossy().into_owned()
}

fn time_server() -> McpServerConfig {
    require_python("mcp_server_time");
    McpServerConfig::stdio(TIME_SERVER)
}

fn dying_server() -> McpServerConfig {
    require_python("mcp");
    let mut server = McpServerConfig::stdio(["python3".to_owned(), script("dying_server.py")]);
    server
        .env
        .insert("DYING_TOKEN".into(), "tok-secret-4242".into());
    server
}

fn registry(servers: &[(&str, McpServerConfig)]) -> McpTools {
    let servers: BTreeMap<String, McpServerConfig> = servers
        .iter()
        .map(|(name, config)| (name.to_string(), config.clone()))
        .collect();
    McpTools::of(&servers)
}

fn call(name: &str, arguments: Value) -> ToolCall {
    ToolCall {
        id: "call_1".into(),
        name: name.into(),
        arguments,
        signature: None,
    }
}

async fn run(toolbox: &Toolbox, name: &str, arguments: Value) -> ToolResult {
    toolbox.run(&call(name, arguments)).await
}

#[tokio::test]
async fn the_time_server_lists_its_tools_and_answers_a_call() {
    let mcp = registry(&[("time", time_server())]);
    let listed = mcp.list().await;
    assert_eq!(listed.len(), 1);
    let tools = listed[0].tools.as_ref().expect("the time server starts");
    let get = tools
        .iter()
        .find(|t| t.mcp_name == "get_current_time")
        .expect("get_current_time is listed");
    assert_eq!(get.name, "time__get_current_time");
    assert!(
        get.description
            .as_deref()
            .unwrap_or_default()
            .contains("time")
    );
    assert_eq!(get.parameters["required"][0], "timezone");

    let toolbox = mcp.toolbox(&["time.get_current_time"]).await.unwrap();
    assert_eq!(toolbox.specs().len(), 1);
    let r = run(
        &toolbox,
        "time__get_current_time",
        json!({"timezone": "UTC"}),
    )
    .await;
    assert!(!r.is_error, "{}", r.content);
    let answer: Value = serde_json::from_str(&r.content).expect("the result is the JSON it sent");
    assert_eq!(answer["timezone"], "UTC");
    assert!(
        answer["datetime"]
            .as_str()
            .is_some_and(|d| d.starts_with("20")),
        "{answer}"
    );

    // The server's own error result reaches the model as an error result.
    let bad = run(
        &toolbox,
        "time__get_current_time",
        json!({"timezone": "Mars/Base"}),
    )
    .await;
    assert!(
        bad.is_error && bad.content.contains("Mars/Base"),
        "{}",
        bad.content
    );
    mcp.close().await;
}

#[tokio::test]
async fn a_two_step_tool_loop_calls_the_real_time_server_and_sends_its_result_back() {
    let server = FakeServer::start().await;
    server.push(
        openai::tool_calls(&[("call_t", "time__get_current_time", r#"{"timezone": "UTC"}"#)])
            .build(),
    );
    server.push(openai::answer(&["It is now in UTC what the tool said."]).build());
    let config = config_for("openai", server.base_url());
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();
    let mcp = registry(&[("time", time_server())]);
    let options = Options {
        toolbox: Some(Arc::new(mcp.toolbox(&["time"]).await.unwrap())),
        ..Options::default()
    };

    let run = Run::of(chat.send_with("What time is it in UTC?", &options)).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "It is now in UTC what the tool said.");
    let results: Vec<&ToolResult> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::ToolResult(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 1);
    assert!(!results[0].is_error, "{}", results[0].content);

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = requests[0].json();
    let offered: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert!(offered.contains(&"time__get_current_time"), "{offered:?}");
    let second = requests[1].json();
    let messages = second["messages"].as_array().unwrap();
    let tool_message = messages
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("the result went back");
    assert_eq!(tool_message["tool_call_id"], "call_t");
    let sent: Value = serde_json::from_str(tool_message["content"].as_str().unwrap()).unwrap();
    assert_eq!(sent["timezone"], "UTC");
    assert!(sent["datetime"].as_str().is_some(), "{sent}");
}

/// A Python process killed when the test ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tests/mcp/http_server.py` on a free port; its `/mcp` URL once it listens.
async fn http_server() -> (Child, String) {
    require_python("mcp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("python3")
        .args([script("http_server.py"), port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 starts");
    let child = Child(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the HTTP MCP server did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, format!("http://127.0.0.1:{port}/mcp"))
}

#[tokio::test]
async fn a_streamable_http_server_written_with_the_python_sdk_answers_a_call() {
    let (_server, url) = http_server().await;
    let mut web = McpServerConfig::http(&url);
    web.headers.insert("X-Test".into(), "oy3o".into());
    let mcp = registry(&[("web", web)]);
    let toolbox = mcp.toolbox(&["web"]).await.unwrap();
    let names: Vec<&str> = toolbox.specs().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["web__add"]);
    let r = run(&toolbox, "web__add", json!({"a": 2, "b": 40})).await;
    assert!(!r.is_error, "{}", r.content);
    assert!(r.content.contains("42"), "{}", r.content);
    mcp.close().await;
}

#[tokio::test]
async fn the_git_server_reads_a_temporary_repository() {
    require_python("mcp_server_git");
    let repo = std::env::temp_dir().join(format!("oy3o-mcp-git-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=oy3o", "-c", "user.email=oy3o@example.com"])
            .args(args)
            .current_dir(&repo)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&["init", "-q"]);
    std::fs::write(repo.join("a.txt"), "hello\n").unwrap();
    git(&["add", "a.txt"]);
    git(&["commit", "-q", "-m", "Add a greeting"]);
    std::fs::write(repo.join("b.txt"), "untracked\n").unwrap();

    let repo_path = repo.to_string_lossy().into_owned();
    let server = McpServerConfig::stdio([
        "python3",
        "-m",
        "mcp_server_git",
        "--repository",
        repo_path.as_str(),
    ]);
    let mcp = registry(&[("git", server)]);
    let toolbox = mcp
        .toolbox(&["git.git_log", "git.git_status"])
        .await
        .unwrap();
    let log = run(&toolbox, "git__git_log", json!({"repo_path": repo_path})).await;
    assert!(!log.is_error, "{}", log.content);
    assert!(log.content.contains("Add a greeting"), "{}", log.content);
    let status = run(&toolbox, "git__git_status", json!({"repo_path": repo_path})).await;
    assert!(status.content.contains("b.txt"), "{}", status.content);
    mcp.close().await;
    let _ = std::fs::remove_dir_all(&repo);
}

#[tokio::test]
async fn a_server_that_dies_mid_call_gives_an_error_result_and_starts_again_on_next_use() {
    let mcp = registry(&[("dying", dying_server())]);
    let toolbox = mcp.toolbox(&["dying"]).await.unwrap();
    let first = run(&toolbox, "dying__pid", json!({})).await;
    assert!(!first.is_error, "{}", first.content);

    let died = run(&toolbox, "dying__die", json!({})).await;
    assert!(died.is_error, "{}", died.content);
    assert!(
        died.content
            .contains("`dying` stopped during the call to `die`"),
        "{}",
        died.content
    );
    assert!(died.content.contains("started again"), "{}", died.content);
    // Its last stderr lines are quoted, its secret is not.
    assert!(
        died.content.contains("dying now, token=[redacted]"),
        "{}",
        died.content
    );
    assert!(
        !died.content.contains("tok-secret-4242"),
        "{}",
        died.content
    );

    let again = run(&toolbox, "dying__pid", json!({})).await;
    assert!(!again.is_error, "{}", again.content);
    assert_ne!(again.content, first.content, "a new process answers");
    mcp.close().await;
}

#[tokio::test]
async fn a_call_that_runs_past_the_timeout_is_an_error_result_and_the_server_stays() {
    let mut slow = dying_server();
    slow.timeout = Duration::from_millis(1500);
    let mcp = registry(&[("slow", slow)]);
    let toolbox = mcp.toolbox(&["slow"]).await.unwrap();
    let before = run(&toolbox, "slow__pid", json!({})).await;
    let started = Instant::now();
    let late = run(&toolbox, "slow__sleep", json!({"seconds": 30})).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(late.is_error, "{}", late.content);
    assert!(
        late.content
            .contains("did not answer the call to `sleep` within 1.5 s"),
        "{}",
        late.content
    );
    let after = run(&toolbox, "slow__pid", json!({})).await;
    assert_eq!(
        after.content, before.content,
        "the same process still answers"
    );
    mcp.close().await;
}

#[tokio::test]
async fn unknown_server_and_tool_names_are_errors_that_list_what_exists() {
    let mcp = registry(&[("time", time_server())]);
    let err = mcp.toolbox(&["nosuch"]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert!(
        err.message().contains("the configured ones are: time"),
        "{err}"
    );
    let err = mcp.toolbox(&["time.nosuch"]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert!(
        err.message().contains("no tool `nosuch`") && err.message().contains("get_current_time"),
        "{err}"
    );
    let none = McpTools::new(&Config::default());
    let err = none.toolbox(&["time"]).await.unwrap_err();
    assert!(
        err.message().contains("no MCP servers are configured"),
        "{err}"
    );
    assert!(err.message().contains("[mcp.time]"), "{err}");
    mcp.close().await;
}

#[tokio::test]
async fn a_command_that_does_not_exist_is_an_error_naming_the_server() {
    let ghost = McpServerConfig::stdio(["oy3o-no-such-program", "--x"]);
    let mcp = registry(&[("ghost", ghost), ("time", time_server())]);
    let err = mcp.toolbox(&["ghost"]).await.unwrap_err();
    assert!(
        err.message().contains("MCP server `ghost`")
            && err
                .message()
                .contains("cannot start \"oy3o-no-such-program\""),
        "{err}"
    );
    // The listing shows the broken one with its error beside the working one.
    let listed = mcp.list().await;
    assert_eq!(listed.len(), 2);
    assert!(listed[0].tools.is_err() && listed[0].name == "ghost");
    assert!(listed[1].tools.is_ok(), "{:?}", listed[1].tools);
    mcp.close().await;
}

#[tokio::test]
async fn a_server_that_fails_to_start_is_an_error_quoting_its_stderr_without_secrets() {
    let mut failing = dying_server();
    failing.env.insert("DYING_AT_START".into(), "1".into());
    let mcp = registry(&[("failing", failing)]);
    let err = mcp.toolbox(&["failing"]).await.unwrap_err();
    let message = err.message();
    assert!(message.contains("MCP server `failing`"), "{message}");
    assert!(
        message.contains("cannot start: secret [redacted]"),
        "{message}"
    );
    assert!(!message.contains("tok-secret-4242"), "{message}");
}

#[tokio::test]
async fn dropping_the_registry_stops_its_child_servers() {
    let mcp = registry(&[("dying", dying_server())]);
    let toolbox = mcp.toolbox(&["dying"]).await.unwrap();
    let pid = run(&toolbox, "dying__pid", json!({})).await.content;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists(), "the server runs as {pid}");
    drop(toolbox);
    drop(mcp);
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc_dir.exists() {
        assert!(
            Instant::now() < deadline,
            "the server {pid} was left running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A chain's task may use tools: `equip` resolves its names (tasks naming the same tools share
/// one toolbox), the task's answer comes after the real time server's result went back, and a
/// task whose names were never resolved fails saying so while its stage's other tasks answer.
#[tokio::test]
async fn a_chain_task_uses_the_time_servers_tools_once_equipped() {
    let server = FakeServer::start().await;
    server.respond(|r| {
        let body = r.json();
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        if messages.iter().any(|m| m["role"] == "tool") {
            openai::answer(&["Tokyo time, from the tool."]).build()
        } else if body["tools"].is_array() {
            openai::tool_calls(&[(
                "call_c",
                "time__get_current_time",
                r#"{"timezone": "Asia/Tokyo"}"#,
            )])
            .build()
        } else {
            openai::answer(&["no tools here"]).build()
        }
    });
    let config = config_for("openai", server.base_url());
    let mcp = registry(&[("time", time_server())]);
    let task = |tools: Option<&[&str]>| {
        let mut task = oy3o::Task::new(Some("openai:gpt-4o-mini"), "Time in Tokyo?");
        task.tools = tools.map(|t| t.iter().map(|n| n.to_string()).collect());
        task
    };
    let mut chain = oy3o::Chain::from(vec![vec![
        task(Some(&["time"])),
        task(Some(&["time"])),
        task(None),
    ]]);
    mcp.equip(chain.tasks_mut()).await.unwrap();
    let toolboxes: Vec<_> = chain.stages[0]
        .tasks
        .iter()
        .map(|t| t.toolbox.clone())
        .collect();
    assert!(Arc::ptr_eq(
        toolboxes[0].as_ref().unwrap(),
        toolboxes[1].as_ref().unwrap()
    ));
    assert!(toolboxes[2].is_none());
    let mut stages = oy3o::exec_tasks_chain_once(chain.clone(), &config)
        .await
        .unwrap();
    stages[0].results.sort_by_key(|r| r.index);
    let answers: Vec<&str> = stages[0]
        .results
        .iter()
        .map(|r| r.response.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(
        answers,
        [
            "Tokyo time, from the tool.",
            "Tokyo time, from the tool.",
            "no tools here"
        ]
    );
    let results_sent = server
        .requests()
        .iter()
        .filter(|r| {
            r.json()["messages"].as_array().unwrap().iter().any(|m| {
                m["role"] == "tool"
                    && m["content"]
                        .as_str()
                        .is_some_and(|c| c.contains("Asia/Tokyo"))
            })
        })
        .count();
    assert_eq!(results_sent, 2);

    let mut unresolved = oy3o::Chain::from(vec![vec![task(Some(&["time"])), task(None)]]);
    let before = server.requests().len();
    let stages = oy3o::exec_tasks_chain_once(unresolved.clone(), &config).await;
    let mut stages = stages.unwrap();
    stages[0].results.sort_by_key(|r| r.index);
    let error = stages[0].results[0].error.as_ref().expect("an error");
    assert!(
        error.message().contains("not resolved"),
        "{}",
        error.message()
    );
    assert_eq!(
        stages[0].results[1].response.as_deref(),
        Some("no tools here")
    );
    assert_eq!(
        server.requests().len(),
        before + 1,
        "the unresolved task sent nothing"
    );
    let e = registry(&[("time", time_server())])
        .equip({
            for t in unresolved.tasks_mut() {
                t.tools = Some(vec!["time.nope".into()]);
            }
            unresolved.tasks_mut()
        })
        .await
        .unwrap_err();
    assert!(
        e.message().starts_with("task openai:gpt-4o-mini:"),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn an_unreachable_http_server_is_an_error_naming_the_server_and_the_cause() {
    let url = format!("{}/mcp", common::unreachable_url());
    let mcp = registry(&[("web", McpServerConfig::http(&url))]);
    let err = mcp.toolbox(&["web"]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Network);
    let message = err.message();
    assert!(
        message.contains(&format!("MCP server `web` at {url} did not answer: ")),
        "{message}"
    );
    assert!(message.contains("refused"), "{message}");
    assert!(!message.contains("rmcp::"), "no SDK type names: {message}");
}
