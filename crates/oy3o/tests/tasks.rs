//! Tasks and chains against the fake OpenAI server: ordering, bounds, failures, the context
//! handed between stages, templates, quorum, options and cancellation.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use oy3o::{Chain, Config, Credential, ErrorCode, Event, ProviderSettings, Stage, Task};
use oy3o_testkit::{FakeServer, Scripted, openai};

/// A fake whose answer is `ANSWER(prompt)`, after `slow` prompts wait 300 ms and `boom` ones fail.
async fn fake() -> FakeServer {
    let server = FakeServer::start().await;
    server.respond(|request| {
        let prompt = openai::prompt_of(request);
        if prompt.contains("boom") {
            return openai::server_error();
        }
        let answer = format!("ANSWER({prompt})");
        let delay = if prompt.contains("slow") {
            Duration::from_millis(300)
        } else if prompt.contains("wait") {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(5)
        };
        openai::reply_to(request, &[answer.as_str()]).delayed(delay)
    });
    server
}

fn config_for(server: &FakeServer) -> Config {
    let mut config = Config {
        model: Some("openai:gpt-4o-mini".into()),
        ..Config::default()
    };
    config.providers.insert(
        "openai".into(),
        ProviderSettings {
            base_url: Some(server.base_url()),
            api_key: Some(Credential::parse("sk-test")),
            max_retries: Some(0),
            ..ProviderSettings::default()
        },
    );
    config
}

fn task(prompt: &str) -> Task {
    Task::new(None, prompt)
}

#[tokio::test]
async fn results_arrive_in_completion_order_so_a_slow_task_finishes_last() {
    let server = fake().await;
    let results = oy3o::exec_tasks_once(
        vec![task("slow one"), task("quick a"), task("quick b")],
        &config_for(&server),
    )
    .await;
    let order: Vec<usize> = results.iter().map(|r| r.index).collect();
    assert_eq!(order.len(), 3);
    assert_eq!(*order.last().unwrap(), 0, "{order:?}");
    assert_eq!(results[2].response.as_deref(), Some("ANSWER(slow one)"));
}

#[tokio::test]
async fn no_more_tasks_run_at_once_than_the_concurrency_bound() {
    let server = fake().await;
    let mut config = config_for(&server);
    config.task_concurrency = Some(3);
    let tasks = (0..12).map(|i| task(&format!("wait {i}"))).collect();
    let results = oy3o::exec_tasks_once(tasks, &config).await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(server.max_in_flight(), 3);
}

#[tokio::test]
async fn a_chain_stage_runs_no_more_tasks_at_once_than_the_concurrency_bound() {
    let server = fake().await;
    let mut config = config_for(&server);
    config.task_concurrency = Some(3);
    let stage = (0..12).map(|i| task(&format!("wait {i}"))).collect();
    let stages = oy3o::exec_tasks_chain_once(Chain::from(vec![stage]), &config)
        .await
        .unwrap();
    assert_eq!(stages[0].failed, 0);
    assert_eq!(server.max_in_flight(), 3);
}

#[tokio::test]
async fn tasks_on_a_model_that_does_not_resolve_each_fail_with_its_error() {
    let server = fake().await;
    let config = config_for(&server);
    let tasks = vec![
        Task::new(Some("nosuch:model"), "a"),
        task("b"),
        Task::new(Some("nosuch:model"), "c"),
    ];
    let results = oy3o::exec_tasks_once(tasks, &config).await;
    let failed: Vec<_> = results.iter().filter(|r| !r.is_ok()).collect();
    assert_eq!(failed.len(), 2);
    for r in failed {
        let e = r.error.as_ref().unwrap();
        assert_eq!(e.code(), ErrorCode::NotFound);
        assert!(e.message().contains("nosuch"), "{}", e.message());
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
}

#[tokio::test]
async fn a_failing_task_reports_its_error_and_leaves_the_others_intact() {
    let server = fake().await;
    let mut config = config_for(&server);
    let errors = Arc::new(Mutex::new(0));
    let e = errors.clone();
    config
        .listeners
        .on("error", move |_| *e.lock().unwrap() += 1);
    let results = oy3o::exec_tasks_once(vec![task("a"), task("boom"), task("c")], &config).await;
    let failed: Vec<_> = results.iter().filter(|r| !r.is_ok()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].task.prompt, "boom");
    assert_eq!(
        failed[0].error.as_ref().unwrap().code(),
        ErrorCode::Provider
    );
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2);
    assert_eq!(*errors.lock().unwrap(), 1);
}

#[tokio::test]
async fn the_next_stage_receives_exactly_the_documented_context() {
    let server = fake().await;
    let chain = Chain::from(vec![
        vec![
            task("first").named("alpha"),
            Task::new(Some("openai:other"), "second"),
            task("boom").named("broken"),
        ],
        vec![task("combine").with_context("Be brief.")],
    ]);
    let stages = oy3o::exec_tasks_chain_once(chain, &config_for(&server))
        .await
        .unwrap();
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].failed, 1);
    assert_eq!(stages[0].results.len(), 3);
    assert_eq!(
        stages[0].results[0].task.prompt, "first",
        "stage results keep task order"
    );
    let combine = server
        .requests()
        .into_iter()
        .find(|r| openai::prompt_of(r) == "combine")
        .unwrap();
    assert_eq!(
        openai::system_of(&combine).unwrap(),
        "[alpha]: ANSWER(first)\n[/alpha]\n[openai:other]: ANSWER(second)\n[/openai:other]\nBe brief."
    );
    // Answers are read whole, so tasks ask for them whole.
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.json()["stream"] == serde_json::Value::Bool(false)),
        "every task asks with stream: false"
    );
}

#[tokio::test]
async fn templates_name_earlier_answers_and_previous_is_placed_where_asked() {
    let server = fake().await;
    let chain = Chain::from(vec![
        vec![task("color").named("c")],
        vec![task("poem about {{c}}").named("p")],
        vec![task("judge: {{previous}}")],
    ]);
    oy3o::exec_tasks_chain_once(chain, &config_for(&server))
        .await
        .unwrap();
    let prompts: Vec<(String, Option<String>)> = server
        .requests()
        .iter()
        .map(|r| (openai::prompt_of(r), openai::system_of(r)))
        .collect();
    assert_eq!(prompts[1].0, "poem about ANSWER(color)");
    assert_eq!(
        prompts[2],
        (
            "judge: [p]: ANSWER(poem about ANSWER(color))\n[/p]\n".to_owned(),
            None
        ),
        "previous placed in the prompt is not repeated as context"
    );
}

#[tokio::test]
async fn an_unknown_reference_fails_before_anything_runs() {
    let server = fake().await;
    let chain = Chain::from(vec![vec![task("a")], vec![task("{{nobody}}")]]);
    let err = oy3o::exec_tasks_chain_once(chain, &config_for(&server))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Config);
    assert!(err.message().contains("nobody"));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_stage_below_its_quorum_stops_the_chain_after_reporting_it() {
    let server = fake().await;
    let chain = Chain {
        stages: vec![
            Stage {
                tasks: vec![task("a"), task("boom")],
                min_ok: Some(2),
            },
            Stage::new(vec![task("never")]),
        ],
    };
    let mut stages = oy3o::exec_tasks_chain(chain, &config_for(&server));
    let first = stages.next().await.unwrap().unwrap();
    assert_eq!(first.failed, 1);
    let err = stages.next().await.unwrap().unwrap_err();
    assert!(err.message().contains("min_ok"), "{err}");
    assert!(stages.next().await.is_none());
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| openai::prompt_of(r) == "never")
    );
}

#[tokio::test]
async fn per_task_options_reach_the_request_and_a_task_timeout_fails_only_that_task() {
    let server = fake().await;
    let mut tuned = task("tuned");
    tuned.temperature = Some(0.1);
    tuned.max_tokens = Some(7);
    let mut hurried = task("slow hurried");
    hurried.timeout = Some(0.05);
    let results = oy3o::exec_tasks_once(vec![tuned, hurried], &config_for(&server)).await;
    let tuned_request = server
        .requests()
        .into_iter()
        .find(|r| openai::prompt_of(r) == "tuned")
        .unwrap();
    assert!((tuned_request.json()["temperature"].as_f64().unwrap() - 0.1).abs() < 1e-6);
    assert_eq!(tuned_request.json()["max_tokens"], 7);
    let hurried = results
        .iter()
        .find(|r| r.task.prompt == "slow hurried")
        .unwrap();
    assert_eq!(hurried.error.as_ref().unwrap().code(), ErrorCode::Timeout);
    assert!(
        results
            .iter()
            .any(|r| r.task.prompt == "tuned" && r.is_ok())
    );
}

#[tokio::test]
async fn dropping_a_chain_cancels_every_running_task() {
    let server = FakeServer::start().await;
    let pieces: Vec<String> = (0..100).map(|i| format!("w{i} ")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    server.fallback(
        openai::answer(&pieces)
            .delay(Duration::from_millis(20))
            .build(),
    );
    let chain = Chain::from(vec![vec![task("a"), task("b"), task("c")], vec![task("d")]]);
    let mut stages = oy3o::exec_tasks_chain(chain, &config_for(&server));
    let poll = tokio::time::timeout(Duration::from_millis(300), stages.next()).await;
    assert!(poll.is_err(), "the stage is still running");
    drop(stages);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.aborted_by_client() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.aborted_by_client(), 3);
    assert_eq!(server.completed(), 0);
    assert_eq!(server.requests().len(), 3, "stage 2 never started");
}

#[tokio::test]
async fn task_events_report_start_done_timing_and_usage() {
    let server = fake().await;
    let mut config = config_for(&server);
    let seen = Arc::new(Mutex::new(Vec::<Event>::new()));
    let s = seen.clone();
    config.listeners.on("*", move |e| {
        if e.name().starts_with("task_") || e.name().starts_with("stage_") {
            s.lock().unwrap().push(e.clone());
        }
    });
    let chain = Chain::from(vec![vec![task("x").named("n")]]);
    oy3o::exec_tasks_chain_once(chain, &config).await.unwrap();
    let seen = seen.lock().unwrap();
    let names: Vec<&str> = seen.iter().map(|e| e.name()).collect();
    assert_eq!(
        names,
        ["stage_start", "task_start", "task_done", "stage_done"]
    );
    let done = seen[2].message();
    assert_eq!(done["name"], "n");
    assert_eq!(done["ok"], true);
    assert!(done["elapsed_ms"].as_u64().is_some());
    assert_eq!(done["usage"]["input_tokens"], 19);
    assert_eq!(seen[3].message()["answers"][0]["response"], "ANSWER(x)");
}

#[tokio::test]
async fn a_500_scripted_once_does_not_leak_into_other_tasks() {
    let server = FakeServer::start().await;
    server.push(Scripted::json(
        500,
        r#"{"error":{"message":"first fails"}}"#,
    ));
    server.fallback(openai::answer(&["fine"]).build());
    let mut config = config_for(&server);
    config.task_concurrency = Some(1);
    let results = oy3o::exec_tasks_once(vec![task("1"), task("2")], &config).await;
    assert!(!results[0].is_ok());
    assert_eq!(results[1].response.as_deref(), Some("fine"));
}
