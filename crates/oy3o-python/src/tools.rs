//! Python functions as engine tools, run on the thread that consumes the answer.
//!
//! The engine's tool loop calls [`Tool::call`] on its runtime; a Python function must not run
//! there (Rust threads never call into Python, see the crate docs). So the call is handed to
//! the consumer: a `("tool", ticket, {"name", "arguments"})` item goes into the answer's
//! [`Queue`], the Python side (iterating, awaiting or blocking on that answer) runs the
//! function between two chunks and gives the outcome back with `Stream.answer(ticket, ...)`.
//! A call whose answer never comes (the stream closed, the consumer gone) ends with the turn:
//! dropping the turn drops the waiting call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::FutureExt;
use futures::future::BoxFuture;
use oy3o::tool_loop::{Tool, Toolbox};
use oy3o::{Options, ToolSpec};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::queue::Queue;

/// What a tool gave back: its output, or what went wrong (the model reads either).
type Outcome = Result<String, String>;

/// Calls waiting for the Python consumer to run them, by ticket.
pub struct Handoff {
    queue: Arc<Queue>,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
    next: AtomicU64,
}

impl Handoff {
    /// A hand-off through `queue`, the answer's queue to Python.
    pub fn new(queue: Arc<Queue>) -> Arc<Self> {
        Arc::new(Self {
            queue,
            waiting: Mutex::default(),
            next: AtomicU64::new(1),
        })
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<Outcome>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the consumer to run `name` on `arguments` and waits for the outcome.
    async fn ask(self: Arc<Self>, name: String, arguments: Value) -> Outcome {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(ticket, tx);
        // Forgets the ticket however this ends (answered, timed out, the turn dropped).
        let _forget = Forget(&self, ticket);
        let body = json!({ "name": name, "arguments": arguments });
        self.queue
            .push(("tool", ticket.to_string(), body.to_string()))
            .await;
        rx.await.unwrap_or_else(|_| {
            Err(format!(
                "the tool {name:?} was not run: its answer's reader stopped"
            ))
        })
    }

    /// Gives the outcome of `ticket`'s call; false when no call waits for it (it timed out or
    /// its turn ended).
    pub fn answer(&self, ticket: u64, outcome: Outcome) -> bool {
        match self.waiting().remove(&ticket) {
            Some(tx) => tx.send(outcome).is_ok(),
            None => false,
        }
    }
}

struct Forget<'a>(&'a Handoff, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.waiting().remove(&self.1);
    }
}

/// A tool whose function is in Python: its calls go through a [`Handoff`].
struct PythonTool {
    spec: ToolSpec,
    handoff: Arc<Handoff>,
}

impl Tool for PythonTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, arguments: Value) -> BoxFuture<'static, Outcome> {
        self.handoff
            .clone()
            .ask(self.spec.name.clone(), arguments)
            .boxed()
    }
}

/// The tool definitions the Python package sends (`[{"name", "description", "parameters"}]`),
/// checked as the engine checks every toolbox.
pub fn specs(json_text: &str) -> oy3o::Result<Vec<ToolSpec>> {
    let specs: Vec<ToolSpec> = serde_json::from_str(json_text)
        .map_err(|e| oy3o::Error::config(format!("invalid tool definitions: {e}")))?;
    let tools = oy3o::Tools {
        specs,
        ..oy3o::Tools::default()
    };
    tools.check()?;
    Ok(tools.specs)
}

/// The options of a turn whose tools are `specs`, run by the consumer through `handoff`, and
/// `engine_tools` (MCP tools), run by the engine. A Python function named like an MCP tool is
/// an error that says which.
pub fn options(
    specs: &[ToolSpec],
    handoff: &Arc<Handoff>,
    engine_tools: Vec<Arc<dyn Tool>>,
) -> oy3o::Result<Options> {
    if let Some(clash) = specs
        .iter()
        .find(|s| engine_tools.iter().any(|t| t.spec().name == s.name))
    {
        return Err(oy3o::Error::config(format!(
            "the Python function tool {:?} has the name of an MCP tool in the same list; \
             rename the function with Tool(function, name='...')",
            clash.name
        )));
    }
    let mut tools: Vec<Arc<dyn Tool>> = specs
        .iter()
        .map(|spec| {
            Arc::new(PythonTool {
                spec: spec.clone(),
                handoff: handoff.clone(),
            }) as Arc<dyn Tool>
        })
        .collect();
    tools.extend(engine_tools);
    Ok(Options {
        toolbox: Some(Arc::new(Toolbox::new(tools)?)),
        ..Options::default()
    })
}
