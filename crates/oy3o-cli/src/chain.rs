//! `oy3o chain FILE [--json]`: runs a task chain with live progress on stderr and prints each
//! stage's answers (text, or one JSON line per stage). The run, every task's result with it, is
//! kept in the store (opened meanwhile, so the chain never waits for it). Tasks that name
//! `tools` get them from the config's MCP servers, started before the run and stopped after it.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use oy3o::{Chain, Config, Error, StageResult};
use oy3o_store::{ChainRunRecord, StoreSetting, TurnState};
use serde_json::json;

use crate::progress::ProgressLine;

/// Runs the chain in `file` and records the run in the store `setting` names.
pub async fn run(
    file: &Path,
    as_json: bool,
    config: &Config,
    setting: &StoreSetting,
) -> Result<(), Error> {
    let mut chain = Chain::load(file)?;
    // Unknown tool names fail the command before any task is sent.
    let mcp = oy3o::mcp::McpTools::new(config);
    if let Err(e) = mcp.equip(chain.tasks_mut()).await {
        mcp.close().await;
        return Err(e);
    }
    let recorder = crate::store::recorder(setting, config.prices());
    let mut run = ChainRunRecord {
        id: oy3o_store::new_id(),
        owner: crate::store::LOCAL.to_owned(),
        name: file.display().to_string(),
        result: json!({"stages": []}),
        state: TurnState::Done,
        created_at: oy3o_store::now_ms(),
    };
    let result = stream(chain, as_json, config, &mut run).await;
    mcp.close().await;
    if let Err(e) = &result {
        run.state = if e.code() == oy3o::ErrorCode::Cancelled {
            TurnState::Cancelled
        } else {
            TurnState::Error
        };
        run.result["error"] = json!({"code": e.code(), "message": e.message()});
    }
    if let Some(recorder) = &recorder {
        recorder.save_chain_run(run);
    }
    crate::store::finish(recorder).await;
    result
}

/// Runs the chain, printing each stage and adding it to `run`.
async fn stream(
    chain: Chain,
    as_json: bool,
    config: &Config,
    run: &mut ChainRunRecord,
) -> Result<(), Error> {
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
    let default_model = config
        .model
        .clone()
        .unwrap_or_else(|| oy3o::DEFAULT_MODEL.to_owned());
    let mut stages = oy3o::exec_tasks_chain(chain, &config);
    while let Some(stage) = stages.next().await {
        if let Ok(mut l) = line.lock() {
            l.finish();
        }
        let stage = stage?;
        // One schema for the printed, sent and stored stage (the engine's), with the model a
        // task without one of its own used.
        let mut json = stage.to_json();
        if let Some(results) = json["results"].as_array_mut() {
            for result in results.iter_mut().filter(|r| r["model"].is_null()) {
                result["model"] = json!(default_model);
            }
        }
        if let Some(stages) = run.result["stages"].as_array_mut() {
            stages.push(json.clone());
        }
        if as_json {
            println!("{json}");
        } else {
            print_stage(&stage, total);
        }
    }
    Ok(())
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
