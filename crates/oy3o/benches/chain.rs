//! Chain overhead: a 3-stage chain of 100 parallel tasks per stage against a fake server that
//! answers after a fixed 50 ms, and one stage of 1,000 tasks. Overhead = a stage's wall time
//! minus its slowest task (what the engine adds around the branches: scheduling, context
//! hand-off, collection). Run: `scripts/bench`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oy3o::{Chain, Config, Credential, ProviderSettings, Task};
use oy3o_testkit::{FakeServer, openai};

const DELAY: Duration = Duration::from_millis(50);

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
        let server = FakeServer::start().await;
        server.fallback(openai::answer(&["an answer of a few words"]).build().delayed(DELAY));
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
        // (stage elapsed, slowest task) per stage, from the chain's own events.
        let stages = Arc::new(Mutex::new(Vec::<(u64, u64)>::new()));
        let slowest = Arc::new(Mutex::new(0u64));
        let (s, w) = (stages.clone(), slowest.clone());
        config.listeners.on("*", move |e| {
            let m = e.message();
            match e.name() {
                "task_done" => {
                    let mut w = w.lock().unwrap();
                    *w = (*w).max(m["elapsed_ms"].as_u64().unwrap_or(0));
                }
                "stage_done" => {
                    let mut w = w.lock().unwrap();
                    s.lock().unwrap().push((m["elapsed_ms"].as_u64().unwrap_or(0), *w));
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
                    "  stage {}: {elapsed} ms, slowest task {slow} ms, overhead over the slowest branch {} ms",
                    i + 1,
                    elapsed.saturating_sub(*slow)
                );
            }
        }
    });
}
