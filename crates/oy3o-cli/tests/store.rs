//! The store through the `oy3o` command: `--chat` continues a chat with its history, `chats`
//! and `log` show what was kept, `log prune` removes it, a `kill -9` mid-answer leaves the turn
//! `interrupted` at once, and PostgreSQL works through `OY3O_STORE`.

#[path = "../../oy3o-store/tests/common/mod.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use oy3o_testkit::{FakeServer, openai};
use serde_json::{Value, json};
use tokio::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A home of its own per test, so each test has its own SQLite file in its data dir.
fn home() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let home = std::env::temp_dir().join(format!(
        "oy3o-cli-store-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    home
}

fn command(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oy3o"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_DATA_HOME", home.join("data"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

async fn oy3o(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = command(home, args, env).output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `oy3o log --json`, parsed.
async fn log_json(home: &Path, env: &[(&str, &str)]) -> Vec<Value> {
    let run = oy3o(home, &["log", "--json", "-n", "50"], env).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Two prompts in chat `work`: the second sends the first turn as history.
async fn a_chat_continues_with_its_history_on(home: &Path, env: &[(&str, &str)]) {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Hello, ", "Ada!"]).build());
    server.push(openai::answer(&["You are Ada."]).build());
    let base = server.base_url();
    let mut env = env.to_vec();
    env.push(("OPENAI_BASE_URL", &base));
    let first = oy3o(
        home,
        &[
            "--chat",
            "work",
            "My name is Ada.",
            "--model",
            "openai:gpt-4o-mini",
            "--context",
            "Be brief.",
        ],
        &env,
    )
    .await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.stdout, "Hello, Ada!\n");
    assert_eq!(first.stderr, "", "no store warning");
    // The second call names neither model nor context: the chat remembers both.
    let second = oy3o(home, &["--chat", "work", "What is my name?"], &env).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.stdout, "You are Ada.\n");
    let body = server.requests()[1].json();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello, Ada!"},
            {"role": "user", "content": "What is my name?"}
        ])
    );
    let turns = log_json(home, &env).await;
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[0]["prompt"], "My name is Ada.");
    assert_eq!(turns[1]["answer"], "You are Ada.");
    assert!(
        turns
            .iter()
            .all(|t| t["chat"] == "work" && t["state"] == "done")
    );
    assert_eq!(turns[1]["usage"]["input_tokens"], 19);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_continues_with_its_history() {
    a_chat_continues_with_its_history_on(&home(), &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_continues_with_its_history_on_postgres_through_oy3o_store() {
    let db = pg::Db::postgres();
    let url = db.url();
    let home = home();
    a_chat_continues_with_its_history_on(&home, &[("OY3O_STORE", &url)]).await;
    // Nothing went to the default SQLite file.
    assert!(!home.join("data/oy3o/oy3o.db").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn chats_and_log_show_what_was_kept_and_search_finds_it() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Penguins swim."]).build());
    server.push(openai::answer(&["Owls hunt at night."]).build());
    server.push(openai::answer(&["Ravens are clever."]).build());
    let base = server.base_url();
    let env = [("OPENAI_BASE_URL", base.as_str())];
    let home = home();
    for (args, out) in [
        (
            vec!["--chat", "birds", "Tell me about penguins"],
            "Penguins swim.\n",
        ),
        (
            vec!["--chat", "birds", "And owls?"],
            "Owls hunt at night.\n",
        ),
        (vec!["What about ravens?"], "Ravens are clever.\n"),
    ] {
        let mut args = args;
        args.extend(["--model", "openai:gpt-4o-mini"]);
        let run = oy3o(&home, &args, &env).await;
        assert_eq!((run.code, run.stdout.as_str()), (0, out), "{}", run.stderr);
    }

    let chats = oy3o(&home, &["chats"], &env).await;
    assert_eq!(chats.code, 0, "{}", chats.stderr);
    let lines: Vec<&str> = chats.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "a header and the one named chat: {}",
        chats.stdout
    );
    assert!(lines[0].starts_with("NAME"), "{}", lines[0]);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &row[..3],
        ["birds", "openai:gpt-4o-mini", "2"],
        "{}",
        lines[1]
    );

    // The plain one-shot prompt is logged too, with no chat name.
    let log = oy3o(&home, &["log"], &env).await;
    assert_eq!(log.code, 0, "{}", log.stderr);
    let penguins = log
        .stdout
        .find("> Tell me about penguins")
        .expect("first prompt");
    let ravens = log
        .stdout
        .find("> What about ravens?")
        .expect("last prompt");
    assert!(penguins < ravens, "oldest first:\n{}", log.stdout);
    assert!(log.stdout.contains("chat: birds"), "{}", log.stdout);
    assert!(log.stdout.contains("Owls hunt at night."), "{}", log.stdout);

    let last = oy3o(&home, &["log", "-n", "1", "--json"], &env).await;
    let turns: Vec<Value> = last
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(turns.len(), 1);
    assert_eq!(turns[0]["prompt"], "What about ravens?");
    assert_eq!(turns[0]["chat"], Value::Null);
    assert_eq!(turns[0]["model"], "openai:gpt-4o-mini");

    let found = oy3o(&home, &["log", "--json", "--search", "hunt night"], &env).await;
    let turns: Vec<Value> = found
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(turns.len(), 1, "{}", found.stdout);
    assert_eq!(turns[0]["answer"], "Owls hunt at night.");
    let none = oy3o(&home, &["log", "--json", "--search", "walrus"], &env).await;
    assert_eq!((none.code, none.stdout.as_str()), (0, ""));

    // With turns logged, an empty selection says why it is empty, not that nothing was logged.
    let none = oy3o(&home, &["log", "--search", "walrus"], &env).await;
    assert_eq!(none.code, 0);
    assert_eq!(none.stderr, "no turn holds all of: walrus\n");
    let zero = oy3o(&home, &["log", "-n", "0"], &env).await;
    assert_eq!(
        (zero.code, zero.stdout.as_str(), zero.stderr.as_str()),
        (0, "", "")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn log_prune_removes_old_turns_and_explains_a_bad_age() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Kept."]).build());
    let base = server.base_url();
    let env = [("OPENAI_BASE_URL", base.as_str())];
    let home = home();
    let run = oy3o(
        &home,
        &["--chat", "c", "hello", "--model", "openai:x"],
        &env,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    let kept = oy3o(&home, &["log", "prune", "--older-than", "30d"], &env).await;
    assert_eq!(kept.code, 0, "{}", kept.stderr);
    assert_eq!(kept.stdout, "removed 0 turns and 0 chats older than 30d\n");
    assert_eq!(log_json(&home, &env).await.len(), 1);

    let bad = oy3o(&home, &["log", "prune", "--older-than", "30x"], &env).await;
    assert_eq!(bad.code, 2, "a usage mistake");
    assert!(bad.stderr.contains("use s, m, h or d"), "{}", bad.stderr);

    let all = oy3o(&home, &["log", "prune", "--older-than", "0s"], &env).await;
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert_eq!(all.stdout, "removed 1 turn and 1 chat older than 0s\n");
    assert!(log_json(&home, &env).await.is_empty());
    let chats = oy3o(&home, &["chats"], &env).await;
    assert_eq!(chats.stdout, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_answer_leaves_the_turn_interrupted_at_once_and_the_earlier_ones_intact() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["First answer."]).build());
    let pieces = vec!["word "; 200];
    server.push(
        openai::answer(&pieces)
            .delay(Duration::from_millis(50))
            .build(),
    );
    let base = server.base_url();
    let env = [("OPENAI_BASE_URL", base.as_str())];
    let home = home();
    let first = oy3o(
        &home,
        &["--chat", "x", "first", "--model", "openai:x"],
        &env,
    )
    .await;
    assert_eq!(first.code, 0, "{}", first.stderr);

    let mut child = command(&home, &["--chat", "x", "second"], &env)
        .spawn()
        .unwrap();
    // Wait until the answer is under way in the store (another process reading it leaves a live
    // instance's turn alone).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let turns = log_json(&home, &env).await;
        if turns.len() == 2
            && turns[1]["state"] == "streaming"
            && turns[1]["answer"].as_str().is_some_and(|a| a.len() >= 10)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the answer never showed: {turns:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    // As after `kill -9` in a shell that has not reaped it yet: the process has ended (a
    // zombie), and the next command already sees its turn interrupted, not streaming.
    let stat = format!("/proc/{pid}/stat");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&stat).is_ok_and(|s| s.contains(") Z ")) {
        assert!(std::time::Instant::now() < deadline, "never a zombie");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let turns = log_json(&home, &env).await;
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[0]["state"], "done");
    assert_eq!(turns[0]["answer"], "First answer.");
    assert_eq!(turns[1]["state"], "interrupted");
    let partial = turns[1]["answer"].as_str().unwrap();
    assert!(
        !partial.is_empty() && "word ".repeat(200).starts_with(partial),
        "{partial:?}"
    );
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_store_costs_one_warning_at_once_and_the_answer_goes_on() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Still here."]).build());
    let base = server.base_url();
    let env = [
        ("OPENAI_BASE_URL", base.as_str()),
        ("OY3O_STORE", "postgres://nobody:hunter2@127.0.0.1:1/none"),
    ];
    let started = std::time::Instant::now();
    let run = oy3o(&home(), &["hello", "--model", "openai:x"], &env).await;
    // A refused connection is an answer: no wait for the database to come up.
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "Still here.\n");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("warning"), "{}", run.stderr);
    assert!(run.stderr.contains("refused"), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    assert!(run.stderr.contains("not saved"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_data_dir_says_the_turn_was_not_saved_not_that_it_waits_in_memory() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Still here."]).build());
    let base = server.base_url();
    let home = home();
    // A file where the data dir should be: nothing can be created under it.
    let data = home.join("data");
    std::fs::write(&data, "a file").unwrap();
    let env = [("OPENAI_BASE_URL", base.as_str())];
    let run = oy3o(&home, &["hello", "--model", "openai:x"], &env).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "Still here.\n");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("this run was not saved"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("kept in memory"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn store_none_writes_nothing_and_a_bad_store_value_is_a_config_error() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Hi."]).build());
    let base = server.base_url();
    let home = home();
    let env = [("OPENAI_BASE_URL", base.as_str()), ("OY3O_STORE", "none")];
    let run = oy3o(&home, &["hello", "--model", "openai:x"], &env).await;
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert!(!home.join("data/oy3o").exists(), "nothing written");
    let log = oy3o(&home, &["log"], &env).await;
    assert_eq!(log.code, 3);
    assert!(
        log.stderr.contains("no store is configured"),
        "{}",
        log.stderr
    );

    let bad = oy3o(&home, &["log"], &[("OY3O_STORE", "mysql://x")]).await;
    assert_eq!(bad.code, 3);
    assert!(bad.stderr.contains("OY3O_STORE"), "{}", bad.stderr);
    std::fs::create_dir_all(home.join("config/oy3o")).unwrap();
    std::fs::write(
        home.join("config/oy3o/config.toml"),
        "model = \"openai:x\"\nstore = \"sqlite:\"\n",
    )
    .unwrap();
    let bad = oy3o(&home, &["chats"], &[]).await;
    assert_eq!(bad.code, 3);
    assert!(
        bad.stderr.contains("config.toml line 2, key `store`"),
        "{}",
        bad.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_prune_of_old_turns_the_next_turn_takes_a_new_number_and_comes_last() {
    let server = FakeServer::start().await;
    for answer in ["One.", "Two.", "Three."] {
        server.push(openai::answer(&[answer]).build());
    }
    let base = server.base_url();
    let env = [("OPENAI_BASE_URL", base.as_str())];
    let home = home();
    let ask = |prompt: &'static str| {
        let home = home.clone();
        async move { oy3o(&home, &["--chat", "c", prompt, "--model", "openai:x"], &env).await }
    };
    assert_eq!(ask("first").await.code, 0);
    // Far enough apart that a prune can take the first turn and leave the second.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(ask("second").await.code, 0);
    let pruned = oy3o(&home, &["log", "prune", "--older-than", "3s"], &env).await;
    assert!(
        pruned.stdout.starts_with("removed 1 turn"),
        "{}",
        pruned.stdout
    );

    let third = ask("third").await;
    assert_eq!(third.code, 0, "{}", third.stderr);
    let turns: Vec<(String, i64)> = log_json(&home, &env)
        .await
        .iter()
        .map(|t| {
            (
                t["prompt"].as_str().unwrap().to_owned(),
                t["seq"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(turns, [("second".into(), 1), ("third".into(), 2)]);
    // The third turn was sent after the second, as the model's history shows.
    let sent = server.requests();
    let messages = sent.last().unwrap().json()["messages"].clone();
    let texts: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(texts, ["second", "Two.", "third"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_postgres_store_is_a_network_error_exit_5() {
    let url = "postgres://u:p4ss@127.0.0.1:1/x";
    let home = home();
    for args in [
        vec!["log", "--store", url],
        vec!["--chat", "c", "hi", "--model", "openai:x", "--store", url],
    ] {
        let run = oy3o(&home, &args, &[]).await;
        assert_eq!(run.code, 5, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("127.0.0.1:1"), "{}", run.stderr);
        assert!(!run.stderr.contains("p4ss"), "{}", run.stderr);
    }
}
