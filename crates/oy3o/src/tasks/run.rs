//! Running tasks concurrently, bounded, with per-task events.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use serde_json::json;

use super::handoff::Handoff;
use super::{Task, TaskResult};
use crate::config::{Config, Options, Target};
use crate::error::{Error, ErrorCode};
use crate::event::{Event, Usage};

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
    let models = Arc::new(Models::resolve(&config, &tasks));
    let limit = concurrency(&config);
    let run = Run {
        config,
        models,
        stage: None,
    };
    stream::iter(tasks.into_iter().enumerate())
        .map(move |(index, task)| spawn_task(run.clone(), index, task))
        .buffer_unordered(limit)
        .boxed()
}

/// Runs all tasks and returns every result, in completion order.
pub async fn exec_tasks_once(tasks: Vec<Task>, config: &Config) -> Vec<TaskResult> {
    exec_tasks(tasks, config).collect().await
}

/// The models a batch of tasks names, each resolved once (alias, provider section,
/// environment, credential) before the tasks start: a stage of 100 tasks on one model resolved
/// it 100 times before, ~15,000 instructions each. A model that fails to resolve keeps its
/// error, and each task on it fails with that error as it did.
pub(super) struct Models {
    default: Option<Result<Vec<Target>, Error>>,
    named: HashMap<String, Result<Vec<Target>, Error>>,
}

impl Models {
    /// Resolves every distinct model of `tasks` against `config`.
    pub(super) fn resolve<'a>(config: &Config, tasks: impl IntoIterator<Item = &'a Task>) -> Self {
        let mut models = Self {
            default: None,
            named: HashMap::new(),
        };
        for task in tasks {
            match task.model.as_deref() {
                None if models.default.is_none() => {
                    models.default = Some(config.resolve_all(None));
                }
                Some(name) if !models.named.contains_key(name) => {
                    models
                        .named
                        .insert(name.to_owned(), config.resolve_all(Some(name)));
                }
                _ => {}
            }
        }
        models
    }

    /// The targets of `model` (or the error resolving it), if it was among the tasks given.
    fn get(&self, model: Option<&str>) -> Option<Result<&[Target], &Error>> {
        match model {
            None => self.default.as_ref(),
            Some(name) => self.named.get(name),
        }
        .map(Result::as_deref)
    }
}

/// What every task of one run shares: the config, its resolved models, and in a chain the
/// stage's position and what the stage before handed on.
#[derive(Clone)]
pub(super) struct Run {
    pub(super) config: Arc<Config>,
    pub(super) models: Arc<Models>,
    pub(super) stage: Option<(usize, Arc<Handoff>)>,
}

pub(super) fn concurrency(config: &Config) -> usize {
    config
        .task_concurrency
        .unwrap_or(DEFAULT_CONCURRENCY)
        .max(1)
}

/// Starts [`run_task`] on the runtime's worker threads, so the tasks of a stage render their
/// prompts, send their requests and decode their streams in parallel instead of all on the
/// consumer's task. The returned future aborts the spawned task when dropped, so dropping a
/// task stream still cancels every running task.
pub(super) fn spawn_task(run: Run, index: usize, task: Task) -> SpawnedTask {
    // Shared, not copied: the spawned task reads it, and this handle gets it back whole once
    // the spawned task is done (or keeps it to report a lost one).
    let task = Arc::new(task);
    let place = TaskPlace {
        stage: run.stage.as_ref().map(|(s, _)| *s),
        index,
        model: task.model.clone(),
        reference: run
            .models
            .get(task.model.as_deref())
            .and_then(|targets| targets.ok()?.first().map(|t| t.reference.to_string())),
    };
    SpawnedTask {
        handle: tokio::spawn(PLACE.scope(place, run_task(run, index, task.clone()))),
        index,
        task: Some(task),
    }
}

/// Where the task whose work is running now sits: listeners of a task list or chain call
/// [`current_task`] to tell the events of one task from another's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskPlace {
    /// The stage, in a chain (0-based).
    pub stage: Option<usize>,
    /// The task's position in its list or stage (0-based).
    pub index: usize,
    /// The model as the task names it (`None`: the config's default).
    pub model: Option<String>,
    /// The model reference it resolved to (an alias's first model); `None` if it did not.
    pub reference: Option<String>,
}

tokio::task_local! {
    static PLACE: TaskPlace;
}

/// The task the calling code runs for, when called from a listener (or any code) inside a
/// task of [`exec_tasks`] or [`super::exec_tasks_chain`]; `None` elsewhere.
pub fn current_task() -> Option<TaskPlace> {
    PLACE.try_with(Clone::clone).ok()
}

/// A spawned [`run_task`]: resolves to its result, aborts it when dropped.
pub(super) struct SpawnedTask {
    handle: tokio::task::JoinHandle<Outcome>,
    index: usize,
    task: Option<Arc<Task>>,
}

impl Future for SpawnedTask {
    type Output = TaskResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TaskResult> {
        let joined = std::task::ready!(Pin::new(&mut self.handle).poll(cx));
        let outcome = match joined {
            Ok(outcome) => outcome,
            Err(lost) => {
                if lost.is_panic() {
                    std::panic::resume_unwind(lost.into_panic());
                }
                Outcome {
                    error: Some(Error::new(
                        ErrorCode::Cancelled,
                        "the task was stopped because its runtime shut down",
                    )),
                    ..Outcome::default()
                }
            }
        };
        // A finished spawned task has dropped its future, and its share of the task with it.
        let task = self
            .task
            .take()
            .map(|task| Arc::try_unwrap(task).unwrap_or_else(|shared| (*shared).clone()))
            .unwrap_or_default();
        Poll::Ready(TaskResult {
            index: self.index,
            task,
            response: outcome.response,
            error: outcome.error,
            usage: outcome.usage,
            elapsed: outcome.elapsed,
        })
    }
}

impl Drop for SpawnedTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// What a spawned task sends back; [`SpawnedTask`] adds the task and its index.
#[derive(Default)]
pub(super) struct Outcome {
    response: Option<String>,
    error: Option<Error>,
    usage: Option<Usage>,
    elapsed: std::time::Duration,
}

/// Runs one task: its prompt and context rendered from what the previous stage handed on (in
/// a chain), or as written. A rendering error fails the task.
pub(super) async fn run_task(
    Run {
        config,
        models,
        stage,
    }: Run,
    index: usize,
    task: Arc<Task>,
) -> Outcome {
    let started = Instant::now();
    let position = || {
        json!({
            "stage": stage.as_ref().map(|(s, _)| s),
            "index": index,
            "name": task.label(),
            "model": task.model,
        })
    };
    if config.listeners.wants("task_start") {
        config.listeners.emit(&Event::Other {
            name: "task_start".into(),
            message: position(),
        });
    }
    // Checked now, built at the end: the request leaves first.
    let wants_done = config.listeners.wants("task_done");
    let mut outcome = Outcome::default();
    let limit = config.max_prompt_bytes.unwrap_or(usize::MAX);
    let rendered = match &stage {
        Some((_, handoff)) => handoff.render(&task, limit),
        None if task.prompt.len() + task.context.as_deref().map_or(0, str::len) > limit => {
            Err(super::template::too_large(limit))
        }
        None => Ok((
            Cow::Borrowed(task.prompt.as_str()),
            task.context.as_deref().map(Cow::Borrowed),
        )),
    };
    let rendered = rendered.and_then(|r| match (&task.tools, &task.toolbox) {
        (Some(names), None) if !names.is_empty() => Err(unresolved_tools(names)),
        _ => Ok(r),
    });
    match rendered {
        Err(e) => {
            config.listeners.emit(&Event::Error {
                code: e.code(),
                message: e.message().to_owned(),
            });
            outcome.error = Some(e);
        }
        Ok((prompt, context)) => {
            // A task's answer is only ever read whole: a provider that can ask its API for
            // one whole answer does (one JSON body to decode instead of a stream of events).
            let options = Options {
                temperature: task.temperature,
                max_tokens: task.max_tokens,
                whole: true,
                toolbox: task.toolbox.clone(),
                ..Options::default()
            };
            let model = task.model.as_deref();
            let fresh;
            let targets = match models.get(model) {
                Some(known) => known,
                None => {
                    fresh = config.resolve_all(model);
                    fresh.as_deref()
                }
            };
            let mut reply = crate::exec::exec_on(
                &prompt,
                context.as_deref(),
                targets,
                &config.listeners,
                &options,
            );
            let collect = async {
                while let Some(chunk) = reply.next().await {
                    chunk?;
                }
                Ok::<_, Error>(())
            };
            let result = match task.timeout() {
                Some(limit) => match tokio::time::timeout(limit, collect).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::new(
                        ErrorCode::Timeout,
                        format!(
                            "task {} took longer than its timeout of {limit:.1?}",
                            task.label()
                        ),
                    )),
                },
                None => collect.await,
            };
            outcome.usage = reply.usage().cloned();
            match result {
                Ok(()) => outcome.response = Some(reply.answer().to_owned()),
                Err(e) => outcome.error = Some(e),
            }
        }
    }
    outcome.elapsed = started.elapsed();
    if !wants_done {
        return outcome;
    }
    let mut done = position();
    done["ok"] = json!(outcome.response.is_some());
    done["elapsed_ms"] = json!(outcome.elapsed.as_millis() as u64);
    done["elapsed_us"] = json!(outcome.elapsed.as_micros() as u64);
    done["usage"] = json!(outcome.usage);
    if let Some(e) = &outcome.error {
        done["error"] = json!({ "code": e.code(), "message": e.message() });
    }
    config.listeners.emit(&Event::Other {
        name: "task_done".into(),
        message: done,
    });
    outcome
}

/// The error of a task that names tools no face resolved into its toolbox.
fn unresolved_tools(names: &[String]) -> crate::error::Error {
    crate::error::Error::config(format!(
        "the task names tools ({}) that were not resolved: run the chain from a face that has \
         the config's MCP servers (oy3o chain, the server, oy3opy), or give the task a toolbox",
        names.join(", ")
    ))
}
