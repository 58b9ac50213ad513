//! Fallback models: an alias listing several models moves a turn to the next one when a
//! model fails before answering, and never once output has started.

mod common;

use std::time::Duration;

use common::{KEY, Run, recorder, tune};
use oy3o::{Chat, Config, Credential, ErrorCode, Event};
use oy3o_testkit::{FakeServer, Scripted, anthropic, openai};

const PRIMARY: &str = "anthropic:claude-sonnet-4-5";
const SECONDARY: &str = "openai:gpt-4o";

/// `smart` = the fake Anthropic server, then the fake OpenAI one. The primary retries once.
fn config(primary: &FakeServer, secondary: &FakeServer) -> Config {
    let mut config = Config::default();
    config
        .aliases
        .insert("smart".into(), vec![PRIMARY, SECONDARY].into());
    config.cookie = Some(Credential::parse(KEY));
    tune(&mut config, "anthropic", |s| {
        s.base_url = Some(primary.url());
        s.max_retries = Some(1);
    });
    tune(&mut config, "openai", |s| {
        s.base_url = Some(secondary.base_url())
    });
    config
}

/// The fallback's `retry` event, checked to name both models.
fn fallback_event(run: &Run) -> Event {
    let retries = run.named("retry");
    let last = retries.last().expect("a retry event");
    if let Event::Retry {
        reason, delay_ms, ..
    } = last
    {
        assert!(
            reason.contains(PRIMARY) && reason.contains(SECONDARY),
            "{reason}"
        );
        assert_eq!(*delay_ms, 0);
    }
    (*last).clone()
}

async fn falls_back_after(failure: Scripted, code: &str) {
    let primary = FakeServer::start().await;
    let secondary = FakeServer::start().await;
    primary.fallback(failure.header("retry-after-ms", "5"));
    secondary.push(openai::answer(&["from", " gpt-4o"]).build());
    let run = Run::of(oy3o::exec(
        "hi",
        None,
        Some("smart"),
        &config(&primary, &secondary),
    ))
    .await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "from gpt-4o");
    assert_eq!(
        primary.requests().len(),
        2,
        "the primary's own retry ran first"
    );
    assert_eq!(secondary.requests().len(), 1);
    let retries = run.named("retry");
    assert_eq!(retries.len(), 2, "{retries:?}");
    let Event::Retry { reason, .. } = fallback_event(&run) else {
        unreachable!()
    };
    assert!(reason.contains(code), "{reason}");
    assert!(matches!(run.events.last(), Some(Event::Result { .. })));
}

#[tokio::test]
async fn a_rate_limited_first_model_hands_the_turn_to_the_second() {
    falls_back_after(anthropic::rate_limited("0"), "rate_limit").await;
}

#[tokio::test]
async fn a_failing_first_model_hands_the_turn_to_the_second() {
    falls_back_after(
        anthropic::error(500, "api_error", "Internal server error"),
        "provider",
    )
    .await;
}

#[tokio::test]
async fn a_long_failure_is_quoted_in_the_fallback_reason_up_to_a_whole_word() {
    let primary = FakeServer::start().await;
    let secondary = FakeServer::start().await;
    let explanation = "the upstream network answered with a long explanation ".repeat(8);
    primary.fallback(anthropic::error(500, "api_error", explanation.trim()));
    secondary.push(openai::answer(&["ok"]).build());
    let run = Run::of(oy3o::exec(
        "hi",
        None,
        Some("smart"),
        &config(&primary, &secondary),
    ))
    .await;
    assert_eq!(run.text, "ok");
    let Event::Retry { reason, .. } = fallback_event(&run) else {
        unreachable!()
    };
    let (said, rest) = reason.split_once("…").expect("shortened");
    assert!(rest.starts_with("); falling back to"), "{reason}");
    let last = said.split_whitespace().last().unwrap_or_default();
    let words = [
        "the",
        "upstream",
        "network",
        "answered",
        "with",
        "a",
        "long",
        "explanation",
    ];
    assert!(words.contains(&last), "cut inside a word: {reason}");
}

#[tokio::test]
async fn an_unreachable_first_model_hands_the_turn_to_the_second() {
    let secondary = FakeServer::start().await;
    secondary.push(openai::answer(&["reachable"]).build());
    let unused = FakeServer::start().await;
    let mut config = config(&unused, &secondary);
    tune(&mut config, "anthropic", |s| {
        s.base_url = Some(common::unreachable_url());
        s.max_retries = Some(0);
    });
    let run = Run::of(oy3o::exec("hi", None, Some("smart"), &config)).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "reachable");
    let Event::Retry {
        reason, attempt, ..
    } = fallback_event(&run)
    else {
        unreachable!()
    };
    assert_eq!(attempt, 1);
    assert!(reason.contains("network"), "{reason}");
}

#[tokio::test]
async fn a_first_model_that_times_out_hands_the_turn_to_the_second() {
    let primary = FakeServer::start().await;
    let secondary = FakeServer::start().await;
    primary.fallback(
        anthropic::answer(&["late"])
            .build()
            .delayed(Duration::from_secs(2)),
    );
    secondary.push(openai::answer(&["on time"]).build());
    let mut config = config(&primary, &secondary);
    tune(&mut config, "anthropic", |s| {
        s.first_byte_timeout = Some(Duration::from_millis(200));
        s.max_retries = Some(0);
    });
    let run = Run::of(oy3o::exec("hi", None, Some("smart"), &config)).await;
    assert_eq!(run.text, "on time");
    let Event::Retry { reason, .. } = fallback_event(&run) else {
        unreachable!()
    };
    assert!(reason.contains("timeout"), "{reason}");
}

#[tokio::test]
async fn a_failure_after_output_started_keeps_the_partial_text_and_does_not_fall_back() {
    let primary = FakeServer::start().await;
    let secondary = FakeServer::start().await;
    primary.push(
        anthropic::unfinished(&["Hi", " there"])
            .named("error", anthropic::OVERLOADED_EVENT)
            .build(),
    );
    secondary.fallback(openai::answer(&["never"]).build());
    let mut config = config(&primary, &secondary);
    let seen = recorder(&mut config);
    let chat = Chat::open(Some("smart"), &config).unwrap();
    let mut reply = chat.send("hi");
    let mut text = String::new();
    let mut error = None;
    while let Some(item) = futures::StreamExt::next(&mut reply).await {
        match item {
            Ok(t) => text.push_str(&t),
            Err(e) => error = Some(e),
        }
    }
    assert_eq!(text, "Hi there", "the partial text, once");
    assert_eq!(reply.answer(), "Hi there");
    assert_eq!(error.expect("an error").code(), ErrorCode::Provider);
    assert!(secondary.requests().is_empty(), "no fallback after output");
    assert!(!common::names(&seen).contains(&"retry".to_owned()));
    assert!(chat.history().is_empty(), "a failed turn leaves no trace");
}

#[tokio::test]
async fn an_auth_failure_is_reported_not_hidden_by_a_fallback() {
    let primary = FakeServer::start().await;
    let secondary = FakeServer::start().await;
    primary.push(anthropic::invalid_key());
    let err = oy3o::exec_once("hi", None, Some("smart"), &config(&primary, &secondary))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Auth);
    assert!(secondary.requests().is_empty());
}

#[tokio::test]
async fn when_every_model_fails_the_last_failure_is_reported() {
    let primary = FakeServer::start().await;
    let secondary = FakeServer::start().await;
    primary.fallback(anthropic::overloaded().header("retry-after-ms", "5"));
    secondary.fallback(openai::server_error().header("retry-after-ms", "5"));
    let mut config = config(&primary, &secondary);
    let seen = recorder(&mut config);
    let err = oy3o::exec_once("hi", None, Some("smart"), &config)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Provider);
    assert!(
        err.message().starts_with("openai answered HTTP 500"),
        "{err}"
    );
    assert_eq!(primary.requests().len(), 2);
    assert_eq!(secondary.requests().len(), 3);
    assert_eq!(
        common::names(&seen).last().map(String::as_str),
        Some("error")
    );
}

#[tokio::test]
async fn the_conversation_moves_to_the_fallback_model_and_back() {
    let primary = FakeServer::start().await;
    let secondary = FakeServer::start().await;
    primary.push(anthropic::answer(&["one"]).build());
    primary.push(
        anthropic::error(500, "api_error", "Internal server error").header("retry-after-ms", "5"),
    );
    primary.push(anthropic::error(500, "api_error", "Internal server error"));
    primary.push(anthropic::answer(&["three"]).build());
    secondary.push(openai::answer(&["two"]).build());
    let chat = Chat::open(Some("smart"), &config(&primary, &secondary)).unwrap();
    assert_eq!(chat.model(), PRIMARY);
    chat.update("Be brief.");
    assert_eq!(chat.send_once("first").await.unwrap(), "one");
    assert_eq!(chat.send_once("second").await.unwrap(), "two");
    assert_eq!(chat.send_once("third").await.unwrap(), "three");

    // The fallback model got the whole conversation, in its own format.
    assert_eq!(
        secondary.requests()[0].json()["messages"],
        serde_json::json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "one"},
            {"role": "user", "content": "second"},
        ])
    );
    // The next turn starts at the first model again, with the fallback's answer in it.
    // (Anthropic's stable prefix is marked for prompt caching, TOOLS.md §3.8.)
    let back = primary.requests()[3].json();
    let cache = serde_json::json!({"type": "ephemeral"});
    assert_eq!(
        back["system"],
        serde_json::json!([{"type": "text", "text": "Be brief.", "cache_control": cache}])
    );
    assert_eq!(
        back["messages"],
        serde_json::json!([
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "one"},
            {"role": "user", "content": "second"},
            {"role": "assistant", "content": [{"type": "text", "text": "two", "cache_control": cache}]},
            {"role": "user", "content": "third"},
        ])
    );
    let history: Vec<String> = chat
        .history()
        .into_iter()
        .map(|m| m.text().into_owned())
        .collect();
    assert_eq!(history, ["first", "one", "second", "two", "third", "three"]);
}

#[tokio::test]
async fn an_alias_with_fallbacks_in_a_config_file_falls_back() {
    let primary = FakeServer::start().await;
    let secondary = FakeServer::start().await;
    primary.fallback(anthropic::overloaded());
    secondary.push(openai::answer(&["from the file"]).build());
    let dir = std::env::temp_dir().join(format!("oy3o-fallback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("oy3o.toml");
    std::fs::write(
        &path,
        format!(
            "model = \"smart\"\ncookie = \"{KEY}\"\n\n[aliases]\nsmart = [\"{PRIMARY}\", \"{SECONDARY}\"]\n\n\
             [providers.anthropic]\nbase_url = \"{}\"\nmax_retries = 0\n\n\
             [providers.openai]\nbase_url = \"{}\"\n",
            primary.url(),
            secondary.base_url()
        ),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(
        oy3o::exec_once("hi", None, None, &config).await.unwrap(),
        "from the file"
    );
}

/// A tool loop over a fallback alias: the primary model calls a tool, then fails before its
/// next answer; the secondary takes the step over with the calls made so far and their results
/// in its own format, and the turn ends with its answer.
#[tokio::test]
async fn a_tool_step_that_falls_back_keeps_the_calls_made_so_far() {
    use oy3o::tool_loop::{FnTool, Tool, Toolbox};
    use std::sync::Arc;
    let primary = FakeServer::start().await;
    let secondary = FakeServer::start().await;
    primary.push(
        anthropic::tool_use("", &[("toolu_1", "get_weather", r#"{"city": "Oslo"}"#)]).build(),
    );
    primary.push(
        anthropic::error(500, "api_error", "Internal server error").header("retry-after-ms", "5"),
    );
    primary.push(anthropic::error(500, "api_error", "Internal server error"));
    secondary.push(openai::answer(&["4 degrees in Oslo."]).build());
    let spec = oy3o::ToolSpec {
        name: "get_weather".into(),
        description: None,
        parameters: Some(serde_json::json!({"type": "object", "required": ["city"]})),
        strict: None,
    };
    let tool: Arc<dyn Tool> = Arc::new(FnTool::new(spec, |_| async { Ok("4C".to_string()) }));
    let options = oy3o::Options {
        toolbox: Some(Arc::new(Toolbox::new(vec![tool]).unwrap())),
        ..oy3o::Options::default()
    };
    let chat = Chat::open(Some("smart"), &config(&primary, &secondary)).unwrap();
    let run = Run::of(chat.send_with("Weather in Oslo?", &options)).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "4 degrees in Oslo.");
    fallback_event(&run);
    let sent = secondary.requests()[0].json();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert_eq!(messages[1]["tool_calls"][0]["id"], "toolu_1");
    assert_eq!(
        messages[1]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert_eq!(messages[2]["role"], "tool");
    assert_eq!(messages[2]["tool_call_id"], "toolu_1");
    assert_eq!(messages[2]["content"], "4C");
    assert_eq!(chat.history().len(), 4);
}
