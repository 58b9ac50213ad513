//! Streaming cost of the engine, side by side with a plain byte read of the same stream.
//!
//! 1. `sse decode`: the SSE decoder alone over an in-memory OpenAI stream (chunks/s).
//! 2. `engine`: `oy3o::exec` against the test kit's OpenAI server on a real socket, through
//!    transport, SSE decoding, chunk mapping, history and the reply stream.
//! 3. `raw read`: the same response read with reqwest and thrown away (the floor).
//! 4. `decode+map`, one row per wire format: the test kit's stream of each provider, held in
//!    memory and fed in network-sized reads through the provider's own decoding and mapping
//!    (`providers::*::replay`), to the deltas the reply stream consumes.
//!
//! Engine work per chunk = (engine - raw read) / chunks. Run: `scripts/bench`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use oy3o::providers::{anthropic, gemini, ollama, openai as openai_provider};
use oy3o::transport::sse::SseDecoder;
use oy3o::{Config, Credential, ProviderSettings};
use oy3o_testkit::{FakeServer, openai};

const CHUNKS: usize = 20_000;
const ROUNDS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A provider's in-memory decoding and mapping (`providers::*::replay`).
type Replay = fn(Vec<Bytes>) -> oy3o::provider::DeltaStream;

/// A whole answer body in reads of `size` bytes.
fn reads(body: &str, size: usize) -> Vec<Bytes> {
    let body = Bytes::from(body.to_owned());
    (0..body.len())
        .step_by(size)
        .map(|start| body.slice(start..(start + size).min(body.len())))
        .collect()
}

/// Median time to decode and map `body` with `replay`, checking every piece arrives.
fn decode_and_map(body: &str, replay: fn(Vec<Bytes>) -> oy3o::provider::DeltaStream) -> Duration {
    let chunks = reads(body, 1400);
    median(
        (0..ROUNDS)
            .map(|_| {
                let chunks = chunks.clone();
                let started = Instant::now();
                let texts = futures::executor::block_on(async {
                    let mut deltas = replay(chunks);
                    let mut texts = 0usize;
                    while let Some(delta) = deltas.next().await {
                        if let oy3o::provider::Delta::Text(_) = delta.expect("delta") {
                            texts += 1;
                        }
                    }
                    texts
                });
                let elapsed = started.elapsed();
                assert_eq!(texts, CHUNKS);
                elapsed
            })
            .collect(),
    )
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
    let formats: [(&str, String, Replay); 5] = [
        ("openai chat", body.clone(), openai_provider::replay),
        (
            "openai responses",
            oy3o_testkit::responses::answer(&pieces).body_text(),
            openai_provider::replay_responses,
        ),
        (
            "anthropic",
            oy3o_testkit::anthropic::answer(&pieces).body_text(),
            anthropic::replay,
        ),
        (
            "gemini",
            oy3o_testkit::gemini::answer(&pieces).body_text(),
            gemini::replay,
        ),
        (
            "ollama",
            oy3o_testkit::ollama::answer(&pieces).body_text(),
            ollama::replay,
        ),
    ];
    let decoded: Vec<(&str, usize, Duration)> = formats
        .iter()
        .map(|(name, text, replay)| (*name, text.len() / CHUNKS, decode_and_map(text, *replay)))
        .collect();

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
    println!("decode+map in memory, 1,400-byte reads:");
    for (name, bytes, time) in decoded {
        println!(
            "  {name:<17} {bytes:>4} B/chunk  {:>10.0} chunks/s  ({:.3} µs/chunk)",
            CHUNKS as f64 / time.as_secs_f64(),
            per_chunk(time)
        );
    }
}
