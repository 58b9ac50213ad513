//! `{{name}}` and `{{previous}}` references in chain prompts and contexts.

use std::collections::{HashMap, HashSet};

use super::Chain;
use crate::error::{Error, ErrorCode, Result};

/// The names referenced by `{{...}}` in `text`, trimmed, in order.
pub(super) fn references(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    out
}

/// Checks every reference before anything runs: a name must belong to a task of an earlier
/// stage, and `previous` needs a previous stage.
pub(super) fn validate(chain: &Chain) -> Result<()> {
    let mut known: HashSet<&str> = HashSet::new();
    for (s, stage) in chain.stages.iter().enumerate() {
        for (t, task) in stage.tasks.iter().enumerate() {
            let texts = [Some(task.prompt.as_str()), task.context.as_deref()];
            for reference in texts.into_iter().flatten().flat_map(references) {
                let fine = if reference == "previous" {
                    s > 0
                } else {
                    known.contains(reference)
                };
                if !fine {
                    let why = if reference == "previous" {
                        "the first stage has no previous stage".to_owned()
                    } else {
                        format!("no task of an earlier stage is named {reference:?}")
                    };
                    return Err(Error::config(format!(
                        "stage {}, task {} ({}): unknown reference {{{{{reference}}}}}: {why}",
                        s + 1,
                        t + 1,
                        task.label()
                    )));
                }
            }
        }
        known.extend(stage.tasks.iter().filter_map(|t| t.name.as_deref()));
    }
    Ok(())
}

/// The task names some `{{name}}` of the chain references (not `previous`): the only answers
/// a chain keeps after their stage.
pub(super) fn wanted(chain: &Chain) -> HashSet<String> {
    chain
        .stages
        .iter()
        .flat_map(|stage| stage.tasks.iter())
        .flat_map(|task| [Some(task.prompt.as_str()), task.context.as_deref()])
        .flatten()
        .flat_map(references)
        .filter(|name| *name != "previous")
        .map(str::to_owned)
        .collect()
}

/// The error of a task whose prompt and context would pass `limit` bytes once rendered.
pub(super) fn too_large(limit: usize) -> Error {
    Error::new(
        ErrorCode::BadRequest,
        format!(
            "this task's prompt and context would be more than {limit} bytes once its \
             {{{{references}}}} are filled in (max_prompt_bytes); nothing was sent"
        ),
    )
}

/// Replaces the references in `text`. A reference to a failed answer is an error, and so is
/// a result longer than `limit` bytes (found before it is built: the text never grows past
/// the limit).
pub(super) fn render(
    text: &str,
    answers: &HashMap<String, Option<String>>,
    previous: &str,
    limit: usize,
) -> Result<String> {
    let mut out = String::with_capacity(text.len().min(limit));
    let mut rest = text;
    let push = |out: &mut String, piece: &str| {
        if out.len().saturating_add(piece.len()) > limit {
            return Err(too_large(limit));
        }
        out.push_str(piece);
        Ok(())
    };
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        push(&mut out, &rest[..start])?;
        let name = after[..end].trim();
        if name == "previous" {
            push(&mut out, previous)?;
        } else {
            match answers.get(name) {
                Some(Some(answer)) => push(&mut out, answer)?,
                _ => {
                    return Err(Error::provider(format!(
                        "this task uses the answer of {name:?}, which failed"
                    )));
                }
            }
        }
        rest = &after[end + 2..];
    }
    push(&mut out, rest)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{Stage, Task};

    #[test]
    fn references_are_found_and_trimmed() {
        assert_eq!(references("a {{ x }} b {{previous}} {{"), ["x", "previous"]);
    }

    #[test]
    fn unknown_and_forward_references_are_errors_naming_stage_and_task() {
        let chain = Chain {
            stages: vec![
                Stage::new(vec![Task::new(None, "{{later}}").named("first")]),
                Stage::new(vec![Task::new(None, "x").named("later")]),
            ],
        };
        let msg = validate(&chain).unwrap_err().to_string();
        assert!(msg.contains("stage 1, task 1 (first)"), "{msg}");
        let first_previous = Chain::from(vec![vec![Task::new(None, "{{previous}}")]]);
        assert!(validate(&first_previous).is_err());
    }

    #[test]
    fn wanted_names_every_reference_but_previous() {
        let chain = Chain::from(vec![
            vec![
                Task::new(None, "a").named("a"),
                Task::new(None, "b").named("b"),
            ],
            vec![Task::new(None, "{{a}} {{previous}}").with_context("{{ b }}")],
        ]);
        assert_eq!(
            wanted(&chain),
            HashSet::from(["a".to_owned(), "b".to_owned()])
        );
    }

    #[test]
    fn render_substitutes_answers_and_refuses_failed_ones() {
        let mut answers = HashMap::new();
        answers.insert("a".to_owned(), Some("A!".to_owned()));
        answers.insert("b".to_owned(), None);
        assert_eq!(
            render("x {{a}} {{previous}}", &answers, "P", usize::MAX).unwrap(),
            "x A! P"
        );
        assert!(render("{{b}}", &answers, "", usize::MAX).is_err());
    }

    #[test]
    fn render_stops_at_the_limit_before_building_a_larger_prompt() {
        let mut answers = HashMap::new();
        answers.insert("a".to_owned(), Some("x".repeat(1000)));
        let text = "{{a}}".repeat(4000);
        let e = render(&text, &answers, "", 10_000).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadRequest);
        assert!(e.message().contains("max_prompt_bytes"), "{}", e.message());
        assert_eq!(
            render("{{a}}{{a}}", &answers, "", 2000).unwrap().len(),
            2000
        );
    }
}
