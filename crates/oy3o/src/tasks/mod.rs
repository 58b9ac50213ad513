//! Tasks and task chains: prompts run in parallel, possibly on different models, whose answers
//! become the context of the next stage.
//!
//! - [`exec_tasks`] runs tasks concurrently (bounded) and yields results in completion order.
//! - [`exec_tasks_chain`] runs stages in order, the tasks of a stage in parallel, and passes each
//!   stage's answers to every task of the next as `[label]: answer\n[/label]\n` (label = the
//!   task's name, else its model; a repeated label gets `#2`, `#3`...), before the task's own context.
//! - Templates: `{{name}}` is an earlier task's answer, `{{previous}}` the whole previous stage.
//! - Chain files: [`Chain::load`] (TOML `[[stage]]` of `[[stage.task]]`, or JSON).

mod chain;
mod file;
mod handoff;
mod run;
mod template;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::event::Usage;

pub use chain::{StageResult, exec_tasks_chain, exec_tasks_chain_once};
pub use run::{DEFAULT_CONCURRENCY, TaskPlace, current_task, exec_tasks, exec_tasks_once};

/// One prompt to run: `{model, prompt, context?, name?}` plus per-task options.
///
/// ```
/// let task: oy3o::Task = serde_json::from_str(r#"{"model": "openai:gpt-4o-mini", "prompt": "What is 1+1?"}"#).unwrap();
/// assert_eq!(task.label(), "openai:gpt-4o-mini");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// The model; `None` uses the config's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The prompt (may hold `{{name}}` / `{{previous}}` in a chain).
    pub prompt: String,
    /// The task's own context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// A name: the label of its answer in the next stage, and its template reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sampling temperature for this task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Answer length limit for this task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Give up on this task after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// Tools the model may call while answering, by name (`time`: every tool of the MCP server
    /// `time`; `time.get_current_time`: one), run by the engine. A face gives the task its
    /// [`Task::toolbox`] from these names (`oy3o::mcp::McpTools::equip`) before the chain runs;
    /// a task whose names were not resolved fails saying so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// The tools of [`Task::tools`], resolved.
    #[serde(skip)]
    pub toolbox: Option<std::sync::Arc<crate::tool_loop::Toolbox>>,
}

impl Task {
    /// A task with a prompt for a model.
    pub fn new(model: Option<&str>, prompt: impl Into<String>) -> Self {
        Self {
            model: model.map(str::to_owned),
            prompt: prompt.into(),
            ..Self::default()
        }
    }

    /// Sets the name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the context.
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// The label of its answer: the name, else the model, else `default`.
    pub fn label(&self) -> &str {
        self.name
            .as_deref()
            .or(self.model.as_deref())
            .unwrap_or("default")
    }

    /// The task's time limit; a value too large for a [`Duration`] means no limit (a client
    /// sending `1e20` must not panic a worker).
    fn timeout(&self) -> Option<Duration> {
        self.timeout
            .filter(|s| s.is_finite() && *s > 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
    }
}

/// What became of one task.
#[derive(Clone, Debug)]
pub struct TaskResult {
    /// The task's position in its list or stage.
    pub index: usize,
    /// The task as given.
    pub task: Task,
    /// The answer, when it succeeded.
    pub response: Option<String>,
    /// The failure, when it failed.
    pub error: Option<Error>,
    /// Token counts, when the provider sent them.
    pub usage: Option<Usage>,
    /// How long it took.
    pub elapsed: Duration,
}

impl TaskResult {
    /// True when the task produced an answer.
    pub fn is_ok(&self) -> bool {
        self.response.is_some()
    }
}

/// One stage of a chain: tasks run in parallel, and an optional quorum.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// The tasks.
    #[serde(rename = "task", default)]
    pub tasks: Vec<Task>,
    /// The chain stops with an error if fewer than this many tasks succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ok: Option<usize>,
}

impl Stage {
    /// A stage of these tasks, no quorum.
    pub fn new(tasks: Vec<Task>) -> Self {
        Self {
            tasks,
            min_ok: None,
        }
    }
}

/// Stages run in order; each stage's answers feed the next.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Chain {
    /// The stages.
    #[serde(rename = "stage", default)]
    pub stages: Vec<Stage>,
}

impl Chain {
    /// Every task of every stage, to change in place (for example to give them their
    /// toolboxes: `oy3o::mcp::McpTools::equip`).
    pub fn tasks_mut(&mut self) -> impl Iterator<Item = &mut Task> {
        self.stages.iter_mut().flat_map(|s| s.tasks.iter_mut())
    }
}

impl From<Vec<Vec<Task>>> for Chain {
    fn from(stages: Vec<Vec<Task>>) -> Self {
        Self {
            stages: stages.into_iter().map(Stage::new).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_task_timeout_is_no_limit_not_a_panic() {
        let mut task = Task::new(None, "x");
        for (given, limit) in [
            (1e20, None),
            (f64::MAX, None),
            (f64::INFINITY, None),
            (-1.0, None),
            (1.5, Some(Duration::from_millis(1500))),
        ] {
            task.timeout = Some(given);
            assert_eq!(task.timeout(), limit, "{given}");
        }
    }
}
