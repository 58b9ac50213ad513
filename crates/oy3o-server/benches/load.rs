//! Server load benchmark (loopback only, bounded in time and size). Run by `scripts/bench`,
//! which builds the `oy3o` binary first; LiteLLM's proxy joins the run when `litellm` is on
//! the PATH (`pip install 'litellm[proxy]'`). scripts/bench raises the open-file limit first
//! (10,000 WebSockets need 10,000 descriptors on each side).
//!
//! One fake OpenAI upstream (zero delay, the recorded llama.cpp stream) serves three ways of
//! asking it, side by side in one run: directly, through `oy3o serve`, and through LiteLLM.
//! Reported: added latency over the direct call (P50/P99, concurrency 1 and 64, HTTP whole and
//! streamed, WebSocket), time to first chunk, requests per second at concurrency 32, concurrent
//! streams without a stall, idle RSS and RSS per open WebSocket.
//!
//! `-- --store` measures the conversation store instead (issue #10): the same HTTP and WebSocket
//! cells through `oy3o serve` with `store = "none"`, SQLite and a throwaway PostgreSQL.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// The key every request carries (LiteLLM's proxy refuses to start without a master key).
const BENCH_KEY: &str = "sk-oy3o-bench-5f0c1e9a7d3b42c68e1f";
const BEARER: &str = "Bearer sk-oy3o-bench-5f0c1e9a7d3b42c68e1f";
/// How long each latency scenario runs.
const WINDOW: Duration = Duration::from_secs(3);

mod support;
use support::{Children, free_port, oy3o_binary, rss_kib, spawn_oy3o, spawn_oy3o_with};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--bare-hop") {
        // The hop alone, as a process of its own (see `spawn_bare_hop`): also what
        // `bench/server_callgrind.py` profiles beside `oy3o serve`.
        let upstream = args
            .get(at + 1)
            .and_then(|a| a.parse().ok())
            .expect("--bare-hop UPSTREAM_ADDRESS");
        let port = args.get(at + 2).and_then(|a| a.parse().ok()).unwrap_or(0);
        drop(runtime);
        run_bare_hop(upstream, port);
    } else if args.iter().any(|a| a == "--store") {
        runtime.block_on(store_run());
    } else {
        runtime.block_on(run());
    }
}

/// A way to reach the fake upstream's answers.
struct Target {
    name: &'static str,
    base: String,
    model: &'static str,
    websocket: bool,
    pid: Option<u32>,
}

async fn run() {
    let upstream = oy3o_testkit::upstream::Upstream::start(Duration::ZERO).addr();
    let dir = std::env::temp_dir().join(format!("oy3o-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let mut children = Children(Vec::new());
    let ours = spawn_oy3o_with(&oy3o_binary(), &dir, upstream, "none");
    let oy3o_pid = ours.0.id();
    children.0.push(ours.0);
    let mut targets = vec![
        Target {
            name: "direct",
            base: format!("http://{upstream}/v1"),
            model: "bench",
            websocket: false,
            pid: None,
        },
        Target {
            name: "oy3o",
            base: format!("http://{}/v1", ours.1),
            model: "openai:bench",
            websocket: true,
            pid: Some(oy3o_pid),
        },
    ];
    // Another build of oy3o beside this one (`OY3O_BENCH_BASELINE=path/to/oy3o`), so a change is
    // measured against the build before it in the same run, cell by cell.
    if let Some(baseline) = std::env::var_os("OY3O_BENCH_BASELINE") {
        let before = spawn_oy3o_with(std::path::Path::new(&baseline), &dir, upstream, "none");
        let pid = before.0.id();
        children.0.push(before.0);
        targets.push(Target {
            name: "oy3o (baseline)",
            base: format!("http://{}/v1", before.1),
            model: "openai:bench",
            websocket: true,
            pid: Some(pid),
        });
    }
    let hop = spawn_bare_hop(upstream);
    let hop_pid = hop.0.id();
    children.0.push(hop.0);
    targets.push(Target {
        name: "bare hop",
        base: format!("http://{}/v1", hop.1),
        model: "bench",
        websocket: false,
        pid: Some(hop_pid),
    });
    let quick = std::env::var_os("OY3O_BENCH_QUICK").is_some();
    match spawn_litellm(&dir, upstream).filter(|_| !quick) {
        Some((child, address)) if wait_ready(&format!("http://{address}/v1")).await => {
            let pid = child.id();
            children.0.push(child);
            targets.push(Target {
                name: "litellm",
                base: format!("http://{address}/v1"),
                model: "bench",
                websocket: false,
                pid: Some(pid),
            });
        }
        Some((mut child, _)) => {
            let _ = child.kill();
            println!(
                "(litellm did not start: see {})",
                dir.join("litellm.log").display()
            );
        }
        None => {
            println!("(litellm not on PATH: `pip install 'litellm[proxy]'` to compare with it)")
        }
    }
    for t in &targets {
        assert!(
            wait_ready(&t.base).await,
            "{} did not come up within 120 s",
            t.name
        );
    }

    println!(
        "\n## Added latency over the direct call (zero-delay upstream, {WINDOW:?} per cell)\n"
    );
    println!(
        "| target | mode | concurrency | P50 | P99 | added P50 | added P99 | first chunk P50 | req/s | server CPU per request |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let levels: &[usize] = if quick { &[1, 32] } else { &[1, 32, 64] };
    for &concurrency in levels {
        // The recorded 13-event stream, and 64 text chunks written at once (`chunks64`).
        for (mode, stream, model) in [
            ("HTTP whole", false, "bench"),
            ("HTTP stream", true, "bench"),
            ("HTTP stream of 64", true, "chunks64"),
        ] {
            let mut direct: Option<Stats> = None;
            for t in &targets {
                let model = t.model.replace("bench", model);
                let cpu = t.pid.map(CpuMeter::start);
                let mut stats = http_load(t, stream, &model, concurrency).await;
                stats.cpu = cpu.map(|c| c.per_request(stats.total.len()).0);
                print_row(t.name, mode, concurrency, &stats, direct.as_ref());
                if t.name == "direct" {
                    direct = Some(stats);
                }
            }
        }
        for t in targets.iter().filter(|t| t.websocket) {
            let address = t
                .base
                .trim_start_matches("http://")
                .trim_end_matches("/v1")
                .to_owned();
            let cpu = t.pid.map(CpuMeter::start);
            let mut stats = websocket_load(&address, concurrency).await;
            stats.cpu = cpu.map(|c| c.per_request(stats.total.len()).0);
            print_row(t.name, "WebSocket", concurrency, &stats, None);
        }
    }

    println!("\n## Memory and connections (oy3o)\n");
    let address = targets[1]
        .base
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_owned();
    for t in &targets {
        if let Some(pid) = t.pid {
            println!(
                "{} RSS after the latency runs: {:.1} MiB",
                t.name,
                rss_kib(pid) as f64 / 1024.0
            );
        }
    }
    if quick {
        return;
    }
    idle_connections(&address, oy3o_pid, 10_000).await;
    concurrent_streams(&address, 2_000).await;

    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Latencies of one cell.
struct Stats {
    total: Vec<Duration>,
    first: Vec<Duration>,
    elapsed: Duration,
    /// The serving process's CPU time (user + system) per request, in µs, when it is a
    /// process of its own: what the machine's load bends least.
    cpu: Option<f64>,
}

impl Stats {
    /// Joins the workers of one cell, each returning its (total, first chunk) latencies.
    async fn gather(
        workers: impl Iterator<Item = tokio::task::JoinHandle<(Vec<Duration>, Vec<Duration>)>>,
        started: Instant,
    ) -> Stats {
        let mut stats = Stats {
            total: Vec::new(),
            first: Vec::new(),
            elapsed: Duration::ZERO,
            cpu: None,
        };
        for worker in futures::future::join_all(workers).await {
            let (total, first) = worker.expect("worker");
            stats.total.extend(total);
            stats.first.extend(first);
        }
        stats.elapsed = started.elapsed();
        stats
    }

    fn pct(values: &[Duration], p: f64) -> Duration {
        if values.is_empty() {
            return Duration::ZERO;
        }
        let mut v = values.to_vec();
        v.sort();
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    }
    fn rate(&self) -> f64 {
        self.total.len() as f64 / self.elapsed.as_secs_f64()
    }
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn print_row(name: &str, mode: &str, concurrency: usize, s: &Stats, direct: Option<&Stats>) {
    let (p50, p99) = (Stats::pct(&s.total, 0.5), Stats::pct(&s.total, 0.99));
    let added = |mine: Duration, base: Duration| {
        format!("{:+.0} µs", (mine.as_secs_f64() - base.as_secs_f64()) * 1e6)
    };
    let (a50, a99) = match direct.filter(|_| name != "direct") {
        Some(d) => (
            added(p50, Stats::pct(&d.total, 0.5)),
            added(p99, Stats::pct(&d.total, 0.99)),
        ),
        None => ("".into(), "".into()),
    };
    let first = if s.first.is_empty() {
        String::new()
    } else {
        micros(Stats::pct(&s.first, 0.5))
    };
    let cpu = s.cpu.map(|c| format!("{c:.1} µs")).unwrap_or_default();
    println!(
        "| {name} | {mode} | {concurrency} | {} | {} | {a50} | {a99} | {first} | {:.0} | {cpu} |",
        micros(p50),
        micros(p99),
        s.rate()
    );
    let _ = std::io::stdout().flush();
}

/// `concurrency` workers, each asking one request after another for [`WINDOW`].
async fn http_load(target: &Target, stream: bool, model: &str, concurrency: usize) -> Stats {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let url = format!("{}/chat/completions", target.base);
    let body = serde_json::json!({
        "model": model, "stream": stream,
        "messages": [{"role": "user", "content": "What is 1+1?"}],
    })
    .to_string();
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tokio::spawn(async move {
            let mut total = Vec::new();
            let mut first = Vec::new();
            while started.elapsed() < WINDOW {
                let t0 = Instant::now();
                let Ok(response) = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("authorization", BEARER)
                    .body(body.clone())
                    .send()
                    .await
                else {
                    continue;
                };
                assert!(
                    response.status().is_success(),
                    "{url}: {}",
                    response.status()
                );
                let mut chunks = response.bytes_stream();
                let mut seen_first = false;
                while let Some(chunk) = chunks.next().await {
                    if chunk.is_err() {
                        break;
                    }
                    if stream && !seen_first {
                        first.push(t0.elapsed());
                        seen_first = true;
                    }
                }
                total.push(t0.elapsed());
            }
            (total, first)
        })
    });
    Stats::gather(workers, started).await
}

/// `concurrency` WebSocket connections, each sending one-shot prompts one after another.
async fn websocket_load(address: &str, concurrency: usize) -> Stats {
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let url = format!("ws://{address}/ws");
        tokio::spawn(async move {
            let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.expect("connect");
            let mut total = Vec::new();
            let mut first = Vec::new();
            let mut n = 0u64;
            while started.elapsed() < WINDOW {
                n += 1;
                let request = serde_json::json!({"ref": n.to_string(), "model": "openai:bench", "prompt": "What is 1+1?"});
                let t0 = Instant::now();
                socket.send(Message::text(request.to_string())).await.expect("send");
                let mut seen_first = false;
                while let Some(Ok(frame)) = socket.next().await {
                    let Message::Text(text) = frame else { continue };
                    let frame: serde_json::Value = serde_json::from_str(&text).expect("json frame");
                    match frame["type"].as_str() {
                        Some("message") if !seen_first => {
                            first.push(t0.elapsed());
                            seen_first = true;
                        }
                        Some("signal") => break,
                        Some("error") => panic!("error frame: {frame}"),
                        _ => {}
                    }
                }
                total.push(t0.elapsed());
            }
            (total, first)
        })
    });
    Stats::gather(workers, started).await
}

/// Opens `n` idle WebSockets and reports the server's RSS per connection; then checks that
/// one more request is still answered while they are all open.
async fn idle_connections(address: &str, pid: u32, n: usize) {
    let before = rss_kib(pid);
    let url = format!("ws://{address}/ws");
    let mut sockets = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        match tokio_tungstenite::connect_async(&url).await {
            Ok((socket, _)) => sockets.push(socket),
            Err(e) => {
                println!("idle WebSockets: connection {i} failed: {e}");
                break;
            }
        }
        if (i + 1) % 2_000 == 0 {
            eprint!("\ridle WebSockets: {} open", i + 1);
        }
    }
    eprintln!();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    let opened = sockets.len();
    let probe = websocket_load_once(address).await;
    println!(
        "{opened} idle WebSockets open in {:.1?}: RSS {:.1} → {:.1} MiB, {:.1} KiB per connection; a request meanwhile took {}",
        started.elapsed(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / opened.max(1) as f64,
        micros(probe)
    );
    drop(sockets);
}

async fn websocket_load_once(address: &str) -> Duration {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws"))
        .await
        .expect("connect");
    let t0 = Instant::now();
    socket
        .send(Message::text(
            r#"{"model":"openai:bench","prompt":"What is 1+1?"}"#,
        ))
        .await
        .expect("send");
    while let Some(Ok(frame)) = socket.next().await {
        if let Message::Text(text) = frame
            && text.contains(r#""signal""#)
        {
            break;
        }
    }
    t0.elapsed()
}

/// `n` streams at once, spread over 200 connections, against a slow upstream (a chunk every
/// 20 ms): every stream must finish, and the longest gap between two frames of a stream shows
/// whether any stalled.
async fn concurrent_streams(address: &str, n: usize) {
    let connections = 200; // 10 streams each: within the default 16 replies in flight per connection
    let per = n / connections;
    let worst_gap = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers = (0..connections).map(|c| {
        let url = format!("ws://{address}/ws");
        let (worst_gap, finished) = (worst_gap.clone(), finished.clone());
        tokio::spawn(async move {
            let (socket, _) = tokio_tungstenite::connect_async(&url).await.expect("connect");
            let (mut tx, mut rx) = socket.split();
            for i in 0..per {
                let request = serde_json::json!({"id": format!("c{c}-{i}"), "model": "openai:slow", "prompt": "stream slowly"});
                tx.send(Message::text(request.to_string())).await.expect("send");
            }
            let mut last = std::collections::HashMap::new();
            let mut done = 0;
            while done < per {
                let Some(Ok(Message::Text(text))) = rx.next().await else { break };
                let frame: serde_json::Value = serde_json::from_str(&text).expect("json frame");
                let id = frame["id"].as_str().unwrap_or_default().to_owned();
                // Gaps between the text frames of one stream (the wait for the upstream's
                // first chunk, connection set-up included, is not a stall).
                let now = Instant::now();
                if frame["type"] == "message"
                    && let Some(previous) = last.insert(id, now)
                {
                    let gap = now.duration_since(previous).as_micros() as u64;
                    worst_gap.fetch_max(gap, Ordering::Relaxed);
                }
                match frame["type"].as_str() {
                    Some("signal") => {
                        done += 1;
                        finished.fetch_add(1, Ordering::Relaxed);
                    }
                    Some("error") => panic!("error frame: {frame}"),
                    _ => {}
                }
            }
        })
    });
    futures::future::join_all(workers).await;
    println!(
        "{} of {n} concurrent streams (upstream chunk every 20 ms) finished in {:.1?}; longest gap between two text frames of one stream: {:.1} ms",
        finished.load(Ordering::Relaxed),
        started.elapsed(),
        worst_gap.load(Ordering::Relaxed) as f64 / 1e3
    );
}

/// The floor of any proxy on this machine: a bare axum server on a 2-worker runtime (like
/// `oy3o serve`'s), in a process of its own (this bench binary run with `--bare-hop`, so it is
/// measured as `oy3o serve` is), that hands each request body to the upstream with one shared
/// reqwest client and streams the answer back, with no engine, no parsing, no metrics. What it
/// adds over the direct call is what one more loopback HTTP hop costs here.
fn spawn_bare_hop(upstream: SocketAddr) -> (Child, SocketAddr) {
    let port = free_port();
    let child = Command::new(std::env::current_exe().expect("bench binary"))
        .args(["--bare-hop", &upstream.to_string(), &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the bare hop");
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Serves the bare hop in front of `upstream` on `port` (0: any) until the process ends.
fn run_bare_hop(upstream: SocketAddr, port: u16) {
    use axum::body::{Body, Bytes};
    use axum::http::{StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("bare hop runtime");
    runtime.block_on(async move {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .expect("client");
        let url: reqwest::Url = format!("http://{upstream}/v1/chat/completions")
            .parse()
            .expect("url");
        let forward = move |body: Bytes| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let sent = client
                    .post(url)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(answer) => {
                        let kind = answer.headers().get(header::CONTENT_TYPE).cloned();
                        let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
                        if let Some(kind) = kind {
                            response.headers_mut().insert(header::CONTENT_TYPE, kind);
                        }
                        response
                    }
                    Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
                }
            }
        };
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(forward))
            .route(
                "/v1/models",
                get(|| async { r#"{"object":"list","data":[]}"# }),
            );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind loopback");
        println!("{}", listener.local_addr().expect("local address"));
        let _ = axum::serve(listener, app).await;
    });
}

fn spawn_litellm(dir: &std::path::Path, upstream: SocketAddr) -> Option<(Child, SocketAddr)> {
    let litellm = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("litellm"))
            .find(|p| p.exists())
    })?;
    let config = dir.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/bench\n      api_base: http://{upstream}/v1\n      api_key: sk-bench\ngeneral_settings:\n  master_key: {BENCH_KEY}\n"
        ),
    )
    .expect("litellm config");
    let port = free_port();
    let child = Command::new(litellm)
        .args(["--config"])
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("litellm.log")).ok()?)
        .spawn()
        .ok()?;
    Some((child, SocketAddr::from(([127, 0, 0, 1], port))))
}

/// Whether `base` answers `GET /models` within 120 s.
async fn wait_ready(base: &str) -> bool {
    let url = format!("{base}/models");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(&url)
            .header("authorization", BEARER)
            .send()
            .await
            && r.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// `--store`: HTTP and WebSocket cells through `oy3o serve` with the store off, on SQLite and on
/// a throwaway PostgreSQL (the test kit's), added latency over the direct call. The three servers
/// run side by side and the cells are measured in rounds (each round every server once, the order
/// rotating), so a change in the machine's load hits all three alike; the table gives each
/// cell's median over the rounds, and the store's cost as the median of per-round ratios to the
/// store-off server.
async fn store_run() {
    let upstream = oy3o_testkit::upstream::Upstream::start(Duration::ZERO).addr();
    let dir = std::env::temp_dir().join(format!("oy3o-load-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pg = oy3o_testkit::postgres::Postgres::start();
    let direct = Target {
        name: "direct",
        base: format!("http://{upstream}/v1"),
        model: "bench",
        websocket: false,
        pid: None,
    };
    let stores = [
        ("store none", "none".to_owned()),
        (
            "store sqlite",
            format!("sqlite:{}", dir.join("bench.db").display()),
        ),
        ("store postgres", pg.url()),
    ];
    let mut children = Children(Vec::new());
    let mut servers = Vec::new();
    for (name, store) in &stores {
        let (child, address) = spawn_oy3o(&dir, upstream, store);
        servers.push((*name, child.id(), address));
        children.0.push(child);
    }
    for (name, _, address) in &servers {
        assert!(
            wait_ready(&format!("http://{address}/v1")).await,
            "oy3o ({name}) did not come up"
        );
    }
    let rounds: usize = std::env::var("OY3O_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // (server, mode, concurrency) -> one measurement per round.
    let mut cells: Cells = Vec::new();
    for round in 0..rounds {
        eprintln!("store bench: round {} of {rounds}", round + 1);
        for concurrency in [1, 32] {
            let reference = http_load(&direct, true, "bench", concurrency).await;
            for k in 0..servers.len() {
                let index = (k + round) % servers.len();
                let (name, pid, address) = servers[index];
                let target = Target {
                    name,
                    base: format!("http://{address}/v1"),
                    model: "openai:bench",
                    websocket: true,
                    pid: None,
                };
                let cpu = CpuMeter::start(pid);
                let stats = http_load(&target, true, "openai:bench", concurrency).await;
                let cell = Cell::of(&stats, Some(&reference), &cpu);
                push_cell(&mut cells, (index, "HTTP stream", concurrency), cell);
                let cpu = CpuMeter::start(pid);
                let stats = websocket_load(&address.to_string(), concurrency).await;
                let cell = Cell::of(&stats, None, &cpu);
                push_cell(&mut cells, (index, "WebSocket", concurrency), cell);
            }
        }
    }
    drop(children);
    println!(
        "\n## The store's cost: oy3o serve with the store off, SQLite, PostgreSQL ({rounds} rounds of {WINDOW:?} per cell; medians)\n"
    );
    println!(
        "| target | mode | concurrency | P50 | P99 | added P50 | first chunk P50 | req/s (range) | oy3o CPU per request | PostgreSQL CPU per request |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let median = |values: Vec<f64>| {
        let mut v = values;
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for ((index, mode, concurrency), runs) in &cells {
        let of = |f: fn(&Cell) -> f64| median(runs.iter().map(f).collect());
        let rates: Vec<f64> = runs.iter().map(|c| c.rate).collect();
        let (low, high) = rates
            .iter()
            .fold((f64::MAX, 0f64), |(l, h), r| (l.min(*r), h.max(*r)));
        println!(
            "| {} | {mode} | {concurrency} | {:.0} µs | {:.0} µs | {} | {:.0} µs | {:.0} ({low:.0}–{high:.0}) | {:.0} µs | {:.0} µs |",
            servers[*index].0,
            of(|c| c.p50),
            of(|c| c.p99),
            if mode.starts_with("HTTP") {
                format!("{:+.0} µs", of(|c| c.added_p50))
            } else {
                String::new()
            },
            of(|c| c.first_p50),
            of(|c| c.rate),
            of(|c| c.server_cpu),
            of(|c| c.database_cpu),
        );
    }
    println!(
        "\nThe store's cost per round (each store's cell over the store-off cell of the same round; median, range):\n"
    );
    println!(
        "| store | mode | concurrency | req/s ratio | P50 difference | oy3o CPU per request difference |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for ((index, mode, concurrency), runs) in &cells {
        if *index == 0 {
            continue;
        }
        let Some((_, base)) = cells
            .iter()
            .find(|((i, m, c), _)| *i == 0 && m == mode && c == concurrency)
        else {
            continue;
        };
        let ratios: Vec<f64> = runs
            .iter()
            .zip(base)
            .map(|(a, b)| a.rate / b.rate)
            .collect();
        let p50: Vec<f64> = runs.iter().zip(base).map(|(a, b)| a.p50 - b.p50).collect();
        let cpu: Vec<f64> = runs
            .iter()
            .zip(base)
            .map(|(a, b)| a.server_cpu - b.server_cpu)
            .collect();
        let range = |v: &[f64]| {
            v.iter()
                .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)))
        };
        let ((rl, rh), (pl, ph)) = (range(&ratios), range(&p50));
        println!(
            "| {} | {mode} | {concurrency} | {:.2} ({rl:.2}–{rh:.2}) | {:+.0} µs ({pl:+.0}…{ph:+.0}) | {:+.0} µs |",
            servers[*index].0,
            median(ratios.clone()),
            median(p50.clone()),
            median(cpu),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each (server, mode, concurrency) cell with its measurement per round.
type Cells<'a> = Vec<((usize, &'a str, usize), Vec<Cell>)>;

/// One store cell of one round.
struct Cell {
    p50: f64,
    p99: f64,
    added_p50: f64,
    first_p50: f64,
    rate: f64,
    server_cpu: f64,
    database_cpu: f64,
}

impl Cell {
    /// Times in µs; CPU per request since `cpu` started.
    fn of(stats: &Stats, direct: Option<&Stats>, cpu: &CpuMeter) -> Self {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let p50 = us(Stats::pct(&stats.total, 0.5));
        let (server_cpu, database_cpu) = cpu.per_request(stats.total.len());
        Self {
            p50,
            p99: us(Stats::pct(&stats.total, 0.99)),
            added_p50: direct.map_or(0.0, |d| p50 - us(Stats::pct(&d.total, 0.5))),
            first_p50: us(Stats::pct(&stats.first, 0.5)),
            rate: stats.rate(),
            server_cpu,
            database_cpu,
        }
    }
}

fn push_cell<'a>(cells: &mut Cells<'a>, key: (usize, &'a str, usize), cell: Cell) {
    match cells.iter_mut().find(|(k, _)| *k == key) {
        Some((_, runs)) => runs.push(cell),
        None => cells.push((key, vec![cell])),
    }
}

/// CPU time of all threads of the processes `pids` (Linux `schedstat`, nanoseconds; threads that
/// ended are not counted, and this server's and PostgreSQL's threads live as long as the run).
fn cpu_of(pids: impl Iterator<Item = u32>) -> Duration {
    let mut total = 0u64;
    for pid in pids {
        let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for thread in threads.flatten() {
            if let Some(ns) = std::fs::read_to_string(thread.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            {
                total += ns;
            }
        }
    }
    Duration::from_nanos(total)
}

/// Every PostgreSQL process on the machine (the bench's throwaway server is the only one the
/// bench expects; its backends are separate processes).
fn postgres_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .collect()
}

/// The CPU an `oy3o serve` process and the PostgreSQL processes spend during one cell.
struct CpuMeter {
    pid: u32,
    server: Duration,
    database: Duration,
}

impl CpuMeter {
    fn start(pid: u32) -> Self {
        Self {
            pid,
            server: cpu_of(std::iter::once(pid)),
            database: cpu_of(postgres_pids().into_iter()),
        }
    }

    /// Server and database CPU µs per request since [`CpuMeter::start`].
    fn per_request(&self, requests: usize) -> (f64, f64) {
        // Saturating: a PostgreSQL process that ended takes its time with it.
        let server = cpu_of(std::iter::once(self.pid)).saturating_sub(self.server);
        let database = cpu_of(postgres_pids().into_iter()).saturating_sub(self.database);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / requests.max(1) as f64;
        (per(server), per(database))
    }
}
