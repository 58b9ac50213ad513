//! Issue 18: what a client may not spend, leak or exhaust. Each test is one row of the issue's
//! table, through real sockets against the fake upstream.

mod common;

use std::time::Duration;

use common::*;
use oy3o_server::{Limits, Settings, Token};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn with_limits(limits: Limits) -> Settings {
    Settings {
        limits,
        ..settings()
    }
}

/// A server in front of `fake` with these limits.
async fn limited(fake: &oy3o_testkit::FakeServer, limits: Limits) -> Running {
    start(config_for(fake), with_limits(limits)).await
}

fn errors(frames: &[Value]) -> Vec<&Value> {
    frames.iter().filter(|f| f["type"] == "error").collect()
}

/// A fake upstream whose answers are `pieces` pieces of `size` bytes each.
async fn big_answers(pieces: usize, size: usize) -> oy3o_testkit::FakeServer {
    let fake = oy3o_testkit::FakeServer::start().await;
    let piece = "x".repeat(size);
    fake.respond(move |r| {
        let all: Vec<&str> = (0..pieces).map(|_| piece.as_str()).collect();
        oy3o_testkit::openai::reply_to(r, &all)
    });
    fake
}

// Row 1 (and 10).
#[tokio::test(flavor = "multi_thread")]
async fn a_clients_proxy_never_carries_the_servers_key() {
    let fake = echo().await;
    let proxy = oy3o_testkit::HttpProxy::start().await;
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;

    ws.send(json!({"id": "1", "model": "openai:gpt-4o-mini", "proxy": proxy.url(), "prompt": "x"}))
        .await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["code"], "forbidden", "{frames:?}");
    assert!(
        frames[0]["message"]
            .as_str()
            .unwrap()
            .contains("client_proxies")
    );
    assert!(proxy.seen().is_empty(), "nothing went through the proxy");
    assert!(fake.requests().is_empty());

    // With its own key, the client's proxy carries the client's key only.
    ws.send(
        json!({"id": "2", "model": "openai:gpt-4o-mini", "key": "sk-client-own",
                   "proxy": proxy.url(), "prompt": "x"}),
    )
    .await;
    assert_eq!(text_of(&ws.until_signals(1).await, "2"), "ANSWER(x)");
    let requests = fake.requests();
    assert_eq!(proxy.seen().len(), 1);
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer sk-client-own")
    );

    // An unsupported scheme is an error before anything is sent.
    for bad in ["ftp://127.0.0.1:21", "htp://127.0.0.1:1", "garbage"] {
        ws.send(json!({"id": 3, "model": "", "key": "sk-c", "proxy": bad, "prompt": "x"}))
            .await;
        let frames = ws.until_signals(1).await;
        assert_eq!(frames[0]["code"], "bad_request", "{bad}: {frames:?}");
        assert!(
            frames[0]["message"]
                .as_str()
                .unwrap()
                .contains("socks5h://")
        );
    }
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clients_proxy_never_carries_the_operators_provider_headers() {
    let fake = echo().await;
    let proxy = oy3o_testkit::HttpProxy::start().await;
    let listed = oy3o_testkit::HttpProxy::start().await;
    let mut config = config_for(&fake);
    if let Some(openai) = config.providers.get_mut("openai") {
        openai
            .headers
            .insert("x-operator-secret".into(), "canary-header".into());
    }
    let server = start(
        config,
        Settings {
            client_proxies: vec![listed.url()],
            ..settings()
        },
    )
    .await;
    let mut ws = server.client().await;
    let ask = |id: &str, proxy: Option<String>| {
        json!({"id": id, "model": "openai:gpt-4o-mini", "key": "sk-client-own",
               "proxy": proxy, "prompt": "x"})
    };

    // The client's own key through its own proxy: the operator's headers stay home.
    ws.send(ask("1", Some(proxy.url()))).await;
    assert_eq!(text_of(&ws.until_signals(1).await, "1"), "ANSWER(x)");
    assert_eq!(proxy.seen().len(), 1);
    // Direct, or through a proxy the operator lists, they go as configured.
    ws.send(ask("2", None)).await;
    assert_eq!(text_of(&ws.until_signals(1).await, "2"), "ANSWER(x)");
    ws.send(ask("3", Some(listed.url()))).await;
    assert_eq!(text_of(&ws.until_signals(1).await, "3"), "ANSWER(x)");
    assert_eq!(listed.seen().len(), 1);

    let sent: Vec<Option<String>> = fake
        .requests()
        .iter()
        .map(|r| r.header("x-operator-secret").map(str::to_owned))
        .collect();
    let canary = Some("canary-header".to_owned());
    assert_eq!(sent, [None, canary.clone(), canary]);
    assert_eq!(proxy.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_the_operator_lists_may_carry_the_servers_key() {
    let fake = echo().await;
    let proxy = oy3o_testkit::HttpProxy::start().await;
    let server = start(
        config_for(&fake),
        Settings {
            client_proxies: vec![proxy.url()],
            ..settings()
        },
    )
    .await;
    let mut ws = server.client().await;
    ws.send(json!({"id": "a", "model": "openai", "proxy": proxy.url(), "prompt": "hi"}))
        .await;
    assert_eq!(text_of(&ws.until_signals(1).await, "a"), "ANSWER(hi)");
    assert_eq!(proxy.seen().len(), 1);
}

// Row 2.
#[tokio::test(flavor = "multi_thread")]
async fn a_chain_prompt_that_grows_past_max_prompt_bytes_is_not_sent() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    let big = "b".repeat(50_000);
    let many = "{{a}}".repeat(100);
    ws.send(json!({"id": "c", "chain": [[{"prompt": big, "name": "a"}], [{"prompt": many}]]}))
        .await;
    let frames = ws.until_signals(1).await;
    let shown = serde_json::to_string(&frames).unwrap();
    assert!(shown.contains("max_prompt_bytes"), "{}", &shown[..500]);
    assert_eq!(
        fake.requests().len(),
        1,
        "only the first stage went upstream"
    );
}

// Row 3.
#[tokio::test(flavor = "multi_thread")]
async fn chain_sizes_are_bounded_and_every_task_counts_against_max_in_flight() {
    let fake = oy3o_testkit::FakeServer::start().await;
    fake.respond(|r| {
        oy3o_testkit::openai::reply_to(r, &["ok"]).delayed(Duration::from_millis(150))
    });
    let server = limited(
        &fake,
        Limits {
            max_in_flight: 3,
            max_stage_tasks: 12,
            max_chain_stages: 2,
            ..Limits::default()
        },
    )
    .await;
    let mut ws = server.client().await;
    let tasks =
        |n: usize| -> Vec<Value> { (0..n).map(|i| json!({"prompt": format!("t{i}")})).collect() };

    ws.send(json!({"id": "wide", "chain": [tasks(13)]})).await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["code"], "limit");
    assert!(
        frames[0]["message"]
            .as_str()
            .unwrap()
            .contains("max_stage_tasks")
    );
    ws.send(json!({"id": "long", "chain": [tasks(1), tasks(1), tasks(1)]}))
        .await;
    let frames = ws.until_signals(1).await;
    assert!(
        frames[0]["message"]
            .as_str()
            .unwrap()
            .contains("max_chain_stages")
    );
    assert!(fake.requests().is_empty());

    ws.send(json!({"id": "ok", "chain": [tasks(12)]})).await;
    ws.send(json!({"ref": "more", "prompt": "p"})).await;
    let frames = ws.until_signals(2).await;
    let refused = errors(&frames);
    assert_eq!(refused.len(), 1, "{frames:?}");
    assert_eq!(refused[0]["ref"], "more");
    assert!(
        refused[0]["message"]
            .as_str()
            .unwrap()
            .contains("max_in_flight")
    );
    assert_eq!(fake.requests().len(), 12);
    assert!(fake.max_in_flight() <= 3, "{}", fake.max_in_flight());
}

// Row 4.
#[tokio::test(flavor = "multi_thread")]
async fn silent_and_half_sent_http_connections_are_closed_before_auth() {
    let fake = echo().await;
    let server = start(
        config_for(&fake),
        Settings {
            token: Token::new("t0ken"),
            ..with_limits(Limits {
                header_timeout: Duration::from_millis(500),
                body_timeout: Duration::from_millis(500),
                max_connections: 3,
                ..Limits::default()
            })
        },
    )
    .await;
    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Authorization: Bearer t0ken\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, silent.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "a silent connection is closed");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, half.read_to_end(&mut answer))
        .await
        .expect("the half-sent request is answered and closed");
    let head = String::from_utf8_lossy(&answer);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(head.contains("body_timeout_secs"), "{head}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // The connection cap: past it, connections are closed at once.
    let held: Vec<TcpStream> =
        futures::future::join_all((0..3).map(|_| TcpStream::connect(server.addr)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = TcpStream::connect(server.addr).await.unwrap();
    let _ = over
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    let n = tokio::time::timeout(Duration::from_millis(400), over.read(&mut buf))
        .await
        .expect("closed at once, not left waiting")
        .unwrap_or(0);
    assert_eq!(n, 0);
    drop(held);
    // Freed slots serve again.
    assert!(
        eventually_async(|| async {
            reqwest::get(server.http("/health"))
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await
    );
}

/// Sends `GET /health` on a kept-alive connection and reads the whole response.
async fn health_on(tcp: &mut TcpStream) -> String {
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        let n = tokio::time::timeout(PATIENCE, tcp.read(&mut buf))
            .await
            .expect("a response")
            .unwrap_or(0);
        assert!(n > 0, "the connection closed mid-response: {text:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// How long until the server closes `tcp` (reading nothing else).
async fn closed_after(tcp: &mut TcpStream) -> Duration {
    let since = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(PATIENCE, tcp.read(&mut buf))
        .await
        .expect("the server closes the connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf[..n]));
    since.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout_and_a_busy_one_is_not()
{
    let fake = oy3o_testkit::FakeServer::start().await;
    fake.respond(|r| {
        oy3o_testkit::openai::reply_to(r, &["slow"]).delayed(Duration::from_millis(2500))
    });
    let keepalive = Duration::from_millis(1500);
    let server = limited(
        &fake,
        Limits {
            header_timeout: Duration::from_millis(300),
            keepalive_timeout: keepalive,
            ..Limits::default()
        },
    )
    .await;

    // Idle past the header timeout but within the keep-alive timeout: still served.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    assert!(health_on(&mut kept).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(health_on(&mut kept).await.starts_with("HTTP/1.1 200"));
    // Then idle for the keep-alive timeout: closed.
    let idle = closed_after(&mut kept).await;
    assert!(
        idle >= keepalive - Duration::from_millis(100) && idle < keepalive * 3,
        "closed after {idle:?}"
    );

    // A connection that keeps asking outlives the timeout several times over.
    let mut active = TcpStream::connect(server.addr).await.unwrap();
    let started = std::time::Instant::now();
    while started.elapsed() < keepalive * 3 {
        assert!(health_on(&mut active).await.starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    // A request whose streamed answer takes longer than the timeout is not idle.
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    let body = json!({"stream": true, "messages": [{"role": "user", "content": "x"}]}).to_string();
    busy.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("[DONE]") {
        let n = tokio::time::timeout(PATIENCE, busy.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        let shown = String::from_utf8_lossy(&answer).into_owned();
        assert!(n > 0, "closed before the answer ended: {shown}");
        answer.extend_from_slice(&buf[..n]);
    }
    let shown = String::from_utf8_lossy(&answer);
    assert!(
        shown.starts_with("HTTP/1.1 200") && shown.contains("slow"),
        "{shown}"
    );

    // On a kept-alive connection, a request's headers still get only the header timeout.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    assert!(health_on(&mut slow).await.starts_with("HTTP/1.1 200"));
    slow.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let waited = closed_after(&mut slow).await;
    assert!(waited < keepalive, "closed after {waited:?}");

    // A WebSocket is past HTTP's waits: idle for longer, it still answers.
    let mut ws = server.client().await;
    tokio::time::sleep(keepalive + Duration::from_millis(500)).await;
    ws.send(json!({"id": "w", "model": "", "prompt": "p"}))
        .await;
    assert_eq!(text_of(&ws.until_signals(1).await, "w"), "slow");
}

async fn eventually_async<F, Fut>(mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

// Row 5.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_is_cut_off_and_its_reply_cancelled() {
    // 40 MB of answer: far more than the socket buffers hold.
    let fake = big_answers(2000, 20_000).await;
    let server = limited(
        &fake,
        Limits {
            max_outbound_bytes: 256 << 10,
            ..Limits::default()
        },
    )
    .await;
    let mut ws = server.client().await;
    ws.send(json!({"id": "slow", "model": "", "prompt": "p"}))
        .await;
    // Never read: the server must give up on its own and drop the upstream request.
    assert!(eventually(|| fake.aborted_by_client() == 1).await);
    assert_eq!(fake.completed(), 0);

    let long_ref = "r".repeat(2000);
    let mut ws = server.client().await;
    ws.send(json!({"id": "a", "ref": long_ref, "prompt": "p"}))
        .await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["code"], "limit");
    assert_eq!(frames[0]["id"], "a");
    assert!(frames[0].get("ref").is_none());
    assert!(
        frames[0]["message"]
            .as_str()
            .unwrap()
            .contains("max_id_bytes")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_blocked_for_the_idle_timeout_closes_the_connection() {
    let fake = big_answers(2000, 20_000).await;
    let server = limited(
        &fake,
        Limits {
            idle_timeout: Duration::from_millis(500),
            max_outbound_bytes: usize::MAX,
            ..Limits::default()
        },
    )
    .await;
    let mut ws = server.client().await;
    ws.send(json!({"id": "slow", "model": "", "prompt": "p"}))
        .await;
    assert!(eventually(|| fake.aborted_by_client() == 1).await);
    drop(ws);
}

// Row 7.
#[tokio::test(flavor = "multi_thread")]
async fn local_files_and_unlisted_models_are_refused_without_saying_what_exists() {
    let fake = echo().await;
    let server = start(
        config_for(&fake),
        Settings {
            models_allowed: Some(vec!["openai:gpt-4o-*".into(), "local:*".into()]),
            ..settings()
        },
    )
    .await;
    let mut ws = server.client().await;
    let mut messages = Vec::new();
    for model in [
        "local:/etc/passwd",
        "local:/nonexistent.gguf",
        "local:Cargo.toml",
    ] {
        ws.send(json!({"id": "l", "model": model, "prompt": "x"}))
            .await;
        let frames = ws.until_signals(1).await;
        assert_eq!(frames[0]["code"], "forbidden", "{model}");
        let m = frames[0]["message"].as_str().unwrap().replace(model, "M");
        messages.push(m);
    }
    assert!(messages.iter().all(|m| *m == messages[0]), "{messages:?}");
    assert!(messages[0].contains("model_dirs"));

    ws.send(json!({"id": "o", "model": "openai:o1", "prompt": "x"}))
        .await;
    let frames = ws.until_signals(1).await;
    assert!(
        frames[0]["message"]
            .as_str()
            .unwrap()
            .contains("models_allowed")
    );
    ws.send(json!({"chain": [[{"model": "openai:o1", "prompt": "x"}]]}))
        .await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["code"], "forbidden");
    ws.send(json!({"id": "o", "model": "openai:gpt-4o-mini", "prompt": "x"}))
        .await;
    assert_eq!(text_of(&ws.until_signals(1).await, "o"), "ANSWER(x)");

    let refused = reqwest::Client::new()
        .post(server.http("/v1/chat/completions"))
        .json(&json!({"model": "openai:o1", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("models_allowed")
    );
}

// Rows 8 and 9.
#[tokio::test(flavor = "multi_thread")]
async fn huge_numbers_and_parse_time_refusals_still_end_with_a_signal() {
    let fake = echo().await;
    let server = limited(
        &fake,
        Limits {
            max_frame_bytes: 1000,
            ..Limits::default()
        },
    )
    .await;
    let mut ws = server.client().await;
    ws.send(json!({"id": "t", "chain": [[{"prompt": "x", "timeout": 1e20}]]}))
        .await;
    let frames = ws.until_signals(1).await;
    assert!(errors(&frames).is_empty(), "{frames:?}");
    assert_eq!(fake.requests().len(), 1);

    ws.send(json!({"id": "n", "prompt": "x", "options": {"temperature": 1e39}}))
        .await;
    let frames = ws.until_signals(1).await;
    assert!(
        frames[0]["message"]
            .as_str()
            .unwrap()
            .contains("temperature")
    );

    ws.send(json!({"prompt": "p", "key": {"env": "X"}})).await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["type"], "error");
    assert_eq!(frames[1]["type"], "signal");

    let big = "p".repeat(1500);
    ws.send(json!({"id": "big", "ref": 7, "prompt": big})).await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["code"], "too_large");
    assert_eq!(
        (&frames[0]["id"], &frames[0]["ref"]),
        (&json!("big"), &json!(7))
    );
    assert_eq!(frames[1]["type"], "signal");
}

// Row 11.
#[tokio::test(flavor = "multi_thread")]
async fn health_without_the_token_says_only_that_the_server_is_up() {
    let fake = echo().await;
    let server = start(
        config_for(&fake),
        Settings {
            token: Token::new("t0ken"),
            ..settings()
        },
    )
    .await;
    let open: Value = reqwest::get(server.http("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(open, json!({"status": "ok"}));
    let full: Value = reqwest::get(server.http("/health?token=t0ken"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(full["version"].is_string(), "{full}");
}

// Row 12.
#[tokio::test(flavor = "multi_thread")]
async fn the_openai_route_refuses_what_it_would_ignore_in_openais_error_shape() {
    let fake = echo().await;
    let server = limited(
        &fake,
        Limits {
            max_body_bytes: 4096,
            ..Limits::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    let url = server.http("/v1/chat/completions");
    let messages = json!([{"role": "user", "content": "x"}]);
    for (field, value) in [
        ("response_format", json!({"type": "yaml"})),
        ("tool_choice", json!("auto")),
        ("functions", json!([{"name": "f"}])),
        ("logit_bias", json!({"50256": -100})),
        ("logprobs", json!(true)),
        ("frobnicate", json!(1)),
    ] {
        let mut body = json!({"messages": messages});
        body[field] = value;
        let response = http.post(&url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 400, "{field}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"]["message"].as_str().unwrap().contains(field),
            "{error}"
        );
    }
    let hot = json!({"messages": messages, "temperature": 1e39});
    assert_eq!(
        http.post(&url).json(&hot).send().await.unwrap().status(),
        400
    );
    let fine = json!({"messages": messages, "stop": null, "logprobs": false});
    assert_eq!(
        http.post(&url).json(&fine).send().await.unwrap().status(),
        200
    );

    let text = http
        .post(&url)
        .header("content-type", "text/plain")
        .body(json!({"messages": messages}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    for response in [
        http.post(&url)
            .header("content-type", "application/json")
            .body("x".repeat(10_000))
            .send()
            .await
            .unwrap(),
        http.get(&url).send().await.unwrap(),
        http.get(server.http("/nope")).send().await.unwrap(),
    ] {
        let status = response.status();
        assert!([413, 405, 404].contains(&status.as_u16()), "{status}");
        let error: Value = response.json().await.expect("a JSON error body");
        assert!(error["error"]["message"].is_string(), "{status}: {error}");
    }
    assert_eq!(fake.requests().len(), 1);
}
