//! Whole answers (`send_once`, `exec_once`, `Options::whole`) against a fake OpenAI server on a
//! real socket: the request says `"stream": false`, the one `chat.completion` body becomes the
//! same text, events, usage and errors as the streamed answer would.

mod common;

use std::time::Duration;

use common::{Run, config_for, names, recorder, tune};
use oy3o::{Chat, ErrorCode, Event, Options, Usage};
use oy3o_testkit::{FakeServer, openai};
use serde_json::Value;

fn whole() -> Options {
    Options {
        whole: true,
        ..Options::default()
    }
}

/// A fake that answers every request in the shape it asks for.
async fn answering(pieces: &'static [&'static str]) -> FakeServer {
    let server = FakeServer::start().await;
    server.respond(move |r| openai::reply_to(r, pieces));
    server
}

/// The events of a run without the prelude that differs by call (`send`).
fn answer_events(run: &Run) -> Vec<Event> {
    run.events
        .iter()
        .filter(|e| !matches!(e, Event::Send { .. }))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_whole_answer_is_asked_without_streaming_and_reads_as_the_streamed_one() {
    let server = answering(&["Hi", " there!"]).await;
    let config = config_for("openai", server.base_url());
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();

    let streamed = Run::of(chat.send("Say hi")).await;
    let whole_run = Run::of(chat.send_with("Say hi", &whole())).await;

    assert!(streamed.error.is_none() && whole_run.error.is_none());
    assert_eq!(whole_run.text, "Hi there!");
    assert_eq!(whole_run.text, streamed.text);
    // Same usage, same finish reason, same events in the same order.
    assert_eq!(answer_events(&whole_run), answer_events(&streamed));
    assert!(whole_run.events.contains(&Event::Usage(Usage {
        input_tokens: 19,
        output_tokens: 2,
        cached_tokens: Some(0),
        reasoning_tokens: Some(0),
    })));

    let sent = server.requests();
    let (stream_body, whole_body) = (sent[0].json(), sent[1].json());
    assert_eq!(stream_body["stream"], true);
    assert_eq!(stream_body["stream_options"]["include_usage"], true);
    assert_eq!(whole_body["stream"], false);
    assert!(
        whole_body.get("stream_options").is_none(),
        "the API refuses stream_options without streaming: {whole_body}"
    );
    // The whole turn joined the history like a streamed one.
    assert_eq!(whole_body["messages"].as_array().unwrap().len(), 3);
    assert_eq!(whole_body["messages"][1]["content"], "Hi there!");
}

#[tokio::test]
async fn send_once_and_exec_once_ask_for_whole_answers() {
    let server = answering(&["ok"]).await;
    let config = config_for("openai", server.base_url());
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();
    assert_eq!(chat.send_once("a").await.unwrap(), "ok");
    assert_eq!(
        oy3o::exec_once("b", Some("ctx"), Some("openai:x"), &config)
            .await
            .unwrap(),
        "ok"
    );
    for request in server.requests() {
        assert_eq!(request.json()["stream"], false);
    }
}

#[tokio::test]
async fn listeners_hear_the_same_lifecycle_for_a_whole_answer() {
    let server = answering(&["Hi"]).await;
    let mut config = config_for("openai", server.base_url());
    let seen = recorder(&mut config);
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();
    chat.update("ctx");
    chat.send_once("hello").await.unwrap();
    assert_eq!(
        names(&seen),
        ["create", "update", "send", "usage", "result"]
    );
}

#[tokio::test]
async fn whole_reasoning_reaches_listeners_and_stays_out_of_the_text() {
    for key in ["reasoning_content", "reasoning"] {
        let server = FakeServer::start().await;
        server.push(openai::whole_with_reasoning(
            key,
            "The user greets me",
            "Hi!",
        ));
        let config = config_for("openai", server.base_url());
        let reply = oy3o::Chat::open(Some("openai:x"), &config)
            .unwrap()
            .send_with("hi", &whole());
        let run = Run::of(reply).await;
        assert_eq!(run.text, "Hi!", "{key}");
        assert!(
            run.events
                .contains(&Event::Reasoning("The user greets me".into())),
            "{key}: {:?}",
            run.events
        );
    }
}

#[tokio::test]
async fn a_429_before_a_whole_answer_is_retried_with_a_retry_event() {
    let server = FakeServer::start().await;
    server.push(openai::rate_limited("0.05"));
    server.push(openai::whole(&["ok"]));
    let mut config = config_for("openai", server.base_url());
    let seen = recorder(&mut config);
    let answer = oy3o::exec_once("hi", None, Some("openai:x"), &config)
        .await
        .unwrap();
    assert_eq!(answer, "ok");
    assert_eq!(server.requests().len(), 2);
    assert!(seen.lock().unwrap().contains(&Event::Retry {
        attempt: 1,
        delay_ms: 50,
        reason: "HTTP 429".into()
    }));
}

/// The error a whole answer and a streamed one end with, for the same scripted reply.
async fn both_errors(script: impl Fn() -> oy3o_testkit::Scripted) -> (oy3o::Error, oy3o::Error) {
    let server = FakeServer::start().await;
    server.push(script());
    server.push(script());
    let mut config = config_for("openai", server.base_url());
    tune(&mut config, "openai", |s| s.max_retries = Some(0));
    let chat = Chat::open(Some("openai:x"), &config).unwrap();
    let streamed = Run::of(chat.send("x")).await.error.expect("an error");
    let whole_error = Run::of(chat.send_with("x", &whole()))
        .await
        .error
        .expect("an error");
    (streamed, whole_error)
}

#[tokio::test]
async fn status_errors_are_the_same_for_whole_and_streamed_answers() {
    for (script, code) in [
        (
            openai::server_error as fn() -> oy3o_testkit::Scripted,
            ErrorCode::Provider,
        ),
        (openai::invalid_key, ErrorCode::Auth),
        (openai::insufficient_quota, ErrorCode::RateLimit),
        (|| openai::rate_limited("1"), ErrorCode::RateLimit),
    ] {
        let (streamed, whole_error) = both_errors(script).await;
        assert_eq!(streamed.code(), code);
        assert_eq!(whole_error.code(), code);
        assert_eq!(whole_error.message(), streamed.message());
    }
}

#[tokio::test]
async fn a_malformed_or_cut_whole_answer_is_an_error_not_a_short_answer() {
    let server = FakeServer::start().await;
    server.push(openai::malformed_whole());
    server.push(openai::whole(&["Hi there, a longer answer"]).cut_after_bytes(120));
    server.push(oy3o_testkit::Scripted::json(
        200,
        r#"{"error":{"code":500,"message":"the request exceeds the available context size","type":"server_error"}}"#,
    ));
    let mut config = config_for("openai", server.base_url());
    let seen = recorder(&mut config);

    let malformed = oy3o::exec_once("x", None, Some("openai:x"), &config)
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), ErrorCode::Provider);
    assert!(
        malformed.message().contains("not valid JSON"),
        "{malformed}"
    );

    let cut = oy3o::exec_once("x", None, Some("openai:x"), &config)
        .await
        .unwrap_err();
    assert_eq!(cut.code(), ErrorCode::Network, "{cut}");

    let reported = oy3o::exec_once("x", None, Some("openai:x"), &config)
        .await
        .unwrap_err();
    assert_eq!(reported.code(), ErrorCode::Provider);
    assert!(reported.message().contains("context size"), "{reported}");

    let names = names(&seen);
    assert!(!names.contains(&"result".to_owned()));
    assert_eq!(names.iter().filter(|n| *n == "error").count(), 3);
}

#[tokio::test]
async fn a_whole_answer_may_take_longer_than_the_first_byte_limit_of_a_stream() {
    let server = FakeServer::start().await;
    server.push(openai::whole(&["thought it through"]).delayed(Duration::from_millis(900)));
    let mut config = config_for("openai", server.base_url());
    tune(&mut config, "openai", |s| {
        s.first_byte_timeout = Some(Duration::from_millis(200));
        s.max_retries = Some(0);
    });
    let answer = oy3o::exec_once("x", None, Some("openai:x"), &config)
        .await
        .unwrap();
    assert_eq!(answer, "thought it through");
}

#[tokio::test]
async fn a_whole_answer_that_stalls_mid_body_times_out_with_the_idle_limit() {
    let server = FakeServer::start().await;
    server.push(openai::whole(&["Hi there, a longer answer"]).stall_after_bytes(120));
    let mut config = config_for("openai", server.base_url());
    tune(&mut config, "openai", |s| {
        s.idle_timeout = Some(Duration::from_millis(300));
        s.max_retries = Some(0);
    });
    let err = oy3o::exec_once("x", None, Some("openai:x"), &config)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout, "{err}");
    assert!(err.message().contains("idle_timeout_secs"), "{err}");
}

#[tokio::test]
async fn a_server_that_streams_anyway_is_read_as_a_stream() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["still", " streamed"]).build());
    let config = config_for("openai", server.base_url());
    let answer = oy3o::exec_once("x", None, Some("openai:x"), &config)
        .await
        .unwrap();
    assert_eq!(answer, "still streamed");
    assert_eq!(server.requests()[0].json()["stream"], Value::Bool(false));
}
