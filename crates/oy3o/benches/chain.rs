//! Chain overhead: a 3-stage chain of 100 parallel tasks per stage against the test kit's lean
//! keep-alive upstream that answers after a fixed 50 ms, and one stage of 1,000 tasks.
//! Overhead = a stage's wall time minus its slowest task (what the engine adds around the
//! branches: scheduling, context hand-off, collection), beside a peer of 100 plain reqwest
//! requests measured the same way, and each stage's timeline (when its last task starts, when
//! its first and last requests reach the upstream, how long after its last answer it ends).
//! Run: `scripts/bench`. `CHAIN_PROFILE` runs one small part for callgrind (see [`profile`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oy3o::{Chain, Config, Credential, Event, ProviderSettings, Task};
use oy3o_testkit::upstream::{Arrivals, Upstream};

const DELAY: Duration = Duration::from_millis(50);
/// How many times the 3-stage chain (and the peer's 3 rounds) run.
const RUNS: usize = 8;
/// Tasks per stage, requests per peer round.
const WIDTH: usize = 100;
/// The answer the upstream gives (its recorded stream).
const ANSWER: &str = "1 + 1 = 2 in mathematics.";

fn stage_of(n: usize) -> Vec<Task> {
    (0..n)
        .map(|i| Task::new(None, format!("task {i}")).named(format!("t{i}")))
        .collect()
}

/// The bench's config: the default model on the upstream at `base_url`.
fn config_for(base_url: String) -> Config {
    let mut config = Config {
        model: Some("openai:bench".into()),
        ..Config::default()
    };
    config.providers.insert(
        "openai".into(),
        ProviderSettings {
            base_url: Some(base_url),
            api_key: Some(Credential::parse("sk-bench")),
            ..ProviderSettings::default()
        },
    );
    config
}

/// The body of the peer's request for a stage: what the engine sends there, written by hand
/// once. Stages after the first carry the previous stage's 100 answers as the system message
/// (`[t0]: answer\n[/t0]\n…`), so the peer moves and the upstream parses the same bytes. A
/// task asks for its answer whole (`"stream": false`, no `stream_options`: the engine's
/// `Options::whole`), so the peer does too and reads the same one-JSON-body answer.
fn peer_body(stage: usize) -> Bytes {
    let mut messages = Vec::new();
    if stage > 0 {
        let context: String = (0..WIDTH)
            .map(|i| format!("[t{i}]: {ANSWER}\n[/t{i}]\n"))
            .collect();
        messages.push(serde_json::json!({"role": "system", "content": context}));
    }
    messages.push(serde_json::json!({"role": "user", "content": "task 0"}));
    let body = serde_json::json!({
        "model": "bench", "messages": messages, "stream": false,
    });
    Bytes::from(body.to_string())
}

/// One chat completion sent by a plain reqwest client, no engine: the peer's unit of work.
async fn plain_request(client: &reqwest::Client, url: &str, body: Bytes) {
    let body = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("direct request")
        .bytes()
        .await
        .expect("direct body");
    assert!(!body.is_empty());
}

/// One stage (or peer round), in ms from its start.
#[derive(Clone, Copy, Debug, Default)]
struct Timeline {
    /// Wall time minus the slowest task's own time.
    overhead: f64,
    /// When the last task (request) started: its first poll.
    last_start: f64,
    /// When the first request reached the upstream.
    first_arrival: f64,
    /// When the last request reached the upstream.
    last_arrival: f64,
    /// From the last task's end to the stage's end.
    tail: f64,
}

/// `elapsed_us` of a task or stage event, read in place (`Event::message` would copy the
/// payload: the bench's cost inside the measured time, not the engine's).
fn elapsed_us(event: &Event) -> u64 {
    match event {
        Event::Other { message, .. } => message["elapsed_us"].as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn ms_between(from: Instant, to: Option<Instant>) -> f64 {
    to.map_or(f64::NAN, |t| {
        t.saturating_duration_since(from).as_secs_f64() * 1e3
    })
}

impl Timeline {
    fn arrivals(mut self, started: Instant, arrivals: Arrivals) -> Self {
        self.first_arrival = ms_between(started, arrivals.first);
        self.last_arrival = ms_between(started, arrivals.last);
        self
    }
}

/// The peer for a stage: 100 plain reqwest requests spawned at once against the same 50 ms
/// upstream, no engine, measured the same way.
async fn peer_round(
    client: &reqwest::Client,
    url: &str,
    server: Upstream,
    body: &Bytes,
) -> Timeline {
    server.take_arrivals();
    let started = Instant::now();
    let requests: Vec<_> = (0..WIDTH)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
            tokio::spawn(async move {
                let own = Instant::now();
                plain_request(&client, &url, body).await;
                (own, Instant::now())
            })
        })
        .collect();
    let (mut slowest, mut last_start, mut last_end) = (Duration::ZERO, started, started);
    for request in requests {
        let (start, end) = request.await.expect("request task");
        slowest = slowest.max(end - start);
        last_start = last_start.max(start);
        last_end = last_end.max(end);
    }
    let ended = Instant::now();
    Timeline {
        overhead: ((ended - started).saturating_sub(slowest)).as_secs_f64() * 1e3,
        last_start: ms_between(started, Some(last_start)),
        tail: ms_between(last_end, Some(ended)),
        ..Timeline::default()
    }
    .arrivals(started, server.take_arrivals())
}

/// What the chain's listeners see of the running stage.
#[derive(Default)]
struct StageProbe {
    started: Option<Instant>,
    last_start: Option<Instant>,
    last_done: Option<Instant>,
    slowest_us: u64,
    done: Vec<Timeline>,
}

/// Listens to the four events the timeline needs, and nothing else: a listener on `"*"`
/// would render every event's JSON (each later task's 100-answer context among them), the
/// bench's cost, not the engine's.
fn listen(config: &mut Config, server: Upstream) -> Arc<Mutex<StageProbe>> {
    let probe = Arc::new(Mutex::new(StageProbe::default()));
    let p = probe.clone();
    config.listeners.on("stage_start", move |_| {
        server.take_arrivals();
        let mut p = p.lock().unwrap();
        (p.last_start, p.last_done, p.slowest_us) = (None, None, 0);
        p.started = Some(Instant::now());
    });
    let p = probe.clone();
    config.listeners.on("task_start", move |_| {
        let now = Instant::now();
        let mut p = p.lock().unwrap();
        p.last_start = p.last_start.max(Some(now));
    });
    let p = probe.clone();
    config.listeners.on("task_done", move |e| {
        let now = Instant::now();
        let mut p = p.lock().unwrap();
        p.last_done = p.last_done.max(Some(now));
        p.slowest_us = p.slowest_us.max(elapsed_us(e));
    });
    let p = probe.clone();
    config.listeners.on("stage_done", move |e| {
        let now = Instant::now();
        let mut p = p.lock().unwrap();
        let started = p.started.unwrap_or(now);
        let elapsed = elapsed_us(e);
        let line = Timeline {
            overhead: elapsed.saturating_sub(p.slowest_us) as f64 / 1e3,
            last_start: ms_between(started, p.last_start),
            tail: p.last_done.map_or(f64::NAN, |d| ms_between(d, Some(now))),
            ..Timeline::default()
        }
        .arrivals(started, server.take_arrivals());
        p.done.push(line);
    });
    probe
}

/// CPU time used so far by every thread of the process (the upstream's included), from
/// Linux's per-thread scheduler statistics (nanoseconds on a CPU); `None` elsewhere.
fn process_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for thread in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(thread.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// CPU ms per stage (or round) spent between `before` and now, over `stages`.
fn cpu_per_stage(before: Option<Duration>, stages: usize) -> f64 {
    match (before, process_cpu()) {
        (Some(b), Some(a)) => (a - b).as_secs_f64() * 1e3 / stages as f64,
        _ => f64::NAN,
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn show(values: &[Timeline]) -> String {
    values
        .iter()
        .map(|v| format!("{:.2}", v.overhead))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The medians of a timeline's columns, and the CPU per stage, as one printed row.
fn medians(lines: &[Timeline], cpu: &[f64]) -> [f64; 6] {
    let m = |f: fn(&Timeline) -> f64| median(lines.iter().map(f));
    [
        m(|t| t.overhead),
        m(|t| t.last_start),
        m(|t| t.first_arrival),
        m(|t| t.last_arrival),
        m(|t| t.tail),
        median(cpu.iter().copied()),
    ]
}

fn row(name: &str, values: [f64; 6]) -> String {
    let cells: Vec<String> = values.iter().map(|v| format!("{v:>8.3}")).collect();
    format!("{name:<6} | {}", cells.join(" | "))
}

/// `CHAIN_PROFILE=engine:N` (`engine-listened:N`: with the bench's listeners), `plain:N`
/// (`plain-context:N`: with a later stage's context) or `chain:S`: only N sequential tasks (or plain requests) against an instant upstream, or an
/// S-stage chain of 100 tasks at concurrency 100, for
/// `valgrind --tool=callgrind --separate-threads=yes`. Two runs with different N (or S)
/// give the instructions per task: the difference over the difference in tasks, split by
/// thread (the upstream has its own).
async fn profile(spec: &str) {
    let (what, n) = spec.split_once(':').unwrap_or((spec, "100"));
    let n: usize = n
        .parse()
        .expect("CHAIN_PROFILE=engine:N, plain:N or chain:S");
    let instant = Upstream::start(Duration::ZERO);
    let mut config = config_for(instant.base_url());
    match what {
        "engine" | "engine-listened" => {
            if what == "engine-listened" {
                listen(&mut config, instant);
            }
            config.task_concurrency = Some(1);
            let results = oy3o::exec_tasks_once(stage_of(n), &config).await;
            assert!(results.iter().all(|r| r.is_ok()));
        }
        "plain" | "plain-context" => {
            let client = reqwest::Client::new();
            let url = format!("{}/chat/completions", instant.base_url());
            let body = peer_body(usize::from(what == "plain-context"));
            for _ in 0..n {
                plain_request(&client, &url, body.clone()).await;
            }
        }
        "chain" => {
            config.task_concurrency = Some(WIDTH);
            let chain = Chain::from((0..n).map(|_| stage_of(WIDTH)).collect::<Vec<_>>());
            let stages = oy3o::exec_tasks_chain_once(chain, &config)
                .await
                .expect("chain");
            assert!(stages.iter().all(|s| s.failed == 0));
        }
        other => panic!(
            "CHAIN_PROFILE: unknown {other:?}; use engine:N, engine-listened:N, plain:N, \
             plain-context:N or chain:S"
        ),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(spec) = std::env::var("CHAIN_PROFILE") {
        rt.block_on(profile(&spec));
        return;
    }
    rt.block_on(async {
        let server = Upstream::start(DELAY);
        let mut config = config_for(server.base_url());
        let probe = listen(&mut config, server);

        // The 3-stage chain and the peer in turns, so both see the same machine state (other
        // builds share these 2 cores), then medians over every stage and every peer round.
        // Peer round k sends what the engine sends in stage k (later ones carry the context).
        let client = reqwest::Client::new();
        let delayed_url = format!("{}/chat/completions", server.base_url());
        let bodies: Vec<Bytes> = (0..3).map(peer_body).collect();
        let (mut ours, mut peers) = (Vec::new(), Vec::new());
        let (mut our_cpu, mut peer_cpu) = (Vec::new(), Vec::new());
        for run in 0..RUNS {
            // Which goes first alternates, so neither always runs right after the other.
            let peer_first = run % 2 == 1;
            let mut rounds = Vec::new();
            let peer = async |rounds: &mut Vec<Timeline>| {
                let cpu = process_cpu();
                for body in &bodies {
                    rounds.push(peer_round(&client, &delayed_url, server, body).await);
                }
                cpu_per_stage(cpu, bodies.len())
            };
            let mut cpu = (f64::NAN, f64::NAN);
            if peer_first {
                cpu.1 = peer(&mut rounds).await;
            }
            config.task_concurrency = Some(WIDTH);
            probe.lock().unwrap().done.clear();
            let chain = Chain::from(vec![stage_of(WIDTH), stage_of(WIDTH), stage_of(WIDTH)]);
            let before = process_cpu();
            let started = Instant::now();
            let result = oy3o::exec_tasks_chain_once(chain, &config).await.expect("chain");
            let wall = started.elapsed();
            cpu.0 = cpu_per_stage(before, 3);
            let failed: usize = result.iter().map(|s| s.failed).sum();
            let stages = std::mem::take(&mut probe.lock().unwrap().done);
            if !peer_first {
                cpu.1 = peer(&mut rounds).await;
            }
            println!(
                "run {}: 3 stages x {WIDTH} tasks (concurrency {WIDTH}, answer delay {DELAY:?}): wall {wall:.1?}, failed {failed}, \
                 overhead per stage over its slowest branch {} ms, CPU {:.2} ms per stage; \
                 peer, {WIDTH} plain requests at once: {} ms, CPU {:.2} ms per round",
                run + 1,
                show(&stages),
                cpu.0,
                show(&rounds),
                cpu.1,
            );
            // The first run opens the connections (both pools start cold): left out of the medians.
            if run > 0 {
                ours.extend(stages);
                peers.extend(rounds);
                our_cpu.push(cpu.0);
                peer_cpu.push(cpu.1);
            }
        }
        let (chain, peer) = (medians(&ours, &our_cpu), medians(&peers, &peer_cpu));
        let share = std::array::from_fn(|i| chain[i] - peer[i]);
        println!(
            "medians over runs 2-{RUNS}, ms from the stage's (round's) start; share = chain - peer:\n\
             {:<6} | overhead | last start | 1st arrival | last arrival | tail | CPU (all threads)\n{}\n{}\n{}",
            "",
            row("chain", chain),
            row("peer", peer),
            row("share", share),
        );
        println!(
            "engine's own share {:.3} ms per stage ({:.1} µs per task)",
            share[0],
            share[0] * 1e3 / WIDTH as f64
        );
        // Issue 23's goal: a stage of 100 tasks costs at most 1.2x the same 100 requests sent
        // at once by bare reqwest to the same upstream (its overhead over the slowest branch).
        println!(
            "ratio chain / bare reqwest: overhead per stage {:.2}x (goal <= 1.2x), CPU per stage {:.2}x",
            chain[0] / peer[0],
            chain[5] / peer[5]
        );

        config.task_concurrency = Some(256);
        let started = Instant::now();
        let result = oy3o::exec_tasks_chain_once(Chain::from(vec![stage_of(1000)]), &config)
            .await
            .expect("chain");
        let failed: usize = result.iter().map(|s| s.failed).sum();
        println!(
            "1 stage x 1000 tasks (concurrency 256, answer delay {DELAY:?}): wall {:.1?}, failed {failed} (ideal: 4 waves x 50 ms = 200 ms)",
            started.elapsed()
        );

        // Per-task cost: the same tasks one at a time against an instant fake, so the time per
        // task is the engine's work plus the fake's and the loopback's, with no waiting.
        let instant = Upstream::start(Duration::ZERO);
        let mut sequential = config_for(instant.base_url());
        sequential.task_concurrency = Some(1);
        for _ in 0..2 {
            let started = Instant::now();
            let results = oy3o::exec_tasks_once(stage_of(1000), &sequential).await;
            let wall = started.elapsed();
            println!(
                "1000 tasks one at a time, instant answers: {wall:.1?}, {:.1} µs per task, {} failed",
                wall.as_secs_f64() * 1e6 / 1000.0,
                results.iter().filter(|r| !r.is_ok()).count()
            );
        }
        // The floor: the same request with a plain reqwest client, no engine.
        let url = format!("{}/chat/completions", instant.base_url());
        for _ in 0..2 {
            let started = Instant::now();
            for _ in 0..1000 {
                plain_request(&client, &url, bodies[0].clone()).await;
            }
            let wall = started.elapsed();
            println!(
                "1000 plain reqwest requests one at a time: {wall:.1?}, {:.1} µs per request",
                wall.as_secs_f64() * 1e6 / 1000.0
            );
        }
    });
}
