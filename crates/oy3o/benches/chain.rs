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
        config.listeners.on("*", move |e| {
            let m = e.message();
            match e.name() {
                "task_done" => {
                    let mut w = w.lock().unwrap();
                    *w = (*w).max(m["elapsed_us"].as_u64().unwrap_or(0));
                }
                "stage_done" => {
                    let mut w = w.lock().unwrap();
                    s.lock().unwrap().push((m["elapsed_us"].as_u64().unwrap_or(0), *w));
                    *w = 0;
                }
                _ => {}
            }
        });

        for (label, shape, bound) in [
            ("3 stages x 100 tasks", vec![100, 100, 100], 100),
            ("1 stage x 1000 tasks", vec![1000], 256),
        ] {
            config.task_concurrency = Some(bound);
            stages.lock().unwrap().clear();
            let chain = Chain::from(shape.iter().map(|&n| stage_of(n)).collect::<Vec<_>>());
            let started = Instant::now();
            let result = oy3o::exec_tasks_chain_once(chain, &config).await.expect("chain");
            let wall = started.elapsed();
            let failed: usize = result.iter().map(|s| s.failed).sum();
            println!("{label} (concurrency {bound}, answer delay {DELAY:?}): wall {wall:.1?}, failed {failed}");
            for (i, (elapsed, slow)) in stages.lock().unwrap().iter().enumerate() {
                println!(
                    "  stage {}: {:.2} ms, slowest task {:.2} ms, overhead over the slowest branch {:.3} ms",
                    i + 1,
                    *elapsed as f64 / 1e3,
                    *slow as f64 / 1e3,
                    elapsed.saturating_sub(*slow) as f64 / 1e3
                );
            }
        }

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
        let client = reqwest::Client::new();
        let url = format!("{}/chat/completions", instant.base_url());
        for _ in 0..2 {
            let started = Instant::now();
            for _ in 0..1000 {
                let body = client
                    .post(&url)
                    .body(PLAIN_REQUEST)
                    .send()
                    .await
                    .expect("direct request")
                    .bytes()
                    .await
                    .expect("direct body");
                assert!(!body.is_empty());
            }
            let wall = started.elapsed();
            println!(
                "1000 plain reqwest requests one at a time: {wall:.1?}, {:.1} µs per request",
                wall.as_secs_f64() * 1e6 / 1000.0
            );
        }
        // The peer for a stage: 100 plain reqwest requests spawned at once against the same
        // 50 ms upstream (warm pool after the first round), no engine, measured the same way:
        // the wall minus the slowest request's own time.
        let delayed_url = format!("{}/chat/completions", server.base_url());
        for round in 0..4 {
            let started = Instant::now();
            let requests: Vec<_> = (0..100)
                .map(|_| {
                    let (client, url) = (client.clone(), delayed_url.clone());
                    tokio::spawn(async move {
                        let own = Instant::now();
                        let body = client
                            .post(&url)
                            .body(PLAIN_REQUEST)
                            .send()
                            .await
                            .expect("direct request")
                            .bytes()
                            .await
                            .expect("direct body");
                        assert!(!body.is_empty());
                        own.elapsed()
                    })
                })
                .collect();
            let mut slowest = Duration::ZERO;
            for request in requests {
                slowest = slowest.max(request.await.expect("request task"));
            }
            let wall = started.elapsed();
            println!(
                "  peer, 100 plain reqwest requests at once (round {}): {:.2} ms, slowest request {:.2} ms, overhead over the slowest {:.3} ms",
                round + 1,
                wall.as_secs_f64() * 1e3,
                slowest.as_secs_f64() * 1e3,
                (wall - slowest).as_secs_f64() * 1e3
            );
        }
    });
}
