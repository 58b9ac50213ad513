//! `Stream`: the native side of every streaming call, and the functions that start them.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use serde_json::json;

use crate::conversations;
use crate::convert;
use crate::mcp;
use crate::queue::{Item, Queue};
use crate::runtime::runtime;
use crate::tools::{self, Handoff};

/// A running engine stream. Python takes its items with `take()` (after the socket from
/// `fileno()` turned readable) or `wait(ms)` (blocking, GIL released). `close()` or dropping it
/// cancels the work and the upstream request. An answer with Python tools also yields
/// `("tool", ticket, {"name", "arguments"})` items: Python runs the function and gives the
/// outcome back with `answer(ticket, content, is_error)`.
#[pyclass(module = "oy3opy._native")]
pub struct Stream {
    queue: Arc<Queue>,
    handoff: Option<Arc<Handoff>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Stream {
    /// Starts `produce` on the runtime, feeding a new queue.
    pub fn start<F, Fut>(produce: F) -> PyResult<Stream>
    where
        F: FnOnce(Arc<Queue>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let queue = new_queue()?;
        let work = produce(queue.clone());
        Self::run(queue, None, work)
    }

    /// Sends a turn with `send` and streams its reply. With `tools` (the Python package's tool
    /// definitions as JSON) or `engine_tools` (MCP tools) the turn's options carry a toolbox:
    /// the consumer runs the Python functions' calls, the engine the others.
    /// `controls`: the call's request controls, under the tools.
    pub fn reply(
        tools: Option<&str>,
        engine_tools: Vec<Arc<dyn oy3o::tool_loop::Tool>>,
        controls: oy3o::Options,
        send: impl FnOnce(&oy3o::Options) -> oy3o::Reply,
    ) -> PyResult<Stream> {
        let queue = new_queue()?;
        let (options, handoff) = if tools.is_none() && engine_tools.is_empty() {
            (oy3o::Options::default(), None)
        } else {
            let handoff = Handoff::new(queue.clone());
            let options = tools::specs(tools.unwrap_or("[]"))
                .and_then(|specs| tools::options(&specs, &handoff, engine_tools))
                .map_err(convert::to_py_err)?;
            (options, Some(handoff))
        };
        let reply = send(&controls.overlay(&options));
        let work = Self::feed_reply(queue.clone(), reply);
        Self::run(queue, handoff, work)
    }

    fn run(
        queue: Arc<Queue>,
        handoff: Option<Arc<Handoff>>,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> PyResult<Stream> {
        let rt = runtime()?;
        let q = queue.clone();
        let task = rt.spawn(async move {
            work.await;
            q.finish();
        });
        Ok(Stream {
            queue,
            handoff,
            task: Some(task),
        })
    }

    /// Feeds an engine reply (text and events) into the queue.
    pub async fn feed_reply(queue: Arc<Queue>, reply: oy3o::Reply) {
        let mut outputs = reply.outputs();
        while let Some(item) = outputs.next().await {
            let item: Item = match item {
                Ok(oy3o::Output::Text(t)) => ("text", t, String::new()),
                Ok(oy3o::Output::Event(e)) => convert::event_item(&e),
                Err(e) => convert::error_item(&e),
            };
            queue.push(item).await;
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

    /// Gives the outcome of the tool call `ticket` (a `"tool"` item): its output, or with
    /// `is_error` what went wrong. False when no call waits for it any more (it timed out).
    fn answer(&self, ticket: u64, content: String, is_error: bool) -> bool {
        let outcome = if is_error { Err(content) } else { Ok(content) };
        self.handoff
            .as_ref()
            .is_some_and(|h| h.answer(ticket, outcome))
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

fn new_queue() -> PyResult<Arc<Queue>> {
    Queue::new().map_err(|e| PyOSError::new_err(e.to_string()))
}

/// Whose one-shot prompts these are: the local user.
const LOCAL: &str = "";

/// One-shot prompt: `exec(prompt, context, model, layers, tools)` gives the stream and the
/// model reference it resolved to. A model that does not resolve (unknown, no key) is raised
/// now. `tools`: the Python functions' definitions as JSON, run through the stream;
/// `mcp_tools`: names of the config's MCP servers or tools (`time`, `git.git_status`), resolved
/// now (an unknown one is raised) through the registry shared by calls under the same servers.
#[pyfunction]
#[pyo3(signature = (prompt, context, model, layers, tools=None, mcp_tools=Vec::new(), attachments=Vec::new(), controls=None))]
#[allow(clippy::too_many_arguments)]
pub fn exec(
    py: Python<'_>,
    prompt: String,
    context: Option<String>,
    model: Option<String>,
    layers: Vec<String>,
    tools: Option<String>,
    mcp_tools: Vec<String>,
    attachments: Vec<crate::attach::Raw<'_>>,
    controls: Option<String>,
) -> PyResult<(Stream, String)> {
    let controls = crate::controls::options(controls.as_deref()).map_err(convert::to_py_err)?;
    let config = convert::config(&layers).map_err(convert::to_py_err)?;
    let prompt =
        crate::attach::message(prompt, attachments, &config.attachments.unwrap_or_default())?;
    let engine_tools = if mcp_tools.is_empty() {
        Vec::new()
    } else {
        mcp::resolve(py, &mcp::registry(&config), &mcp_tools)?
    };
    let rt = runtime()?;
    let _entered = rt.enter();
    let opening = oy3o::Opening::one_shot(LOCAL)
        .model(model.as_deref())
        .context(context.as_deref());
    let conversation = conversations::unstored()
        .one_shot(&opening, &config)
        .map_err(convert::to_py_err)?;
    let stream = Stream::reply(tools.as_deref(), engine_tools, controls, |options| {
        conversation.send(prompt, options)
    })?;
    Ok((stream, conversation.model()))
}

/// The names `model`'s per-model settings and listeners are looked up under, most specific
/// first ([`oy3o::Config::lookup_keys`]).
#[pyfunction]
pub fn lookup_keys(model: Option<String>, layers: Vec<String>) -> PyResult<Vec<String>> {
    let config = convert::config(&layers).map_err(convert::to_py_err)?;
    Ok(config.lookup_keys(model.as_deref()))
}

/// Tasks: yields `("task", result_json, "")` in completion order, events as they happen. Tasks
/// naming `tools` get them from the config's shared MCP registry first (an unknown name is
/// raised before any task runs).
#[pyfunction]
pub fn exec_tasks(py: Python<'_>, tasks_json: &str, layers: Vec<String>) -> PyResult<Stream> {
    let mut tasks: Vec<oy3o::Task> = serde_json::from_str(tasks_json)
        .map_err(|e| convert::to_py_err(oy3o::Error::config(format!("invalid task list: {e}"))))?;
    let config = convert::config(&layers).map_err(convert::to_py_err)?;
    mcp::equip(py, &config, tasks.iter_mut())?;
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

/// Chains: yields `("stage", stage_json, "")` per stage, events as they happen. Tasks naming
/// `tools` are equipped as in [`exec_tasks`].
#[pyfunction]
pub fn exec_tasks_chain(py: Python<'_>, chain_json: &str, layers: Vec<String>) -> PyResult<Stream> {
    let stages: Vec<Vec<oy3o::Task>> = serde_json::from_str(chain_json)
        .map_err(|e| convert::to_py_err(oy3o::Error::config(format!("invalid chain: {e}"))))?;
    let config = convert::config(&layers).map_err(convert::to_py_err)?;
    let mut chain = oy3o::Chain::from(stages);
    mcp::equip(py, &config, chain.tasks_mut())?;
    Stream::start(move |queue| async move {
        let config = with_event_forwarding(config, &queue);
        let mut stages = oy3o::exec_tasks_chain(chain, &config);
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

/// Forwards every engine event into the queue (as items, never as Python calls); an event of
/// one task says which (`task_event`, with its stage, index and model), so that Python calls
/// that model's listeners and tells tasks apart.
fn with_event_forwarding(mut config: oy3o::Config, queue: &Arc<Queue>) -> oy3o::Config {
    let q = Arc::downgrade(queue);
    config.listeners.on("*", move |event| {
        let Some(q) = q.upgrade() else { return };
        let item = match oy3o::current_task() {
            Some(place) => {
                let body = json!({
                    "message": event.message(),
                    "stage": place.stage,
                    "index": place.index,
                    "model": place.model,
                    "reference": place.reference,
                });
                ("task_event", event.name().to_owned(), body.to_string())
            }
            None => convert::event_item(event),
        };
        q.push_now(item);
    });
    config
}
