//! Chain overhead: a 3-stage chain of 100 parallel tasks per stage against the test kit's lean keep-alive upstream that
//! answers after a fixed 50 ms, and one stage of 1,000 tasks. Overhead = a stage's wall time
//! minus its slowest task (what the engine adds around the branches: scheduling, context
//! hand-off, collection). Run: `scripts/bench`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oy3o::{Chain, Config, Credential, ProviderSettings, Task};
use oy3o_testkit::upstream::Upstream;

const DELAY: Duration = Duration::from_millis(50);
/// The body of the peer's plain requests.
const PLAIN_REQUEST: &str =
    r#"{"model":"bench","stream":true,"messages":[{"role":"user","content":"task"}]}"#;

fn stage_of(n: usize) -> Vec<Task> {
    (0..n)
        .map(|i| Task::new(None, format!("task {i}")).named(format!("t{i}")))
        .collect()
}

/// How many times the 3-stage chain (and the peer's 3 rounds) run.
const RUNS: usize = 6;

/// One chat completion sent by a plain reqwest client, no engine: the peer's unit of work.
async fn plain_request(client: &reqwest::Client, url: &str) {
    let body = client
        .post(url)
        .body(PLAIN_REQUEST)
        .send()
        .await
        .expect("direct request")
        .bytes()
        .await
        .expect("direct body");
    assert!(!body.is_empty());
}

/// The peer for a stage: 100 plain reqwest requests spawned at once against the same 50 ms
/// upstream, no engine, measured the same way: the wall minus the slowest request's own time
/// (ms).
async fn peer_round(client: &reqwest::Client, url: &str) -> f64 {
    let started = Instant::now();
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move {
                let own = Instant::now();
                plain_request(&client, &url).await;
                own.elapsed()
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for request in requests {
        slowest = slowest.max(request.await.expect("request task"));
    }
    (started.elapsed() - slowest).as_secs_f64() * 1e3
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn show(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.2}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let server = Upstream::start(DELAY);
        let mut config = Config {
            model: Some("openai:bench".into()),
            ..Config::default()
        };
        config.providers.insert(
            "openai".into(),
            ProviderSettings {
                base_url: Some(server.base_url()),
                api_key: Some(Credential::parse("sk-bench")),
                ..ProviderSettings::default()
            },
        );
        // (stage elapsed, slowest task) per stage, in microseconds, from the chain's own events.
        let stages = Arc::new(Mutex::new(Vec::<(u64, u64)>::new()));
        let slowest = Arc::new(Mutex::new(0u64));
        let (s, w) = (stages.clone(), slowest.clone());
        // Only the two events it reads: a listener on "*" would render every event's JSON
        // (each stage-2 task's 100-answer context among them), the bench's cost, not the engine's.
        config.listeners.on("task_done", move |e| {
            let mut w = w.lock().unwrap();
            *w = (*w).max(e.message()["elapsed_us"].as_u64().unwrap_or(0));
        });
        let w = slowest.clone();
        config.listeners.on("stage_done", move |e| {
            let mut w = w.lock().unwrap();
            let elapsed = e.message()["elapsed_us"].as_u64().unwrap_or(0);
            s.lock().unwrap().push((elapsed, *w));
            *w = 0;
        });

        // The 3-stage chain and the peer in turns, so both see the same machine state (other
        // builds share these 2 cores), then medians over every stage and every peer round.
        let client = reqwest::Client::new();
        let delayed_url = format!("{}/chat/completions", server.base_url());
        let (mut ours, mut peers) = (Vec::new(), Vec::new());
        for run in 0..RUNS {
            config.task_concurrency = Some(100);
            stages.lock().unwrap().clear();
            let chain = Chain::from(vec![stage_of(100), stage_of(100), stage_of(100)]);
            let started = Instant::now();
            let result = oy3o::exec_tasks_chain_once(chain, &config).await.expect("chain");
            let wall = started.elapsed();
            let failed: usize = result.iter().map(|s| s.failed).sum();
            let overheads: Vec<f64> = stages
                .lock()
                .unwrap()
                .iter()
                .map(|(elapsed, slow)| elapsed.saturating_sub(*slow) as f64 / 1e3)
                .collect();
            let mut peer_rounds = Vec::new();
            for _ in 0..3 {
                peer_rounds.push(peer_round(&client, &delayed_url).await);
            }
            println!(
                "run {}: 3 stages x 100 tasks (concurrency 100, answer delay {DELAY:?}): wall {wall:.1?}, failed {failed}, \
                 overhead per stage over its slowest branch {} ms; peer, 100 plain requests at once: {} ms",
                run + 1,
                show(&overheads),
                show(&peer_rounds)
            );
            // The first run opens the connections (both pools start cold): left out of the medians.
            if run > 0 {
                ours.extend(overheads);
                peers.extend(peer_rounds);
            }
        }
        let (ours, peer) = (median(&mut ours), median(&mut peers));
        println!(
            "medians over runs 2-{RUNS}: chain {ours:.3} ms per stage, peer {peer:.3} ms per 100-request fan-out, \
             engine's own share {:.3} ms per stage ({:.1} µs per task)",
            ours - peer,
            (ours - peer) * 1e3 / 100.0
        );

        config.task_concurrency = Some(256);
        stages.lock().unwrap().clear();
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
        let mut sequential = config.clone();
        sequential.task_concurrency = Some(1);
        if let Some(openai) = sequential.providers.get_mut("openai") {
            openai.base_url = Some(instant.base_url());
        }
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
                plain_request(&client, &url).await;
            }
            let wall = started.elapsed();
            println!(
                "1000 plain reqwest requests one at a time: {wall:.1?}, {:.1} µs per request",
                wall.as_secs_f64() * 1e6 / 1000.0
            );
        }
    });
}
