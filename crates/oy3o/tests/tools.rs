//! Tool calling on OpenAI Chat Completions, Anthropic, Gemini and Ollama against a fake server on a real socket that replies
//! in the API's recorded shapes (TOOLS.md §1.1–§1.3): tools and the choice go out with the
//! request, streamed fragments come back assembled, the call joins the history, and the tool's
//! result goes back as a `tool` message after the assistant's echoed call. Models that take no
//! tools refuse them before anything is sent.

mod common;

use std::sync::Arc;

use common::{Run, config_for};
use oy3o::{Chat, ErrorCode, Event, Message, Options, Part, ToolChoice, ToolSpec, Tools};
use oy3o_testkit::{FakeServer, openai};
use serde_json::json;

/// The whole tool calls a run reported.
fn calls_of(run: &Run) -> Vec<oy3o::ToolCall> {
    run.events
        .iter()
        .filter_map(|e| match e {
            Event::ToolCall(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn weather_tools(choice: Option<ToolChoice>) -> Options {
    Options {
        tools: Some(Arc::new(Tools {
            specs: vec![ToolSpec {
                name: "get_weather".into(),
                description: Some("Get the weather of a city".into()),
                parameters: Some(
                    json!({"type": "object", "properties": {"city": {"type": "string"}},
                    "required": ["city"]}),
                ),
                strict: None,
            }],
            choice,
            parallel: Some(true),
        })),
        ..Options::default()
    }
}

#[tokio::test]
async fn streamed_tool_calls_are_assembled_kept_in_the_history_and_answered_with_results() {
    let server = FakeServer::start().await;
    server.push(
        openai::tool_calls(&[
            ("call_a", "get_weather", r#"{"city": "Edinburgh"}"#),
            ("call_b", "get_weather", r#"{"city": "Paris"}"#),
        ])
        .build(),
    );
    server.push(openai::answer(&["Cold in Edinburgh, mild in Paris."]).build());
    let config = config_for("openai", server.base_url());
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();
    let options = weather_tools(Some(ToolChoice::Required));

    let mut outputs = chat
        .send_with("Weather in Edinburgh and Paris?", &options)
        .outputs();
    let mut fragments = 0;
    while let Some(item) = futures::StreamExt::next(&mut outputs).await {
        if let oy3o::Output::Event(Event::ToolCallDelta(_)) = item.unwrap() {
            fragments += 1;
        }
    }
    let reply = outputs.reply();
    assert!(fragments > 4, "the arguments stream in pieces: {fragments}");
    assert_eq!(reply.finish_reason(), Some("tool_calls"));
    let calls = reply.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].id.as_str(), calls[0].arguments.clone()),
        ("call_a", json!({"city": "Edinburgh"}))
    );
    assert_eq!(calls[1].arguments, json!({"city": "Paris"}));

    let first = server.requests()[0].json();
    assert_eq!(first["tools"][0]["type"], "function");
    assert_eq!(first["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        first["tools"][0]["function"]["parameters"]["required"][0],
        "city"
    );
    assert_eq!(first["tool_choice"], "required");
    assert_eq!(first["parallel_tool_calls"], true);

    // The results go back as one tool message; the request echoes the calls first.
    let results = Message::tool_results([
        Part::ToolResult {
            call_id: "call_a".into(),
            content: r#"{"temp_c": 4}"#.into(),
            is_error: false,
        },
        Part::ToolResult {
            call_id: "call_b".into(),
            content: r#"{"temp_c": 12}"#.into(),
            is_error: false,
        },
    ]);
    let answer = Run::of(chat.send_message(results, &weather_tools(None))).await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    assert_eq!(answer.text, "Cold in Edinburgh, mild in Paris.");
    let second = server.requests()[1].json();
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(messages[1]["role"], "assistant");
    assert!(messages[1]["content"].is_null());
    assert_eq!(messages[1]["tool_calls"][0]["id"], "call_a");
    assert_eq!(
        messages[1]["tool_calls"][1]["function"]["arguments"],
        r#"{"city":"Paris"}"#
    );
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": "call_a", "content": "{\"temp_c\": 4}"})
    );
    assert_eq!(messages[3]["tool_call_id"], "call_b");
    assert!(second.get("tool_choice").is_none());
}

#[tokio::test]
async fn a_whole_answer_with_tool_calls_reads_as_the_streamed_one() {
    let server = FakeServer::start().await;
    server.push(openai::whole_tool_calls(&[(
        "call_x",
        "get_weather",
        r#"{"city":"Oslo"}"#,
    )]));
    let config = config_for("openai", server.base_url());
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();
    let options = Options {
        whole: true,
        ..weather_tools(Some(ToolChoice::Named("get_weather".into())))
    };
    let run = Run::of(chat.send_with("Oslo?", &options)).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    let calls = calls_of(&run);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].arguments, json!({"city": "Oslo"}));
    let sent = server.requests()[0].json();
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    assert_eq!(sent["stream"], false);
    // The call is in the history, as an assistant message with no text.
    let history = chat.history();
    assert_eq!(history.len(), 2);
    assert!(matches!(history[1].parts.as_slice(), [Part::ToolCall { id, .. }] if id == "call_x"));
}

#[tokio::test]
async fn models_without_tools_and_bad_tool_definitions_are_refused_before_sending() {
    // Copilot's web chat takes no tools; a request would fail to connect, not be refused.
    let mut config = oy3o::Config {
        cookie: Some(oy3o::Credential::parse(
            &oy3o_testkit::copilot::cookie_export(),
        )),
        ..oy3o::Config::default()
    };
    common::tune(&mut config, "bing", |s| {
        s.base_url = Some(common::unreachable_url());
        s.max_retries = Some(0);
    });
    let chat = Chat::open(Some("bing"), &config).unwrap();
    let run = Run::of(chat.send_with("x", &weather_tools(None))).await;
    assert_eq!(run.err().code(), ErrorCode::BadRequest);
    assert!(
        run.err().message().contains("tools"),
        "{}",
        run.err().message()
    );
    let results = Message::tool_results([Part::ToolResult {
        call_id: "c".into(),
        content: "1".into(),
        is_error: false,
    }]);
    let run = Run::of(chat.send_message(results, &Options::default())).await;
    assert_eq!(run.err().code(), ErrorCode::BadRequest);

    let openai_server = FakeServer::start().await;
    let config = config_for("openai", openai_server.base_url());
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();
    let named_unknown = weather_tools(Some(ToolChoice::Named("nope".into())));
    let run = Run::of(chat.send_with("x", &named_unknown)).await;
    assert!(
        run.err().message().contains("\"nope\""),
        "{}",
        run.err().message()
    );
    // A tool result in a user message is not where results go.
    let misplaced = Message {
        role: oy3o::Role::User,
        parts: vec![Part::ToolResult {
            call_id: "c".into(),
            content: "1".into(),
            is_error: false,
        }],
    };
    let run = Run::of(chat.send_message(misplaced, &Options::default())).await;
    assert_eq!(run.err().code(), ErrorCode::BadRequest);
    assert!(openai_server.requests().is_empty());
}

#[tokio::test]
async fn anthropic_tool_use_streams_as_calls_and_results_go_back_as_tool_result_blocks() {
    let server = FakeServer::start().await;
    server.push(
        oy3o_testkit::anthropic::tool_use(
            "Checking.",
            &[
                ("toolu_01", "get_weather", r#"{"city": "Paris"}"#),
                ("toolu_02", "get_weather", r#"{"city": "Rome"}"#),
            ],
        )
        .build(),
    );
    server.push(oy3o_testkit::anthropic::answer(&["Rome is warmer."]).build());
    let config = config_for("anthropic", server.base_url());
    let chat = Chat::open(Some("anthropic:claude-sonnet-4-5"), &config).unwrap();
    let options = Options {
        tools: weather_tools(Some(ToolChoice::Required)).tools.map(|t| {
            Arc::new(Tools {
                parallel: Some(false),
                ..(*t).clone()
            })
        }),
        ..Options::default()
    };
    let run = Run::of(chat.send_with("Paris or Rome?", &options)).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "Checking.");
    let calls = calls_of(&run);
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[1].id.as_str(), calls[1].arguments.clone()),
        ("toolu_02", json!({"city": "Rome"}))
    );
    assert!(
        matches!(run.named("result")[0], Event::Result { finish_reason, .. } if finish_reason == "tool_calls")
    );
    let first = server.requests()[0].json();
    assert_eq!(first["tools"][0]["name"], "get_weather");
    assert_eq!(first["tools"][0]["input_schema"]["required"][0], "city");
    assert_eq!(
        first["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );

    let results = Message::tool_results([
        Part::ToolResult {
            call_id: "toolu_01".into(),
            content: "18°C".into(),
            is_error: false,
        },
        Part::ToolResult {
            call_id: "toolu_02".into(),
            content: "lookup failed".into(),
            is_error: true,
        },
    ]);
    let answer = Run::of(chat.send_message(results, &weather_tools(None))).await;
    assert_eq!(answer.text, "Rome is warmer.");
    let second = server.requests()[1].json();
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{messages:?}");
    // The last block before the new message is the stable prefix's end, marked for prompt
    // caching (TOOLS.md §3.8; `tool_use` blocks take the marker).
    assert_eq!(
        messages[1]["content"],
        json!([{"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Rome"},
             "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(messages[2]["role"], "user");
    assert_eq!(
        messages[2]["content"],
        json!([{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18°C"},
            {"type": "tool_result", "tool_use_id": "toolu_02", "content": "lookup failed", "is_error": true}])
    );
}

#[tokio::test]
async fn ollama_tool_calls_come_whole_and_results_go_back_with_the_tools_name() {
    use oy3o_testkit::ollama;
    let server = FakeServer::start().await;
    server.push(
        oy3o_testkit::NdjsonScript::default()
            .line(&ollama::tool_calls_line(&[
                ("call_k3x9q2ab", "get_weather", json!({"city": "Tokyo"})),
                ("call_p7m1z0cd", "get_weather", json!({"city": "Paris"})),
            ]))
            .line(&ollama::done_line(Some(169), Some(15)))
            .build(),
    );
    server.push(ollama::answer(&["Tokyo is warmer."]).build());
    let config = config_for("ollama", server.base_url());
    let chat = Chat::open(Some("ollama:qwen3"), &config).unwrap();
    let run = Run::of(chat.send_with("Tokyo or Paris?", &weather_tools(None))).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    let calls = calls_of(&run);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].id, "call_p7m1z0cd");
    assert_eq!(calls[1].arguments, json!({"city": "Paris"}));
    assert!(
        matches!(run.named("result")[0], Event::Result { finish_reason, .. } if finish_reason == "tool_calls"),
        "Ollama's `stop` after calls reads as tool_calls"
    );
    let first = server.requests()[0].json();
    assert_eq!(first["tools"][0]["function"]["name"], "get_weather");
    assert!(
        first.get("tool_choice").is_none(),
        "Ollama has no tool_choice"
    );

    let results = Message::tool_results([
        Part::ToolResult {
            call_id: "call_k3x9q2ab".into(),
            content: "22°C".into(),
            is_error: false,
        },
        Part::ToolResult {
            call_id: "call_p7m1z0cd".into(),
            content: "18°C".into(),
            is_error: false,
        },
    ]);
    let answer = Run::of(chat.send_message(results, &weather_tools(None))).await;
    assert_eq!(answer.text, "Tokyo is warmer.");
    let messages = server.requests()[1].json()["messages"].clone();
    let messages = messages.as_array().unwrap();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(
        messages[1]["tool_calls"][1],
        json!({"type": "function", "function": {"index": 1, "name": "get_weather", "arguments": {"city": "Paris"}}})
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_name": "get_weather", "tool_call_id": "call_p7m1z0cd", "content": "18°C"})
    );
}

#[tokio::test]
async fn gemini_function_calls_keep_their_signature_and_results_go_back_as_function_responses() {
    use oy3o_testkit::gemini;
    let server = FakeServer::start().await;
    // Two parallel calls in one chunk; only the first carries a thought signature (§4.2).
    let parts = concat!(
        r#"[{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "CiQBsig"},"#,
        r#"{"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]"#
    );
    server.push(
        oy3o_testkit::SseScript::default()
            .crlf()
            .data(&gemini::chunk(parts, r#""finishReason": "STOP","#, 12, 0))
            .build(),
    );
    server.push(gemini::answer(&["Rome is warmer."]).build());
    let config = config_for("gemini", server.base_url());
    let chat = Chat::open(Some("gemini:gemini-2.5-flash"), &config).unwrap();
    let options = weather_tools(Some(ToolChoice::Named("get_weather".into())));
    let run = Run::of(chat.send_with("Paris or Rome?", &options)).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    let calls = calls_of(&run);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].signature.as_deref(), Some("CiQBsig"));
    assert_eq!(calls[1].arguments, json!({"city": "Rome"}));
    assert!(
        matches!(run.named("result")[0], Event::Result { finish_reason, .. } if finish_reason == "tool_calls")
    );
    let first = server.requests()[0].json();
    assert_eq!(
        first["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]["required"][0],
        "city"
    );
    assert_eq!(
        first["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );

    let results = Message::tool_results([
        Part::ToolResult {
            call_id: calls[0].id.clone(),
            content: "18".into(),
            is_error: false,
        },
        Part::ToolResult {
            call_id: calls[1].id.clone(),
            content: "timeout".into(),
            is_error: true,
        },
    ]);
    let answer = Run::of(chat.send_message(results, &weather_tools(None))).await;
    assert_eq!(answer.text, "Rome is warmer.");
    let contents = server.requests()[1].json()["contents"].clone();
    assert_eq!(
        contents[1],
        json!({"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "CiQBsig"},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]}),
        "the calls go back unchanged, signature in place, no made-up ids"
    );
    assert_eq!(
        contents[2],
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"output": "18"}}},
            {"functionResponse": {"name": "get_weather", "response": {"error": "timeout"}}}]})
    );
}

fn weather_toolbox(calls: Arc<std::sync::atomic::AtomicUsize>) -> Options {
    use oy3o::tool_loop::{FnTool, Tool, Toolbox};
    let spec = weather_tools(None).tools.unwrap().specs[0].clone();
    let tool: Arc<dyn Tool> = Arc::new(FnTool::new(spec, move |args: serde_json::Value| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match args["city"].as_str() {
                Some("Atlantis") => Err("no such city".to_string()),
                Some(city) => Ok(format!("{{\"city\": \"{city}\", \"temp_c\": 4}}")),
                None => Err("city must be a string".to_string()),
            }
        }
    }));
    Options {
        toolbox: Some(Arc::new(Toolbox::new(vec![tool]).unwrap())),
        ..Options::default()
    }
}

#[tokio::test]
async fn the_engine_runs_its_tools_until_the_model_answers_in_one_reply() {
    let server = FakeServer::start().await;
    server.push(
        openai::tool_calls(&[
            ("call_a", "get_weather", r#"{"city": "Edinburgh"}"#),
            ("call_b", "get_weather", r#"{"city": "Atlantis"}"#),
        ])
        .build(),
    );
    server.push(openai::answer(&["4 degrees in Edinburgh; Atlantis is not a city."]).build());
    let config = config_for("openai", server.base_url());
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();
    let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));

    let run = Run::of(chat.send_with("Weather?", &weather_toolbox(ran.clone()))).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "4 degrees in Edinburgh; Atlantis is not a city.");
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 2);
    let results: Vec<_> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::ToolResult(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 2);
    assert!(!results[0].is_error && results[0].content.contains("Edinburgh"));
    assert!(results[1].is_error && results[1].content == "no such city");
    // One `result` at the very end, with the final answer's finish reason.
    let ends = run.named("result");
    assert_eq!(ends.len(), 1);
    assert!(matches!(ends[0], Event::Result { finish_reason, .. } if finish_reason == "stop"));

    let second = server.requests()[1].json();
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(messages[2]["tool_call_id"], "call_a");
    assert_eq!(messages[3]["content"], "no such city");
    assert_eq!(second["tools"][0]["function"]["name"], "get_weather");
    // The history holds every step: prompt, calls, results, answer.
    assert_eq!(chat.history().len(), 4);
}

#[tokio::test]
async fn the_last_tool_step_asks_for_an_answer_without_tools() {
    let server = FakeServer::start().await;
    server.respond(|r| {
        if r.json()["tool_choice"] == "none" {
            openai::answer(&["Giving up on the tool."]).build()
        } else {
            openai::tool_calls(&[("call_x", "get_weather", r#"{"city": "Oslo"}"#)]).build()
        }
    });
    let config = config_for("openai", server.base_url());
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();
    let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let options = Options {
        max_tool_steps: Some(2),
        ..weather_toolbox(ran.clone())
    };
    let run = Run::of(chat.send_with("Loop forever", &options)).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "Giving up on the tool.");
    assert_eq!(
        ran.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "two steps ran tools"
    );
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_turn_dropped_while_its_tool_runs_leaves_no_call_without_result_in_the_history() {
    use oy3o::tool_loop::{FnTool, Tool, Toolbox};
    let server = FakeServer::start().await;
    server.push(openai::tool_calls(&[("call_a", "get_weather", r#"{"city": "Oslo"}"#)]).build());
    let config = config_for("openai", server.base_url());
    let chat = Chat::open(Some("openai:gpt-4o-mini"), &config).unwrap();
    let (started_tx, started) = tokio::sync::mpsc::unbounded_channel::<()>();
    let spec = weather_tools(None).tools.unwrap().specs[0].clone();
    let tool: Arc<dyn Tool> = Arc::new(FnTool::new(spec, move |_| {
        let _ = started_tx.send(());
        futures::future::pending()
    }));
    let options = Options {
        toolbox: Some(Arc::new(Toolbox::new(vec![tool]).unwrap())),
        ..Options::default()
    };
    let reading = tokio::spawn(Run::of(chat.send_with("Weather?", &options)));
    let mut started = started;
    started.recv().await.expect("the tool ran");
    reading.abort();
    let _ = reading.await;
    assert!(
        chat.history().is_empty(),
        "a dropped turn is not in the history: {:?}",
        chat.history()
    );
}
