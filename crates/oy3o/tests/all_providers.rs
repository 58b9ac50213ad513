//! The same chat through every kind of HTTP provider: each emits only the events that
//! `oy3o::events` says it can, and always the lifecycle ones.

mod common;

use std::collections::BTreeSet;

use common::{config_for, recorder, tune};
use oy3o::{Chat, Config};
use oy3o_testkit::{
    FakeServer, NdjsonScript, Scripted, SseScript, anthropic, gemini, ollama, openai, responses,
};

/// A kind of provider: its model, its config, a retryable failure and a rich answer (with
/// reasoning, searches or citations where its format has them) in its own wire format.
struct Kind {
    model: &'static str,
    config: Config,
    failure: Scripted,
    answer: Scripted,
    /// The events beyond the lifecycle ones this answer must give.
    extras: &'static [&'static str],
}

fn kinds(server: &FakeServer) -> Vec<Kind> {
    let openai_chat = SseScript::default()
        .data(&openai::reasoning_chunk("reasoning_content", "Let me think."))
        .data(r#"{"choices":[{"index":0,"delta":{"content":"Legoland is in Billund."},"finish_reason":null}]}"#)
        .data(r#"{"choices":[{"index":0,"delta":{"annotations":[{"type":"url_citation","url_citation":{"url":"https://en.wikipedia.org/wiki/Legoland","title":"Legoland","start_index":0,"end_index":8}}]},"finish_reason":"stop"}]}"#)
        .data(r#"{"choices":[],"usage":{"prompt_tokens":19,"completion_tokens":6,"total_tokens":25}}"#)
        .data("[DONE]");
    let mut responses_config = config_for("openai", server.base_url());
    tune(&mut responses_config, "openai", |s| {
        s.api = Some("responses".into())
    });
    let ollama_answer = NdjsonScript::default()
        .line(&ollama::thinking_line("The user says hi"))
        .line(&ollama::content_line("Hi!"))
        .line(&ollama::done_line(Some(26), Some(2)));
    vec![
        Kind {
            model: "openai:gpt-4o-mini",
            extras: &["reasoning", "citation"],
            config: config_for("openai", server.base_url()),
            failure: openai::rate_limited("0.01"),
            answer: openai_chat.build(),
        },
        Kind {
            model: "openai:gpt-4.1-mini",
            extras: &["search", "citation"],
            config: responses_config,
            failure: openai::rate_limited("0.01"),
            answer: responses::web_search_answer(&["Rust 1.90 shipped."]).build(),
        },
        Kind {
            model: "anthropic:claude-sonnet-4-5",
            extras: &["search", "search_result", "citation"],
            config: config_for("anthropic", server.url()),
            failure: anthropic::rate_limited("0.01"),
            answer: anthropic::web_search_answer().build(),
        },
        Kind {
            model: "gemini:gemini-2.5-flash",
            extras: &["search", "search_result", "citation"],
            config: config_for("gemini", server.url()),
            failure: gemini::rate_limited("0.01s"),
            answer: gemini::grounded_answer().build(),
        },
        Kind {
            model: "ollama:llama3.2",
            extras: &["reasoning"],
            config: config_for("ollama", server.url()),
            failure: ollama::server_busy().header("retry-after-ms", "10"),
            answer: ollama_answer.build(),
        },
    ]
}

#[tokio::test]
async fn all_provider_kinds_emit_only_events_they_declare() {
    let server = FakeServer::start().await;
    for kind in kinds(&server) {
        server.push(kind.failure);
        server.push(kind.answer);
        let mut config = kind.config;
        let seen = recorder(&mut config);
        let chat = Chat::open(Some(kind.model), &config).unwrap();
        chat.update("Be brief.");
        let answer = chat.send_once("hi").await;
        assert!(answer.is_ok(), "{}: {answer:?}", kind.model);

        let emitted: BTreeSet<String> = common::names(&seen).into_iter().collect();
        let declared: BTreeSet<String> = oy3o::events(kind.model)
            .unwrap()
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert!(
            emitted.is_subset(&declared),
            "{} emitted {:?}, which it does not declare (declared: {declared:?})",
            kind.model,
            emitted.difference(&declared).collect::<Vec<_>>()
        );
        let lifecycle = ["create", "update", "send", "retry", "usage", "result"];
        for needed in lifecycle.iter().chain(kind.extras) {
            assert!(
                emitted.contains(*needed),
                "{}: no {needed} in {emitted:?}",
                kind.model
            );
        }
    }
}
