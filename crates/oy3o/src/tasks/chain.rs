//! Running a chain: stages in order, tasks of a stage in parallel, answers fed forward.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use serde_json::json;

use super::run::{Models, Run, concurrency, spawn_task};
use super::{Chain, TaskResult, template};
use crate::config::Config;
use crate::error::{Error, ErrorCode, Result};
use crate::event::Event;

/// The results of one stage, in the stage's own task order.
#[derive(Clone, Debug)]
pub struct StageResult {
    /// The stage's position (0-based).
    pub index: usize,
    /// One result per task, in task order.
    pub results: Vec<TaskResult>,
    /// How many tasks failed.
    pub failed: usize,
}

/// The context block a stage hands to the next: `[label]: answer\n[/label]\n` per successful
/// task, in task order.
fn context_block(results: &[TaskResult]) -> String {
    let mut block = String::new();
    for r in results {
        if let Some(answer) = &r.response {
            let label = r.task.label();
            block.push_str(&format!("[{label}]: {answer}\n[/{label}]\n"));
        }
    }
    block
}

/// Runs a chain and yields each stage's results when the stage completes. References are
/// checked before anything runs. A stage whose successes fall below its `min_ok` is yielded,
/// then the chain stops with an error. Dropping the stream cancels every running task.
///
/// ```no_run
/// # async fn demo() -> oy3o::Result<()> {
/// use futures::StreamExt;
/// use oy3o::Task;
/// let chain = oy3o::Chain::from(vec![
///     vec![Task::new(Some("openai:gpt-4o-mini"), "What is Goldbach's conjecture 1+1?"),
///          Task::new(Some("openai:gpt-4o"), "What is Peano's 1+1?")],
///     vec![Task::new(Some("openai:gpt-4o"), "No search: what does 1+1 mean in math?")],
/// ]);
/// let mut stages = oy3o::exec_tasks_chain(chain, &oy3o::Config::default());
/// while let Some(stage) = stages.next().await {
///     for r in stage?.results { println!("{:?}", r.response); }
/// }
/// # Ok(()) }
/// ```
pub fn exec_tasks_chain(chain: Chain, config: &Config) -> BoxStream<'static, Result<StageResult>> {
    let config = Arc::new(config.clone());
    Box::pin(async_stream::try_stream! {
        template::validate(&chain)?;
        let limit = concurrency(&config);
        let models = Arc::new(Models::resolve(
            &config,
            chain.stages.iter().flat_map(|stage| stage.tasks.iter()),
        ));
        let total = chain.stages.len();
        let mut answers: HashMap<String, Option<String>> = HashMap::new();
        let mut previous = String::new();
        for (s, stage) in chain.stages.into_iter().enumerate() {
            let started = Instant::now();
            config.listeners.emit(&Event::Other {
                name: "stage_start".into(),
                message: json!({ "stage": s, "stages": total, "tasks": stage.tasks.len() }),
            });
            let n = stage.tasks.len();
            let run = Run { config: config.clone(), models: models.clone(), stage: Some(s) };
            // Rendered up front (the answers so far are borrowed here), spawned lazily: a task
            // starts only when `buffer_unordered` has a free slot, so the bound holds.
            let jobs: Vec<_> = stage
                .tasks
                .into_iter()
                .enumerate()
                .map(|(i, task)| {
                    let rendered = render(&task, &answers, &previous);
                    (i, task, rendered)
                })
                .collect();
            let mut slots: Vec<Option<TaskResult>> = (0..n).map(|_| None).collect();
            let mut running = stream::iter(jobs)
                .map(|(i, task, rendered)| spawn_task(run.clone(), i, task, rendered))
                .buffer_unordered(limit);
            while let Some(result) = running.next().await {
                let i = result.index;
                slots[i] = Some(result);
            }
            let results: Vec<TaskResult> = slots.into_iter().flatten().collect();
            let failed = results.iter().filter(|r| !r.is_ok()).count();
            for r in &results {
                if let Some(name) = &r.task.name {
                    answers.insert(name.clone(), r.response.clone());
                }
            }
            previous = context_block(&results);
            config.listeners.emit(&Event::Other {
                name: "stage_done".into(),
                message: json!({
                    "stage": s,
                    "stages": total,
                    "failed": failed,
                    "elapsed_ms": started.elapsed().as_millis() as u64,
                    "elapsed_us": started.elapsed().as_micros() as u64,
                    "answers": results.iter().map(|r| json!({
                        "name": r.task.label(), "response": r.response,
                        "error": r.error.as_ref().map(|e| e.message().to_owned()),
                    })).collect::<Vec<_>>(),
                }),
            });
            let ok = n - failed;
            let min_ok = stage.min_ok;
            yield StageResult { index: s, results, failed };
            if let Some(min) = min_ok
                && ok < min
            {
                Err(Error::new(ErrorCode::Provider, format!(
                    "stage {} of {total}: only {ok} of {n} tasks succeeded, {min} needed (min_ok); \
                     the chain stops here",
                    s + 1
                )))?;
            }
        }
    })
}

/// Runs a chain and returns every stage's results.
pub async fn exec_tasks_chain_once(chain: Chain, config: &Config) -> Result<Vec<StageResult>> {
    let mut stages = exec_tasks_chain(chain, config);
    let mut out = Vec::new();
    while let Some(stage) = stages.next().await {
        out.push(stage?);
    }
    Ok(out)
}

/// The prompt and context a task runs with: templates filled in, and the previous stage's
/// answers before its own context unless it placed them itself with `{{previous}}`.
fn render(
    task: &super::Task,
    answers: &HashMap<String, Option<String>>,
    previous: &str,
) -> Result<(String, Option<String>)> {
    let prompt = template::render(&task.prompt, answers, previous)?;
    let own = match &task.context {
        Some(c) => Some(template::render(c, answers, previous)?),
        None => None,
    };
    let placed = [Some(task.prompt.as_str()), task.context.as_deref()]
        .into_iter()
        .flatten()
        .any(|t| template::references(t).contains(&"previous"));
    let context = if placed || previous.is_empty() {
        own
    } else {
        Some(format!("{previous}{}", own.unwrap_or_default()))
    };
    Ok((prompt, context))
}
