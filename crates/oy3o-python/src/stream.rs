//! `Stream`: the native side of every streaming call, and the functions that start them.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde_json::json;

use crate::convert;
use crate::queue::{Item, Queue};
use crate::runtime::runtime;

/// A running engine stream. Python takes its items with `take()` (after the socket from
/// `fileno()` turned readable) or `wait(ms)` (blocking, GIL released). `close()` or dropping it
/// cancels the work and the upstream request.
#[pyclass(module = "oy3opy._native")]
pub struct Stream {
    queue: Arc<Queue>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Stream {
    /// Starts `produce` on the runtime, feeding a new queue.
    pub fn start<F, Fut>(produce: F) -> PyResult<Stream>
    where
        F: FnOnce(Arc<Queue>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let queue = Queue::new().map_err(|e| PyValueError::new_err(e.to_string()))?;
        let rt = runtime()?;
        let work = produce(queue.clone());
        let q = queue.clone();
        let task = rt.spawn(async move {
            work.await;
            q.finish();
        });
        Ok(Stream {
            queue,
            task: Some(task),
        })
    }

    /// Feeds an engine reply (text and events) into the queue.
    pub async fn feed_reply(queue: Arc<Queue>, reply: oy3o::Reply) {
        Self::feed_recorded(queue, reply, None).await;
    }

    /// [`Stream::feed_reply`], recording the turn when `turn` is given (synchronous calls that
    /// never wait for the database; a stream closed early records it `cancelled`).
    pub async fn feed_recorded(
        queue: Arc<Queue>,
        reply: oy3o::Reply,
        turn: Option<oy3o_store::TurnRecorder>,
    ) {
        use oy3o_store::TurnState;
        let mut outputs = reply.outputs();
        while let Some(item) = outputs.next().await {
            let item: Item = match item {
                Ok(oy3o::Output::Text(t)) => {
                    if let Some(turn) = &turn {
                        turn.chunk(&t);
                    }
                    ("text", t, String::new())
                }
                Ok(oy3o::Output::Event(e)) => {
                    if let Some(turn) = &turn {
                        turn.event(&e);
                    }
                    convert::event_item(&e)
                }
                Err(e) => {
                    if let Some(turn) = &turn {
                        let usage = outputs.reply().usage().cloned();
                        turn.finish(TurnState::Error, usage.as_ref(), Some(e.message()));
                    }
                    convert::error_item(&e)
                }
            };
            queue.push(item).await;
        }
        if let Some(turn) = &turn {
            turn.finish(TurnState::Done, outputs.reply().usage(), None);
        }
    }
}

#[pymethods]
impl Stream {
    /// The file descriptor that turns readable when items arrive.
    fn fileno(&self) -> i32 {
        self.queue.fileno()
    }

    /// Every waiting item as `(kind, a, b)`, and whether the stream has ended.
    fn take(&self) -> (Vec<Item>, bool) {
        self.queue.take()
    }

    /// Waits up to `timeout_ms` with the GIL released, then takes.
    fn wait(&self, py: Python<'_>, timeout_ms: u64) -> (Vec<Item>, bool) {
        let queue = self.queue.clone();
        py.detach(move || queue.wait(Duration::from_millis(timeout_ms)));
        self.queue.take()
    }

    /// Stops the work and the upstream request.
    fn close(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.close();
    }
}

/// One-shot prompt: `exec(prompt, context, model, config_json)`.
#[pyfunction]
#[pyo3(signature = (prompt, context, model, config_json))]
pub fn exec(
    prompt: String,
    context: Option<String>,
    model: Option<String>,
    config_json: &str,
) -> PyResult<Stream> {
    let config = convert::config(config_json).map_err(convert::to_py_err)?;
    Stream::start(move |queue| async move {
        let reply = oy3o::exec(&prompt, context.as_deref(), model.as_deref(), &config);
        Stream::feed_reply(queue, reply).await;
    })
}

/// Tasks: yields `("task", result_json, "")` in completion order, events as they happen.
#[pyfunction]
pub fn exec_tasks(tasks_json: &str, config_json: &str) -> PyResult<Stream> {
    let tasks: Vec<oy3o::Task> = serde_json::from_str(tasks_json)
        .map_err(|e| PyValueError::new_err(format!("invalid task list: {e}")))?;
    let config = convert::config(config_json).map_err(convert::to_py_err)?;
    Stream::start(move |queue| async move {
        let config = with_event_forwarding(config, &queue);
        let mut results = oy3o::exec_tasks(tasks, &config);
        while let Some(r) = results.next().await {
            queue
                .push(("task", convert::task_result(&r).to_string(), String::new()))
                .await;
        }
    })
}

/// Chains: yields `("stage", stage_json, "")` per stage, events as they happen.
#[pyfunction]
pub fn exec_tasks_chain(chain_json: &str, config_json: &str) -> PyResult<Stream> {
    let stages: Vec<Vec<oy3o::Task>> = serde_json::from_str(chain_json)
        .map_err(|e| PyValueError::new_err(format!("invalid chain: {e}")))?;
    let config = convert::config(config_json).map_err(convert::to_py_err)?;
    Stream::start(move |queue| async move {
        let config = with_event_forwarding(config, &queue);
        let mut stages = oy3o::exec_tasks_chain(oy3o::Chain::from(stages), &config);
        while let Some(stage) = stages.next().await {
            let item = match stage {
                Ok(s) => {
                    let results: Vec<_> = s.results.iter().map(convert::task_result).collect();
                    let body = json!({ "index": s.index, "failed": s.failed, "results": results });
                    ("stage", body.to_string(), String::new())
                }
                Err(e) => convert::error_item(&e),
            };
            queue.push(item).await;
        }
    })
}

/// Forwards every engine event into the queue (as items, never as Python calls).
fn with_event_forwarding(mut config: oy3o::Config, queue: &Arc<Queue>) -> oy3o::Config {
    let q = Arc::downgrade(queue);
    config.listeners.on("*", move |event| {
        if let Some(q) = q.upgrade() {
            q.push_now(convert::event_item(event));
        }
    });
    config
}
