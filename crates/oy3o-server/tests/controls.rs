//! Request controls through the server (issue 20): OpenAI's `response_format`,
//! `reasoning_effort`, `stop`, `web_search_options` and an `extra_body` over HTTP (the official
//! `openai` Python SDK among the clients), and `options` in a WebSocket request; each reaches
//! the fake upstream in its wire form, the answer is validated against the schema, and bad
//! values are refused before anything is sent.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{config_for, settings, start};
use oy3o_testkit::{FakeServer, openai};
use serde_json::{Value, json};

/// An upstream that answers with `answers` in turn (the last one again when they run out).
async fn answering(answers: &'static [&'static str]) -> FakeServer {
    let fake = FakeServer::start().await;
    let next = Arc::new(AtomicUsize::new(0));
    fake.respond(move |r| {
        let i = next.fetch_add(1, Ordering::SeqCst).min(answers.len() - 1);
        openai::reply_to(r, &[answers[i]])
    });
    fake
}

fn city() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"}},
        "required": ["city"], "additionalProperties": false})
}

#[tokio::test(flavor = "multi_thread")]
async fn http_controls_reach_the_upstream_and_the_answer_is_validated() {
    let fake = answering(&[r#"{"city": 7}"#, r#"{"city": "Oslo"}"#]).await;
    let server = start(config_for(&fake), settings()).await;
    let body: Value = reqwest::Client::new()
        .post(server.http("/v1/chat/completions"))
        .json(&json!({
            "messages": [{"role": "user", "content": "Where?"}],
            "response_format": {"type": "json_schema",
                "json_schema": {"name": "City", "schema": city(), "strict": true}},
            "reasoning_effort": "medium",
            "stop": "END",
            "web_search_options": {},
            "extra_body": {"service_tier": "flex"},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"], r#"{"city": "Oslo"}"#,
        "{body}"
    );
    let requests = fake.requests();
    assert_eq!(
        requests.len(),
        2,
        "the invalid answer was asked for once more"
    );
    let up = requests[1].json();
    assert_eq!(
        up["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "City", "schema": city(), "strict": true}})
    );
    assert_eq!(up["reasoning_effort"], "medium");
    assert_eq!(up["stop"], json!(["END"]));
    assert_eq!(up["web_search_options"], json!({}));
    assert_eq!(up["service_tier"], "flex");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_refuses_bad_controls_naming_them_and_sends_nothing() {
    let fake = answering(&["x"]).await;
    let server = start(config_for(&fake), settings()).await;
    let http = reqwest::Client::new();
    let messages = json!([{"role": "user", "content": "x"}]);
    for (field, value, says) in [
        (
            "response_format",
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nosuch"}}}),
            "response_format.json_schema",
        ),
        ("reasoning_effort", json!("max"), "reasoning_effort"),
        ("stop", json!([1]), "stop"),
        (
            "extra_body",
            json!({"model": "gpt-5-pro"}),
            "may not set \"model\"",
        ),
        ("extra_body", json!({"x": "a".repeat(70_000)}), "extra_body"),
    ] {
        let mut body = json!({"messages": messages});
        body[field] = value;
        let response = http
            .post(server.http("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{field}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{field}: {message}");
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_invalid_answers_are_a_502_naming_the_path() {
    let fake = answering(&[r#"{"city": 7}"#]).await;
    let server = start(config_for(&fake), settings()).await;
    let response = reqwest::Client::new()
        .post(server.http("/v1/chat/completions"))
        .json(&json!({
            "messages": [{"role": "user", "content": "Where?"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "City", "schema": city()}},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"/city: 7 is not of type "string""#),
        "{message}"
    );
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openai_sdk_parses_a_structured_answer_through_the_server() {
    let fake = answering(&[r#"{"city": "Oslo", "country": "Norway"}"#]).await;
    let server = start(config_for(&fake), settings()).await;
    let script = r#"
import json, sys
from openai import OpenAI
from pydantic import BaseModel

class Place(BaseModel):
    city: str
    country: str

client = OpenAI(base_url=sys.argv[1], api_key="not-needed", max_retries=0)
chat = getattr(client.chat.completions, "parse", None) or client.beta.chat.completions.parse
done = chat(model="openai:gpt-4o-mini", messages=[{"role": "user", "content": "Where?"}],
            response_format=Place)
print(json.dumps(done.choices[0].message.parsed.model_dump()))
"#;
    let out = tokio::process::Command::new("python3")
        .args(["-c", script, &server.http("/v1")])
        .output()
        .await
        .expect("python3 runs (scripts/setup installs the openai package)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    assert_eq!(parsed, json!({"city": "Oslo", "country": "Norway"}));
    let up = fake.requests()[0].json();
    assert_eq!(up["response_format"]["type"], "json_schema");
    assert_eq!(up["response_format"]["json_schema"]["name"], "Place");
    assert_eq!(up["response_format"]["json_schema"]["strict"], true);
    assert_eq!(
        up["response_format"]["json_schema"]["schema"]["required"],
        json!(["city", "country"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_options_carry_the_controls_and_bad_ones_are_refused() {
    let fake = answering(&[r#"{"city": "Oslo"}"#]).await;
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    ws.send(
        json!({"id": "s", "model": "openai:gpt-4o-mini", "prompt": "Where?", "options": {
            "reasoning": "low",
            "schema": {"name": "City", "schema": city()},
            "search": true,
            "stop": ["END"],
        }}),
    )
    .await;
    let frames = ws.until_signals(1).await;
    assert!(frames.iter().all(|f| f["type"] != "error"), "{frames:?}");
    assert_eq!(common::text_of(&frames, "s"), r#"{"city": "Oslo"}"#);
    let up = fake.requests()[0].json();
    assert_eq!(up["reasoning_effort"], "low");
    assert_eq!(up["response_format"]["json_schema"]["name"], "City");
    assert_eq!(up["web_search_options"], json!({}));
    assert_eq!(up["stop"], json!(["END"]));

    for (options, says) in [
        (json!({"schema": {"type": "nosuch"}}), "nosuch"),
        (json!({"reasoning": "max"}), "max"),
        (json!({"stop": vec!["x"; 17]}), "stop"),
        (
            json!({"extra_body": {"stream": false}}),
            "may not set \"stream\"",
        ),
    ] {
        ws.send(
            json!({"id": "bad", "model": "openai:gpt-4o-mini", "prompt": "x", "options": options}),
        )
        .await;
        let frames = ws.until_signals(1).await;
        let error = frames.iter().find(|f| f["type"] == "error");
        let error = error.unwrap_or_else(|| panic!("no error frame: {frames:?}"));
        assert!(error["message"].as_str().unwrap().contains(says), "{error}");
    }
    assert_eq!(
        fake.requests().len(),
        1,
        "nothing sent for the refused requests"
    );
}
