//! Chain files: TOML (`[[stage]]` of `[[stage.task]]`) or JSON (`{"stage": [...]}` or the
//! original library's list of lists). Errors name the file, the stage and the task.

use std::path::Path;

use serde::Deserialize;

use super::{Chain, Stage, Task, template};
use crate::error::{Error, Result};

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonChain {
    Lists(Vec<Vec<Task>>),
    Stages(Chain),
}

impl Chain {
    /// Loads and validates a chain file (TOML, or JSON by extension or a leading `[`/`{`).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("oy3o-doc-chain");
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("chain.toml");
    /// std::fs::write(&path, r#"
    /// [[stage]]
    /// [[stage.task]]
    /// name = "idea"
    /// prompt = "Name a color."
    /// [[stage]]
    /// [[stage.task]]
    /// prompt = "Write a haiku about {{idea}}."
    /// "#).unwrap();
    /// let chain = oy3o::Chain::load(&path).unwrap();
    /// assert_eq!(chain.stages.len(), 2);
    /// ```
    pub fn load(path: &Path) -> Result<Chain> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read chain file {}: {e}", path.display()))
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates chain text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Chain> {
        let is_json = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => true,
            Some("toml") => false,
            _ => looks_like_json(text),
        };
        use crate::config::{Syntax, parse};
        let chain = if is_json {
            match parse::<JsonChain>(text, path, Syntax::Json, "chain file", describe_path)? {
                JsonChain::Lists(lists) => Chain::from(lists),
                JsonChain::Stages(chain) => chain,
            }
        } else {
            parse(text, path, Syntax::Toml, "chain file", describe_path)?
        };
        validate(&chain).map_err(|e| {
            Error::config(format!("chain file {}: {}", path.display(), e.message()))
        })?;
        Ok(chain)
    }
}

/// `{...}`, or a JSON list (`[[{`, `[]`), as opposed to a TOML `[[stage]]` header.
fn looks_like_json(text: &str) -> bool {
    let mut chars = text.chars().filter(|c| !c.is_whitespace());
    match (chars.next(), chars.next(), chars.next()) {
        (Some('{'), _, _) => true,
        (Some('['), Some(']'), _) => true,
        (Some('['), Some('['), third) => matches!(third, Some('{') | Some(']')),
        _ => false,
    }
}

/// Checks the shape (no empty chain, stage or prompt; a reachable quorum) and the templates.
pub(super) fn validate(chain: &Chain) -> Result<()> {
    if chain.stages.is_empty() {
        return Err(Error::config(
            "the chain has no stages; add a [[stage]] with tasks",
        ));
    }
    for (s, Stage { tasks, min_ok }) in chain.stages.iter().enumerate() {
        if tasks.is_empty() {
            return Err(Error::config(format!("stage {} has no tasks", s + 1)));
        }
        for (t, task) in tasks.iter().enumerate() {
            if task.prompt.trim().is_empty() {
                return Err(Error::config(format!(
                    "stage {}, task {} ({}): the prompt is empty",
                    s + 1,
                    t + 1,
                    task.label()
                )));
            }
        }
        if let Some(min) = min_ok
            && *min > tasks.len()
        {
            return Err(Error::config(format!(
                "stage {}: min_ok is {min} but the stage has only {} tasks",
                s + 1,
                tasks.len()
            )));
        }
    }
    template::validate(chain)
}

/// `stage[1].task[0].prompt` → `, stage 2, task 1, key prompt`.
fn describe_path(path: &str) -> String {
    let mut out = String::new();
    for part in path.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        match (name, index) {
            ("stage" | "task", Some(i)) => out.push_str(&format!(", {name} {}", i + 1)),
            ("", Some(i)) if out.is_empty() => out.push_str(&format!(", stage {}", i + 1)),
            ("", Some(i)) => out.push_str(&format!(", task {}", i + 1)),
            ("?" | "." | "", None) => {}
            (key, _) => out.push_str(&format!(", key {key}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, name: &str) -> Result<Chain> {
        Chain::parse(text, Path::new(name))
    }

    #[test]
    fn the_original_list_of_lists_json_loads() {
        let c = parse(
            r#"[[{"model":"bing","prompt":"a"},{"model":"bing","prompt":"b"}],[{"model":"bing","prompt":"c"}]]"#,
            "c.json",
        )
        .unwrap();
        assert_eq!(c.stages.len(), 2);
        assert_eq!(c.stages[0].tasks[1].prompt, "b");
    }

    #[test]
    fn a_bad_field_names_file_stage_task_and_key() {
        let msg = parse(
            "[[stage]]\n[[stage.task]]\nprompt = \"a\"\n[[stage]]\n[[stage.task]]\nprompt = \"b\"\ntemperture = 1\n",
            "bad.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("bad.toml"), "{msg}");
        assert!(msg.contains("stage 2, task 1"), "{msg}");
        assert!(msg.contains("temperture"), "{msg}");
    }

    #[test]
    fn empty_prompts_stages_and_unreachable_quorums_are_refused() {
        assert!(
            parse("[[stage]]\n[[stage.task]]\nprompt = \" \"\n", "a.toml")
                .unwrap_err()
                .to_string()
                .contains("stage 1, task 1")
        );
        assert!(
            parse("[[stage]]\n", "b.toml")
                .unwrap_err()
                .to_string()
                .contains("no tasks")
        );
        assert!(
            parse(
                "[[stage]]\nmin_ok = 3\n[[stage.task]]\nprompt = \"x\"\n",
                "c.toml"
            )
            .unwrap_err()
            .to_string()
            .contains("min_ok")
        );
        assert!(
            parse("[]", "d.json")
                .unwrap_err()
                .to_string()
                .contains("no stages")
        );
    }

    #[test]
    fn json_with_a_missing_prompt_names_the_stage_and_task() {
        let msg = parse(r#"{"stage":[{"task":[{"model":"openai:x"}]}]}"#, "m.json")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("m.json"), "{msg}");
    }
}
