//! OpenAI tools through `POST /v1/chat/completions` for clients that run their own tools
//! (TOOLS.md §1.1–§1.3): `tools`, `tool_choice` and `parallel_tool_calls` reach the upstream,
//! its tool calls come back in OpenAI's chunk and message shapes with `finish_reason:
//! "tool_calls"`, and the next request's assistant `tool_calls` and `tool` messages go upstream
//! as the client sent them.

mod common;

use common::{config_for, settings, start};
use oy3o_testkit::{FakeServer, openai};
use serde_json::{Value, json};

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

async fn post(url: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_tool_call_passes_through_in_openais_chunk_shape() {
    let fake = FakeServer::start().await;
    fake.push(openai::tool_calls(&[("call_w", "get_weather", r#"{"city": "Oslo"}"#)]).build());
    let server = start(config_for(&fake), settings()).await;
    let response = post(
        &server.http("/v1/chat/completions"),
        json!({"model": "openai:gpt-4o-mini", "stream": true, "tools": tools(),
            "tool_choice": "auto", "parallel_tool_calls": false,
            "messages": [{"role": "user", "content": "Weather in Oslo?"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let chunks: Vec<Value> = body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let fragments: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(fragments[0]["id"], "call_w");
    assert_eq!(fragments[0]["type"], "function");
    assert_eq!(fragments[0]["function"]["name"], "get_weather");
    let arguments: String = fragments
        .iter()
        .map(|f| f["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, r#"{"city": "Oslo"}"#);
    assert!(fragments.iter().all(|f| f["index"] == 0));
    let last = chunks
        .iter()
        .rev()
        .find(|c| !c["choices"].as_array().unwrap().is_empty());
    assert_eq!(last.unwrap()["choices"][0]["finish_reason"], "tool_calls");
    assert!(body.ends_with("data: [DONE]\n\n"));

    let sent = fake.requests()[0].json();
    assert_eq!(sent["tools"], tools());
    assert_eq!(sent["tool_choice"], "auto");
    assert_eq!(sent["parallel_tool_calls"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_tool_call_and_the_results_round_trip() {
    let fake = FakeServer::start().await;
    fake.push(openai::whole_tool_calls(&[(
        "call_w",
        "get_weather",
        r#"{"city":"Oslo"}"#,
    )]));
    fake.push(openai::whole(&["It is 3 degrees in Oslo."]));
    let server = start(config_for(&fake), settings()).await;
    let url = server.http("/v1/chat/completions");
    let asked = json!({"role": "user", "content": "Weather in Oslo?"});
    let first: Value = post(
        &url,
        json!({"model": "openai:gpt-4o-mini", "tools": tools(),
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "messages": [asked]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let message = &first["choices"][0]["message"];
    assert!(message["content"].is_null(), "{first}");
    assert_eq!(message["tool_calls"][0]["id"], "call_w");
    assert_eq!(
        message["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Oslo"}"#
    );
    assert_eq!(first["choices"][0]["finish_reason"], "tool_calls");

    // The client ran the tool and sends the result back, as the OpenAI SDK's loop does.
    let second: Value = post(
        &url,
        json!({"model": "openai:gpt-4o-mini", "tools": tools(), "messages": [
            asked, message,
            {"role": "tool", "tool_call_id": "call_w", "content": "{\"temp_c\": 3}"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        second["choices"][0]["message"]["content"],
        "It is 3 degrees in Oslo."
    );
    let sent = fake.requests()[1].json();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[1]["tool_calls"][0]["id"], "call_w");
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": "call_w", "content": "{\"temp_c\": 3}"})
    );
    assert_eq!(
        fake.requests()[0].json()["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_a_model_cannot_take_or_that_are_malformed_are_400s_before_anything_is_sent() {
    let fake = FakeServer::start().await;
    // Copilot's web chat takes no tools: the model refuses them before connecting.
    let mut config = config_for(&fake);
    config.cookie = Some(oy3o::Credential::parse(
        &oy3o_testkit::copilot::cookie_export(),
    ));
    config.providers.insert(
        "bing".into(),
        oy3o::ProviderSettings {
            base_url: Some("http://127.0.0.1:9".into()),
            max_retries: Some(0),
            ..oy3o::ProviderSettings::default()
        },
    );
    let server = start(config, settings()).await;
    let url = server.http("/v1/chat/completions");
    let user = json!([{"role": "user", "content": "x"}]);
    for (body, says) in [
        (
            json!({"model": "bing", "tools": tools(), "messages": user}),
            "tools",
        ),
        (
            json!({"model": "openai:x", "tools": [{"type": "custom", "custom": {"name": "a"}}], "messages": user}),
            "custom",
        ),
        (
            json!({"model": "openai:x", "tool_choice": "required", "messages": user}),
            "no tools",
        ),
        (
            json!({"model": "openai:x", "tools": tools(), "tool_choice": "sometimes", "messages": user}),
            "sometimes",
        ),
        (
            json!({"model": "openai:x", "messages": [{"role": "tool", "content": "1"}]}),
            "tool_call_id",
        ),
    ] {
        let response = post(&url, body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert!(fake.requests().is_empty());
}
