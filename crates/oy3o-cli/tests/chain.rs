//! `oy3o chain FILE`: the shipped mixture-of-agents example, run against the fake server.

use std::process::Stdio;

use oy3o_testkit::{FakeServer, openai};
use serde_json::json;
use tokio::process::Command;

async fn run_chain(args: &[&str], base: &str) -> (i32, String, String) {
    let home = std::env::temp_dir().join(format!("oy3o-chain-home-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_oy3o"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env_clear()
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("OPENAI_BASE_URL", base)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn echo_server() -> FakeServer {
    let server = FakeServer::start().await;
    server.respond(|r| {
        let answer = format!("ANSWER({})", openai::prompt_of(r));
        openai::answer(&[answer.as_str()]).build()
    });
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mixture_of_agents_example_runs_and_the_aggregator_sees_every_proposal() {
    let server = echo_server().await;
    let (code, stdout, stderr) =
        run_chain(&["chain", "examples/moa.toml"], &server.base_url()).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("== stage 1/2"), "{stdout}");
    assert!(stdout.contains("[aggregate]"), "{stdout}");
    let aggregate = server
        .requests()
        .into_iter()
        .find(|r| openai::prompt_of(r).starts_with("Write the best"))
        .unwrap();
    let system = openai::system_of(&aggregate).unwrap();
    for name in ["careful", "creative", "rigorous"] {
        assert!(system.contains(&format!("[{name}]: ANSWER(")), "{system}");
        assert!(system.contains(&format!("[/{name}]")), "{system}");
    }
    assert!(system.ends_with("drop the rest."), "{system}");
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_output_is_one_parsable_line_per_stage() {
    let server = echo_server().await;
    let (code, stdout, stderr) = run_chain(
        &["chain", "examples/moa.toml", "--json"],
        &server.base_url(),
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (&lines[0]["index"], &lines[1]["index"]),
        (&json!(0), &json!(1))
    );
    // No progress line through a pipe, and every task names the model that answered.
    assert!(!stderr.contains("tasks done"), "{stderr}");
    for line in &lines {
        for result in line["results"].as_array().unwrap() {
            assert!(result["model"].is_string(), "{result}");
        }
    }
    assert_eq!(lines[0]["results"].as_array().unwrap().len(), 3);
    assert_eq!(lines[1]["results"][0]["name"], "aggregate");
    assert!(
        lines[1]["results"][0]["response"]
            .as_str()
            .unwrap()
            .starts_with("ANSWER(")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_chain_file_exits_3_naming_file_stage_and_task() {
    let dir = std::env::temp_dir().join(format!("oy3o-chain-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[[stage]]\n[[stage.task]]\nprompt = \"ok\"\n[[stage]]\n[[stage.task]]\nprompt = \"{{nobody}}\"\n").unwrap();
    let (code, stdout, stderr) =
        run_chain(&["chain", path.to_str().unwrap()], "http://127.0.0.1:9/v1").await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("bad.toml") && stderr.contains("stage 2, task 1"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_run_is_kept_in_the_store_with_every_tasks_result() {
    let server = echo_server().await;
    let (code, _, stderr) = run_chain(&["chain", "examples/moa.toml"], &server.base_url()).await;
    assert_eq!(code, 0, "{stderr}");
    let home = std::env::temp_dir().join(format!("oy3o-chain-home-{}", std::process::id()));
    let setting = oy3o_store::StoreSetting::Sqlite(home.join(".local/share/oy3o/oy3o.db"));
    let store = oy3o_store::open(&setting).await.unwrap().unwrap();
    let runs = store.chain_runs("", 50).await.unwrap();
    let run = runs
        .iter()
        .find(|r| r.name == "examples/moa.toml")
        .expect("the run is stored");
    assert_eq!(run.state, oy3o_store::TurnState::Done);
    let stages = run.result["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    // The engine's one schema (`StageResult::to_json`), as the server stores it too.
    assert_eq!(stages[1]["index"], 1);
    assert_eq!(stages[1]["results"][0]["index"], 0);
    assert_eq!(stages[1]["results"][0]["error"], serde_json::Value::Null);
    assert_eq!(stages[0]["results"].as_array().unwrap().len(), 3);
    assert!(
        stages[1]["results"][0]["response"]
            .as_str()
            .unwrap()
            .starts_with("ANSWER(")
    );
    store.close().await;
}
