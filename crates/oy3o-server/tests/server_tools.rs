//! Tools the server runs for its clients (`server.tools`): a WebSocket request's `tools` and an
//! HTTP request's `server_tools` give the model the tools of a real MCP server (the reference
//! `mcp-server-time`, installed by `scripts/setup`), the server runs the calls, the model's
//! second request carries the result, and the client sees `tool_call` / `tool_result` events
//! (WebSocket) or only the answer (HTTP: the calls were not its to run). Names beyond what a
//! client's token was granted are refused before anything is sent.

mod common;

use common::{Client, config_for, settings, start, text_of};
use oy3o::McpServerConfig;
use oy3o_server::{Settings, Token};
use oy3o_testkit::{FakeServer, openai};
use serde_json::{Value, json};

/// The reference time server (fails, saying to run `scripts/setup`, when it is missing).
fn time_server() -> McpServerConfig {
    oy3o_testkit::mcp::require_python("mcp_server_time");
    McpServerConfig::stdio(oy3o_testkit::mcp::TIME_SERVER)
}

/// A fake model that asks for the time in Tokyo, then answers.
async fn model_asking_the_time() -> FakeServer {
    let fake = FakeServer::start().await;
    fake.push(
        openai::tool_calls(&[(
            "call_t",
            "time__get_current_time",
            r#"{"timezone": "Asia/Tokyo"}"#,
        )])
        .build(),
    );
    fake.push(openai::answer(&["It is evening in Tokyo."]).build());
    fake
}

fn with_tools(tokens: Vec<Token>) -> Settings {
    Settings {
        tools: vec!["time".into()],
        tokens,
        ..settings()
    }
}

/// The tool result the model's second request carries.
fn result_sent(fake: &FakeServer) -> Value {
    let second = fake.requests()[1].json();
    let messages = second["messages"].as_array().unwrap().clone();
    assert_eq!(
        messages[1]["tool_calls"][0]["id"], "call_t",
        "{messages:#?}"
    );
    assert_eq!(messages[2]["role"], "tool");
    assert_eq!(messages[2]["tool_call_id"], "call_t");
    messages[2].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_turn_runs_the_servers_mcp_tool_and_reports_each_step() {
    let fake = model_asking_the_time().await;
    let mut config = config_for(&fake);
    config.mcp.insert("time".into(), time_server());
    let server = start(config, with_tools(Vec::new())).await;
    let mut ws = server.client().await;
    ws.send(
        json!({"id": "c", "model": "openai:gpt-4o-mini", "prompt": "Time in Tokyo?",
        "tools": ["time"]}),
    )
    .await;
    let frames = ws.until_signals(1).await;
    assert_eq!(
        text_of(&frames, "c"),
        "It is evening in Tokyo.",
        "{frames:#?}"
    );
    let events: Vec<&Value> = frames.iter().filter(|f| f["type"] == "event").collect();
    let call = events
        .iter()
        .find(|f| f["event"] == "tool_call")
        .expect("a tool_call event");
    assert_eq!(call["message"]["name"], "time__get_current_time");
    let result = events
        .iter()
        .find(|f| f["event"] == "tool_result")
        .expect("a tool_result event");
    assert_eq!(result["message"]["is_error"], false, "{result}");
    let content = result_sent(&fake)["content"].as_str().unwrap().to_owned();
    assert!(content.contains("Asia/Tokyo"), "{content}");
    assert_eq!(result["message"]["content"], content);
    // The model was offered the time server's tools.
    let first = fake.requests()[0].json();
    let offered: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(offered.contains(&"time__get_current_time"), "{offered:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_request_names_server_tools_and_gets_the_answer_without_calls_to_run() {
    for stream in [false, true] {
        let fake = model_asking_the_time().await;
        let mut config = config_for(&fake);
        config.mcp.insert("time".into(), time_server());
        let server = start(config, with_tools(Vec::new())).await;
        let response = reqwest::Client::new()
            .post(server.http("/v1/chat/completions"))
            .json(&json!({"model": "openai:gpt-4o-mini", "stream": stream,
                "server_tools": ["time.get_current_time"],
                "messages": [{"role": "user", "content": "Time in Tokyo?"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(!body.contains("tool_calls"), "stream {stream}: {body}");
        assert!(body.contains("It is evening in Tokyo."), "{body}");
        assert!(!body.contains(r#""finish_reason":"tool_calls""#));
        let content = result_sent(&fake)["content"].as_str().unwrap().to_owned();
        assert!(content.contains("Asia/Tokyo"), "{content}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_beyond_a_clients_grant_are_refused_before_anything_is_sent() {
    let fake = FakeServer::start().await;
    let mut config = config_for(&fake);
    config.mcp.insert("time".into(), time_server());
    let mut narrow = Token::new("t-narrow").unwrap();
    narrow.tools = Some(vec!["time.convert_time".into()]);
    let server = start(
        config,
        with_tools(vec![Token::new("t-wide").unwrap(), narrow]),
    )
    .await;
    let connect = |token: &'static str| {
        let url = server.ws_url(&format!("?token={token}"));
        async move { Client::connect(&url, &[]).await.unwrap() }
    };
    let mut narrow = connect("t-narrow").await;
    narrow
        .send(json!({"id": "c", "model": "openai:gpt-4o-mini", "prompt": "hi", "tools": ["time"]}))
        .await;
    let refused = narrow.frame().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "forbidden");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("time.convert_time"),
        "{refused}"
    );
    let mut wide = connect("t-wide").await;
    wide.send(
        json!({"id": "c", "model": "openai:gpt-4o-mini", "prompt": "hi",
        "tools": ["git"]}),
    )
    .await;
    assert_eq!(wide.frame().await["code"], "forbidden");
    let response = reqwest::Client::new()
        .post(server.http("/v1/chat/completions"))
        .bearer_auth("t-narrow")
        .json(
            &json!({"model": "openai:gpt-4o-mini", "server_tools": ["time.get_current_time"],
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let mixed = reqwest::Client::new()
        .post(server.http("/v1/chat/completions"))
        .bearer_auth("t-wide")
        .json(
            &json!({"model": "openai:gpt-4o-mini", "server_tools": ["time"],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(mixed.status(), 400);
    assert!(fake.requests().is_empty(), "nothing reached the model");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_task_names_granted_tools_and_the_server_runs_them() {
    let fake = FakeServer::start().await;
    fake.respond(|r| {
        let body = r.json();
        let answered = body["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
        if answered {
            openai::answer(&["Tokyo, per the tool."]).build()
        } else {
            openai::tool_calls(&[(
                "call_t",
                "time__get_current_time",
                r#"{"timezone": "Asia/Tokyo"}"#,
            )])
            .build()
        }
    });
    let mut config = config_for(&fake);
    config.mcp.insert("time".into(), time_server());
    let server = start(config, with_tools(Vec::new())).await;
    let mut ws = server.client().await;
    ws.send(json!({"id": "k", "chain": [[{"model": "openai:gpt-4o-mini",
        "prompt": "Time in Tokyo?", "tools": ["time"]}]]}))
        .await;
    let frames = ws.until_signals(1).await;
    let done = frames
        .iter()
        .find(|f| f["event"] == "stage_done")
        .unwrap_or_else(|| panic!("a stage_done event: {frames:#?}"));
    assert!(done.to_string().contains("Tokyo, per the tool."), "{done}");
    assert_eq!(fake.requests().len(), 2);

    ws.send(
        json!({"id": "k2", "chain": [[{"model": "openai:gpt-4o-mini",
        "prompt": "hi", "tools": ["git"]}]]}),
    )
    .await;
    let refused = ws.frame().await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert_eq!(
        fake.requests().len(),
        2,
        "nothing sent for the refused chain"
    );
}
