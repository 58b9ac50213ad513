//! `oy3o chain FILE [--json]`: runs a task chain with live progress on stderr and prints each
//! stage's answers (text, or one JSON line per stage).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use oy3o::{Chain, Config, Error, StageResult};
use serde_json::json;

use crate::progress::ProgressLine;

/// Runs the chain in `file`.
pub async fn run(file: &Path, as_json: bool, config: &Config) -> Result<(), Error> {
    let chain = Chain::load(file)?;
    let total = chain.stages.len();
    let started = Instant::now();
    let line = Arc::new(Mutex::new(ProgressLine::new()));
    let counts = Arc::new(Mutex::new((0usize, 0usize, 0usize))); // stage, done, tasks
    let mut config = config.clone();
    {
        let (line, counts) = (line.clone(), counts.clone());
        config.listeners.on("*", move |event| {
            let (Ok(mut c), Ok(mut l)) = (counts.lock(), line.lock()) else {
                return;
            };
            match event.name() {
                "stage_start" => {
                    let m = event.message();
                    *c = (
                        m["stage"].as_u64().unwrap_or(0) as usize,
                        0,
                        m["tasks"].as_u64().unwrap_or(0) as usize,
                    );
                }
                "task_done" => c.1 += 1,
                _ => return,
            }
            l.status(&format!(
                "stage {}/{total} · {}/{} tasks done · {:.1}s",
                c.0 + 1,
                c.1,
                c.2,
                started.elapsed().as_secs_f64()
            ));
        });
    }
    let mut stages = oy3o::exec_tasks_chain(chain, &config);
    while let Some(stage) = stages.next().await {
        if let Ok(mut l) = line.lock() {
            l.finish();
        }
        let stage = stage?;
        if as_json {
            println!("{}", stage_json(&stage, total));
        } else {
            print_stage(&stage, total);
        }
    }
    Ok(())
}

fn stage_json(stage: &StageResult, total: usize) -> serde_json::Value {
    json!({
        "stage": stage.index + 1,
        "stages": total,
        "failed": stage.failed,
        "results": stage.results.iter().map(|r| json!({
            "name": r.task.name,
            "model": r.task.model,
            "prompt": r.task.prompt,
            "response": r.response,
            "error": r.error.as_ref().map(|e| json!({"code": e.code(), "message": e.message()})),
            "elapsed_ms": r.elapsed.as_millis() as u64,
            "usage": r.usage,
        })).collect::<Vec<_>>(),
    })
}

fn print_stage(stage: &StageResult, total: usize) {
    let failed = if stage.failed > 0 {
        format!(", {} failed", stage.failed)
    } else {
        String::new()
    };
    println!("== stage {}/{total}{failed}", stage.index + 1);
    for r in &stage.results {
        match (&r.response, &r.error) {
            (Some(answer), _) => println!("[{}]\n{}\n", r.task.label(), answer.trim_end()),
            (None, Some(e)) => println!("[{}] failed: {e}\n", r.task.label()),
            (None, None) => {}
        }
    }
}
