//! The `oy3o 'prompt'` command as a user runs it: a real process, a fake provider on a socket.

use std::process::Stdio;

use oy3o_testkit::{FakeServer, openai};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with a clean environment (no keys, no user config) plus `env`.
async fn oy3o(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let home = std::env::temp_dir().join(format!("oy3o-cli-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oy3o"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_answer_streams_to_stdout_from_an_openai_compatible_server() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Hi", " there!"]).build());
    let base = server.base_url();
    let run = oy3o(
        &[
            "Say hi",
            "--model",
            "openai:gpt-4o-mini",
            "--context",
            "Be brief.",
        ],
        &[("OPENAI_BASE_URL", &base)],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "Hi there!\n");
    assert_eq!(
        server.requests()[0].json()["messages"],
        serde_json::json!([{"role":"system","content":"Be brief."},{"role":"user","content":"Say hi"}])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn piped_stdin_becomes_the_context_of_the_prompt() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Summary."]).build());
    let base = server.base_url();
    let run = oy3o(
        &["summarize", "--model", "openai:x"],
        &[("OPENAI_BASE_URL", &base)],
        Some("notes: the meeting moved to Friday\n"),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let messages = server.requests()[0].json()["messages"].clone();
    assert_eq!(messages[0]["role"], "system");
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .contains("moved to Friday")
    );
    assert_eq!(messages[1]["content"], "summarize");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_key_exits_4_and_names_the_variable_to_set() {
    let run = oy3o(&["hi", "--model", "openai:gpt-4o"], &[], None).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("OPENAI_API_KEY"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_config_file_exits_3_naming_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("oy3o-cli-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "model = \"openai:x\"\ntemprature = 1\n").unwrap();
    let run = oy3o(&["hi", "--config", path.to_str().unwrap()], &[], None).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("bad.toml line 2"), "{}", run.stderr);
    assert!(run.stderr.contains("temprature"), "{}", run.stderr);

    let unreadable = oy3o(&["hi", "--config", "/nonexistent/oy3o.toml"], &[], None).await;
    assert_eq!(unreadable.code, 3);
    assert!(unreadable.stderr.contains("/nonexistent/oy3o.toml"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_provider_exits_3_and_lists_the_known_ones() {
    let run = oy3o(&["hi", "--model", "nosuch:model"], &[], None).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("known providers"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_name_that_cannot_be_read_exits_3_as_an_unknown_one_and_says_what_is_wrong() {
    for model in ["open ai:gpt", "openai:", ":gpt"] {
        let run = oy3o(&["hi", "--model", model], &[], None).await;
        assert_eq!(run.code, 3, "{model}: {}", run.stderr);
        assert!(
            run.stderr.contains("malformed model reference"),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_from_the_environment_is_sent_but_never_printed() {
    let server = FakeServer::start().await;
    server.push(openai::invalid_key());
    let base = server.base_url();
    let run = oy3o(
        &["hi", "--model", "openai:x"],
        &[
            ("OPENAI_BASE_URL", &base),
            ("OPENAI_API_KEY", "sk-live-secret-1234"),
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 4);
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer sk-live-secret-1234")
    );
    assert!(!run.stderr.contains("sk-live-secret-1234"));
}

#[tokio::test(flavor = "multi_thread")]
async fn json_lines_parse_and_carry_the_answer_and_a_usage_event() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Hi", " there!"]).build());
    let base = server.base_url();
    let run = oy3o(
        &["Say hi", "--model", "openai:x", "--json"],
        &[("OPENAI_BASE_URL", &base)],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let named = |name: &str| lines.iter().filter(|l| l["event"] == name).count();
    assert_eq!(named("usage"), 1, "{}", run.stdout);
    let text: String = lines
        .iter()
        .filter(|l| l["event"] == "text")
        .map(|l| l["message"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Hi there!");
    let result = lines.iter().find(|l| l["event"] == "result").unwrap();
    assert_eq!(result["message"]["text"], "Hi there!");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_stream_prints_the_whole_answer_once_it_is_complete() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["One", " two", " three."]).build());
    let base = server.base_url();
    let run = oy3o(
        &["count", "--model", "openai:x", "--no-stream"],
        &[("OPENAI_BASE_URL", &base)],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "One two three.\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_prints_the_token_counts_on_stderr_only() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Hi", "!"]).build());
    let base = server.base_url();
    let run = oy3o(
        &["hi", "--model", "openai:x", "--usage"],
        &[("OPENAI_BASE_URL", &base)],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "Hi!\n");
    assert!(
        run.stderr.contains("tokens: 19 in, 2 out"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn piped_output_is_the_raw_answer_with_no_styles_and_no_reasoning() {
    let server = FakeServer::start().await;
    server.push(
        oy3o_testkit::SseScript::default()
            .data(&openai::reasoning_chunk(
                "reasoning_content",
                "Let me think.",
            ))
            .raw(
                &openai::answer(&[
                    "# Title\n",
                    "```rust\nfn f() {}\n```\n",
                    "some **bold** `code`",
                ])
                .body_text(),
            )
            .build(),
    );
    let base = server.base_url();
    let run = oy3o(
        &["hi", "--model", "openai:x"],
        &[("OPENAI_BASE_URL", &base)],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "# Title\n```rust\nfn f() {}\n```\nsome **bold** `code`\n"
    );
    assert!(!run.stderr.contains("Let me think"), "{}", run.stderr);
}

/// A server whose one answer streams slowly (100 words, 100 ms apart), and `oy3o ARGS`
/// running against it, its stdout piped.
async fn slow_answer(args: &[&str]) -> (FakeServer, tokio::process::Child) {
    let server = FakeServer::start().await;
    let pieces = vec!["word "; 100];
    server.push(
        openai::answer(&pieces)
            .delay(std::time::Duration::from_millis(100))
            .build(),
    );
    let home = std::env::temp_dir().join(format!("oy3o-cli-home-{}", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_oy3o"))
        .args(args)
        .env_clear()
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("OPENAI_BASE_URL", server.base_url())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (server, child)
}

/// Ctrl+C, as the terminal sends it.
fn ctrl_c(child: &tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_the_answer_with_exit_130_and_closes_the_request() {
    let (server, mut child) = slow_answer(&["hi", "--model", "openai:x"]).await;
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 5];
    tokio::io::AsyncReadExt::read_exact(&mut stdout, &mut first)
        .await
        .unwrap();
    assert_eq!(&first, b"word ");
    ctrl_c(&child);
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("oy3o stops within 10 s of Ctrl+C")
        .unwrap();
    assert_eq!(status.code(), Some(130));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while server.aborted_by_client() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(server.aborted_by_client(), 1);
    assert_eq!(server.completed(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn config_init_writes_an_example_that_config_path_then_names_and_refuses_to_overwrite() {
    let home = std::env::temp_dir().join(format!("oy3o-cli-init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let config_home = home.join("config");
    let env = [("XDG_CONFIG_HOME", config_home.to_str().unwrap())];
    let init = oy3o(&["config", "init"], &env, None).await;
    assert_eq!(init.code, 0, "{}", init.stderr);
    let expected = config_home.join("oy3o").join("config.toml");
    assert_eq!(init.stdout.trim(), expected.to_str().unwrap());
    let written = std::fs::read_to_string(&expected).unwrap();
    assert!(written.contains("# model ="), "{written}");

    let path = oy3o(&["config", "path"], &env, None).await;
    assert_eq!(path.code, 0, "{}", path.stderr);
    assert_eq!(path.stdout.trim(), expected.to_str().unwrap());

    let again = oy3o(&["config", "init"], &env, None).await;
    assert_eq!(again.code, 2, "a usage mistake: {}", again.stderr);
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_in_json_mode_is_an_error_line_and_an_exit_code() {
    let server = FakeServer::start().await;
    server.push(openai::invalid_key());
    let base = server.base_url();
    let run = oy3o(
        &["hi", "--model", "openai:x", "--json"],
        &[("OPENAI_BASE_URL", &base), ("OPENAI_API_KEY", "sk-bad")],
        None,
    )
    .await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    let last: serde_json::Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "error");
    assert_eq!(last["message"]["code"], "auth");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_is_reported_on_stderr_while_stdout_keeps_the_answer_only() {
    let server = FakeServer::start().await;
    server.push(openai::rate_limited("0"));
    server.push(openai::answer(&["Fine."]).build());
    let base = server.base_url();
    let run = oy3o(
        &["hi", "--model", "openai:x"],
        &[("OPENAI_BASE_URL", &base)],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "Fine.\n");
    assert!(run.stderr.contains("retry 1 in"), "{}", run.stderr);
}

/// A session as the app's `save` writes it: chat `a` (model, context) with one finished turn
/// and one stopped answer, and chat `b`.
fn saved_session(current: Option<&str>) -> std::path::PathBuf {
    let session = serde_json::json!({
        "version": 1,
        "config": {"model": "openai:from-config", "options": {"temperature": 0.5}},
        "chats": [
            {"name": "a", "model": "openai:saved-model", "context": "Be brief."},
            {"name": "b"}
        ],
        "current": current,
        "messages": [
            {"kind": "help", "title": "help", "body": "help"},
            {"kind": "prompt", "title": "My name is Ada.", "body": "My name is Ada.", "chat": "a", "expanded": true},
            {"kind": "answer", "title": "Hello, Ada!", "body": "Hello, Ada!", "chat": "a", "expanded": true},
            {"kind": "prompt", "title": "Tell a story", "body": "Tell a story", "chat": "a", "expanded": true},
            {"kind": "answer", "title": "Once", "body": "Once\n[stopped: stopped]", "chat": "a", "expanded": true, "stopped": true},
            {"kind": "prompt", "title": "other", "body": "other", "chat": "b", "expanded": true},
            {"kind": "answer", "title": "B", "body": "B", "chat": "b", "expanded": true}
        ]
    });
    let path = std::env::temp_dir().join(format!(
        "oy3o-load-{}-{}.json",
        std::process::id(),
        current.unwrap_or("none")
    ));
    std::fs::write(&path, session.to_string()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn load_continues_the_saved_chat_with_its_model_context_and_history() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["Ada."]).build());
    let base = server.base_url();
    let path = saved_session(Some("a"));
    let run = oy3o(
        &["What is my name?", "--load", path.to_str().unwrap()],
        &[("OPENAI_BASE_URL", &base)],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "Ada.\n");
    let body = server.requests()[0].json();
    assert_eq!(body["model"], "saved-model");
    // The session's config fills what the config in use leaves unset.
    assert_eq!(body["temperature"], 0.5);
    // The stopped answer and chat b are not part of chat a's conversation.
    assert_eq!(
        body["messages"],
        serde_json::json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello, Ada!"},
            {"role": "user", "content": "What is my name?"}
        ])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn load_without_a_current_chat_continues_the_last_one_and_options_win() {
    let server = FakeServer::start().await;
    server.push(openai::answer(&["ok"]).build());
    let base = server.base_url();
    let path = saved_session(None);
    let run = oy3o(
        &[
            "next",
            "--load",
            path.to_str().unwrap(),
            "--model",
            "openai:given",
            "--context",
            "Given.",
        ],
        &[("OPENAI_BASE_URL", &base)],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let body = server.requests()[0].json();
    assert_eq!(body["model"], "given");
    assert_eq!(
        body["messages"],
        serde_json::json!([
            {"role": "system", "content": "Given."},
            {"role": "user", "content": "other"},
            {"role": "assistant", "content": "B"},
            {"role": "user", "content": "next"}
        ])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn load_of_a_file_that_is_not_a_session_exits_3_before_any_request() {
    let server = FakeServer::start().await;
    let base = server.base_url();
    let path = std::env::temp_dir().join(format!("oy3o-load-bad-{}.json", std::process::id()));
    std::fs::write(&path, "{\"chats\": []}").unwrap();
    let run = oy3o(
        &["hi", "--load", path.to_str().unwrap()],
        &[("OPENAI_BASE_URL", &base)],
        None,
    )
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("not a session saved by the app"),
        "{}",
        run.stderr
    );
    assert!(server.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_mistakes_exit_2_and_say_how_to_call_it() {
    // No prompt and nothing piped, not on a terminal.
    let run = oy3o(&[], &[], None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("no prompt given"), "{}", run.stderr);
    let run = oy3o(&["hi", "--no-such-option"], &[], None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mistyped_subcommand_is_not_sent_and_says_which_was_meant() {
    let server = FakeServer::start().await;
    let base = server.base_url();
    let env = [
        ("OPENAI_BASE_URL", base.as_str()),
        ("OY3O_MODEL", "openai:x"),
    ];
    let run = oy3o(&["modles"], &env, None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("did you mean `oy3o models`?"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    assert!(server.requests().is_empty(), "nothing reached the model");

    // After `--`, or quoted with other words, it is a prompt as typed.
    server.push(openai::answer(&["ok"]).build());
    server.push(openai::answer(&["ok"]).build());
    assert_eq!(oy3o(&["--", "modles"], &env, None).await.code, 0);
    assert_eq!(oy3o(&["modles please"], &env, None).await.code, 0);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unquoted_prompt_of_several_words_is_told_to_be_quoted() {
    let run = oy3o(&["what", "is", "this"], &[], None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("quote it, e.g. oy3o 'what is this'"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_prompt_is_no_prompt_and_nothing_is_sent() {
    let server = FakeServer::start().await;
    let base = server.base_url();
    let env = [
        ("OPENAI_BASE_URL", base.as_str()),
        ("OY3O_MODEL", "openai:x"),
    ];
    for prompt in ["", "  "] {
        let run = oy3o(&[prompt], &env, None).await;
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains("no prompt given"), "{}", run.stderr);
    }
    assert!(server.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn json_stopped_with_ctrl_c_ends_on_a_cancelled_line() {
    let (_server, mut child) = slow_answer(&["hi", "--model", "openai:x", "--json"]).await;
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    // Until the first text event: the answer is streaming.
    let mut line = String::new();
    while !line.contains("word") {
        line.clear();
        let n = tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut line)
            .await
            .unwrap();
        assert!(n > 0, "the answer never streamed");
    }
    ctrl_c(&child);
    let mut rest = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut rest)
        .await
        .unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(130));
    let last: serde_json::Value = serde_json::from_str(rest.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "error", "{rest}");
    assert_eq!(last["message"]["code"], "cancelled", "{rest}");
}

#[tokio::test(flavor = "multi_thread")]
async fn help_never_shows_an_empty_model_variable() {
    let run = oy3o(&["--help"], &[("OY3O_MODEL", "")], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("OY3O_MODEL"), "{}", run.stdout);
    assert!(!run.stdout.contains("OY3O_MODEL="), "{}", run.stdout);
    let empty = [("OY3O_MODEL", ""), ("OY3O_CONFIG", "")];
    for args in [&["--help"][..], &["models", "--help"]] {
        let run = oy3o(args, &empty, None).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(!run.stdout.contains("=]"), "{}", run.stdout);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_option_a_subcommand_has_no_use_for_is_a_usage_error_and_not_in_its_help() {
    let run = oy3o(&["models", "--model", "foo"], &[], None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--model does nothing with `models`"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    let help = oy3o(&["models", "--help"], &[], None).await;
    assert_eq!(help.code, 0, "{}", help.stderr);
    assert!(!help.stdout.contains("--model"), "{}", help.stdout);
    assert!(help.stdout.contains("--config"), "{}", help.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unusable_proxy_is_a_config_error_naming_it_before_anything_is_sent() {
    let server = FakeServer::start().await;
    server.fallback(openai::answer(&["direct"]).build());
    let base = server.base_url();
    let env = [("OPENAI_BASE_URL", base.as_str())];
    for (proxy, shown) in [
        ("ftp://proxy.example:21", "ftp://proxy.example:21"),
        ("htp://127.0.0.1:3128", "htp://127.0.0.1:3128"),
        ("garbage", "no scheme"),
    ] {
        let run = oy3o(&["hi", "--model", "openai:x", "--proxy", proxy], &env, None).await;
        assert_eq!(run.code, 3, "{proxy}: {}", run.stderr);
        assert!(run.stderr.contains("--proxy"), "{}", run.stderr);
        assert!(run.stderr.contains(shown), "{}", run.stderr);
        assert!(run.stderr.contains("socks5h://"), "{}", run.stderr);
    }
    // The local model needs no network, and is not loaded either.
    let run = oy3o(&["hi", "--proxy", "ftp://x"], &[], None).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(server.requests().is_empty());

    let dir = std::env::temp_dir().join(format!("oy3o-cli-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.toml");
    std::fs::write(
        &path,
        "model = \"openai:x\"\nproxy = \"htp://127.0.0.1:3128\"\n",
    )
    .unwrap();
    let run = oy3o(&["hi", "--config", path.to_str().unwrap()], &env, None).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("proxy.toml line 2, key `proxy`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("htp://"), "{}", run.stderr);
    assert!(server.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_proxy_option_sends_directly_over_the_configs_proxy() {
    let server = FakeServer::start().await;
    server.fallback(openai::answer(&["direct"]).build());
    let base = server.base_url();
    let dir = std::env::temp_dir().join(format!("oy3o-cli-noproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.toml");
    // A proxy nobody listens on: a request through it would fail.
    std::fs::write(
        &path,
        "model = \"openai:x\"\nproxy = \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let env = [("OPENAI_BASE_URL", base.as_str())];
    let run = oy3o(&["hi", "--config", config, "--proxy", ""], &env, None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "direct\n");
    let through = oy3o(&["hi", "--config", config], &env, None).await;
    assert_eq!(through.code, 5, "{}", through.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_and_controls_go_upstream_and_the_answer_is_validated_json() {
    let server = FakeServer::start().await;
    // The first answer does not follow the schema: asked for once more.
    server.push(openai::answer(&["{\"city\": ", "7}"]).build());
    server.push(openai::answer(&["{\"city\": ", "\"Paris\"}"]).build());
    let base = server.base_url();
    let dir = std::env::temp_dir().join(format!("oy3o-cli-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let schema = dir.join("city.json");
    std::fs::write(
        &schema,
        r#"{"title": "City", "type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"], "additionalProperties": false}"#,
    )
    .unwrap();
    let run = oy3o(
        &[
            "Where is the Louvre?",
            "--model",
            "openai:gpt-4o-mini",
            "--schema",
            schema.to_str().unwrap(),
            "--reasoning",
            "low",
            "--stop",
            "END",
            "--stop",
            "STOP",
            "--search",
            "--extra-body",
            r#"{"service_tier": "flex"}"#,
        ],
        &[("OPENAI_BASE_URL", &base)],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "{\"city\": \"Paris\"}\n");
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one retry");
    let body = requests[1].json();
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["name"], "City");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(body["reasoning_effort"], "low");
    assert_eq!(body["stop"], serde_json::json!(["END", "STOP"]));
    assert_eq!(body["web_search_options"], serde_json::json!({}));
    assert_eq!(body["service_tier"], "flex");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_controls_exit_2_naming_the_flag_and_send_nothing() {
    let server = FakeServer::start().await;
    let base = server.base_url();
    let env = [("OPENAI_BASE_URL", base.as_str())];
    let model = ["--model", "openai:gpt-4o-mini"];
    let run = oy3o(
        &[&["hi", "--reasoning", "max"][..], &model].concat(),
        &env,
        None,
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--reasoning") && run.stderr.contains("low, medium or high"),
        "{}",
        run.stderr
    );
    let dir = std::env::temp_dir().join(format!("oy3o-cli-bad-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let schema = dir.join("bad.json");
    std::fs::write(&schema, r#"{"type": "nosuch"}"#).unwrap();
    let run = oy3o(
        &[&["hi", "--schema", schema.to_str().unwrap()][..], &model].concat(),
        &env,
        None,
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--schema") && run.stderr.contains("bad.json"),
        "{}",
        run.stderr
    );
    let run = oy3o(
        &[&["hi", "--extra-body", "[1]"][..], &model].concat(),
        &env,
        None,
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--extra-body"), "{}", run.stderr);
    assert!(server.requests().is_empty());
}
