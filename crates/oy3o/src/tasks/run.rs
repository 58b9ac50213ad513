//! Running tasks concurrently, bounded, with per-task events.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use serde_json::json;

use super::{Task, TaskResult};
use crate::config::{Config, Options};
use crate::error::{Error, ErrorCode};
use crate::event::Event;

/// How many tasks run at once unless `Config::task_concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Runs `tasks` concurrently (at most `config.task_concurrency`, default 16) and yields each
/// result as it completes. A failed task yields its result with the error (and fires `error`);
/// it never stops the others. Dropping the stream cancels every running task.
///
/// ```no_run
/// # async fn demo() {
/// use futures::StreamExt;
/// let tasks = vec![
///     oy3o::Task::new(Some("openai:gpt-4o-mini"), "What is Goldbach's conjecture?"),
///     oy3o::Task::new(Some("openai:gpt-4o"), "What are the Peano axioms?"),
/// ];
/// let mut results = oy3o::exec_tasks(tasks, &oy3o::Config::default());
/// while let Some(r) = results.next().await {
///     println!("{}: {:?}", r.task.label(), r.response);
/// }
/// # }
/// ```
pub fn exec_tasks(tasks: Vec<Task>, config: &Config) -> BoxStream<'static, TaskResult> {
    let config = Arc::new(config.clone());
    let limit = concurrency(&config);
    stream::iter(tasks.into_iter().enumerate())
        .map(move |(index, task)| {
            let prompt = task.prompt.clone();
            let context = task.context.clone();
            run_task(config.clone(), None, index, task, Ok((prompt, context)))
        })
        .buffer_unordered(limit)
        .boxed()
}

/// Runs all tasks and returns every result, in completion order.
pub async fn exec_tasks_once(tasks: Vec<Task>, config: &Config) -> Vec<TaskResult> {
    exec_tasks(tasks, config).collect().await
}

pub(super) fn concurrency(config: &Config) -> usize {
    config
        .task_concurrency
        .unwrap_or(DEFAULT_CONCURRENCY)
        .max(1)
}

/// Runs one task with its (already rendered) prompt and context, or fails it with the
/// rendering error.
pub(super) async fn run_task(
    config: Arc<Config>,
    stage: Option<usize>,
    index: usize,
    task: Task,
    rendered: Result<(String, Option<String>), Error>,
) -> TaskResult {
    let started = Instant::now();
    let label = task.label().to_owned();
    let position = json!({ "stage": stage, "index": index, "name": label, "model": task.model });
    config.listeners.emit(&Event::Other {
        name: "task_start".into(),
        message: position.clone(),
    });
    let mut result = TaskResult {
        index,
        task,
        response: None,
        error: None,
        usage: None,
        elapsed: Default::default(),
    };
    match rendered {
        Err(e) => {
            config.listeners.emit(&Event::Error {
                code: e.code(),
                message: e.message().to_owned(),
            });
            result.error = Some(e);
        }
        Ok((prompt, context)) => {
            let options = Options {
                temperature: result.task.temperature,
                max_tokens: result.task.max_tokens,
                ..Options::default()
            };
            let call = if options == Options::default() {
                config.clone()
            } else {
                Arc::new(config.overlay(&Config {
                    options,
                    ..Config::default()
                }))
            };
            let mut reply = crate::exec(
                &prompt,
                context.as_deref(),
                result.task.model.as_deref(),
                &call,
            );
            let collect = async {
                while let Some(chunk) = reply.next().await {
                    chunk?;
                }
                Ok::<_, Error>(())
            };
            let outcome = match result.task.timeout() {
                Some(limit) => match tokio::time::timeout(limit, collect).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::new(
                        ErrorCode::Timeout,
                        format!("task {label} took longer than its timeout of {limit:.1?}"),
                    )),
                },
                None => collect.await,
            };
            result.usage = reply.usage().cloned();
            match outcome {
                Ok(()) => result.response = Some(reply.answer().to_owned()),
                Err(e) => result.error = Some(e),
            }
        }
    }
    result.elapsed = started.elapsed();
    let mut done = position;
    done["ok"] = json!(result.is_ok());
    done["elapsed_ms"] = json!(result.elapsed.as_millis() as u64);
    done["usage"] = json!(result.usage);
    if let Some(e) = &result.error {
        done["error"] = json!({ "code": e.code(), "message": e.message() });
    }
    config.listeners.emit(&Event::Other {
        name: "task_done".into(),
        message: done,
    });
    result
}
