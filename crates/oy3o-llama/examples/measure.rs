//! Measures load time, prompt and generation speed and peak memory on one model.
//!
//! ```text
//! cargo run --release -p oy3o-llama --example measure -- [MODEL_OR_NAME] [RUNS] [CONTEXT_TOKENS]
//! ```
//! MODEL_OR_NAME defaults to `smollm2` (pulled into the default cache directory if needed),
//! RUNS to 3, CONTEXT_TOKENS to the runtime's default.

use std::time::Instant;

use oy3o_llama::{ChatMessage, GenerateOptions, Piece, Runtime, RuntimeOptions, Stats};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args.next().unwrap_or_else(|| "smollm2".into());
    let runs: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(3);
    let mut options = RuntimeOptions::default();
    if let Some(n) = args.next().and_then(|n| n.parse().ok()) {
        options.context_tokens = n;
    }
    let dir = oy3o_llama::default_cache_dir().ok_or("no cache directory")?;
    let path = oy3o_llama::ensure_model(&model, &dir, &mut |_| {}).await?;

    let mut results = Vec::new();
    for run in 0..runs {
        // A fresh runtime each run, so every run loads the model and reads the whole prompt.
        let runtime = Runtime::new(options)?;
        let started = Instant::now();
        let mut pieces = runtime.generate(
            &path,
            vec![ChatMessage::user(
                "Explain in a few paragraphs why the sky is blue, for a curious child.",
            )],
            GenerateOptions {
                max_tokens: Some(256),
                ..GenerateOptions::default()
            },
        );
        let mut answer = String::new();
        let mut stats: Option<Stats> = None;
        while let Some(piece) = pieces.recv().await {
            match piece? {
                Piece::Text(t) => answer.push_str(&t),
                Piece::Done(s) => stats = Some(s),
                // No tools are offered here.
                Piece::ToolCall(_) => {}
            }
        }
        let s = stats.ok_or("no stats")?;
        let prompt_tps = f64::from(s.prompt_tokens) * 1000.0 / s.prompt_ms.max(1) as f64;
        let gen_tps = f64::from(s.completion_tokens) * 1000.0 / s.generation_ms.max(1) as f64;
        println!(
            "run {run}: load {} ms, prompt {} tok in {} ms ({prompt_tps:.0} tok/s), generation {} tok in {} ms ({gen_tps:.1} tok/s), total {:?}",
            s.load_ms,
            s.prompt_tokens,
            s.prompt_ms,
            s.completion_tokens,
            s.generation_ms,
            started.elapsed()
        );
        if run == 0 {
            println!("answer: {}", answer.replace('\n', " "));
        }
        results.push((s.load_ms, prompt_tps, gen_tps));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "median of {runs}: load {:.0} ms, prompt {:.0} tok/s, generation {:.1} tok/s, threads {}",
        median(results.iter().map(|r| r.0 as f64).collect()),
        median(results.iter().map(|r| r.1).collect()),
        median(results.iter().map(|r| r.2).collect()),
        Runtime::new(RuntimeOptions::default())?.threads(),
    );
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status
            .lines()
            .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
        {
            println!("{line}");
        }
    }
    Ok(())
}
