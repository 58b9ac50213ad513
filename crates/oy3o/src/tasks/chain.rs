//! Running a chain: stages in order, tasks of a stage in parallel, answers fed forward.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use serde_json::json;

use super::handoff::Handoff;
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

impl StageResult {
    /// The stage as JSON, the one schema every face prints, sends and stores a chain run's
    /// stages in: `index` is 0-based (as in the `stage_start` event), each task's `error` is
    /// `{code, message}` or `null`, and `model` is the task's own model (`null`: the default).
    ///
    /// ```
    /// let stage = oy3o::StageResult { index: 0, results: Vec::new(), failed: 0 };
    /// assert_eq!(stage.to_json()["index"], 0);
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        let results: Vec<serde_json::Value> = self
            .results
            .iter()
            .map(|r| {
                json!({
                    "index": r.index,
                    "name": r.task.name,
                    "model": r.task.model,
                    "prompt": r.task.prompt,
                    "response": r.response,
                    "error": r.error.as_ref().map(|e| json!({"code": e.code(), "message": e.message()})),
                    "usage": r.usage,
                    "elapsed_ms": r.elapsed.as_millis() as u64,
                })
            })
            .collect();
        json!({ "index": self.index, "failed": self.failed, "results": results })
    }
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
        let mut handoff = Arc::new(Handoff::new(template::wanted(&chain)));
        for (s, stage) in chain.stages.into_iter().enumerate() {
            let started = Instant::now();
            if config.listeners.wants("stage_start") {
                config.listeners.emit(&Event::Other {
                    name: "stage_start".into(),
                    message: json!({ "stage": s, "stages": total, "tasks": stage.tasks.len() }),
                });
            }
            let n = stage.tasks.len();
            let mut slots: Vec<Option<TaskResult>> = (0..n).map(|_| None).collect();
            {
                // Each task renders its own prompt and context on a worker from the shared
                // hand-off, and starts only when `buffer_unordered` has a free slot, so the
                // bound holds and the first request leaves before the last task is rendered.
                let run = Run {
                    config: config.clone(),
                    models: models.clone(),
                    stage: Some((s, handoff.clone())),
                };
                let mut running = stream::iter(stage.tasks.into_iter().enumerate())
                    .map(|(i, task)| spawn_task(run.clone(), i, task))
                    .buffer_unordered(limit);
                while let Some(result) = running.next().await {
                    let i = result.index;
                    slots[i] = Some(result);
                }
            }
            let results: Vec<TaskResult> = slots.into_iter().flatten().collect();
            let failed = results.iter().filter(|r| !r.is_ok()).count();
            // Every task of the stage is done and has let go of the hand-off: no copy.
            Arc::make_mut(&mut handoff).absorb(&results);
            if config.listeners.wants("stage_done") {
                let elapsed = started.elapsed();
                config.listeners.emit(&Event::Other {
                    name: "stage_done".into(),
                    message: json!({
                        "stage": s,
                        "stages": total,
                        "failed": failed,
                        "elapsed_ms": elapsed.as_millis() as u64,
                        "elapsed_us": elapsed.as_micros() as u64,
                        "answers": results.iter().map(|r| json!({
                            "name": r.task.label(), "response": r.response,
                            "error": r.error.as_ref().map(|e| e.message().to_owned()),
                        })).collect::<Vec<_>>(),
                    }),
                });
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Task;
    use std::time::Duration;

    #[test]
    fn a_stage_as_json_is_0_based_with_errors_as_code_and_message() {
        let result = |index, error: Option<Error>| TaskResult {
            index,
            task: Task::new(None, "hi"),
            response: error.is_none().then(|| "ok".to_owned()),
            error,
            usage: None,
            elapsed: Duration::from_millis(5),
        };
        let stage = StageResult {
            index: 1,
            results: vec![result(0, None), result(1, Some(Error::network("down")))],
            failed: 1,
        };
        let json = stage.to_json();
        assert_eq!(json["index"], 1);
        assert_eq!(json["failed"], 1);
        assert_eq!(json["results"][0]["response"], "ok");
        assert_eq!(json["results"][0]["error"], serde_json::Value::Null);
        assert_eq!(json["results"][1]["index"], 1);
        assert_eq!(json["results"][1]["error"]["code"], "network");
        assert_eq!(json["results"][1]["error"]["message"], "down");
    }
}
