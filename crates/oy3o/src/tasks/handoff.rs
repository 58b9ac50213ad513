//! What a chain stage hands to the next: the answers later stages name, and the context block
//! of the whole stage, shared by every task of the next stage; and the prompt and context each
//! task of it runs with.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::sync::Arc;

use super::{Task, TaskResult, template};
use crate::error::Result;

/// The answers so far, by name (only those a `{{name}}` asks for), and the previous stage's
/// context block. One per stage, behind an `Arc` every task of the stage shares: a task with
/// no context of its own borrows the block instead of copying it.
#[derive(Clone, Debug, Default)]
pub(super) struct Handoff {
    /// Answers of earlier stages that a template names (`None`: that task failed).
    answers: HashMap<String, Option<String>>,
    /// `[label]: answer\n[/label]\n` per successful task of the previous stage.
    previous: Arc<str>,
    /// The names some template references: the only answers worth keeping.
    wanted: Arc<HashSet<String>>,
}

impl Handoff {
    /// An empty hand-off (before the first stage) for a chain whose templates name `wanted`.
    pub(super) fn new(wanted: HashSet<String>) -> Self {
        Self {
            wanted: Arc::new(wanted),
            ..Self::default()
        }
    }

    /// Takes in a finished stage: its named answers that a later template wants, and its
    /// context block.
    pub(super) fn absorb(&mut self, results: &[TaskResult]) {
        for r in results {
            if let Some(name) = &r.task.name
                && self.wanted.contains(name)
            {
                self.answers.insert(name.clone(), r.response.clone());
            }
        }
        self.previous = context_block(results).into();
    }

    /// The prompt and context a task runs with: templates filled in, and the previous stage's
    /// block before its own context unless it placed it itself with `{{previous}}`. Text
    /// without a template is borrowed, and so is the block when the task has no context of
    /// its own. Prompt and context together longer than `limit` bytes are an error, found
    /// before they are built.
    pub(super) fn render<'a>(
        &'a self,
        task: &'a Task,
        limit: usize,
    ) -> Result<(Cow<'a, str>, Option<Cow<'a, str>>)> {
        let fill = |text: &'a str| -> Result<Cow<'a, str>> {
            if text.contains("{{") {
                template::render(text, &self.answers, &self.previous, limit).map(Cow::Owned)
            } else {
                Ok(Cow::Borrowed(text))
            }
        };
        let prompt = fill(&task.prompt)?;
        let own = task.context.as_deref().map(fill).transpose()?;
        let placed = [Some(task.prompt.as_str()), task.context.as_deref()]
            .into_iter()
            .flatten()
            .any(|t| t.contains("{{") && template::references(t).contains(&"previous"));
        let block = if placed { 0 } else { self.previous.len() };
        let own_len = own.as_deref().map_or(0, str::len);
        if prompt.len().saturating_add(own_len).saturating_add(block) > limit {
            return Err(template::too_large(limit));
        }
        let context = if placed || self.previous.is_empty() {
            own
        } else {
            Some(match own {
                None => Cow::Borrowed(&*self.previous),
                Some(own) => Cow::Owned(format!("{}{own}", self.previous)),
            })
        };
        Ok((prompt, context))
    }
}

/// The context block a stage hands to the next: `[label]: answer\n[/label]\n` per successful
/// task, in task order. Labels are unique: a label a task before it had already (two unnamed
/// tasks on one model) gets `#2`, `#3`, ... by its place among them.
fn context_block(results: &[TaskResult]) -> String {
    let size = results
        .iter()
        .filter_map(|r| Some(r.response.as_ref()?.len() + 2 * r.task.label().len() + 12))
        .sum();
    let mut block = String::with_capacity(size);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in results {
        let label = r.task.label();
        let count = seen.entry(label).or_insert(0);
        *count += 1;
        let Some(answer) = &r.response else { continue };
        let label: Cow<'_, str> = match *count {
            1 => Cow::Borrowed(label),
            n => Cow::Owned(format!("{label}#{n}")),
        };
        let _ = write!(block, "[{label}]: {answer}\n[/{label}]\n");
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn result(index: usize, name: &str, response: Option<&str>) -> TaskResult {
        TaskResult {
            index,
            task: Task::new(None, "p").named(name),
            response: response.map(str::to_owned),
            error: response
                .is_none()
                .then(|| Error::provider("the task failed")),
            usage: None,
            elapsed: Default::default(),
        }
    }

    #[test]
    fn two_tasks_with_one_label_get_unique_labels() {
        let unnamed = |index, response: &str| TaskResult {
            task: Task::new(Some("openai:m"), "p"),
            ..result(index, "x", Some(response))
        };
        let block = context_block(&[unnamed(0, "A"), result(1, "b", Some("B")), unnamed(2, "C")]);
        assert_eq!(
            block,
            "[openai:m]: A\n[/openai:m]\n[b]: B\n[/b]\n[openai:m#2]: C\n[/openai:m#2]\n"
        );
    }

    #[test]
    fn the_block_is_shared_by_tasks_without_context_and_prefixed_to_their_own() {
        let mut handoff = Handoff::new(HashSet::from(["a".to_owned()]));
        handoff.absorb(&[
            result(0, "a", Some("A!")),
            result(1, "b", None),
            result(2, "c", Some("C")),
        ]);
        assert_eq!(&*handoff.previous, "[a]: A!\n[/a]\n[c]: C\n[/c]\n");
        assert_eq!(handoff.answers.len(), 1, "only the wanted answer is kept");

        let plain = Task::new(None, "go");
        let (prompt, context) = handoff.render(&plain, usize::MAX).unwrap();
        assert!(matches!(prompt, Cow::Borrowed("go")));
        let Some(Cow::Borrowed(context)) = context else {
            panic!("the block is borrowed, not copied: {context:?}");
        };
        assert!(std::ptr::eq(context, &*handoff.previous));

        let own = Task::new(None, "{{a}}").with_context("mine");
        let (prompt, context) = handoff.render(&own, usize::MAX).unwrap();
        assert_eq!(prompt, "A!");
        assert_eq!(
            context.as_deref(),
            Some("[a]: A!\n[/a]\n[c]: C\n[/c]\nmine")
        );

        let placed = Task::new(None, "x").with_context("<{{previous}}>");
        let (_, context) = handoff.render(&placed, usize::MAX).unwrap();
        assert_eq!(context.as_deref(), Some("<[a]: A!\n[/a]\n[c]: C\n[/c]\n>"));
    }
}
