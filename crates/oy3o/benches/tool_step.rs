//! What a tool step costs the engine, apart from the model's and the tool's own time.
//!
//! Against the test kit's OpenAI server (zero delay, real socket), in one run:
//! 1. `plain turn`: a turn the model answers at once (one upstream request).
//! 2. `in-process tool step`: a turn where the model calls a tool that answers at once
//!    ([`FnTool`]), then answers (two upstream requests and one tool step: call assembly,
//!    argument check, the run, the `tool` message and the second request).
//!    Engine work per step = this − 2 × plain turn.
//! 3. `mcp call, raw rmcp`: `tools/call` on the reference `mcp-server-time` through the official
//!    SDK alone (the MCP server's own round trip).
//! 4. `mcp call, oy3o`: the same call through `McpTools` and `Toolbox::run` (name mapping,
//!    argument check, timeout, result text).
//!    Our MCP work per call = this − raw rmcp.
//!
//! Time added per tool step beyond the MCP server's own round trip = (2 − 2 × 1) + (4 − 3);
//! target ≤ 1 ms (issue 19). Needs `scripts/setup` (it installs mcp-server-time). Run:
//! `cargo bench -p oy3o --features mcp --bench tool_step` (or `scripts/bench`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use oy3o::mcp::McpTools;
use oy3o::tool_loop::{FnTool, Tool, Toolbox};
use oy3o::{Chat, Config, Credential, McpServerConfig, Options, ProviderSettings, ToolCall};
use oy3o_testkit::{FakeServer, openai};
use serde_json::json;

const ROUNDS: usize = 300;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

const TIME_ARGV: [&str; 5] = oy3o_testkit::mcp::TIME_SERVER;

async fn timed<F, Fut>(rounds: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // Warm up: connections, the server's first call.
    for _ in 0..10 {
        f().await;
    }
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        f().await;
        times.push(started.elapsed());
    }
    median(times)
}

async fn turns(config: &Config) -> (Duration, Duration) {
    let chat = Chat::open(Some("openai:gpt-4o-mini"), config).expect("chat");
    let plain = timed(ROUNDS, || async {
        chat.restore(Vec::new()).expect("restore");
        let text = chat.send("plain").text().await.expect("answer");
        assert_eq!(text, "done");
    })
    .await;
    let spec = oy3o::ToolSpec {
        name: "now".into(),
        description: None,
        parameters: Some(json!({"type": "object"})),
        strict: None,
    };
    let tool: Arc<dyn Tool> = Arc::new(FnTool::new(spec, |_| async { Ok("12:00".to_string()) }));
    let options = Options {
        toolbox: Some(Arc::new(Toolbox::new(vec![tool]).expect("toolbox"))),
        ..Options::default()
    };
    let step = timed(ROUNDS, || async {
        chat.restore(Vec::new()).expect("restore");
        let text = chat
            .send_with("with a tool", &options)
            .text()
            .await
            .expect("answer");
        assert_eq!(text, "done");
    })
    .await;
    (plain, step)
}

async fn raw_rmcp_call() -> Duration {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::TokioChildProcess;
    let mut command = tokio::process::Command::new(TIME_ARGV[0]);
    command.args(&TIME_ARGV[1..]);
    let client =
        ().serve(TokioChildProcess::new(command).expect("spawn mcp-server-time"))
            .await
            .expect("initialize");
    let arguments = json!({"timezone": "UTC"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let took = timed(ROUNDS, || async {
        let result = client
            .call_tool(
                CallToolRequestParams::new("get_current_time").with_arguments(arguments.clone()),
            )
            .await
            .expect("call");
        assert_ne!(result.is_error, Some(true));
    })
    .await;
    let _ = client.cancel().await;
    took
}

async fn oy3o_mcp_call() -> Duration {
    let mut servers = std::collections::BTreeMap::new();
    servers.insert("time".to_string(), McpServerConfig::stdio(TIME_ARGV));
    let mcp = McpTools::of(&servers);
    let toolbox = mcp
        .toolbox(&["time.get_current_time"])
        .await
        .expect("toolbox");
    let call = ToolCall {
        id: "c".into(),
        name: "time__get_current_time".into(),
        arguments: json!({"timezone": "UTC"}),
        signature: None,
    };
    let took = timed(ROUNDS, || async {
        let result = toolbox.run(&call).await;
        assert!(!result.is_error, "{}", result.content);
    })
    .await;
    mcp.close().await;
    took
}

fn main() {
    oy3o_testkit::mcp::require_python("mcp_server_time");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let server = FakeServer::start().await;
        server.respond(|r| {
            let body = r.json();
            let answered = body["messages"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
            if body["tools"].is_array() && !answered {
                openai::tool_calls(&[("call_1", "now", "{}")]).build()
            } else {
                openai::answer(&["done"]).build()
            }
        });
        let mut config = Config::default();
        config.providers.insert(
            "openai".into(),
            ProviderSettings {
                base_url: Some(server.base_url()),
                api_key: Some(Credential::parse("sk-bench")),
                ..ProviderSettings::default()
            },
        );
        let (plain, step) = turns(&config).await;
        let raw = raw_rmcp_call().await;
        let ours = oy3o_mcp_call().await;
        let engine_step = micros(step) - 2.0 * micros(plain);
        let mcp_work = micros(ours) - micros(raw);
        println!("tool step ({ROUNDS} rounds each, medians)");
        println!("  plain turn                 {:>9.1} µs", micros(plain));
        println!("  in-process tool step turn  {:>9.1} µs", micros(step));
        println!("  mcp call, raw rmcp         {:>9.1} µs", micros(raw));
        println!("  mcp call, oy3o             {:>9.1} µs", micros(ours));
        println!(
            "  engine work per step       {engine_step:>9.1} µs (turn with a step - 2 plain turns)"
        );
        println!("  oy3o work per mcp call     {mcp_work:>9.1} µs (oy3o - raw rmcp)");
        println!(
            "  added per step beyond the MCP server's round trip: {:.1} µs (target <= 1000)",
            engine_step + mcp_work
        );
    });
}
