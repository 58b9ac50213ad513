//! The Prometheus series per key and model on `GET /metrics`: answers, tokens, errors by code
//! and time to first chunk, for each token's name; label values past
//! `metrics_label_values` count as `other`.

mod common;

use common::{SERVER_KEY, config_for, settings, start};
use oy3o_server::{Settings, Token};
use oy3o_testkit::{FakeServer, openai};
use serde_json::json;

fn named(secret: &str, name: &str) -> Token {
    let mut token = Token::new(secret).unwrap();
    token.name = Some(name.into());
    token
}

async fn ask(server: &common::Running, token: &str, model: &str, stream: bool) -> u16 {
    reqwest::Client::new()
        .post(server.http("/v1/chat/completions"))
        .bearer_auth(token)
        .json(&json!({"model": model, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn scrape(server: &common::Running, token: &str) -> String {
    reqwest::Client::new()
        .get(server.http("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_are_counted_per_key_and_model_with_the_label_values_capped() {
    let fake = FakeServer::start().await;
    fake.respond(|r| openai::reply_to(r, &["Hi", " there"]));
    let server = start(
        config_for(&fake),
        Settings {
            tokens: vec![named("t-alice", "alice"), Token::new("t-bob").unwrap()],
            metrics_label_values: 3,
            ..settings()
        },
    )
    .await;
    for model in ["openai:m1", "openai:m2", "openai:m3", "openai:m4"] {
        assert_eq!(ask(&server, "t-alice", model, true).await, 200);
    }
    assert_eq!(ask(&server, "t-bob", "openai:m1", false).await, 200);
    fake.respond(|_| openai::rate_limited("1"));
    assert_eq!(ask(&server, "t-alice", "openai:m1", false).await, 429);

    let text = scrape(&server, "t-alice").await;
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    // Three values per label: two named models, then `other` for the rest.
    assert_eq!(
        line("oy3o_model_requests_total{key=\"alice\",model=\"openai:m1\"}"),
        "2"
    );
    assert_eq!(
        line("oy3o_model_requests_total{key=\"alice\",model=\"openai:m2\"}"),
        "1"
    );
    assert_eq!(
        line("oy3o_model_requests_total{key=\"alice\",model=\"other\"}"),
        "2"
    );
    assert!(!text.contains("model=\"openai:m3\""), "{text}");
    assert!(!text.contains("model=\"openai:m4\""), "{text}");
    // A token without a name is `token-` and the start of its hash, never the token.
    let bob = text
        .lines()
        .find(|l| l.starts_with("oy3o_model_requests_total{key=\"token-"))
        .unwrap_or_else(|| panic!("no series for the unnamed token in\n{text}"));
    assert!(bob.ends_with(",model=\"openai:m1\"} 1"), "{bob}");
    assert!(!text.contains("t-bob") && !text.contains(SERVER_KEY));
    // The fake's usage: 19 tokens in and one out per piece, for each answer that streamed.
    assert_eq!(
        line("oy3o_model_input_tokens_total{key=\"alice\",model=\"openai:m2\"}"),
        "19"
    );
    assert_eq!(
        line("oy3o_model_output_tokens_total{key=\"alice\",model=\"openai:m2\"}"),
        "2"
    );
    assert_eq!(
        line("oy3o_model_errors_total{key=\"alice\",model=\"openai:m1\",code=\"rate_limit\"}"),
        "1"
    );
    assert_eq!(
        line("oy3o_model_time_to_first_chunk_seconds_count{key=\"alice\",model=\"openai:m1\"}"),
        "1"
    );
    assert_eq!(
        line("oy3o_model_cost_usd_total{key=\"alice\",model=\"openai:m1\"}"),
        "0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_answers_count_under_the_connections_key() {
    let fake = FakeServer::start().await;
    fake.respond(|r| openai::reply_to(r, &["Hi"]));
    let server = start(
        config_for(&fake),
        Settings {
            tokens: vec![named("t-carol", "carol")],
            ..settings()
        },
    )
    .await;
    let mut ws = common::Client::connect(&server.ws_url("/?token=t-carol"), &[])
        .await
        .unwrap();
    ws.send(json!({"model": "openai:gpt-4o-mini", "prompt": "hi"}))
        .await;
    ws.until_signals(1).await;
    let text = scrape(&server, "t-carol").await;
    assert!(
        text.contains("oy3o_model_requests_total{key=\"carol\",model=\"openai:gpt-4o-mini\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "oy3o_model_output_tokens_total{key=\"carol\",model=\"openai:gpt-4o-mini\"} 1"
        ),
        "{text}"
    );
}
