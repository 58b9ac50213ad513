//! Tools and structured output on the real SmolLM2 model: its own template shows no tools (a
//! clear error), Qwen2.5's template given instead makes a grammar-held call come out as a
//! `ToolCall` piece, and a JSON Schema's grammar makes it answer JSON valid against three
//! different schemas.

mod common;

use oy3o_llama::{
    ChatMessage, ChatRequest, Finish, GenerateOptions, Grammar, LlamaError, Piece, Runtime,
    RuntimeOptions, ToolCall, ToolDefinition,
};
use serde_json::{Value, json};

const QWEN25_TEMPLATE: &str = include_str!("fixtures/qwen2.5-chat-template.jinja");

fn runtime() -> Runtime {
    Runtime::new(RuntimeOptions {
        context_tokens: 2048,
        ..RuntimeOptions::default()
    })
    .expect("llama.cpp starts")
}

/// Text, calls and how it ended.
async fn run(
    runtime: &Runtime,
    request: ChatRequest,
    max_tokens: u32,
) -> Result<(String, Vec<ToolCall>, Finish), LlamaError> {
    let options = GenerateOptions {
        max_tokens: Some(max_tokens),
        ..GenerateOptions::default()
    };
    let mut pieces = runtime.chat(common::smollm2(), request, options);
    let (mut text, mut calls) = (String::new(), Vec::new());
    while let Some(piece) = pieces.recv().await {
        match piece? {
            Piece::Text(t) => text.push_str(&t),
            Piece::ToolCall(c) => calls.push(c),
            Piece::Done(stats) => return Ok((text, calls, stats.finish)),
        }
    }
    panic!("the stream ended without Done");
}

fn weather() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: Some("The current weather in a city".into()),
        parameters: Some(json!({
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}},
            "required": ["city"],
        })),
    }
}

#[test]
fn smollm2s_file_says_its_template_shows_no_tools() {
    assert_eq!(
        oy3o_llama::file_takes_tools(&common::smollm2()),
        Some(false)
    );
    assert_eq!(
        oy3o_llama::file_takes_tools(std::path::Path::new("/no/such.gguf")),
        None
    );
}

#[tokio::test]
async fn tools_offered_to_a_template_without_them_are_a_clear_error() {
    let request = ChatRequest {
        tools: vec![weather()],
        ..ChatRequest::new(vec![ChatMessage::user("Weather in Paris?")])
    };
    let err = run(&runtime(), request, 10).await.unwrap_err();
    assert!(matches!(err, LlamaError::NoTools { .. }), "{err}");
    assert!(err.to_string().contains("qwen2.5-0.5b"), "{err}");
}

#[tokio::test]
async fn a_required_call_comes_out_as_a_tool_call_piece_with_valid_arguments() {
    let tools = vec![weather()];
    let request = ChatRequest {
        messages: vec![ChatMessage::user("What is the weather in Paris?")],
        grammar: Some(Grammar::tool_call(&tools, None).unwrap()),
        tools,
        chat_template: Some(QWEN25_TEMPLATE.into()),
    };
    let (text, calls, finish) = run(&runtime(), request, 80).await.unwrap();
    assert_eq!(finish, Finish::ToolCalls, "{text:?} {calls:?}");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "get_weather");
    let city = calls[0].arguments["city"]
        .as_str()
        .expect("city is a string");
    assert!(city.len() <= 40, "{city:?}");
    assert!(!text.contains("tool_call"), "the markup leaked: {text:?}");
}

/// Generates JSON for `schema` and parses it.
async fn json_answer(runtime: &Runtime, prompt: &str, schema: &Value) -> Value {
    let request = ChatRequest {
        grammar: Some(Grammar::json_schema(schema).unwrap()),
        ..ChatRequest::new(vec![ChatMessage::user(prompt)])
    };
    let (text, calls, finish) = run(runtime, request, 200).await.unwrap();
    assert!(calls.is_empty());
    assert_eq!(
        finish,
        Finish::Stop,
        "the grammar ended the answer: {text:?}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

#[tokio::test]
async fn smollm2_answers_json_valid_against_three_schemas() {
    let runtime = runtime();

    // 1. An object with a string, an enum, an integer at least 0 and an optional boolean.
    let person = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 30},
            "role": {"enum": ["admin", "user", "guest"]},
            "age": {"type": "integer", "minimum": 0},
            "active": {"type": "boolean"},
        },
        "required": ["name", "role", "age"],
        "additionalProperties": false,
    });
    let v = json_answer(
        &runtime,
        "Describe Alice, a 30 year old admin, as JSON.",
        &person,
    )
    .await;
    let o = v.as_object().expect("an object");
    assert!(
        o.keys()
            .all(|k| ["name", "role", "age", "active"].contains(&k.as_str())),
        "{v}"
    );
    let name = o["name"].as_str().expect("name");
    assert!((1..=30).contains(&name.chars().count()), "{v}");
    assert!(
        ["admin", "user", "guest"].contains(&o["role"].as_str().unwrap_or_default()),
        "{v}"
    );
    assert!(o["age"].as_u64().is_some(), "{v}");
    assert!(o.get("active").is_none_or(Value::is_boolean), "{v}");

    // 2. An array of 2 to 4 short strings.
    let list = json!({"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 2, "maxItems": 4});
    let v = json_answer(&runtime, "List some fruits as a JSON array.", &list).await;
    let items = v.as_array().expect("an array");
    assert!((2..=4).contains(&items.len()), "{v}");
    assert!(
        items
            .iter()
            .all(|i| i.as_str().is_some_and(|s| s.chars().count() <= 20)),
        "{v}"
    );

    // 3. Nested: a $ref'd point, a nullable number and a list of tags from an enum.
    let place = json!({
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}},
        "type": "object",
        "properties": {
            "location": {"$ref": "#/$defs/point"},
            "height": {"type": ["number", "null"]},
            "tags": {"type": "array", "items": {"enum": ["city", "river", "hill"]}, "maxItems": 3},
        },
        "required": ["location", "height", "tags"],
    });
    let v = json_answer(&runtime, "Give the location of Paris as JSON.", &place).await;
    assert!(
        v["location"]["x"].is_number() && v["location"]["y"].is_number(),
        "{v}"
    );
    assert!(v["height"].is_number() || v["height"].is_null(), "{v}");
    let tags = v["tags"].as_array().expect("tags");
    assert!(tags.len() <= 3, "{v}");
    assert!(
        tags.iter()
            .all(|t| ["city", "river", "hill"].contains(&t.as_str().unwrap_or_default())),
        "{v}"
    );
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert!(
        keys.iter()
            .all(|k| ["location", "height", "tags"].contains(&k.as_str())),
        "{v}"
    );
}
