//! `oy3o 'prompt' -a FILE|URL` as a user runs it: a real process, the fake OpenAI image echo
//! (TOOLS.md §7.1 d) on a socket. Bad attachments fail the command naming the attachment, with
//! nothing sent upstream.

use std::path::PathBuf;
use std::process::Stdio;

use oy3o_testkit::FakeServer;
use oy3o_testkit::image::{self, PNG1, png1};
use tokio::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A folder of this test process for files to attach.
fn files() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oy3o-cli-attach-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the binary with a clean environment (no keys, no user config, no store) plus `env`.
async fn oy3o(args: &[&str], env: &[(&str, &str)]) -> Run {
    let home = files().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_oy3o"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("OY3O_STORE", "none")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attached_image_reaches_the_provider_as_an_image_url_part() {
    let server = FakeServer::start().await;
    server.respond(image::openai_echo);
    let dot = files().join("dot.png");
    std::fs::write(&dot, png1()).unwrap();
    let base = server.base_url();
    let run = oy3o(
        &[
            "What is this?",
            "--model",
            "openai:gpt-4o-mini",
            "-a",
            dot.to_str().unwrap(),
        ],
        &[("OPENAI_BASE_URL", &base)],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "image/png 69 bytes\n");
    let body = server.requests()[0].json();
    assert_eq!(
        body["messages"][0]["content"],
        serde_json::json!([
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG1}")}},
        ])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_attachments_fail_naming_the_attachment_and_nothing_is_sent() {
    let server = FakeServer::start().await;
    server.respond(image::openai_echo);
    let dir = files();
    let mislabelled = dir.join("photo.jpg");
    std::fs::write(&mislabelled, png1()).unwrap();
    let unknown = dir.join("blob.bin");
    std::fs::write(&unknown, [0u8, 159, 146, 150, 1, 2, 3, 255]).unwrap();
    let big = dir.join("big.png");
    let mut bytes = png1();
    bytes.resize(2048, 0);
    std::fs::write(&big, bytes).unwrap();
    let config = dir.join("small.toml");
    std::fs::write(&config, "[attachments]\nmax_image_bytes = 1024\n").unwrap();
    let unreadable = dir.join("folder.png");
    std::fs::create_dir_all(&unreadable).unwrap();
    let missing = dir.join("nosuch.png");
    let base = server.base_url();
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["-a".into(), path(&missing)], "there is no such file"),
        (
            vec!["-a".into(), path(&mislabelled)],
            "labelled image/jpeg but its bytes are image/png",
        ),
        (vec!["-a".into(), path(&unknown)], "cannot tell what"),
        (vec!["-a".into(), path(&unreadable)], "it is not a file"),
        (
            vec!["--config".into(), path(&config), "-a".into(), path(&big)],
            "over the image limit of 1024 bytes",
        ),
        (
            vec!["-a".into(), "ftp://x.test/a.png".into()],
            "only http:// and https://",
        ),
    ];
    for (args, why) in cases {
        let mut argv = vec!["look", "--model", "openai:gpt-4o-mini"];
        argv.extend(args.iter().map(String::as_str));
        let run = oy3o(&argv, &[("OPENAI_BASE_URL", &base)]).await;
        assert_ne!(run.code, 0, "{argv:?}");
        let named = format!("--attach {}", args.last().unwrap());
        assert!(
            run.stderr.contains(&named) && run.stderr.contains(why),
            "{argv:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    assert!(server.requests().is_empty(), "nothing is sent upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_url_that_does_not_answer_fails_before_anything_is_sent() {
    // A model on an OpenAI-compatible server takes images as bytes only, so the URL is fetched
    // first; nothing listens on it.
    let server = FakeServer::start().await;
    server.respond(image::openai_echo);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/cat.png", closed.local_addr().unwrap());
    drop(closed);
    let base = server.base_url();
    let run = oy3o(
        &["look", "--model", "openai:llava-local", "-a", &url],
        &[("OPENAI_BASE_URL", &base)],
    )
    .await;
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains(&format!("cannot fetch the attachment at {url}")),
        "{}",
        run.stderr
    );
    assert!(server.requests().is_empty());
}
