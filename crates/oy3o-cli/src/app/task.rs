//! `task NAME`: builds a task chain one question at a time (prompt, model, context; an empty
//! prompt ends the stage; "chain to next tasks? [y/n]"), then hands it to the runtime to run
//! in the background.

/// One task as the user described it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskDraft {
    /// The prompt.
    pub prompt: String,
    /// The model (`None`: the config's default).
    pub model: Option<String>,
    /// The context.
    pub context: Option<String>,
}

/// The question the builder is asking.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Prompt,
    Model,
    Context,
    More,
}

/// A chain being built.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskBuilder {
    /// The chain's name.
    pub name: String,
    stages: Vec<Vec<TaskDraft>>,
    current: Vec<TaskDraft>,
    draft: TaskDraft,
    step: Step,
}

/// What one answer to the builder leads to.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Ask the next question.
    Ask,
    /// The chain is complete: run these stages.
    Run(Vec<Vec<TaskDraft>>),
    /// Nothing to run.
    Cancelled,
    /// The answer was not understood; ask again.
    Invalid(String),
}

impl TaskBuilder {
    /// Starts building chain `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            stages: Vec::new(),
            current: Vec::new(),
            draft: TaskDraft::default(),
            step: Step::Prompt,
        }
    }

    /// The question, shown before the input line.
    pub fn question(&self) -> String {
        let stage = self.stages.len() + 1;
        let task = self.current.len() + 1;
        match self.step {
            Step::Prompt => format!(
                "{} stage {stage} task {task} prompt (Ctrl+D sends; empty ends the stage)> ",
                self.name
            ),
            Step::Model => format!("{} model (empty: default)> ", self.name),
            Step::Context => format!("{} context (empty: none)> ", self.name),
            Step::More => format!("{} chain to next tasks? [y/n]> ", self.name),
        }
    }

    /// Whether the question is a task's prompt, which is written in a multi-line editor:
    /// Enter starts a new line, Ctrl+D sends it (and Enter on an empty prompt ends the stage).
    pub fn asks_prompt(&self) -> bool {
        self.step == Step::Prompt
    }

    /// Takes the answer to the current question.
    pub fn answer(&mut self, line: &str) -> Next {
        let text = line.trim();
        let optional = (!text.is_empty()).then(|| text.to_owned());
        match self.step {
            Step::Prompt if text.is_empty() => {
                if self.current.is_empty() {
                    return if self.stages.is_empty() {
                        Next::Cancelled
                    } else {
                        Next::Run(std::mem::take(&mut self.stages))
                    };
                }
                self.stages.push(std::mem::take(&mut self.current));
                self.step = Step::More;
            }
            Step::Prompt => {
                self.draft.prompt = line.to_owned();
                self.step = Step::Model;
            }
            Step::Model => {
                self.draft.model = optional;
                self.step = Step::Context;
            }
            Step::Context => {
                self.draft.context = optional;
                self.current.push(std::mem::take(&mut self.draft));
                self.step = Step::Prompt;
            }
            Step::More => match text {
                "y" | "Y" | "yes" => self.step = Step::Prompt,
                "n" | "N" | "no" => return Next::Run(std::mem::take(&mut self.stages)),
                _ => return Next::Invalid("answer y or n".into()),
            },
        }
        Next::Ask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_stages_are_built_from_prompts_models_and_contexts() {
        let mut b = TaskBuilder::new("t");
        for line in [
            "What is 1+1?",
            "openai:x",
            "",
            "Name a colour.",
            "",
            "Be brief.",
            "",
        ] {
            assert_eq!(b.answer(line), Next::Ask, "{line}");
        }
        assert!(b.question().contains("[y/n]"));
        assert_eq!(b.answer("maybe"), Next::Invalid("answer y or n".into()));
        assert_eq!(b.answer("y"), Next::Ask);
        assert!(b.question().contains("stage 2 task 1"));
        for line in ["Compare them.", "", "", ""] {
            assert_eq!(b.answer(line), Next::Ask);
        }
        let Next::Run(stages) = b.answer("n") else {
            panic!("expected a chain");
        };
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0].len(), 2);
        assert_eq!(stages[0][0].model.as_deref(), Some("openai:x"));
        assert_eq!(stages[0][1].context.as_deref(), Some("Be brief."));
        assert_eq!(stages[1][0].prompt, "Compare them.");
    }

    #[test]
    fn an_empty_first_prompt_cancels() {
        assert_eq!(TaskBuilder::new("t").answer(""), Next::Cancelled);
    }
}
