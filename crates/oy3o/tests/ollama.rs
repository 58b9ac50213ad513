//! Behaviour of the `ollama` provider against a fake Ollama server (native `/api/chat`,
//! NDJSON) on a real socket.

mod common;

use common::{KEY, Run, config_for, tune};
use futures::StreamExt;
use oy3o::{Chat, Config, ErrorCode, Event, Role, Usage};
use oy3o_testkit::{FakeServer, NdjsonScript, ollama};

const MODEL: &str = "ollama:llama3.2";

/// A local server: no key.
fn config(server: &FakeServer) -> Config {
    let mut config = Config::default();
    tune(&mut config, "ollama", |s| s.base_url = Some(server.url()));
    config
}

#[tokio::test]
async fn a_chat_streams_chunks_and_returns_whole_replies_without_a_key() {
    let server = FakeServer::start().await;
    server.push(ollama::answer(&["Hi", " there!"]).build());
    server.push(ollama::answer(&["Second", " answer"]).build());
    let chat = Chat::open(Some(MODEL), &config(&server)).unwrap();

    let chunks: Vec<String> = chat.send("Say hi").map(|c| c.unwrap()).collect().await;
    assert_eq!(chunks, ["Hi", " there!"]);
    assert_eq!(chat.send_once("again").await.unwrap(), "Second answer");

    let request = &server.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/chat");
    assert_eq!(request.header("authorization"), None);
    let body = request.json();
    assert_eq!(body["model"], "llama3.2");
    assert_eq!(body["stream"], true);
    assert_eq!(ollama::prompt_of(request), "Say hi");
}

#[tokio::test]
async fn a_configured_key_is_sent_as_a_bearer_token() {
    let server = FakeServer::start().await;
    server.push(ollama::answer(&["x"]).build());
    let config = config_for("ollama", server.url());
    oy3o::exec_once("q", None, Some(MODEL), &config)
        .await
        .unwrap();
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
}

#[tokio::test]
async fn history_and_the_context_as_a_system_message_are_sent_every_turn() {
    let server = FakeServer::start().await;
    server.push(ollama::answer(&["one"]).build());
    server.push(ollama::answer(&["two"]).build());
    let chat = Chat::open(Some(MODEL), &config(&server)).unwrap();
    chat.update("You are terse.");
    chat.send_once("first").await.unwrap();
    chat.send_once("second").await.unwrap();
    assert_eq!(
        server.requests()[1].json()["messages"],
        serde_json::json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "one"},
            {"role": "user", "content": "second"},
        ])
    );
    assert_eq!(chat.history()[3].role, Role::Assistant);
}

#[tokio::test]
async fn temperature_and_max_tokens_go_into_options_as_num_predict() {
    let server = FakeServer::start().await;
    server.fallback(ollama::answer(&["x"]).build());
    let mut config = config(&server);
    oy3o::exec_once("q", None, Some(MODEL), &config)
        .await
        .unwrap();
    config.options.temperature = Some(0.5);
    config.options.max_tokens = Some(64);
    oy3o::exec_once("q", None, Some(MODEL), &config)
        .await
        .unwrap();
    let requests = server.requests();
    assert!(requests[0].json().get("options").is_none());
    assert_eq!(
        requests[1].json()["options"],
        serde_json::json!({"temperature": 0.5, "num_predict": 64})
    );
}

#[tokio::test]
async fn thinking_is_reasoning_and_stays_out_of_the_text() {
    let server = FakeServer::start().await;
    server.push(
        NdjsonScript::default()
            .line(&ollama::thinking_line("The user says hi"))
            .line(&ollama::thinking_line(", so I greet back."))
            .line(&ollama::content_line("Hi!"))
            .line(&ollama::done_line(Some(12), Some(9)))
            .build(),
    );
    let run = Run::of(oy3o::exec("hi", None, Some(MODEL), &config(&server))).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "Hi!");
    assert_eq!(run.reasoning(), "The user says hi, so I greet back.");
}

#[tokio::test]
async fn the_done_line_counts_are_the_usage_and_missing_counts_are_zero() {
    let server = FakeServer::start().await;
    server.push(ollama::answer(&["a", "b"]).build());
    server.push(
        NdjsonScript::default()
            .line(&ollama::content_line("cached"))
            .line(&ollama::done_line(None, Some(1)))
            .build(),
    );
    let config = config(&server);
    let first = Run::of(oy3o::exec("q", None, Some(MODEL), &config)).await;
    assert_eq!(
        first.named("usage"),
        [&Event::Usage(Usage {
            input_tokens: ollama::PROMPT_EVAL_COUNT,
            output_tokens: 2,
            ..Usage::default()
        })]
    );
    let cached = Run::of(oy3o::exec("q", None, Some(MODEL), &config)).await;
    assert!(cached.error.is_none(), "{:?}", cached.error);
    assert_eq!(
        cached.named("usage"),
        [&Event::Usage(Usage {
            input_tokens: 0,
            output_tokens: 1,
            ..Usage::default()
        })]
    );
    assert!(
        matches!(cached.events.last(), Some(Event::Result { finish_reason, .. }) if finish_reason == "stop")
    );
}

#[tokio::test]
async fn lines_split_across_reads_and_inside_characters_decode_cleanly() {
    let server = FakeServer::start().await;
    server.push(
        ollama::answer(&["héllo ", "世界", " 👋"])
            .split_every(3)
            .build(),
    );
    let answer = oy3o::exec_once("hi", None, Some(MODEL), &config(&server))
        .await
        .unwrap();
    assert_eq!(answer, "héllo 世界 👋");
}

#[tokio::test]
async fn an_error_line_mid_answer_is_an_error_that_keeps_the_partial_text() {
    let server = FakeServer::start().await;
    server.push(
        NdjsonScript::default()
            .line(&ollama::content_line("."))
            .line(ollama::MID_STREAM_ERROR)
            .build(),
    );
    let run = Run::of(oy3o::exec("hi", None, Some(MODEL), &config(&server))).await;
    assert_eq!(run.text, ".");
    assert_eq!(run.err().code(), ErrorCode::Provider);
    assert!(
        run.err()
            .message()
            .contains("an error was encountered while running the model"),
        "{}",
        run.err()
    );
}

#[tokio::test]
async fn a_stream_that_ends_without_its_done_line_is_a_network_error() {
    let server = FakeServer::start().await;
    server.push(ollama::answer(&["Hi", " there"]).close_after(2).build());
    let run = Run::of(oy3o::exec("hi", None, Some(MODEL), &config(&server))).await;
    assert_eq!(run.text, "Hi there");
    assert_eq!(run.err().code(), ErrorCode::Network);
    assert!(run.err().message().contains("done"), "{}", run.err());
}

#[tokio::test]
async fn a_model_that_is_not_pulled_says_how_to_pull_it() {
    let server = FakeServer::start().await;
    server.push(ollama::model_not_found("llama3.3"));
    let err = oy3o::exec_once("hi", None, Some("ollama:llama3.3"), &config(&server))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert!(err.message().contains("ollama pull llama3.3"), "{err}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_busy_server_is_retried_and_other_errors_map_to_their_codes() {
    let server = FakeServer::start().await;
    server.push(ollama::server_busy().header("retry-after-ms", "5"));
    server.push(ollama::answer(&["ok"]).build());
    let answer = oy3o::exec_once("hi", None, Some(MODEL), &config(&server))
        .await
        .unwrap();
    assert_eq!(answer, "ok");

    for (reply, code, attempts) in [
        (
            ollama::error(400, "model is required"),
            ErrorCode::BadRequest,
            1,
        ),
        (
            ollama::error(500, "llama runner process has terminated"),
            ErrorCode::Provider,
            3,
        ),
        (ollama::server_busy(), ErrorCode::Provider, 3),
        // Cloud and remote models (ollama.com).
        (ollama::error(401, "unauthorized"), ErrorCode::Auth, 1),
        (
            ollama::error(429, "too many requests"),
            ErrorCode::RateLimit,
            3,
        ),
        (ollama::error(502, "bad gateway"), ErrorCode::Provider, 3),
    ] {
        let server = FakeServer::start().await;
        let status = reply.status;
        server.fallback(reply.header("retry-after-ms", "5"));
        let err = oy3o::exec_once("hi", None, Some(MODEL), &config(&server))
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{status}: {err}");
        assert_eq!(server.requests().len(), attempts, "{status}");
    }
}

#[tokio::test]
async fn a_base_url_without_scheme_or_port_is_read_as_ollama_host_is() {
    let server = FakeServer::start().await;
    server.push(ollama::answer(&["x"]).build());
    let mut config = Config::default();
    tune(&mut config, "ollama", |s| {
        s.base_url = Some(server.addr().to_string())
    });
    oy3o::exec_once("q", None, Some("ollama"), &config)
        .await
        .unwrap();
    assert_eq!(server.requests()[0].json()["model"], "llama3.2");
}
