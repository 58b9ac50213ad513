//! Traces reach a real OTLP receiver: Arize Phoenix (installed by `scripts/setup` into a venv
//! of its own), started here on free ports. A server exporting to it (`otlp` in its settings)
//! answers one streamed chat turn with a tool step (the reference `mcp-server-time`) against
//! the fake OpenAI upstream; Phoenix's REST API (`GET /v1/projects/default/spans`) then shows
//! the request, the turn, both provider calls and the tool call, as one tree with the GenAI
//! conventions' attributes.
//!
//! One test in this file: the exporter is the process's `tracing` subscriber. With
//! `OY3O_PHOENIX_URL` set, a Phoenix already running there is used instead of a new one (for
//! iterating: Phoenix takes 20 s to start on a quiet machine, minutes on a loaded one); the
//! test finds its own trace by a tool call id of its own.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{config_for, settings, start};
use oy3o::McpServerConfig;
use oy3o_server::Settings;
use oy3o_testkit::{FakeServer, openai};
use serde_json::{Value, json};

/// Where `scripts/setup` puts Phoenix (`OY3O_PHOENIX` overrides).
fn phoenix_venv() -> PathBuf {
    if let Some(dir) = std::env::var_os("OY3O_PHOENIX") {
        return dir.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME is set");
    cache.join("oy3o/phoenix-20.26.1")
}

/// A Phoenix server, stopped when dropped (when this test started it).
struct Phoenix {
    child: Option<Child>,
    base: String,
    _dir: Option<tempdir::Dir>,
}

mod tempdir {
    /// A fresh directory, removed when dropped.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "oy3o-phoenix-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Drop for Phoenix {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Phoenix {
    async fn start() -> Phoenix {
        if let Ok(base) = std::env::var("OY3O_PHOENIX_URL") {
            return Phoenix {
                child: None,
                base: base.trim_end_matches('/').to_owned(),
                _dir: None,
            };
        }
        let venv = phoenix_venv();
        let python = venv.join("bin/python");
        assert!(
            python.exists(),
            "Arize Phoenix is not installed at {}: run scripts/setup",
            venv.display()
        );
        let dir = tempdir::Dir::new();
        let (port, grpc) = (free_port(), free_port());
        let child = Command::new(&python)
            .args(["-m", "phoenix.server.main", "serve"])
            .env("PHOENIX_WORKING_DIR", &dir.0)
            .env("PHOENIX_HOST", "127.0.0.1")
            .env("PHOENIX_PORT", port.to_string())
            .env("PHOENIX_GRPC_PORT", grpc.to_string())
            .env("PHOENIX_TELEMETRY_ENABLED", "false")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start phoenix");
        let phoenix = Phoenix {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            _dir: Some(dir),
        };
        let client = reqwest::Client::new();
        // Its start (database migrations included) is ~20 s alone, minutes on a busy machine.
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let up = client
                .get(format!("{}/healthz", phoenix.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return phoenix;
            }
            assert!(Instant::now() < deadline, "phoenix did not start in 900 s");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The spans of the default project, the latest 1,000.
    async fn spans(&self) -> Vec<Value> {
        let url = format!("{}/v1/projects/default/spans?limit=1000", self.base);
        match reqwest::get(url).await {
            Ok(r) if r.status().is_success() => {
                let body: Value = r.json().await.unwrap_or(Value::Null);
                body["data"].as_array().cloned().unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }
}

/// A span's attributes as one flat map of dotted names (Phoenix's REST API flattens them
/// already; nested objects are flattened here too).
fn attributes(span: &Value) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", &span["attributes"], &mut out);
    out
}

fn span_id(span: &Value) -> &str {
    span["context"]["span_id"].as_str().unwrap_or_default()
}

fn parent_id(span: &Value) -> Option<&str> {
    span["parent_id"].as_str()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_with_a_tool_step_arrives_at_phoenix_as_one_tree_with_genai_attributes() {
    oy3o_testkit::mcp::require_python("mcp_server_time");
    let phoenix = Phoenix::start().await;
    // A tool call id of this run's own: its span says which trace is ours.
    let call_id = format!(
        "call_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let fake = FakeServer::start().await;
    fake.push(
        openai::tool_calls(&[(
            call_id.as_str(),
            "time__get_current_time",
            r#"{"timezone": "Asia/Tokyo"}"#,
        )])
        .build(),
    );
    fake.push(openai::answer(&["It is evening in Tokyo."]).build());
    let mut config = config_for(&fake);
    config.mcp.insert(
        "time".into(),
        McpServerConfig::stdio(oy3o_testkit::mcp::TIME_SERVER),
    );
    let server = start(
        config,
        Settings {
            tools: vec!["time".into()],
            otlp: Some(phoenix.base.clone()),
            ..settings()
        },
    )
    .await;
    let answer = reqwest::Client::new()
        .post(server.http("/v1/chat/completions"))
        .json(&json!({"model": "openai:gpt-4o-mini", "stream": true,
            "stream_options": {"include_usage": true},
            "server_tools": ["time.get_current_time"],
            "messages": [{"role": "user", "content": "Time in Tokyo?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body = answer.text().await.unwrap();
    assert!(body.contains("evening in Tokyo"), "{body}");

    // The batch processor sends within seconds (every 5 s); Phoenix stores what it receives.
    let deadline = Instant::now() + Duration::from_secs(120);
    let spans = loop {
        let all = phoenix.spans().await;
        let ours = all
            .iter()
            .find(|s| attributes(s).get("gen_ai.tool.call.id") == Some(&json!(call_id)))
            .map(|tool| tool["context"]["trace_id"].clone());
        let spans: Vec<Value> = match ours {
            Some(trace) => all
                .into_iter()
                .filter(|s| s["context"]["trace_id"] == trace)
                .collect(),
            None => Vec::new(),
        };
        // The request, the turn, two calls and the tool call.
        if spans.len() >= 5 {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "the spans did not all arrive: {spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(spans.len(), 5, "{spans:#?}");

    let named =
        |name: &str| -> Vec<&Value> { spans.iter().filter(|s| s["name"] == name).collect() };
    let request = named("POST /v1/chat/completions");
    assert_eq!(request.len(), 1, "{spans:#?}");
    let request = request[0];
    assert_eq!(
        parent_id(request),
        None,
        "the request is the root: {request:#}"
    );
    let a = attributes(request);
    assert_eq!(a["http.request.method"], "POST");
    assert_eq!(a["http.route"], "/v1/chat/completions");
    assert_eq!(a["http.response.status_code"], 200);

    let turn = named("invoke_agent oy3o")[0];
    assert_eq!(parent_id(turn), Some(span_id(request)), "{turn:#}");
    let t = attributes(turn);
    assert_eq!(t["gen_ai.operation.name"], "invoke_agent");
    assert_eq!(t["gen_ai.request.model"], "openai:gpt-4o-mini");
    // The fake's usage: 19 in and one out per step, summed over the two steps.
    assert_eq!(t["gen_ai.usage.input_tokens"], 38, "{t:#?}");
    assert_eq!(t["gen_ai.usage.output_tokens"], 2);
    assert!(
        t["oy3o.time_to_first_chunk"].as_f64().unwrap() > 0.0,
        "{t:#?}"
    );

    let calls = named("chat gpt-4o-mini");
    assert_eq!(calls.len(), 2, "{spans:#?}");
    let mut reasons = Vec::new();
    for call in &calls {
        assert_eq!(parent_id(call), Some(span_id(turn)), "{call:#}");
        let c = attributes(call);
        assert_eq!(c["gen_ai.operation.name"], "chat");
        assert_eq!(c["gen_ai.provider.name"], "openai");
        assert_eq!(c["gen_ai.request.model"], "gpt-4o-mini");
        assert_eq!(c["gen_ai.response.model"], "gpt-4o-mini");
        assert_eq!(c["gen_ai.usage.input_tokens"], 19);
        assert_eq!(c["gen_ai.usage.output_tokens"], 1);
        // An array, as the conventions type it.
        let array = c["gen_ai.response.finish_reasons"].as_array().unwrap();
        assert_eq!(array.len(), 1, "{c:#?}");
        reasons.push(array[0].as_str().unwrap_or_default().to_owned());
    }
    reasons.sort();
    assert_eq!(reasons, ["stop", "tool_calls"], "{calls:#?}");

    let tool = named("execute_tool time__get_current_time")[0];
    assert_eq!(parent_id(tool), Some(span_id(turn)), "{tool:#}");
    let x = attributes(tool);
    assert_eq!(x["gen_ai.operation.name"], "execute_tool");
    assert_eq!(x["gen_ai.tool.name"], "time__get_current_time");
    assert_eq!(x["gen_ai.tool.call.id"], json!(call_id));

    assert_eq!(t["gen_ai.response.finish_reasons"], json!(["stop"]));
}
