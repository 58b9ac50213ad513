//! The local model through the `oy3o` command: Ctrl+C in the middle of an answer, many times
//! over, ends the process with exit code 130 (never a crash) and leaves the turn `cancelled`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// The test target dir (`<target>/release/oy3o` is the binary).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_oy3o"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// A cache dir holding SmolLM2 (pulled once, shared by runs), as `XDG_CACHE_HOME`.
async fn model_cache() -> PathBuf {
    let models = target_dir().join("oy3o-test-models");
    let cache = models.join("cli-cache");
    let mut pull = Command::new(env!("CARGO_BIN_EXE_oy3o"));
    pull.args(["pull", "smollm2"])
        .env("XDG_CACHE_HOME", &cache)
        .stdin(Stdio::null());
    // The engine's own tests keep a verified copy there: take it instead of downloading.
    let fixture = models.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if fixture.is_file() {
        pull.env("OY3O_MODEL_SOURCES", format!("file:{}", fixture.display()));
    }
    let out = pull.output().await.unwrap();
    assert!(
        out.status.success(),
        "oy3o pull smollm2: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cache
}

fn oy3o(home: &Path, cache: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oy3o"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", cache)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_a_local_answer_exits_130_every_time_and_the_turn_is_cancelled() {
    let cache = model_cache().await;
    let home = std::env::temp_dir().join(format!("oy3o-cli-local-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    const RUNS: u64 = 20;
    for run in 0..RUNS {
        let mut child = oy3o(&home, &cache, &["Write a long story about a dragon."])
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 1];
        let started = tokio::time::timeout(Duration::from_secs(60), stdout.read(&mut first))
            .await
            .expect("the answer starts within 60 s")
            .unwrap();
        assert_eq!(started, 1, "run {run}: the answer never started");
        // Anywhere in the first tokens: the model is decoding when the signal comes.
        tokio::time::sleep(Duration::from_millis(run * 37 % 300)).await;
        let pid = child.id().unwrap().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let mut rest = Vec::new();
        let _ = stdout.read_to_end(&mut rest).await;
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("oy3o ends within 30 s of Ctrl+C")
            .unwrap();
        let mut stderr = String::new();
        let _ = child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .await;
        assert_eq!(status.code(), Some(130), "run {run}: {status:?} {stderr}");
    }
    let log = oy3o(&home, &cache, &["log", "--json", "-n", "100"])
        .output()
        .await
        .unwrap();
    assert!(
        log.status.success(),
        "{}",
        String::from_utf8_lossy(&log.stderr)
    );
    let states: Vec<String> = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(|l| {
            let turn: serde_json::Value = serde_json::from_str(l).unwrap();
            turn["state"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(states.len(), RUNS as usize, "{states:?}");
    assert!(states.iter().all(|s| s == "cancelled"), "{states:?}");
    let _ = std::fs::remove_dir_all(&home);
}
