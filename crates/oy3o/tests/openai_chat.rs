//! Behaviour of chats and one-shot prompts against a fake OpenAI server on a real socket.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use oy3o::{Chat, Config, Credential, ErrorCode, Event, Output, ProviderSettings, Role};
use oy3o_testkit::{FakeServer, HttpProxy, Scripted, openai};

fn config_for(server: &FakeServer) -> Config {
    let mut config = Config::default();
    config.providers.insert(
        "openai".into(),
        ProviderSettings {
            base_url: Some(server.base_url()),
            api_key: Some(Credential::parse("sk-test-0123456789")),
            ..ProviderSettings::default()
        },
    );
    config
}

fn tune(config: &mut Config, f: impl FnOnce(&mut ProviderSettings)) {
    f(config.providers.get_mut("openai").expect("openai section"));
}

fn recorder(config: &mut Config) -> Arc<Mutex<Vec<Event>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    config
        .listeners
        .on("*", move |e| s.lock().unwrap().push(e.clone()));
    seen
}

fn names(events: &Arc<Mutex<Vec<Event>>>) -> Vec<String> {
    events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.name().to_owned())
        .collect()
}

#[tokio::test]
async fn a_chat_streams_chunks_and_returns_whole_replies() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Hi", " there!"]).build());
    server.push(openai::answer(&["Second", " answer"]).build());
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config_for(&server)).unwrap();

    let chunks: Vec<String> = chat.send("Say hi").map(|c| c.unwrap()).collect().await;
    assert_eq!(chunks, ["Hi", " there!"]);
    assert_eq!(chat.send_once("again").await.unwrap(), "Second answer");

    let request = &server.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some("Bearer sk-test-0123456789")
    );
    let body = request.json();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn history_and_context_are_sent_with_every_turn() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["one"]).build());
    server.push(openai::answer(&["two"]).build());
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config_for(&server)).unwrap();
    chat.update("current time: 2024-05-20 00:00:00");
    chat.send_once("first").await.unwrap();
    chat.send_once("second").await.unwrap();

    let messages = server.requests()[1].json()["messages"].clone();
    let expected = serde_json::json!([
        {"role": "system", "content": "current time: 2024-05-20 00:00:00"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "second"},
    ]);
    assert_eq!(messages, expected);
    let history = chat.history();
    assert_eq!(history.len(), 4);
    assert_eq!(history[3].role, Role::Assistant);
    assert_eq!(history[3].text(), "two");
}

#[tokio::test]
async fn a_restored_history_is_sent_before_the_next_prompt() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Ada"]).build());
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config_for(&server)).unwrap();
    chat.update("Be brief.");
    chat.restore(vec![
        oy3o::Message::user("My name is Ada."),
        oy3o::Message::assistant("Hello, Ada!"),
    ])
    .unwrap();
    assert_eq!(chat.send_once("What is my name?").await.unwrap(), "Ada");

    let messages = server.requests()[0].json()["messages"].clone();
    let expected = serde_json::json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello, Ada!"},
        {"role": "user", "content": "What is my name?"},
    ]);
    assert_eq!(messages, expected);
    assert_eq!(chat.history().len(), 4);
    let err = chat
        .restore(vec![oy3o::Message::system("not here")])
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Config);
    assert_eq!(chat.history().len(), 4, "a refused restore changes nothing");
}

#[tokio::test]
async fn listeners_receive_lifecycle_usage_and_result_events_in_order() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Hi"]).build());
    let mut config = config_for(&server);
    let seen = recorder(&mut config);
    let titles = Arc::new(Mutex::new(0));
    let t = titles.clone();
    config
        .model_listeners
        .entry("openai".into())
        .or_default()
        .on("result", move |_| *t.lock().unwrap() += 1);

    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();
    chat.update("ctx");
    chat.send_once("hello").await.unwrap();

    assert_eq!(
        names(&seen),
        ["create", "update", "send", "usage", "result"]
    );
    assert_eq!(*titles.lock().unwrap(), 1, "per-model listener called too");
    let events = seen.lock().unwrap();
    assert_eq!(
        events[3],
        Event::Usage(oy3o::Usage {
            input_tokens: 19,
            output_tokens: 1,
            cached_tokens: Some(0),
            reasoning_tokens: Some(0)
        })
    );
    assert!(
        matches!(&events[4], Event::Result { text, finish_reason } if text == "Hi" && finish_reason == "stop")
    );
}

#[tokio::test]
async fn a_429_is_retried_after_the_delay_it_asks_for_with_a_retry_event() {
    let server = FakeServer::start().await;
    server.push(openai::rate_limited("0.3"));
    server.push(openai::answer(&["ok"]).build());
    let mut config = config_for(&server);
    let seen = recorder(&mut config);
    let started = Instant::now();
    let answer = oy3o::exec_once("hi", None, Some("openai:gpt-4o-mini"), &config)
        .await
        .unwrap();
    assert_eq!(answer, "ok");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "delay honoured"
    );
    assert_eq!(server.requests().len(), 2);
    let retry = seen
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.name() == "retry")
        .cloned()
        .expect("a retry event");
    assert_eq!(
        retry,
        Event::Retry {
            attempt: 1,
            delay_ms: 300,
            reason: "HTTP 429".into()
        }
    );
}

#[tokio::test]
async fn server_errors_are_retried_twice_then_reported() {
    let server = FakeServer::start().await;
    server.fallback(openai::server_error().header("retry-after-ms", "10"));
    let mut config = config_for(&server);
    let seen = recorder(&mut config);
    let err = oy3o::exec_once("hi", None, Some("openai:gpt-4o-mini"), &config)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Provider);
    assert!(err.message().contains("HTTP 500"), "{err}");
    assert_eq!(server.requests().len(), 3);
    let n = names(&seen);
    assert_eq!(n.iter().filter(|n| *n == "retry").count(), 2);
    assert_eq!(n.last().map(String::as_str), Some("error"));
}

#[tokio::test]
async fn an_exhausted_quota_is_not_retried() {
    let server = FakeServer::start().await;
    server.fallback(openai::insufficient_quota());
    let err = oy3o::exec_once("hi", None, Some("openai:x"), &config_for(&server))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimit);
    assert!(err.message().contains("quota"));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_401_is_an_auth_error_naming_the_variable_and_never_the_key() {
    let server = FakeServer::start().await;
    server.push(openai::invalid_key());
    server.push(Scripted::json(
        401,
        r#"{"error":{"message":"Incorrect API key provided: sk-test-0123456789.","type":"invalid_request_error","code":"invalid_api_key"}}"#,
    ));
    let config = config_for(&server);
    let err = oy3o::exec_once("hi", None, Some("openai:x"), &config)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Auth);
    assert!(err.message().contains("OPENAI_API_KEY"), "{err}");
    let echoed = oy3o::exec_once("hi", None, Some("openai:x"), &config)
        .await
        .unwrap_err();
    assert!(!echoed.message().contains("sk-test-0123456789"), "{echoed}");
    assert!(echoed.message().contains("<redacted>"), "{echoed}");
}

#[tokio::test]
async fn an_unknown_model_is_a_not_found_error() {
    let server = FakeServer::start().await;
    server.push(openai::model_not_found("gpt-9"));
    let err = oy3o::exec_once("hi", None, Some("openai:gpt-9"), &config_for(&server))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert!(err.message().contains("gpt-9"));
}

#[tokio::test]
async fn a_stream_cut_mid_answer_is_an_error_not_a_short_answer() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Hi", " there", "!"]).cut_after(3).build());
    let mut config = config_for(&server);
    let seen = recorder(&mut config);
    let mut reply = oy3o::exec("hi", None, Some("openai:x"), &config);
    let mut text = String::new();
    let mut error = None;
    while let Some(item) = reply.next().await {
        match item {
            Ok(t) => text.push_str(&t),
            Err(e) => error = Some(e),
        }
    }
    assert_eq!(text, "Hi there");
    assert_eq!(error.expect("an error").code(), ErrorCode::Network);
    assert!(!names(&seen).contains(&"result".to_owned()));
    assert!(names(&seen).contains(&"error".to_owned()));
}

#[tokio::test]
async fn a_mid_stream_error_event_is_reported_as_a_provider_error() {
    let server = FakeServer::start().await;
    let script = oy3o_testkit::SseScript::default()
        .data(r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#)
        .data(openai::MID_STREAM_ERROR);
    server.push(script.cut_after(2).build());
    let err = oy3o::exec_once("hi", None, Some("openai:x"), &config_for(&server))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Provider);
    assert!(err.message().contains("Sorry about that"));
}

#[tokio::test]
async fn split_utf8_crlf_framing_and_keep_alive_comments_decode_cleanly() {
    let server = FakeServer::start().await;
    server.push(
        openai::answer(&["héllo ", "世界", " 👋"])
            .crlf()
            .keep_alive()
            .split_every(5)
            .build(),
    );
    let answer = oy3o::exec_once("hi", None, Some("openai:x"), &config_for(&server))
        .await
        .unwrap();
    assert_eq!(answer, "héllo 世界 👋");
}

#[tokio::test]
async fn reasoning_deltas_reach_listeners_and_stay_out_of_the_text() {
    let server = FakeServer::start().await;
    let script = oy3o_testkit::SseScript::default()
        .data(&openai::reasoning_chunk(
            "reasoning_content",
            "Let me think.",
        ))
        .data(&openai::reasoning_chunk("reasoning", " Done."))
        .data(r#"{"choices":[{"index":0,"delta":{"content":"42"},"finish_reason":"stop"}]}"#)
        .data("[DONE]");
    server.push(script.build());
    let mut outputs = oy3o::exec("q", None, Some("openai:x"), &config_for(&server)).outputs();
    let mut reasoning = String::new();
    let mut text = String::new();
    while let Some(item) = outputs.next().await {
        match item.unwrap() {
            Output::Text(t) => text.push_str(&t),
            Output::Event(Event::Reasoning(r)) => reasoning.push_str(&r),
            Output::Event(_) => {}
        }
    }
    assert_eq!(text, "42");
    assert_eq!(reasoning, "Let me think. Done.");
}

#[tokio::test]
async fn dropping_the_reply_stops_the_upstream_request() {
    let server = FakeServer::start().await;
    let pieces: Vec<String> = (0..200).map(|i| format!("w{i} ")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    server.push(
        openai::answer(&pieces)
            .delay(Duration::from_millis(10))
            .build(),
    );
    let mut reply = oy3o::exec("long", None, Some("openai:x"), &config_for(&server));
    assert_eq!(reply.next().await.unwrap().unwrap(), "w0 ");
    assert_eq!(reply.next().await.unwrap().unwrap(), "w1 ");
    drop(reply);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.aborted_by_client() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.aborted_by_client(),
        1,
        "the server saw the client hang up"
    );
    assert_eq!(server.completed(), 0);
}

#[tokio::test]
async fn a_silent_stream_times_out_with_a_clear_error() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["a", "b"]).stall_after(2).build());
    let mut config = config_for(&server);
    tune(&mut config, |s| {
        s.idle_timeout = Some(Duration::from_millis(300))
    });
    let err = oy3o::exec_once("hi", None, Some("openai:x"), &config)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout);
    assert!(err.message().contains("idle_timeout_secs"), "{err}");
}

#[tokio::test]
async fn a_slow_first_byte_times_out_and_is_retried() {
    let server = FakeServer::start().await;
    server.push(
        openai::answer(&["late"])
            .build()
            .delayed(Duration::from_secs(3)),
    );
    server.push(openai::answer(&["fast"]).build());
    let mut config = config_for(&server);
    tune(&mut config, |s| {
        s.first_byte_timeout = Some(Duration::from_millis(300))
    });
    let seen = recorder(&mut config);
    // Streamed: a whole answer's head only comes once the model is done (openai_whole.rs).
    let answer = oy3o::exec("hi", None, Some("openai:x"), &config)
        .text()
        .await
        .unwrap();
    assert_eq!(answer, "fast");
    assert!(names(&seen).contains(&"retry".to_owned()));
}

#[tokio::test]
async fn an_unreachable_provider_is_a_network_error_that_says_what_to_check() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut config = Config::default();
    config.providers.insert(
        "openai".into(),
        ProviderSettings {
            base_url: Some(format!("http://127.0.0.1:{port}/v1")),
            max_retries: Some(0),
            ..ProviderSettings::default()
        },
    );
    let err = oy3o::exec_once("hi", None, Some("openai:x"), &config)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Network);
    assert!(err.message().contains("base URL"), "{err}");
}

#[tokio::test]
async fn the_configured_proxy_carries_the_request() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["via proxy"]).build());
    let proxy = HttpProxy::start().await;
    let mut config = config_for(&server);
    config.proxy = Some(proxy.url());
    let answer = oy3o::exec_once("hi", None, Some("openai:x"), &config)
        .await
        .unwrap();
    assert_eq!(answer, "via proxy");
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].contains(&format!("{}/chat/completions", server.base_url())),
        "{seen:?}"
    );
}

#[tokio::test]
async fn an_empty_proxy_with_the_call_turns_the_global_and_per_model_proxies_off() {
    let server = FakeServer::start().await;
    server.fallback(openai::answer(&["direct"]).build());
    let proxy = HttpProxy::start().await;
    let mut global = config_for(&server);
    global.proxy = Some(proxy.url());
    global.proxies.insert("openai".into(), proxy.url());
    let call = Config {
        proxy: Some(oy3o::transport::client::NO_PROXY.into()),
        ..Config::default()
    };
    let answer = oy3o::exec_once("hi", None, Some("openai:x"), &global.overlay(&call))
        .await
        .unwrap();
    assert_eq!(answer, "direct");
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    // Per model too: `proxies.openai = ""` beats the global proxy.
    let mut per_model = config_for(&server);
    per_model.proxy = Some(proxy.url());
    per_model.proxies.insert("openai".into(), String::new());
    let answer = oy3o::exec_once("hi", None, Some("openai:x"), &per_model)
        .await
        .unwrap();
    assert_eq!(answer, "direct");
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn exec_sends_the_context_and_keeps_no_history() {
    let server = FakeServer::start().await;
    server.fallback(openai::answer(&["x"]).build());
    let config = config_for(&server);
    oy3o::exec_once("one", Some("Be brief."), Some("openai:x"), &config)
        .await
        .unwrap();
    oy3o::exec_once("two", None, Some("openai:x"), &config)
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(
        requests[0].json()["messages"],
        serde_json::json!([{"role":"system","content":"Be brief."},{"role":"user","content":"one"}])
    );
    assert_eq!(
        requests[1].json()["messages"],
        serde_json::json!([{"role":"user","content":"two"}])
    );
}

#[tokio::test]
async fn options_map_to_request_fields_and_max_tokens_follows_the_server_kind() {
    let server = FakeServer::start().await;
    server.fallback(openai::answer(&["x"]).build());
    let mut config = config_for(&server);
    config.options.temperature = Some(0.5);
    config.options.max_tokens = Some(64);
    oy3o::exec_once("q", None, Some("openai:x"), &config)
        .await
        .unwrap();
    tune(&mut config, |s| {
        s.max_tokens_field = Some("max_completion_tokens".into())
    });
    oy3o::exec_once("q", None, Some("openai:x"), &config)
        .await
        .unwrap();
    let r = server.requests();
    assert_eq!(r[0].json()["temperature"], 0.5);
    assert_eq!(r[0].json()["max_tokens"], 64);
    assert_eq!(r[1].json()["max_completion_tokens"], 64);
    assert!(r[1].json().get("max_tokens").is_none());
}

#[tokio::test]
async fn bad_model_references_fail_clearly_through_the_stream_and_listeners() {
    let mut config = Config::default();
    let seen = recorder(&mut config);
    for (model, code) in [
        ("nosuch:model", ErrorCode::NotFound),
        ("open ai:gpt", ErrorCode::NotFound),
        ("openai:", ErrorCode::NotFound),
    ] {
        let err = oy3o::exec_once("hi", None, Some(model), &config)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{model}: {err}");
        assert!(Chat::open(Some(model), &config).is_err());
    }
    assert_eq!(names(&seen), ["error", "error", "error"]);
}

#[tokio::test]
async fn a_closed_chat_refuses_to_send() {
    let server = FakeServer::start().await;
    let chat = Chat::open(Some("openai:x"), &config_for(&server)).unwrap();
    chat.close();
    let err = chat.send_once("hi").await.unwrap_err();
    assert!(err.message().contains("closed"));
    assert!(server.requests().is_empty());
}
