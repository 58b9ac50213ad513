//! Request controls (reasoning, schema, search, stop, extra_body) and Anthropic prompt caching,
//! checked in the request bodies the fake servers receive, one provider at a time, against each
//! provider's documented wire format (shared/wire/TOOLS.md §1.5, §2.5, §3.5–§3.8, §4.5, §4.6,
//! §5.5; PROVIDERS.md §1.2, §3.1, §4.1, §5.1). And structured output end to end: a valid answer
//! passes, an invalid one is asked for once more, two invalid ones are refused.

mod common;

use std::sync::Arc;

use common::{config_for, recorder, tune};
use oy3o::config::Reasoning;
use oy3o::structured::OutputSchema;
use oy3o::{Chat, Config, ErrorCode, Event, Options};
use oy3o_testkit::{FakeServer, anthropic, gemini, ollama, openai, responses};
use serde_json::{Value, json};

fn schema() -> Arc<OutputSchema> {
    Arc::new(
        OutputSchema::new(
            "prices",
            json!({
                "type": "object",
                "properties": {"items": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"price": {"type": "number"}},
                    "required": ["price"],
                    "additionalProperties": false
                }}},
                "required": ["items"],
                "additionalProperties": false
            }),
        )
        .unwrap(),
    )
}

/// Every control at once.
fn all() -> Options {
    let mut extra = serde_json::Map::new();
    extra.insert("user".into(), json!("req"));
    Options {
        reasoning: Some(Reasoning::High),
        schema: Some(schema()),
        search: Some(true),
        stop: Some(vec!["END".into()]),
        extra_body: Some(extra),
        ..Options::default()
    }
}

/// The provider's `extra_body`: the request's `user` must win over it.
fn with_provider_extra(config: &mut Config, provider: &str) {
    tune(config, provider, |s| {
        let mut extra = serde_json::Map::new();
        extra.insert("user".into(), json!("provider"));
        extra.insert("metadata".into(), json!({"from": "provider"}));
        s.extra_body = Some(extra);
    });
}

const VALID: &str = r#"{"items": [{"price": 2.5}]}"#;

async fn body_of(server: &FakeServer, model: &str, config: &Config, options: &Options) -> Value {
    let chat = Chat::open(Some(model), config).unwrap();
    let answer = chat.send_with("prices?", options).text().await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap(),
        json!({"items": [{"price": 2.5}]})
    );
    server.requests().last().unwrap().json()
}

#[tokio::test]
async fn openai_chat_controls_go_out_in_its_fields() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&[VALID]).build());
    let mut config = config_for("openai", server.base_url());
    with_provider_extra(&mut config, "openai");
    let body = body_of(&server, "openai:gpt-4o-mini", &config, &all()).await;
    assert_eq!(body["reasoning_effort"], "high");
    assert_eq!(
        body["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "prices", "schema": schema().schema, "strict": true}})
    );
    assert_eq!(body["web_search_options"], json!({}));
    assert_eq!(body["stop"], json!(["END"]));
    assert_eq!(body["user"], "req", "the request's extra_body wins");
    assert_eq!(body["metadata"], json!({"from": "provider"}));
    assert_eq!(body["model"], "gpt-4o-mini");
}

#[tokio::test]
async fn responses_controls_go_out_in_its_fields_and_stop_is_refused() {
    let server = FakeServer::start().await;
    server.push(responses::answer(&[VALID]).build());
    let mut config = config_for("openai", server.base_url());
    tune(&mut config, "openai", |s| s.api = Some("responses".into()));
    let options = Options {
        stop: None,
        ..all()
    };
    let body = body_of(&server, "openai:gpt-4.1-mini", &config, &options).await;
    assert_eq!(body["reasoning"]["effort"], "high");
    assert_eq!(
        body["text"]["format"],
        json!({"type": "json_schema", "name": "prices", "schema": schema().schema, "strict": true})
    );
    assert_eq!(body["tools"], json!([{"type": "web_search"}]));
    assert_eq!(body["user"], "req");

    let chat = Chat::open(Some("openai:gpt-4.1-mini"), &config).unwrap();
    let err = chat.send_with("x", &all()).text().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest);
    assert!(
        err.message().contains("cannot take stop sequences"),
        "{err}"
    );
    assert_eq!(
        server.requests().len(),
        1,
        "nothing sent for the refused request"
    );
}

#[tokio::test]
async fn anthropic_controls_thinking_budget_and_prompt_caching() {
    let server = FakeServer::start().await;
    server.push(anthropic::answer(&["Hello"]).build());
    server.push(anthropic::answer(&[VALID]).build());
    let mut config = config_for("anthropic", server.url());
    config.context = Some("You are terse.".into());
    with_provider_extra(&mut config, "anthropic");
    let chat = Chat::open(Some("anthropic:claude-sonnet-4-5"), &config).unwrap();
    chat.send_once("hi").await.unwrap();
    let options = Options {
        max_tokens: Some(500),
        ..all()
    };
    chat.send_with("prices?", &options).text().await.unwrap();
    let body = server.requests()[1].json();
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 16384})
    );
    assert_eq!(
        body["max_tokens"],
        16384 + 500,
        "the budget comes on top of the answer"
    );
    assert_eq!(
        body["output_config"],
        json!({"format": {"type": "json_schema", "schema": schema().schema}})
    );
    assert_eq!(
        body["tools"],
        json!([{"type": "web_search_20250305", "name": "web_search"}])
    );
    assert_eq!(body["stop_sequences"], json!(["END"]));
    assert_eq!(body["user"], "req");
    // The stable prefix is marked: the context, and the last block before the new prompt.
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}])
    );
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(
        messages[1]["content"],
        json!([{"type": "text", "text": "Hello", "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(
        messages[2]["content"], "prices?",
        "the new prompt is not marked"
    );

    // Thinking refuses a temperature: said before sending.
    let bad = Options {
        temperature: Some(0.3),
        ..all()
    };
    let err = chat.send_with("x", &bad).text().await.unwrap_err();
    assert!(err.message().contains("temperature"), "{err}");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn anthropic_reports_cached_tokens() {
    let server = FakeServer::start().await;
    server.push(
        oy3o_testkit::SseScript::default()
            .named("message_start", r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048,"output_tokens":1}}}"#)
            .named("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#)
            .named("content_block_delta", &anthropic::delta(0, "text_delta", "text", "ok"))
            .named("content_block_stop", r#"{"type":"content_block_stop","index":0}"#)
            .named("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#)
            .named("message_stop", r#"{"type":"message_stop"}"#)
            .build(),
    );
    let mut config = config_for("anthropic", server.url());
    let seen = recorder(&mut config);
    let chat = Chat::open(Some("anthropic:claude-sonnet-4-5"), &config).unwrap();
    chat.send_once("hi").await.unwrap();
    let cached = seen.lock().unwrap().iter().find_map(|e| match e {
        Event::Usage(u) => u.cached_tokens,
        _ => None,
    });
    assert_eq!(cached, Some(2048));
}

#[tokio::test]
async fn gemini_controls_go_out_in_generation_config_and_tools() {
    let server = FakeServer::start().await;
    server.push(gemini::answer(&[VALID]).build());
    let config = config_for("gemini", server.url());
    let body = body_of(&server, "gemini:gemini-2.5-flash", &config, &all()).await;
    let g = &body["generationConfig"];
    assert_eq!(
        g["thinkingConfig"],
        json!({"thinkingBudget": 24576, "includeThoughts": true})
    );
    assert_eq!(g["responseMimeType"], "application/json");
    assert_eq!(g["responseJsonSchema"], schema().schema);
    assert_eq!(g["stopSequences"], json!(["END"]));
    assert_eq!(body["tools"], json!([{"google_search": {}}]));
    assert_eq!(body["user"], "req");
}

#[tokio::test]
async fn ollama_controls_go_out_and_search_is_refused() {
    let server = FakeServer::start().await;
    server.push(ollama::answer(&[VALID]).build());
    let config = config_for("ollama", server.url());
    let options = Options {
        search: None,
        ..all()
    };
    let body = body_of(&server, "ollama:llama3.2", &config, &options).await;
    assert_eq!(body["think"], "high");
    assert_eq!(body["format"], schema().schema);
    assert_eq!(body["options"]["stop"], json!(["END"]));
    assert_eq!(body["user"], "req");

    let chat = Chat::open(Some("ollama:llama3.2"), &config).unwrap();
    let err = chat.send_with("x", &all()).text().await.unwrap_err();
    assert!(
        err.message()
            .contains("ollama:llama3.2 cannot take web search"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn extra_body_cannot_replace_the_model() {
    let server = FakeServer::start().await;
    let config = config_for("openai", server.base_url());
    let mut extra = serde_json::Map::new();
    extra.insert("model".into(), json!("gpt-5-pro"));
    let options = Options {
        extra_body: Some(extra),
        ..Options::default()
    };
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();
    let err = chat.send_with("x", &options).text().await.unwrap_err();
    assert!(err.message().contains("may not set \"model\""), "{err}");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn an_invalid_answer_is_asked_for_once_more() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&[r#"{"items": [{"price": "#, r#""x"}]}"#]).build());
    server.push(openai::answer(&[VALID]).build());
    let mut config = config_for("openai", server.base_url());
    let seen = recorder(&mut config);
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();
    let options = Options {
        schema: Some(schema()),
        ..Options::default()
    };
    let answer = chat.send_with("prices?", &options).text().await.unwrap();
    assert_eq!(answer, VALID, "only the valid answer is the reply");
    let retry = seen.lock().unwrap().iter().find_map(|e| match e {
        Event::Retry { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    let retry = retry.expect("a retry event");
    assert!(
        retry.contains("/items/0/price: \"x\" is not of type \"number\""),
        "{retry}"
    );
    // The second request is the same conversation: the invalid answer was forgotten.
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].json()["messages"],
        requests[1].json()["messages"]
    );
    let history = chat.history();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].text(), VALID);
}

#[tokio::test]
async fn two_invalid_answers_are_refused_naming_the_path() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&[r#"{"items": [{"price": "x"}]}"#]).build());
    server.push(openai::answer(&["not json at all"]).build());
    server.push(openai::answer(&[r#"{"items": []}"#]).build());
    let config = config_for("openai", server.base_url());
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();
    let options = Options {
        schema: Some(schema()),
        ..Options::default()
    };
    let err = chat
        .send_with("prices?", &options)
        .text()
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Provider);
    assert!(err.message().contains("not JSON"), "{err}");
    assert_eq!(server.requests().len(), 2, "one retry, no more");
    assert!(chat.history().is_empty(), "neither invalid answer is kept");

    // The same through a bad path on both attempts.
    let server = FakeServer::start().await;
    server.push(openai::answer(&[r#"{"items": [{"price": "x"}]}"#]).build());
    server.push(openai::answer(&[r#"{"items": [{"price": "y"}]}"#]).build());
    let chat = Chat::open(
        Some("openai:gpt-4o-mini"),
        &config_for("openai", server.base_url()),
    )
    .unwrap();
    let err = chat
        .send_with("prices?", &options)
        .text()
        .await
        .unwrap_err();
    assert!(
        err.message()
            .contains("/items/0/price: \"y\" is not of type \"number\""),
        "{err}"
    );
}

#[tokio::test]
async fn controls_from_the_config_apply_and_the_call_wins() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["ok"]).build());
    let mut config = config_for("openai", server.base_url());
    config.options.reasoning = Some(Reasoning::Low);
    config.options.stop = Some(vec!["A".into()]);
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();
    let call = Options {
        reasoning: Some(Reasoning::Medium),
        ..Options::default()
    };
    chat.send_with("x", &call).text().await.unwrap();
    let body = server.requests()[0].json();
    assert_eq!(body["reasoning_effort"], "medium");
    assert_eq!(body["stop"], json!(["A"]));
}
