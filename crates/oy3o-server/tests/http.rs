//! HTTP on the WebSocket's port: the OpenAI-compatible API (whole and streamed answers in
//! OpenAI's exact chunk format), models, chains as models, health and Prometheus metrics.

mod common;

use std::time::Duration;

use common::{config_for, echo, settings, start};
use oy3o_server::Settings;
use oy3o_testkit::{FakeServer, openai};
use serde_json::{Value, json};

async fn post(url: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The `data:` payloads of an SSE body, in order.
fn data_lines(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "events end with a blank line: {body:?}"
    );
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .expect("every event is one data line")
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_completion_has_openais_shape_and_the_system_message_is_the_context() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let response = post(
        &server.http("/v1/chat/completions"),
        json!({"model": "openai:gpt-4o-mini", "temperature": 0.5, "max_tokens": 7, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "and now?"}
        ]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(body["model"], "openai:gpt-4o-mini");
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "ANSWER(and now?)");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 19);
    assert_eq!(body["usage"]["completion_tokens"], 1);
    assert_eq!(body["usage"]["total_tokens"], 20);

    let sent = fake.requests()[0].json();
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent["messages"].as_array().unwrap().len(), 4);
    assert_eq!(sent["messages"][2]["content"], "hello");
    assert_eq!(sent["temperature"], 0.5);
    assert_eq!(sent["max_tokens"], 7);
    // A whole reply is asked for whole upstream: one JSON body, no stream to decode.
    assert_eq!(sent["stream"], false);
    assert!(sent.get("stream_options").is_none(), "{sent}");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_failures_give_the_same_status_whole_or_streamed() {
    let fake = FakeServer::start().await;
    let server = start(config_for(&fake), settings()).await;
    let url = server.http("/v1/chat/completions");
    type Script = fn() -> oy3o_testkit::Scripted;
    let cases: [(Script, u16, &str); 4] = [
        (openai::server_error, 502, "provider"),
        (|| openai::rate_limited("1"), 429, "rate_limit"),
        (openai::invalid_key, 401, "auth"),
        (|| openai::model_not_found("gpt-9"), 404, "not_found"),
    ];
    for (script, status, code) in cases {
        let mut seen = Vec::new();
        for stream in [false, true] {
            fake.push(script());
            let response = post(
                &url,
                json!({"stream": stream, "messages": [{"role": "user", "content": "x"}]}),
            )
            .await;
            assert_eq!(response.status(), status, "stream: {stream}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["code"], code, "stream: {stream}");
            seen.push(error["error"]["message"].clone());
        }
        assert_eq!(seen[0], seen[1], "the same message either way");
    }
    let sent: Vec<Value> = fake
        .requests()
        .iter()
        .map(|r| r.json()["stream"].clone())
        .collect();
    assert_eq!(sent, [false, true].repeat(4));
    // A whole answer that is not JSON is the upstream's failure, not an empty answer.
    fake.push(openai::malformed_whole());
    let response = post(
        &url,
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "provider");
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_reasoning_and_usage_from_upstream_reach_the_whole_reply() {
    let fake = FakeServer::start().await;
    fake.push(openai::whole_with_reasoning(
        "reasoning_content",
        "The user greets me",
        "Hi there!",
    ));
    let server = start(config_for(&fake), settings()).await;
    let response = post(
        &server.http("/v1/chat/completions"),
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], "Hi there!");
    assert_eq!(message["reasoning_content"], "The user greets me");
    assert_eq!(body["usage"]["prompt_tokens"], 19);
    assert_eq!(body["usage"]["completion_tokens"], 1);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_completion_is_openais_chunks_then_done() {
    let fake = FakeServer::start().await;
    fake.push(openai::answer(&["Hel", "lo ", "\"there\""]).build());
    let server = start(config_for(&fake), settings()).await;
    let response = post(
        &server.http("/v1/chat/completions"),
        json!({"model": "openai", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let lines = data_lines(&response.text().await.unwrap());
    assert_eq!(lines.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let id = chunks[0]["id"].clone();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], id, "one id for every chunk");
        assert_eq!(chunk["model"], "openai");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello \"there\"");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 19);
    assert_eq!(usage["usage"]["completion_tokens"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_include_usage_the_stream_has_no_usage_chunk() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let response = post(
        &server.http("/v1/chat/completions"),
        json!({"stream": true, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    let lines = data_lines(&response.text().await.unwrap());
    assert!(!lines.iter().any(|l| l.contains("\"usage\"")), "{lines:?}");
    assert_eq!(lines.len(), 4); // role, text, finish, [DONE]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_a_stream_stops_the_upstream_request() {
    let fake = FakeServer::start().await;
    fake.push(
        openai::answer(&vec!["x"; 200])
            .delay(Duration::from_millis(50))
            .build(),
    );
    let server = start(config_for(&fake), settings()).await;
    let mut response = post(
        &server.http("/v1/chat/completions"),
        json!({"stream": true, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert!(response.chunk().await.unwrap().is_some());
    drop(response);
    assert!(common::eventually(|| fake.aborted_by_client() == 1).await);
    // The answer is no longer counted as running once its body was dropped.
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = reqwest::get(server.http("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("oy3o_replies_in_flight 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metrics.contains("oy3o_replies_in_flight 0"), "{metrics}");
    assert!(metrics.contains("oy3o_replies_total 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_openai_error_bodies_with_fitting_statuses() {
    let fake = FakeServer::start().await;
    fake.push(openai::invalid_key());
    fake.push(openai::answer(&["x"]).cut_after(2).build());
    let server = start(config_for(&fake), settings()).await;
    let url = server.http("/v1/chat/completions");
    let cases = [
        (json!({"messages": "nope"}), 400, "bad_request"),
        (json!({"messages": []}), 400, "bad_request"),
        (
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            400,
            "bad_request",
        ),
        (
            json!({"model": "nosuch:x", "messages": [{"role": "user", "content": "x"}]}),
            404,
            "not_found",
        ),
        (
            json!({"model": "chain:nosuch", "messages": [{"role": "user", "content": "x"}]}),
            404,
            "not_found",
        ),
        (
            json!({"n": 2, "messages": [{"role": "user", "content": "x"}]}),
            400,
            "bad_request",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            401,
            "auth",
        ),
    ];
    for (body, status, code) in cases {
        let response = post(&url, body.clone()).await;
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{body}");
        assert!(!error["error"]["message"].as_str().unwrap().is_empty());
    }
    let raw = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    // A stream cut after it began ends with an error event instead of [DONE].
    let response = post(
        &url,
        json!({"stream": true, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    let lines = data_lines(&response.text().await.unwrap());
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "network");
    assert!(!lines.contains(&"[DONE]".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn models_lists_the_default_aliases_and_chains() {
    let fake = echo().await;
    let mut config = config_for(&fake);
    config
        .aliases
        .insert("fast".into(), "openai:gpt-4o-mini".into());
    let dir = std::env::temp_dir().join(format!("oy3o-server-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let chain = dir.join("duo.toml");
    std::fs::write(&chain, "[[stage]]\n[[stage.task]]\nprompt = \"p\"\n").unwrap();
    let mut with_chain = settings();
    with_chain.chains.insert("duo".into(), chain);
    let server = start(config, with_chain).await;
    let body: Value = reqwest::get(server.http("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in ["openai:gpt-4o-mini", "fast", "chain:duo"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert!(
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["object"] == "model")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_chain_answers_as_the_model_chain_name() {
    let fake = echo().await;
    let dir = std::env::temp_dir().join(format!("oy3o-server-chain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("moa.toml");
    std::fs::write(
        &path,
        r#"
[[stage]]
[[stage.task]]
name = "a"
prompt = "Propose."
[[stage.task]]
name = "b"
prompt = "Propose too."
[[stage]]
[[stage.task]]
prompt = "Pick the best of {{a}} and {{b}}."
"#,
    )
    .unwrap();
    let chained = Settings {
        chains: [("moa".to_owned(), path)].into_iter().collect(),
        ..settings()
    };
    let server = start(config_for(&fake), chained).await;
    let body: Value = post(
        &server.http("/v1/chat/completions"),
        json!({"model": "chain:moa", "messages": [{"role": "user", "content": "What is 1+1?"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "ANSWER(Pick the best of ANSWER(Propose.) and ANSWER(Propose too.).)"
    );
    assert_eq!(body["model"], "chain:moa");
    assert_eq!(body["usage"]["prompt_tokens"], 3 * 19);
    let first = fake
        .requests()
        .into_iter()
        .find(|r| openai::prompt_of(r) == "Propose.")
        .unwrap();
    assert!(
        openai::system_of(&first)
            .unwrap()
            .contains("[input]: What is 1+1?\n[/input]")
    );

    // Over the WebSocket the same chain is named by its name.
    let mut ws = server.client().await;
    ws.send(json!({"id": "c", "chain": "moa"})).await;
    let frames = ws.until_signals(1).await;
    assert_eq!(
        frames.iter().filter(|f| f["event"] == "stage_done").count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics_report_requests_errors_and_latency() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let health: Value = reqwest::get(server.http("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    post(
        &server.http("/v1/chat/completions"),
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    post(
        &server.http("/v1/chat/completions"),
        json!({"messages": []}),
    )
    .await;
    let response = reqwest::get(server.http("/metrics")).await.unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    for line in [
        "oy3o_http_requests_total{route=\"chat_completions\",status=\"2xx\"} 1",
        "oy3o_http_requests_total{route=\"chat_completions\",status=\"4xx\"} 1",
        "oy3o_http_requests_total{route=\"health\",status=\"2xx\"} 1",
        "oy3o_errors_total{code=\"bad_request\"} 1",
        "oy3o_http_request_duration_seconds_bucket{route=\"chat_completions\",le=\"+Inf\"} 2",
        "oy3o_replies_in_flight 0",
        "oy3o_replies_total 1",
        "# TYPE oy3o_first_chunk_seconds histogram",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    // The /metrics request itself is in flight while it renders.
    assert!(text.contains("oy3o_http_requests_in_flight 1"), "{text}");
    let missing = reqwest::get(server.http("/nowhere")).await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_root_serves_the_chat_page_to_browsers_and_the_websocket_to_clients() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let response = reqwest::get(server.http("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("script-src 'sha256-")
            && !csp
                .split(';')
                .any(|d| d.contains("script-src") && d.contains("unsafe")),
        "only the page's own script runs: {csp}"
    );
    let page = response.text().await.unwrap();
    for marker in [
        "<title>oy3o</title>",
        "/v1/models",
        "/chats",
        "/ws",
        "textContent",
        "cancel: true",
        "content=\"1048576\"",
    ] {
        assert!(page.contains(marker), "{marker}");
    }
    // HTML is only ever built by the escape-first markdown renderer, parsed in its inert
    // scratch element.
    assert_eq!(
        page.matches("innerHTML").count(),
        page.matches("SCRATCH.innerHTML").count(),
        "model output reaches HTML only through the escape-first renderer"
    );
    let mut ws = server.client().await;
    ws.send(json!({"prompt": "root"})).await;
    assert_eq!(ws.until_signals(1).await[0]["message"], "ANSWER(root)");
}

/// Chunks that reach the server together leave it together: the lean upstream writes 64 text
/// chunks at once (`chunks64`), and the answer's body comes back in a few HTTP chunks (one per
/// body frame), not one per text chunk. Read over a raw socket, where the chunked framing
/// shows.
#[tokio::test(flavor = "multi_thread")]
async fn chunks_that_arrive_together_leave_in_one_frame() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let upstream = oy3o_testkit::upstream::Upstream::start(Duration::ZERO);
    let mut config = oy3o::Config::default();
    config.providers.insert(
        "openai".into(),
        oy3o::ProviderSettings {
            base_url: Some(upstream.base_url()),
            api_key: Some(oy3o::Credential::parse(common::SERVER_KEY)),
            max_retries: Some(0),
            ..Default::default()
        },
    );
    let server = start(config, settings()).await;
    let url = reqwest::Url::parse(&server.http("/v1/chat/completions")).unwrap();
    let body = json!({"model": "openai:chunks64", "stream": true,
                      "messages": [{"role": "user", "content": "count"}]})
    .to_string();
    let mut socket = tokio::net::TcpStream::connect((url.host_str().unwrap(), url.port().unwrap()))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(common::PATIENCE, socket.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, mut rest) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    // Undo the chunked framing, counting its chunks.
    let (mut frames, mut events) = (0, String::new());
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        frames += 1;
        events.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    let text: String = data_lines(&events)
        .iter()
        .filter(|l| *l != "[DONE]")
        .filter_map(|l| {
            let chunk: Value = serde_json::from_str(l).unwrap();
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    let expected: String = (0..oy3o_testkit::upstream::LONG_STREAM_CHUNKS)
        .map(|i| format!("w{i} "))
        .collect();
    assert_eq!(text, expected);
    // 67 events (role, 64 texts, finish, [DONE]); one frame each before they were joined.
    assert!(frames <= 8, "{frames} HTTP chunks for 67 events");
}
