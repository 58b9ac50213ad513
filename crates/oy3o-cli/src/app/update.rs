//! What the runtime reports to the state (answers streaming in, chains progressing, notes),
//! applied by the pure [`App::apply`]: the runtime only carries updates, the state decides what
//! they change, and the tests check it without a terminal or a model.

use super::state::{App, Kind, Message};

/// What a streaming task (an answer, a chain, a download, the store) reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// Answer text for message `.0`.
    Text(usize, String),
    /// The model's reasoning for message `.0`.
    Reasoning(usize, String),
    /// A tool call or result of the answer in message `.0`, as one line.
    ToolStep(usize, String),
    /// The answer in message `.0` ended, with an error or not.
    Done(usize, Option<String>),
    /// The person stopped the answer in message `.0`.
    Stopped(usize),
    /// One task of the named chain finished.
    TaskDone(String),
    /// A task's result: chain, stage number (1-based), task label, answer or error.
    TaskResult(String, usize, String, Result<String, String>),
    /// The named chain ended, with an error or not.
    TaskEnd(String, Option<String>),
    /// A note for the status bar (a model download's progress, the store's health).
    Notice(String),
    /// The model asked for with `/model` in chat `chat`, checked against the config: taken,
    /// or refused with why.
    Model {
        /// The chat.
        chat: String,
        /// The model asked for.
        model: String,
        /// Why the config refuses it, if it does.
        error: Option<String>,
    },
    /// `/attach PATH` in chat `chat`, loaded by the engine's loader: the part, kept for the
    /// chat's next prompt, or why it cannot be attached.
    Attached {
        /// The chat.
        chat: String,
        /// The file or URL as typed.
        path: String,
        /// The loaded attachment, or the loader's error.
        result: Result<oy3o::Part, String>,
    },
}

impl App {
    /// Applies what the runtime reported.
    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Text(index, text) => self.answer_text(index, &text),
            Update::Reasoning(index, text) => self.answer_reasoning(index, &text),
            Update::ToolStep(index, line) => self.answer_tool_step(index, &line),
            Update::Done(index, error) => self.answer_done(index, error),
            Update::Stopped(index) => self.answer_stopped(index),
            Update::TaskDone(name) => self.task_done(&name),
            Update::TaskResult(name, stage, label, result) => {
                let (kind, body) = match result {
                    Ok(text) => (Kind::Answer, text),
                    Err(e) => (Kind::Error, e),
                };
                let mut m = Message::note(kind, body);
                m.title = format!("{name} stage {stage} [{label}]: {}", m.title);
                self.push(m);
            }
            Update::TaskEnd(name, error) => self.task_end(&name, error),
            Update::Notice(text) => self.notice = Some(text),
            Update::Attached { chat, path, result } => match result {
                Ok(part) => {
                    let note = format!(
                        "attached {path} ({}); sent with the next prompt in {chat}",
                        describe(&part)
                    );
                    if let Some(c) = self.chat_mut(&chat) {
                        c.attached.push(part);
                    }
                    self.push(Message::note(Kind::Info, note));
                }
                Err(e) => self.error(format!("/attach {path}: {e}; nothing attached")),
            },
            Update::Model { chat, model, error } => match error {
                None => {
                    if let Some(c) = self.chat_mut(&chat) {
                        c.model = Some(model.clone());
                    }
                    self.push(Message::note(
                        Kind::Info,
                        format!("{chat} now uses {model}"),
                    ));
                }
                Some(e) => {
                    let keeps = self
                        .chat_mut(&chat)
                        .and_then(|c| c.model.clone())
                        .unwrap_or_else(|| "the default model".into());
                    self.error(format!("/model {model}: {e}; {chat} keeps {keeps}"));
                }
            },
        }
    }
}

/// `image/png, 12.0 KiB` (`image/png, URL` for a URL the model fetches).
fn describe(part: &oy3o::Part) -> String {
    use oy3o::{Part, Source};
    let (mime, source) = match part {
        Part::Image { mime, source }
        | Part::Audio { mime, source }
        | Part::Document { mime, source, .. } => (mime, source),
        other => return other.kind().to_owned(),
    };
    match source {
        Source::Url(_) => format!("{mime}, URL"),
        // Base64: four characters for three bytes.
        Source::Base64(data) => {
            let padding = data.chars().rev().take_while(|c| *c == '=').count();
            let bytes = (data.len() / 4 * 3).saturating_sub(padding);
            if bytes >= 1024 {
                format!("{mime}, {:.1} KiB", bytes as f64 / 1024.0)
            } else {
                format!("{mime}, {bytes} bytes")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::commands::{Effect, run_line};

    /// An app with chat `c` open and prompt `hi` sent: the message the answer streams into.
    fn app_waiting_for_an_answer() -> (App, usize) {
        let mut app = App::new();
        run_line(&mut app, "chat c");
        let message = run_line(&mut app, "hi")
            .into_iter()
            .find_map(|e| match e {
                Effect::Send { message, .. } => Some(message),
                _ => None,
            })
            .expect("a prompt in a chat is sent");
        (app, message)
    }

    #[test]
    fn an_attachment_waits_for_the_next_prompt_and_goes_with_it_once() {
        let mut app = App::new();
        run_line(&mut app, "chat c");
        let effects = run_line(&mut app, "/attach cat.png");
        assert_eq!(
            effects,
            [Effect::Attach {
                chat: "c".into(),
                path: "cat.png".into()
            }]
        );
        let part = oy3o::Part::Image {
            mime: "image/png".into(),
            source: oy3o::Source::Base64("AAAA".into()),
        };
        app.apply(Update::Attached {
            chat: "c".into(),
            path: "cat.png".into(),
            result: Ok(part.clone()),
        });
        let note = &app.messages.last().unwrap().body;
        assert!(
            note.contains("attached cat.png (image/png, 3 bytes)"),
            "{note}"
        );
        app.apply(Update::Attached {
            chat: "c".into(),
            path: "gone.png".into(),
            result: Err("cannot attach gone.png: there is no such file".into()),
        });
        assert!(app.messages.last().unwrap().body.contains("no such file"));
        let sent = |effects: Vec<Effect>| match effects.into_iter().next() {
            Some(Effect::Send { attachments, .. }) => attachments,
            other => panic!("expected a send, got {other:?}"),
        };
        assert_eq!(sent(run_line(&mut app, "what is this?")), [part]);
        assert!(sent(run_line(&mut app, "and now?")).is_empty());
    }

    #[test]
    fn answer_text_streams_into_its_message_until_it_is_done() {
        let (mut app, m) = app_waiting_for_an_answer();
        app.apply(Update::Reasoning(m, "thinking".into()));
        app.apply(Update::Text(m, "Hel".into()));
        app.apply(Update::Text(m, "lo".into()));
        assert!(app.streaming());
        app.apply(Update::Done(m, None));
        app.apply(Update::Text(m, " late".into()));
        let answer = &app.messages[m];
        assert_eq!(answer.body, "Hello");
        assert_eq!(answer.reasoning, "thinking");
        assert!(!answer.streaming && !answer.stopped);
        assert!(!app.streaming());
    }

    #[test]
    fn a_failed_answer_keeps_what_came_and_is_left_out_of_the_conversation() {
        let (mut app, m) = app_waiting_for_an_answer();
        app.apply(Update::Text(m, "part".into()));
        app.apply(Update::Done(m, Some("network down".into())));
        assert!(app.messages[m].stopped);
        assert!(app.messages[m].body.starts_with("part"));
        assert!(app.conversation("c").is_empty());
    }

    #[test]
    fn a_task_result_is_a_titled_message_and_a_notice_goes_to_the_status_bar() {
        let mut app = App::new();
        let before = app.messages.len();
        app.apply(Update::TaskResult(
            "moa".into(),
            2,
            "judge".into(),
            Err("no key".into()),
        ));
        let m = &app.messages[before];
        assert_eq!(m.kind, Kind::Error);
        assert_eq!(m.title, "moa stage 2 [judge]: no key");
        app.apply(Update::Notice("store: writing again".into()));
        assert_eq!(app.notice.as_deref(), Some("store: writing again"));
    }
}
