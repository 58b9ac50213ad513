//! Behaviour of the `openai` provider with `api = "responses"` against a fake Responses API
//! on a real socket.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{KEY, Run, config_for, recorder, tune};
use futures::StreamExt;
use oy3o::tool_loop::{FnTool, Tool, Toolbox};
use oy3o::{
    Chat, Citation, Config, ErrorCode, Event, Message, Options, Part, Role, ToolChoice, ToolSpec,
    Tools, Usage,
};
use oy3o_testkit::{FakeServer, openai, responses};
use serde_json::json;

const MODEL: &str = "openai:gpt-4.1-mini";

fn config(server: &FakeServer) -> Config {
    let mut config = config_for("openai", server.base_url());
    tune(&mut config, "openai", |s| s.api = Some("responses".into()));
    config
}

#[tokio::test]
async fn a_chat_streams_chunks_and_returns_whole_replies() {
    let server = FakeServer::start().await;
    server.push(responses::answer(&["Hi", " there!"]).build());
    server.push(responses::answer(&["Second", " answer"]).build());
    let chat = Chat::open(Some(MODEL), &config(&server)).unwrap();

    let chunks: Vec<String> = chat.send("Say hi").map(|c| c.unwrap()).collect().await;
    assert_eq!(chunks, ["Hi", " there!"]);
    assert_eq!(chat.send_once("again").await.unwrap(), "Second answer");

    let request = &server.requests()[0];
    assert_eq!(request.path, "/v1/responses");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let body = request.json();
    assert_eq!(body["model"], "gpt-4.1-mini");
    assert_eq!(body["stream"], true);
    assert!(body.get("messages").is_none(), "{body}");
    assert_eq!(responses::prompt_of(request), "Say hi");
}

#[tokio::test]
async fn history_is_the_input_and_the_context_is_the_instructions() {
    let server = FakeServer::start().await;
    server.push(responses::answer(&["one"]).build());
    server.push(responses::answer(&["two"]).build());
    let chat = Chat::open(Some(MODEL), &config(&server)).unwrap();
    chat.update("You are terse.");
    chat.send_once("first").await.unwrap();
    chat.send_once("second").await.unwrap();
    let body = server.requests()[1].json();
    assert_eq!(body["instructions"], "You are terse.");
    assert_eq!(
        body["input"],
        serde_json::json!([
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "one"},
            {"role": "user", "content": "second"},
        ])
    );
    assert_eq!(chat.history()[3].role, Role::Assistant);
}

#[tokio::test]
async fn max_tokens_is_sent_as_max_output_tokens() {
    let server = FakeServer::start().await;
    server.push(responses::answer(&["x"]).build());
    let mut config = config(&server);
    config.options.max_tokens = Some(64);
    config.options.temperature = Some(0.5);
    oy3o::exec_once("q", None, Some(MODEL), &config)
        .await
        .unwrap();
    let body = server.requests()[0].json();
    assert_eq!(body["max_output_tokens"], 64);
    assert_eq!(body["temperature"], 0.5);
    assert!(body.get("max_tokens").is_none() && body.get("instructions").is_none());
}

#[tokio::test]
async fn reasoning_summary_deltas_are_reasoning_events() {
    let server = FakeServer::start().await;
    server.push(
        responses::reasoning_answer(
            &[
                "**Responding to a greeting**\n\nThe user said hi, so",
                " I greet back.",
            ],
            &["Hi!"],
        )
        .build(),
    );
    let run = Run::of(oy3o::exec("hi", None, Some(MODEL), &config(&server))).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "Hi!");
    assert_eq!(
        run.reasoning(),
        "**Responding to a greeting**\n\nThe user said hi, so I greet back."
    );
}

#[tokio::test]
async fn a_web_search_gives_its_query_and_a_url_citation_with_its_span() {
    let server = FakeServer::start().await;
    server.push(responses::web_search_answer(&["Rust 1.90 shipped", " in September."]).build());
    let run = Run::of(oy3o::exec("when?", None, Some(MODEL), &config(&server))).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "Rust 1.90 shipped in September.");
    assert_eq!(
        run.named("search"),
        [&Event::Search(responses::SEARCH_QUERY.into())]
    );
    assert_eq!(
        run.named("citation"),
        [&Event::Citation(Citation {
            url: responses::CITED_URL.into(),
            title: Some("Announcing Rust 1.90.0".into()),
            start: Some(0),
            end: Some(12),
        })]
    );
}

#[tokio::test]
async fn usage_comes_from_the_completed_event() {
    let server = FakeServer::start().await;
    server.push(responses::answer(&["a", "b"]).build());
    let run = Run::of(oy3o::exec("q", None, Some(MODEL), &config(&server))).await;
    let names: Vec<&str> = run.events.iter().map(|e| e.name()).collect();
    assert_eq!(names, ["send", "usage", "result"]);
    assert_eq!(
        run.events[1],
        Event::Usage(Usage {
            input_tokens: responses::INPUT_TOKENS,
            output_tokens: 4,
            cached_tokens: Some(0),
            reasoning_tokens: Some(0),
        })
    );
}

#[tokio::test]
async fn an_incomplete_response_is_a_result_that_stopped_for_length() {
    let server = FakeServer::start().await;
    server.push(responses::incomplete(&["Long", " answer"]).build());
    let run = Run::of(oy3o::exec("q", None, Some(MODEL), &config(&server))).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert!(
        matches!(run.events.last(), Some(Event::Result { text, finish_reason }) if text == "Long answer" && finish_reason == "length"),
        "{:?}",
        run.events.last()
    );
}

#[tokio::test]
async fn a_failed_response_is_a_provider_error_that_keeps_the_partial_text() {
    let server = FakeServer::start().await;
    server.push(responses::failed(&["Hi"]).build());
    let run = Run::of(oy3o::exec("q", None, Some(MODEL), &config(&server))).await;
    assert_eq!(run.text, "Hi");
    assert_eq!(run.err().code(), ErrorCode::Provider);
    assert!(
        run.err().message().contains("failed to generate"),
        "{}",
        run.err()
    );
}

#[tokio::test]
async fn both_shapes_of_the_error_event_are_errors_with_their_message() {
    for (data, code, said) in [
        (
            responses::ERROR_FLAT,
            ErrorCode::Provider,
            "The model failed to generate a response.",
        ),
        (
            responses::ERROR_NESTED,
            ErrorCode::RateLimit,
            "Too Many Requests",
        ),
    ] {
        let server = FakeServer::start().await;
        server.push(responses::unfinished(&["Hi"]).named("error", data).build());
        let run = Run::of(oy3o::exec("q", None, Some(MODEL), &config(&server))).await;
        assert_eq!(run.text, "Hi");
        assert_eq!(run.err().code(), code, "{}", run.err());
        assert!(run.err().message().contains(said), "{}", run.err());
    }
}

#[tokio::test]
async fn a_stream_that_ends_without_a_terminal_event_is_a_network_error() {
    let server = FakeServer::start().await;
    server.push(responses::unfinished(&["Hi", " there"]).build());
    let run = Run::of(oy3o::exec("q", None, Some(MODEL), &config(&server))).await;
    assert_eq!(run.text, "Hi there");
    assert_eq!(run.err().code(), ErrorCode::Network);
}

#[tokio::test]
async fn keep_alive_comments_crlf_and_split_reads_decode_cleanly() {
    let server = FakeServer::start().await;
    server.push(
        responses::answer(&["héllo ", "世界", " 👋"])
            .crlf()
            .keep_alive()
            .split_every(5)
            .build(),
    );
    let answer = oy3o::exec_once("hi", None, Some(MODEL), &config(&server))
        .await
        .unwrap();
    assert_eq!(answer, "héllo 世界 👋");
}

#[tokio::test]
async fn errors_before_the_stream_have_the_chat_completions_shape() {
    let server = FakeServer::start().await;
    server.push(openai::rate_limited("0.05"));
    server.push(responses::answer(&["ok"]).build());
    server.push(openai::invalid_key());
    server.push(openai::model_not_found("gpt-9"));
    for _ in 0..3 {
        server.push(openai::server_error().header("retry-after-ms", "5"));
    }
    let mut config = config(&server);
    let seen = recorder(&mut config);
    assert_eq!(
        oy3o::exec_once("hi", None, Some(MODEL), &config)
            .await
            .unwrap(),
        "ok"
    );
    assert!(common::names(&seen).contains(&"retry".to_owned()));
    let auth = oy3o::exec_once("hi", None, Some(MODEL), &config)
        .await
        .unwrap_err();
    assert_eq!(auth.code(), ErrorCode::Auth);
    let missing = oy3o::exec_once("hi", None, Some("openai:gpt-9"), &config)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), ErrorCode::NotFound);
    assert!(missing.message().contains("gpt-9"), "{missing}");
    let failed = oy3o::exec_once("hi", None, Some(MODEL), &config)
        .await
        .unwrap_err();
    assert_eq!(failed.code(), ErrorCode::Provider);
    assert_eq!(server.requests().len(), 7, "the 500 was tried three times");
}

#[tokio::test]
async fn the_responses_api_is_chosen_in_the_config_file() {
    let server = FakeServer::start().await;
    server.push(responses::answer(&["from a file"]).build());
    let dir = std::env::temp_dir().join(format!("oy3o-responses-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("oy3o.toml");
    std::fs::write(
        &path,
        format!(
            "model = \"openai:gpt-4.1-mini\"\n[providers.openai]\nbase_url = \"{}\"\napi_key = \"sk-file\"\napi = \"responses\"\n",
            server.base_url()
        ),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(
        oy3o::exec_once("hi", None, None, &config).await.unwrap(),
        "from a file"
    );
    assert_eq!(server.requests()[0].path, "/v1/responses");
}

#[tokio::test]
async fn an_unknown_api_set_in_code_is_a_config_error_when_the_chat_opens() {
    let mut config = config_for("openai", "http://127.0.0.1:9/v1".into());
    tune(&mut config, "openai", |s| s.api = Some("assistants".into()));
    let err = Chat::open(Some(MODEL), &config).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Config);
    assert!(err.message().contains("responses"), "{err}");
}

fn weather_spec() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: Some("Get the weather of a city".into()),
        parameters: Some(
            json!({"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"]}),
        ),
        strict: None,
    }
}

fn weather_tools(choice: Option<ToolChoice>) -> Options {
    Options {
        tools: Some(Arc::new(Tools {
            specs: vec![weather_spec()],
            choice,
            parallel: Some(true),
        })),
        ..Options::default()
    }
}

/// Two parallel calls as TOOLS.md §7.2 (b) streams them; the first's arguments hold a `°`.
fn two_calls() -> oy3o_testkit::SseScript {
    responses::function_calls(&[
        ("call_A1", "get_weather", r#"{"city":"Paris","unit":"°C"}"#),
        ("call_B2", "get_weather", r#"{"city":"Rome"}"#),
    ])
}

#[tokio::test]
async fn streamed_function_calls_are_assembled_and_results_follow_the_echoed_calls() {
    // The kit splits reads inside an argument string and inside the `°` (TOOLS.md §7.0).
    let script = two_calls().build();
    assert!(
        script
            .parts
            .iter()
            .any(|p| matches!(p, oy3o_testkit::Part::Bytes(b) if b.ends_with(&[0xC2]))),
        "a read ends inside the `°`"
    );
    assert!(
        script.parts.iter().any(
            |p| matches!(p, oy3o_testkit::Part::Bytes(b) if b.ends_with(br#""delta":"{\"ci"#))
        ),
        "a read ends inside an argument string"
    );
    let server = FakeServer::start().await;
    server.push(script);
    server.push(responses::answer(&["Paris 18°C, Rome 21°C."]).build());
    let chat = Chat::open(Some(MODEL), &config(&server)).unwrap();

    let mut outputs = chat
        .send_with(
            "Weather in Paris and Rome?",
            &weather_tools(Some(ToolChoice::Required)),
        )
        .outputs();
    let mut fragments = Vec::new();
    while let Some(item) = outputs.next().await {
        if let oy3o::Output::Event(Event::ToolCallDelta(d)) = item.unwrap() {
            fragments.push(d);
        }
    }
    let reply = outputs.reply();
    assert_eq!(reply.finish_reason(), Some("tool_calls"));
    assert!(
        fragments.len() > 4,
        "arguments stream in pieces: {fragments:?}"
    );
    assert_eq!(
        (fragments[0].index, fragments[0].id.as_deref()),
        (0, Some("call_A1")),
        "a call is named by its call_id, not its fc_ item id"
    );
    let calls = reply.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].id.as_str(), calls[0].arguments.clone()),
        ("call_A1", json!({"city": "Paris", "unit": "°C"}))
    );
    assert_eq!(
        (calls[1].id.as_str(), calls[1].arguments.clone()),
        ("call_B2", json!({"city": "Rome"}))
    );

    // Tools go out flat (no `function` wrapper), `strict` explicit (TOOLS.md §2.1).
    let first = server.requests()[0].json();
    assert_eq!(
        first["tools"],
        json!([{"type": "function", "name": "get_weather",
            "description": "Get the weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                "required": ["city"]},
            "strict": false}])
    );
    assert_eq!(first["tool_choice"], "required");
    assert_eq!(first["parallel_tool_calls"], true);

    let results = Message::tool_results([
        Part::ToolResult {
            call_id: "call_A1".into(),
            content: r#"{"temp_c": 18}"#.into(),
            is_error: false,
        },
        Part::ToolResult {
            call_id: "call_B2".into(),
            content: "lookup failed".into(),
            is_error: true,
        },
    ]);
    let named = weather_tools(Some(ToolChoice::Named("get_weather".into())));
    let answer = Run::of(chat.send_message(results, &named)).await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    assert_eq!(answer.text, "Paris 18°C, Rome 21°C.");
    let second = server.requests()[1].json();
    assert_eq!(
        second["input"],
        json!([
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"type": "function_call", "call_id": "call_A1", "name": "get_weather",
             "arguments": r#"{"city":"Paris","unit":"°C"}"#},
            {"type": "function_call", "call_id": "call_B2", "name": "get_weather",
             "arguments": r#"{"city":"Rome"}"#},
            {"type": "function_call_output", "call_id": "call_A1", "output": r#"{"temp_c": 18}"#},
            {"type": "function_call_output", "call_id": "call_B2", "output": "ERROR: lookup failed"},
        ])
    );
    assert_eq!(
        second["tool_choice"],
        json!({"type": "function", "name": "get_weather"})
    );
}

#[tokio::test]
async fn the_engine_runs_its_tools_against_the_responses_api_until_it_answers() {
    let server = FakeServer::start().await;
    server.push(
        responses::function_calls(&[
            ("call_A1", "get_weather", r#"{"city": "Edinburgh"}"#),
            ("call_B2", "get_weather", r#"{"city": "Atlantis"}"#),
        ])
        .build(),
    );
    server.push(responses::answer(&["4°C in Edinburgh; Atlantis is not a city."]).build());
    let chat = Chat::open(Some(MODEL), &config(&server)).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let tool: Arc<dyn Tool> = Arc::new(FnTool::new(
        weather_spec(),
        move |args: serde_json::Value| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                match args["city"].as_str() {
                    Some("Atlantis") => Err("no such city".to_string()),
                    Some(city) => Ok(format!("{{\"city\": \"{city}\", \"temp_c\": 4}}")),
                    None => Err("city must be a string".to_string()),
                }
            }
        },
    ));
    let options = Options {
        toolbox: Some(Arc::new(Toolbox::new(vec![tool]).unwrap())),
        ..Options::default()
    };

    let run = Run::of(chat.send_with("Weather?", &options)).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "4°C in Edinburgh; Atlantis is not a city.");
    assert_eq!(ran.load(Ordering::SeqCst), 2);
    let ends = run.named("result");
    assert_eq!(ends.len(), 1, "one reply for both steps");
    assert!(matches!(ends[0], Event::Result { finish_reason, .. } if finish_reason == "stop"));

    assert_eq!(server.requests().len(), 2);
    let second = server.requests()[1].json();
    let input = second["input"].as_array().unwrap();
    assert_eq!(input.len(), 5, "{input:?}");
    assert_eq!(
        (&input[1]["type"], &input[1]["call_id"]),
        (&json!("function_call"), &json!("call_A1"))
    );
    assert_eq!(input[3]["call_id"], "call_A1");
    assert_eq!(
        input[4],
        json!({"type": "function_call_output", "call_id": "call_B2", "output": "ERROR: no such city"})
    );
    assert_eq!(second["tools"][0]["name"], "get_weather");
    assert!(second["tools"][0].get("function").is_none());
    // The history holds every step: prompt, calls, results, answer.
    assert_eq!(chat.history().len(), 4);
}
