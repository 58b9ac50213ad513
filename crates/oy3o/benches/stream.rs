//! Streaming cost of the engine, side by side with a plain byte read of the same stream.
//!
//! 1. `sse decode`: the SSE decoder alone over an in-memory OpenAI stream (chunks/s).
//! 2. `engine`: `oy3o::exec` against the test kit's OpenAI server on a real socket, through
//!    transport, SSE decoding, chunk mapping, history and the reply stream.
//! 3. `raw read`: the same response read with reqwest and thrown away (the floor).
//!
//! Engine work per chunk = (engine - raw read) / chunks. Run: `scripts/bench`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use oy3o::transport::sse::SseDecoder;
use oy3o::{Config, Credential, ProviderSettings};
use oy3o_testkit::{FakeServer, openai};

const CHUNKS: usize = 20_000;
const ROUNDS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let pieces: Vec<String> = (0..CHUNKS).map(|i| format!("tok{i} ")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let script = openai::answer(&pieces);
    let body = script.body_text();

    let decode = median(
        (0..ROUNDS)
            .map(|_| {
                let started = Instant::now();
                let mut d = SseDecoder::default();
                let mut out = Vec::new();
                // Network-sized reads.
                for piece in body.as_bytes().chunks(1400) {
                    d.feed(piece, &mut out);
                    out.clear();
                }
                started.elapsed()
            })
            .collect(),
    );

    // One thread for server and client: no cross-thread wake-ups, so the difference between
    // the two reads is the engine's own work.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (engine, raw) = rt.block_on(async {
        let server = FakeServer::start().await;
        server.fallback(script.build());
        let mut config = Config::default();
        config.providers.insert(
            "openai".into(),
            ProviderSettings {
                base_url: Some(server.base_url()),
                api_key: Some(Credential::parse("sk-bench")),
                ..ProviderSettings::default()
            },
        );
        let client = reqwest::Client::new();
        let url = format!("{}/chat/completions", server.base_url());
        let mut engine = Vec::new();
        let mut raw = Vec::new();
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let mut reply = oy3o::exec("bench", None, Some("openai:bench"), &config);
            let mut n = 0usize;
            while let Some(chunk) = reply.next().await {
                chunk.expect("chunk");
                n += 1;
            }
            assert_eq!(n, CHUNKS);
            engine.push(started.elapsed());

            let started = Instant::now();
            let response = client.post(&url).body("{}").send().await.expect("send");
            let mut bytes = response.bytes_stream();
            while let Some(b) = bytes.next().await {
                b.expect("bytes");
            }
            raw.push(started.elapsed());
        }
        (median(engine), median(raw))
    });

    let per_chunk = |d: Duration| d.as_secs_f64() * 1e6 / CHUNKS as f64;
    println!("chunks per run: {CHUNKS}, rounds: {ROUNDS} (medians)");
    println!(
        "sse decode:  {:>10.0} chunks/s  ({:.3} µs/chunk)",
        CHUNKS as f64 / decode.as_secs_f64(),
        per_chunk(decode)
    );
    println!(
        "engine:      {:>10.0} chunks/s  ({:.3} µs/chunk)",
        CHUNKS as f64 / engine.as_secs_f64(),
        per_chunk(engine)
    );
    println!(
        "raw read:    {:>10.0} chunks/s  ({:.3} µs/chunk)",
        CHUNKS as f64 / raw.as_secs_f64(),
        per_chunk(raw)
    );
    println!(
        "engine work per chunk (engine - raw read): {:.3} µs; ratio engine/raw: {:.2}x",
        per_chunk(engine) - per_chunk(raw),
        engine.as_secs_f64() / raw.as_secs_f64()
    );
}
