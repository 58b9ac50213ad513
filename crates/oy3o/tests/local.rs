//! The `local` provider on the real SmolLM2 model (pulled into the cache on first use): the
//! config's `max_tokens` ends an answer that would run on, with finish reason `length`, and
//! without it the answer to a one-line question ends with its sentence after a paragraph.
//! (The default cap itself is a unit test in `providers/local`: reaching 512 tokens takes
//! minutes on a busy 2-core machine.) A `stop` sequence ends the answer right before it. Tools:
//! an engine tool loop on SmolLM2 with a template that shows them, and the refusal with its own
//! template.

#![cfg(feature = "local")]

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use oy3o::{Config, Options};

#[tokio::test]
async fn the_configs_max_tokens_ends_a_long_answer_with_length() {
    let config = Config {
        options: Options {
            max_tokens: Some(20),
            ..Options::default()
        },
        ..Config::default()
    };
    let prompt = "Tell me a very long story about a dragon and a knight.";
    let mut reply = oy3o::exec(prompt, None, Some("local:smollm2"), &config);
    while let Some(chunk) = reply.next().await {
        if let Err(e) = chunk {
            panic!("the local model failed: {e}");
        }
    }
    assert_eq!(
        reply.finish_reason(),
        Some("length"),
        "{:?}",
        reply.answer()
    );
    assert_eq!(reply.usage().map(|u| u.output_tokens), Some(20));
}

/// `stop` through the engine: the local provider takes the control, and the answer ends right
/// before the sequence (taken from the middle of the same greedy answer without it), with
/// finish reason `stop`; no streamed chunk carries it.
#[tokio::test]
async fn a_stop_sequence_ends_a_local_answer_right_before_it() {
    let prompt = "Why is the sky blue?";
    let config = |stop: Option<Vec<String>>| Config {
        options: Options {
            max_tokens: Some(40),
            stop,
            ..Options::default()
        },
        ..Config::default()
    };
    let mut plain = oy3o::exec(prompt, None, Some("local:smollm2"), &config(None));
    while let Some(chunk) = plain.next().await {
        if let Err(e) = chunk {
            panic!("the local model failed: {e}");
        }
    }
    let full: Vec<char> = plain.answer().chars().collect();
    assert!(full.len() > 40, "{:?}", plain.answer());
    let stop: String = full[full.len() / 2..full.len() / 2 + 5].iter().collect();
    let answer: String = full.iter().collect();
    let expected = &answer[..answer.find(&stop).unwrap()];

    let mut reply = oy3o::exec(
        prompt,
        None,
        Some("local:smollm2"),
        &config(Some(vec![stop.clone()])),
    );
    let mut streamed = String::new();
    while let Some(chunk) = reply.next().await {
        match chunk {
            Ok(text) => streamed.push_str(&text),
            Err(e) => panic!("the local model failed: {e}"),
        }
    }
    assert_eq!(reply.finish_reason(), Some("stop"), "{streamed:?}");
    assert_eq!(streamed, expected, "stop {stop:?}");
    assert!(!streamed.contains(&stop));
}

#[tokio::test]
async fn a_one_line_question_gets_an_answer_that_ends_with_its_sentence_after_a_paragraph() {
    let prompt = "Tell me a very long story about a dragon and a knight.";
    let mut reply = oy3o::exec(prompt, None, Some("local:smollm2"), &Config::default());
    while let Some(chunk) = reply.next().await {
        if let Err(e) = chunk {
            panic!("the local model failed: {e}");
        }
    }
    let answer = reply.answer();
    assert_eq!(reply.finish_reason(), Some("length"), "{answer:?}");
    let tokens = reply.usage().map_or(0, |u| u.output_tokens);
    assert!(
        (u64::from(oy3o::providers::local::SHORT_ANSWER_TOKENS)
            ..u64::from(oy3o::providers::local::DEFAULT_MAX_TOKENS))
            .contains(&tokens),
        "{tokens} tokens: {answer:?}"
    );
    let end = answer.trim_end().trim_end_matches(['"', '\'', ')', '*']);
    assert!(end.ends_with(['.', '!', '?']), "{answer:?}");
}

/// Qwen2.5's chat template (it shows tools; SmolLM2's does not), given to SmolLM2 through
/// `[providers.local] chat_template`. Both are ChatML, so SmolLM2 reads the prompt well enough,
/// and the grammar of a required call makes its answer a valid call.
const QWEN25_TEMPLATE: &str =
    include_str!("../../oy3o-llama/tests/fixtures/qwen2.5-chat-template.jinja");

fn weather_tool(seen: Arc<Mutex<Vec<serde_json::Value>>>) -> Arc<dyn oy3o::tool_loop::Tool> {
    let spec = oy3o::ToolSpec {
        name: "get_weather".into(),
        description: Some("The current weather in a city".into()),
        parameters: Some(serde_json::json!({
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}},
            "required": ["city"],
        })),
        strict: None,
    };
    Arc::new(oy3o::tool_loop::FnTool::new(spec, move |args| {
        seen.lock().unwrap().push(args.clone());
        async move {
            let city = args["city"].as_str().unwrap_or("the city").to_owned();
            Ok(format!("It is 18 degrees and sunny in {city}."))
        }
    }))
}

#[tokio::test]
async fn smollm2_with_a_tools_template_calls_a_required_tool_and_answers_from_its_result() {
    let mut config = Config::default();
    config.providers.insert(
        "local".into(),
        oy3o::ProviderSettings {
            chat_template: Some(QWEN25_TEMPLATE.into()),
            ..oy3o::ProviderSettings::default()
        },
    );
    let chat = oy3o::Chat::open(Some("local:smollm2"), &config).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let toolbox = oy3o::tool_loop::Toolbox::new(vec![weather_tool(seen.clone())])
        .unwrap()
        .with_choice(oy3o::ToolChoice::Required);
    let options = Options {
        toolbox: Some(Arc::new(toolbox)),
        max_tool_steps: Some(1),
        max_tokens: Some(60),
        ..Options::default()
    };
    let reply = chat.send_with("What is the weather in Paris?", &options);
    let mut outputs = reply.outputs();
    let (mut text, mut events) = (String::new(), Vec::new());
    while let Some(item) = outputs.next().await {
        match item {
            Ok(oy3o::Output::Text(t)) => text.push_str(&t),
            Ok(oy3o::Output::Event(e)) => events.push(e),
            Err(e) => panic!("the local model failed: {e}"),
        }
    }
    let finish_reason = outputs.reply().finish_reason().map(str::to_owned);
    let calls: Vec<&oy3o::ToolCall> = events
        .iter()
        .filter_map(|e| match e {
            oy3o::Event::ToolCall(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 1, "{events:?}");
    assert_eq!(calls[0].name, "get_weather");
    assert!(calls[0].arguments["city"].is_string(), "{:?}", calls[0]);
    let ran = seen.lock().unwrap().clone();
    assert_eq!(
        ran,
        vec![calls[0].arguments.clone()],
        "the tool ran once, on the call's arguments"
    );
    assert!(
        events.iter().any(|e| matches!(e, oy3o::Event::ToolResult(r) if !r.is_error && r.content.contains("18 degrees"))),
        "{events:?}"
    );
    // The last step offers no tools: the model answers in text, after the result.
    assert!(!text.trim().is_empty(), "no answer after the tool result");
    assert!(!text.contains("<tool_call>"), "{text:?}");
    assert_ne!(finish_reason.as_deref(), Some("tool_calls"));
    let history = chat.history();
    let roles: Vec<&str> = history.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
}

#[tokio::test]
async fn smollm2s_own_template_has_no_tools_so_a_chat_refuses_them_naming_what_to_do() {
    let chat = oy3o::Chat::open(Some("local:smollm2"), &Config::default()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let toolbox = oy3o::tool_loop::Toolbox::new(vec![weather_tool(seen.clone())]).unwrap();
    let options = Options {
        toolbox: Some(Arc::new(toolbox)),
        ..Options::default()
    };
    let mut reply = chat.send_with("What is the weather in Paris?", &options);
    let err = loop {
        match reply.next().await {
            Some(Err(e)) => break e,
            Some(Ok(_)) => {}
            None => panic!("tools were not refused"),
        }
    };
    assert_eq!(err.code(), oy3o::ErrorCode::BadRequest);
    assert!(
        err.message().contains("local:smollm2") && err.message().contains("qwen2.5-0.5b"),
        "{}",
        err.message()
    );
    assert!(seen.lock().unwrap().is_empty());
}

/// Structured output on the local model: each schema becomes a grammar, so SmolLM2's answer is
/// JSON that the engine's JSON Schema validator (`OutputSchema::check_answer`) accepts.
#[tokio::test]
async fn smollm2_returns_schema_valid_json_for_three_schemas() {
    let schemas = [
        (
            "Describe Alice, a 30 year old admin, as JSON.",
            serde_json::json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 30},
                    "role": {"enum": ["admin", "user", "guest"]},
                    "age": {"type": "integer", "minimum": 0},
                },
                "required": ["name", "role", "age"],
                "additionalProperties": false,
            }),
        ),
        (
            "List three fruits.",
            serde_json::json!({"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 2, "maxItems": 4}),
        ),
        (
            "Where is Paris?",
            serde_json::json!({
                "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"], "additionalProperties": false}},
                "type": "object",
                "properties": {
                    "location": {"$ref": "#/$defs/point"},
                    "country": {"type": ["string", "null"], "maxLength": 30},
                    "tags": {"type": "array", "items": {"enum": ["city", "river", "hill"]}, "maxItems": 3},
                },
                "required": ["location", "country", "tags"],
                "additionalProperties": false,
            }),
        ),
    ];
    for (prompt, schema) in schemas {
        let schema = Arc::new(oy3o::structured::OutputSchema::new("answer", schema).unwrap());
        let options = Options {
            schema: Some(schema.clone()),
            max_tokens: Some(200),
            ..Options::default()
        };
        let chat = oy3o::Chat::open(Some("local:smollm2"), &Config::default()).unwrap();
        let text = chat
            .send_with(prompt, &options)
            .text()
            .await
            .unwrap_or_else(|e| panic!("{prompt}: the local model failed: {e}"));
        if let Err(e) = schema.check_answer(&text) {
            panic!("{prompt}: {text:?} is not valid: {e}");
        }
    }
}

#[tokio::test]
async fn a_schema_keyword_the_grammar_cannot_hold_is_a_bad_request_naming_it() {
    let schema = serde_json::json!({"type": "object", "properties": {"day": {"type": "string", "pattern": "^[0-9]+$"}}});
    let schema = Arc::new(oy3o::structured::OutputSchema::new("answer", schema).unwrap());
    let options = Options {
        schema: Some(schema),
        ..Options::default()
    };
    let chat = oy3o::Chat::open(Some("local:smollm2"), &Config::default()).unwrap();
    let err = chat
        .send_with("Which day?", &options)
        .text()
        .await
        .unwrap_err();
    assert_eq!(err.code(), oy3o::ErrorCode::BadRequest);
    assert!(err.message().contains("`pattern`"), "{}", err.message());
}
