//! Behaviour of the `gemini` provider against a fake Gemini API on a real socket.

mod common;

use std::time::{Duration, Instant};

use common::{KEY, Run, config_for, recorder, tune};
use futures::StreamExt;
use oy3o::{Chat, Citation, Config, ErrorCode, Event, Role, Usage};
use oy3o_testkit::{FakeServer, gemini};

const MODEL: &str = "gemini:gemini-2.5-flash";

fn config(server: &FakeServer) -> Config {
    config_for("gemini", server.url())
}

#[tokio::test]
async fn a_chat_streams_chunks_and_returns_whole_replies() {
    let server = FakeServer::start().await;
    server.push(gemini::answer(&["Hi", " there!"]).build());
    server.push(gemini::answer(&["Second", " answer"]).build());
    let chat = Chat::open(Some(MODEL), &config(&server)).unwrap();

    let chunks: Vec<String> = chat.send("Say hi").map(|c| c.unwrap()).collect().await;
    assert_eq!(chunks, ["Hi", " there!"]);
    assert_eq!(chat.send_once("again").await.unwrap(), "Second answer");

    let request = &server.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(request.header("x-goog-api-key"), Some(KEY));
    assert_eq!(request.header("authorization"), None);
    assert_eq!(gemini::prompt_of(request), "Say hi");
}

#[tokio::test]
async fn history_uses_the_model_role_and_the_context_is_the_system_instruction() {
    let server = FakeServer::start().await;
    server.push(gemini::answer(&["one"]).build());
    server.push(gemini::answer(&["two"]).build());
    let chat = Chat::open(Some(MODEL), &config(&server)).unwrap();
    chat.update("You are terse.");
    chat.send_once("first").await.unwrap();
    chat.send_once("second").await.unwrap();

    let body = server.requests()[1].json();
    assert_eq!(
        body["systemInstruction"],
        serde_json::json!({"parts": [{"text": "You are terse."}]})
    );
    assert_eq!(
        body["contents"],
        serde_json::json!([
            {"role": "user", "parts": [{"text": "first"}]},
            {"role": "model", "parts": [{"text": "one"}]},
            {"role": "user", "parts": [{"text": "second"}]},
        ])
    );
    let history = chat.history();
    assert_eq!(history.len(), 4);
    assert_eq!(history[3].role, Role::Assistant);
}

#[tokio::test]
async fn options_go_into_the_generation_config() {
    let server = FakeServer::start().await;
    server.fallback(gemini::answer(&["x"]).build());
    let mut config = config(&server);
    oy3o::exec_once("q", None, Some(MODEL), &config)
        .await
        .unwrap();
    config.options.max_tokens = Some(64);
    config.options.temperature = Some(0.5);
    oy3o::exec_once("q", None, Some(MODEL), &config)
        .await
        .unwrap();
    let requests = server.requests();
    let plain = requests[0].json();
    assert!(plain.get("generationConfig").is_none(), "{plain}");
    assert!(plain.get("systemInstruction").is_none(), "{plain}");
    let tuned = requests[1].json();
    assert_eq!(
        tuned["generationConfig"],
        serde_json::json!({"temperature": 0.5, "maxOutputTokens": 64})
    );
}

#[tokio::test]
async fn thought_parts_are_reasoning_and_usage_counts_them_as_output() {
    let server = FakeServer::start().await;
    server.push(
        gemini::thinking_answer(
            &["**Greeting the user**\n\n", "A simple hello."],
            &["Hi", "!"],
        )
        .build(),
    );
    let run = Run::of(oy3o::exec("hi", None, Some(MODEL), &config(&server))).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "Hi!");
    assert_eq!(run.reasoning(), "**Greeting the user**\n\nA simple hello.");
    assert_eq!(
        run.named("usage"),
        [&Event::Usage(Usage {
            input_tokens: gemini::PROMPT_TOKENS,
            output_tokens: 2 + 52,
            cached_tokens: None,
            reasoning_tokens: Some(52),
        })]
    );
}

#[tokio::test]
async fn usage_repeated_on_every_chunk_is_reported_once_at_the_end() {
    let server = FakeServer::start().await;
    server.push(gemini::answer(&["a", "b", "c"]).build());
    let run = Run::of(oy3o::exec("q", None, Some(MODEL), &config(&server))).await;
    let names: Vec<&str> = run.events.iter().map(|e| e.name()).collect();
    assert_eq!(names, ["send", "usage", "result"]);
    assert_eq!(
        run.events[1],
        Event::Usage(Usage {
            input_tokens: gemini::PROMPT_TOKENS,
            output_tokens: 3,
            cached_tokens: None,
            reasoning_tokens: None,
        })
    );
    assert!(
        matches!(&run.events[2], Event::Result { finish_reason, .. } if finish_reason == "stop")
    );
}

#[tokio::test]
async fn grounding_metadata_gives_the_search_the_cited_span_and_the_sources_read() {
    let server = FakeServer::start().await;
    server.push(gemini::grounded_answer().build());
    let run = Run::of(oy3o::exec("when?", None, Some(MODEL), &config(&server))).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, gemini::GROUNDED_TEXT);
    assert_eq!(
        run.named("search"),
        [&Event::Search(gemini::SEARCH_QUERY.into())]
    );
    assert_eq!(
        run.named("citation"),
        [&Event::Citation(Citation {
            url: gemini::CITED_URL.into(),
            title: Some("rust-lang.org".into()),
            start: Some(0),
            end: Some(gemini::GROUNDED_TEXT.chars().count() as u64),
        })]
    );
    assert_eq!(
        run.named("search_result"),
        [&Event::SearchResult(Citation {
            url: gemini::READ_URL.into(),
            title: Some("releases.rs".into()),
            start: None,
            end: None,
        })]
    );
}

#[tokio::test]
async fn crlf_framing_keep_alive_comments_and_split_reads_decode_cleanly() {
    let server = FakeServer::start().await;
    server.push(
        gemini::answer(&["héllo ", "世界", " 👋"])
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
async fn an_error_chunk_mid_answer_is_an_error_that_keeps_the_partial_text() {
    let server = FakeServer::start().await;
    server.push(
        gemini::unfinished(&["Hi"])
            .data(gemini::MID_STREAM_ERROR)
            .build(),
    );
    let run = Run::of(oy3o::exec("hi", None, Some(MODEL), &config(&server))).await;
    assert_eq!(run.text, "Hi");
    assert_eq!(run.err().code(), ErrorCode::Provider);
    assert!(run.err().message().contains("overloaded"), "{}", run.err());
    assert!(run.named("result").is_empty());
}

#[tokio::test]
async fn a_stream_that_ends_before_any_finish_reason_is_a_network_error() {
    let server = FakeServer::start().await;
    server.push(gemini::unfinished(&["Hi", " there"]).build());
    let run = Run::of(oy3o::exec("hi", None, Some(MODEL), &config(&server))).await;
    assert_eq!(run.text, "Hi there");
    assert_eq!(run.err().code(), ErrorCode::Network);
    assert!(
        run.err().message().contains("finishReason"),
        "{}",
        run.err()
    );
}

#[tokio::test]
async fn a_bad_key_is_a_400_that_reads_as_an_auth_error_naming_the_variable() {
    let server = FakeServer::start().await;
    server.push(gemini::invalid_key());
    let err = oy3o::exec_once("hi", None, Some(MODEL), &config(&server))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Auth);
    assert!(err.message().contains("API key not valid"), "{err}");
    assert!(err.message().contains("GEMINI_API_KEY"), "{err}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_429_waits_for_the_retry_delay_in_its_body() {
    let server = FakeServer::start().await;
    server.push(gemini::rate_limited("0.3s"));
    server.push(gemini::answer(&["ok"]).build());
    let mut config = config(&server);
    let seen = recorder(&mut config);
    let started = Instant::now();
    let answer = oy3o::exec_once("hi", None, Some(MODEL), &config)
        .await
        .unwrap();
    assert_eq!(answer, "ok");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let retry = seen
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.name() == "retry")
        .cloned();
    assert_eq!(
        retry,
        Some(Event::Retry {
            attempt: 1,
            delay_ms: 300,
            reason: "HTTP 429".into()
        })
    );
}

#[tokio::test]
async fn a_used_up_daily_quota_is_not_retried() {
    let server = FakeServer::start().await;
    server.fallback(gemini::daily_quota_exhausted());
    let err = oy3o::exec_once("hi", None, Some(MODEL), &config(&server))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimit);
    assert!(err.message().contains("daily quota"), "{err}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn each_error_status_maps_to_its_code() {
    let cases = [
        (
            gemini::model_not_found("gemini-1.5-flash"),
            ErrorCode::NotFound,
            1,
        ),
        (
            gemini::error(
                400,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received.",
                "",
            ),
            ErrorCode::BadRequest,
            1,
        ),
        (
            gemini::error(
                403,
                "PERMISSION_DENIED",
                "Generative Language API has not been used in project 1 before or it is disabled.",
                "",
            ),
            ErrorCode::Auth,
            1,
        ),
        (
            gemini::error(500, "INTERNAL", "An internal error has occurred.", ""),
            ErrorCode::Provider,
            3,
        ),
        (gemini::overloaded(), ErrorCode::Provider, 3),
        (
            gemini::error(
                504,
                "DEADLINE_EXCEEDED",
                "Deadline expired before operation could complete.",
                "",
            ),
            ErrorCode::Timeout,
            3,
        ),
    ];
    for (reply, code, attempts) in cases {
        let server = FakeServer::start().await;
        let status = reply.status;
        server.fallback(reply.header("retry-after-ms", "5"));
        let err = oy3o::exec_once("hi", None, Some(MODEL), &config(&server))
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{status}: {err}");
        assert!(err.message().contains(&format!("HTTP {status}")), "{err}");
        assert_eq!(server.requests().len(), attempts, "{status}");
    }
}

#[tokio::test]
async fn a_503_before_the_first_byte_is_retried_and_then_answers() {
    let server = FakeServer::start().await;
    server.push(gemini::overloaded().header("retry-after-ms", "5"));
    server.push(gemini::answer(&["ok"]).build());
    let answer = oy3o::exec_once("hi", None, Some(MODEL), &config(&server))
        .await
        .unwrap();
    assert_eq!(answer, "ok");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_missing_key_names_the_variable_to_set() {
    let mut config = Config::default();
    tune(&mut config, "gemini", |s| {
        s.api_key_env = Some("OY3O_TEST_NO_SUCH_VARIABLE".into())
    });
    let err = Chat::open(Some("gemini"), &config).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Auth);
    assert!(
        err.message().contains("OY3O_TEST_NO_SUCH_VARIABLE"),
        "{err}"
    );
    assert!(err.message().contains("gemini:gemini-2.5-flash"), "{err}");
}
