//! Behaviour of the `anthropic` provider against a fake Messages API on a real socket.

mod common;

use std::time::Duration;

use common::{KEY, Run, config_for, recorder, tune};
use futures::StreamExt;
use oy3o::{Chat, Citation, Config, ErrorCode, Event, Role, Usage};
use oy3o_testkit::{FakeServer, anthropic};

const MODEL: &str = "anthropic:claude-sonnet-4-5";

fn config(server: &FakeServer) -> Config {
    config_for("anthropic", server.url())
}

#[tokio::test]
async fn a_chat_streams_chunks_and_returns_whole_replies() {
    let server = FakeServer::start().await;
    server.push(anthropic::answer(&["Hi", " there!"]).build());
    server.push(anthropic::answer(&["Second", " answer"]).build());
    let chat = Chat::open(Some(MODEL), &config(&server)).unwrap();

    let chunks: Vec<String> = chat.send("Say hi").map(|c| c.unwrap()).collect().await;
    assert_eq!(chunks, ["Hi", " there!"]);
    assert_eq!(chat.send_once("again").await.unwrap(), "Second answer");

    let request = &server.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some(KEY));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.header("authorization"), None);
    let body = request.json();
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["stream"], true);
    assert_eq!(
        body["max_tokens"], 4096,
        "max_tokens is required: always sent"
    );
}

#[tokio::test]
async fn history_is_sent_every_turn_with_the_context_as_the_top_level_system_prompt() {
    let server = FakeServer::start().await;
    server.push(anthropic::answer(&["one"]).build());
    server.push(anthropic::answer(&["two"]).build());
    let chat = Chat::open(Some(MODEL), &config(&server)).unwrap();
    chat.update("You are terse.");
    chat.send_once("first").await.unwrap();
    chat.send_once("second").await.unwrap();

    // The context and the history so far are the stable prefix, marked for prompt caching
    // (TOOLS.md §3.8): the system string as one text block, the last history block marked.
    let body = server.requests()[1].json();
    let cache = serde_json::json!({"type": "ephemeral"});
    assert_eq!(
        body["system"],
        serde_json::json!([{"type": "text", "text": "You are terse.", "cache_control": cache}])
    );
    assert_eq!(
        body["messages"],
        serde_json::json!([
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": [{"type": "text", "text": "one", "cache_control": cache}]},
            {"role": "user", "content": "second"},
        ])
    );
    let history = chat.history();
    assert_eq!(history.len(), 4);
    assert_eq!(history[3].role, Role::Assistant);
    assert_eq!(history[3].text(), "two");
}

#[tokio::test]
async fn no_context_sends_no_system_field_and_options_set_the_limits() {
    let server = FakeServer::start().await;
    server.push(anthropic::answer(&["x"]).build());
    let mut config = config(&server);
    config.options.max_tokens = Some(64);
    config.options.temperature = Some(0.2);
    oy3o::exec_once("q", None, Some(MODEL), &config)
        .await
        .unwrap();
    let body = server.requests()[0].json();
    assert!(body.get("system").is_none(), "{body}");
    assert_eq!(body["max_tokens"], 64);
    assert!((body["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
}

#[tokio::test]
async fn thinking_deltas_are_reasoning_events_and_stay_out_of_the_text() {
    let server = FakeServer::start().await;
    server.push(
        anthropic::thinking_answer(&["The user greets me;", " reply briefly."], &["Hi!"]).build(),
    );
    let run = Run::of(oy3o::exec("hi", None, Some(MODEL), &config(&server))).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "Hi!");
    assert_eq!(run.reasoning(), "The user greets me; reply briefly.");
}

#[tokio::test]
async fn a_web_search_reports_its_query_its_results_and_the_citation() {
    let server = FakeServer::start().await;
    server.push(anthropic::web_search_answer().build());
    let run = Run::of(oy3o::exec("when?", None, Some(MODEL), &config(&server))).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(
        run.text,
        "I'll search for that.Rust 1.90 shipped on 18 September 2025."
    );
    assert_eq!(
        run.named("search"),
        [&Event::Search(anthropic::SEARCH_QUERY.into())]
    );
    let results: Vec<&str> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::SearchResult(c) => Some(c.url.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        results,
        [anthropic::CITED_URL, "https://releases.rs/docs/1.90.0/"]
    );
    assert_eq!(
        run.named("citation"),
        [&Event::Citation(Citation {
            url: anthropic::CITED_URL.into(),
            title: Some("Announcing Rust 1.90.0".into()),
            start: None,
            end: None,
        })]
    );
}

#[tokio::test]
async fn usage_is_one_event_at_the_end_with_the_last_cumulative_counts() {
    let server = FakeServer::start().await;
    server.push(anthropic::answer(&["a", "b"]).build());
    server.push(anthropic::web_search_answer().build());
    let config = config(&server);
    let plain = Run::of(oy3o::exec("q", None, Some(MODEL), &config)).await;
    assert_eq!(
        plain.named("usage"),
        [&Event::Usage(Usage {
            input_tokens: anthropic::INPUT_TOKENS,
            output_tokens: 7,
            cached_tokens: Some(0),
            reasoning_tokens: None,
        })]
    );
    // Server tools ran more model calls: the final counts exceed message_start's (§3.4).
    let search = Run::of(oy3o::exec("q", None, Some(MODEL), &config)).await;
    let usage = search.named("usage");
    assert_eq!(usage.len(), 1);
    assert!(
        matches!(usage[0], Event::Usage(u) if u.input_tokens == 10682 && u.output_tokens == 510),
        "{usage:?}"
    );
    let last = search.events.last().unwrap();
    assert!(
        matches!(last, Event::Result { finish_reason, .. } if finish_reason == "stop"),
        "{last:?}"
    );
}

#[tokio::test]
async fn pings_keep_alive_comments_and_split_reads_decode_cleanly() {
    let server = FakeServer::start().await;
    server.push(
        anthropic::answer(&["héllo ", "世界", " 👋"])
            .keep_alive()
            .split_every(3)
            .build(),
    );
    let answer = oy3o::exec_once("hi", None, Some(MODEL), &config(&server))
        .await
        .unwrap();
    assert_eq!(answer, "héllo 世界 👋");
}

#[tokio::test]
async fn an_overloaded_error_event_mid_answer_is_an_error_that_keeps_the_partial_text() {
    let server = FakeServer::start().await;
    server.push(
        anthropic::unfinished(&["Hi", " there"])
            .named("error", anthropic::OVERLOADED_EVENT)
            .build(),
    );
    let mut config = config(&server);
    let seen = recorder(&mut config);
    let run = Run::of(oy3o::exec("hi", None, Some(MODEL), &config)).await;
    assert_eq!(run.text, "Hi there");
    assert_eq!(run.err().code(), ErrorCode::Provider);
    assert!(run.err().message().contains("Overloaded"), "{}", run.err());
    assert!(run.named("result").is_empty());
    assert!(common::names(&seen).contains(&"error".to_owned()));
    assert_eq!(
        server.requests().len(),
        1,
        "no retry once the answer started"
    );
}

#[tokio::test]
async fn a_stream_that_ends_without_message_stop_is_a_network_error() {
    let server = FakeServer::start().await;
    server.push(anthropic::unfinished(&["Hi"]).build());
    let run = Run::of(oy3o::exec("hi", None, Some(MODEL), &config(&server))).await;
    assert_eq!(run.text, "Hi");
    assert_eq!(run.err().code(), ErrorCode::Network);
    assert!(
        run.err().message().contains("message_stop"),
        "{}",
        run.err()
    );
}

#[tokio::test]
async fn a_connection_cut_mid_answer_is_a_network_error() {
    let server = FakeServer::start().await;
    server.push(anthropic::answer(&["Hi", " there"]).cut_after(4).build());
    let run = Run::of(oy3o::exec("hi", None, Some(MODEL), &config(&server))).await;
    assert_eq!(run.text, "Hi");
    assert_eq!(run.err().code(), ErrorCode::Network);
}

#[tokio::test]
async fn each_error_status_maps_to_its_code_and_says_what_to_do() {
    let cases = [
        (
            400,
            "invalid_request_error",
            "max_tokens: Field required",
            ErrorCode::BadRequest,
            "options",
        ),
        (
            401,
            "authentication_error",
            "invalid x-api-key",
            ErrorCode::Auth,
            "ANTHROPIC_API_KEY",
        ),
        (
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
            ErrorCode::Auth,
            "ANTHROPIC_API_KEY",
        ),
        (
            404,
            "not_found_error",
            "model: claude-foo",
            ErrorCode::NotFound,
            "model name",
        ),
        (
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
            ErrorCode::BadRequest,
            "options",
        ),
        (
            402,
            "billing_error",
            "Your credit balance is too low to access the Anthropic API.",
            ErrorCode::RateLimit,
            "credit",
        ),
    ];
    for (status, kind, message, code, advice) in cases {
        let server = FakeServer::start().await;
        server.fallback(anthropic::error(status, kind, message));
        let err = oy3o::exec_once("hi", None, Some(MODEL), &config(&server))
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{status}: {err}");
        assert!(err.message().contains(message), "{status}: {err}");
        assert!(err.message().contains(advice), "{status}: {err}");
        assert_eq!(server.requests().len(), 1, "{status} is not retried");
    }
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_with_their_code() {
    let cases = [
        (
            500,
            "api_error",
            "Internal server error",
            ErrorCode::Provider,
        ),
        (
            504,
            "timeout_error",
            "Request timed out",
            ErrorCode::Timeout,
        ),
        (529, "overloaded_error", "Overloaded", ErrorCode::Provider),
        (
            429,
            "rate_limit_error",
            "This request would exceed the rate limit",
            ErrorCode::RateLimit,
        ),
    ];
    for (status, kind, message, code) in cases {
        let server = FakeServer::start().await;
        server.fallback(anthropic::error(status, kind, message).header("retry-after-ms", "5"));
        let mut config = config(&server);
        let seen = recorder(&mut config);
        let err = oy3o::exec_once("hi", None, Some(MODEL), &config)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{status}: {err}");
        assert_eq!(server.requests().len(), 3, "{status}: two retries");
        let retries = common::names(&seen)
            .iter()
            .filter(|n| *n == "retry")
            .count();
        assert_eq!(retries, 2, "{status}");
    }
}

#[tokio::test]
async fn a_529_before_the_first_byte_is_retried_after_the_delay_asked_for() {
    let server = FakeServer::start().await;
    server.push(anthropic::overloaded().header("retry-after", "0.2"));
    server.push(anthropic::rate_limited("0.1"));
    server.push(anthropic::answer(&["ok"]).build());
    let mut config = config(&server);
    let seen = recorder(&mut config);
    let started = std::time::Instant::now();
    let answer = oy3o::exec_once("hi", None, Some(MODEL), &config)
        .await
        .unwrap();
    assert_eq!(answer, "ok");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let retries: Vec<Event> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.name() == "retry")
        .cloned()
        .collect();
    assert_eq!(
        retries,
        [
            Event::Retry {
                attempt: 1,
                delay_ms: 200,
                reason: "HTTP 529".into()
            },
            Event::Retry {
                attempt: 2,
                delay_ms: 100,
                reason: "HTTP 429".into()
            },
        ]
    );
}

#[tokio::test]
async fn a_key_echoed_by_the_server_is_redacted() {
    let server = FakeServer::start().await;
    server.push(anthropic::error(
        401,
        "authentication_error",
        &format!("invalid x-api-key: {KEY}"),
    ));
    let err = oy3o::exec_once("hi", None, Some(MODEL), &config(&server))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Auth);
    assert!(!err.message().contains(KEY), "{err}");
    assert!(err.message().contains("<redacted>"), "{err}");
}

#[tokio::test]
async fn a_missing_key_is_an_auth_error_before_any_request() {
    let server = FakeServer::start().await;
    let mut config = Config::default();
    tune(&mut config, "anthropic", |s| {
        s.base_url = Some(server.url());
        s.api_key_env = Some("OY3O_TEST_NO_SUCH_VARIABLE".into());
    });
    let err = Chat::open(Some(MODEL), &config).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Auth);
    assert!(
        err.message().contains("OY3O_TEST_NO_SUCH_VARIABLE"),
        "{err}"
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_bare_provider_name_uses_claude_sonnet_4_5_and_a_v1_base_url_is_accepted() {
    let server = FakeServer::start().await;
    server.push(anthropic::answer(&["x"]).build());
    let config = config_for("anthropic", server.base_url());
    oy3o::exec_once("q", None, Some("anthropic"), &config)
        .await
        .unwrap();
    let request = &server.requests()[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.json()["model"], "claude-sonnet-4-5");
    assert_eq!(anthropic::prompt_of(request), "q");
}
