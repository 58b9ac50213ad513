//! Time the key checks add to a request (issue #22): a key with models, rpm, tpm, concurrency
//! and a budget, admitted and settled, with the counters in this process and in a real Redis
//! (Debian's `redis-server`, started here on a free port), spend read from SQLite once and then
//! from the cache. Run by `scripts/bench`; prints medians in µs.

use std::time::{Duration, Instant};

use oy3o_server::bench::Policy;
use oy3o_store::{Budget, KeyRecord};

const ROUNDS: usize = 20_000;

fn key() -> KeyRecord {
    let mut key = KeyRecord::new("bench", &"ab".repeat(32));
    key.models = vec!["openai:*".into(), "anthropic:claude-*".into()];
    key.rpm = Some(u64::MAX / 2);
    key.tpm = Some(u64::MAX / 2);
    key.concurrent = Some(1_000_000);
    key.budget = Some(Budget::parse("1000000/day").expect("budget"));
    key
}

async fn median(policy: &Policy, rounds: usize) -> Duration {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        policy.request().await.expect("admitted");
        times.push(start.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = oy3o_testkit::postgres::TempDir::new("policy-bench");
        let setting = oy3o_store::StoreSetting::Sqlite(dir.0.join("bench.db"));
        let store = oy3o_store::open(&setting).await.expect("open").expect("a store");
        let local = Policy::new(None, key(), Some(store.clone())).expect("local policy");
        median(&local, 1_000).await; // warm: the spend cache, the allocator
        let local_us = median(&local, ROUNDS).await.as_secs_f64() * 1e6;
        let redis = oy3o_testkit::redis::Redis::start();
        let shared = Policy::new(Some(&redis.url()), key(), Some(store.clone())).expect("redis");
        median(&shared, 500).await;
        let redis_us = median(&shared, ROUNDS / 4).await.as_secs_f64() * 1e6;
        println!("policy checks per request, counters in this process: {local_us:.2} µs (median of {ROUNDS})");
        println!(
            "policy checks per request, counters in Redis (one pipelined round trip on loopback): {redis_us:.1} µs (median of {})",
            ROUNDS / 4
        );
    });
}
