//! The app's state: the message flow, the chats, the input line and its history, and what the
//! screen shows. Everything the app does changes this state; drawing only reads it.

use serde::{Deserialize, Serialize};

use super::editor::Editor;
use super::session_config::SessionConfig;
use super::task::TaskBuilder;

/// What kind of message a flow entry is; it decides its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Help text.
    Help,
    /// A note from the app.
    Info,
    /// Something went wrong (shown in red).
    Error,
    /// A prompt the user sent to a chat.
    Prompt,
    /// A model's answer.
    Answer,
}

/// One numbered entry of the message flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// What it is.
    pub kind: Kind,
    /// The one line the flow shows for it.
    pub title: String,
    /// The full text (`view NUM`).
    pub body: String,
    /// The chat it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<String>,
    /// Whether the flow shows the body under the title (prompts and answers) or the title only.
    #[serde(default)]
    pub expanded: bool,
    /// An answer still streaming.
    #[serde(default)]
    pub streaming: bool,
    /// The model's reasoning before its answer, when it shows it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reasoning: String,
    /// The tool calls and results of an answer, one line each (`→ name {…}`, `← name (12 ms): …`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_steps: Vec<String>,
    /// An answer that ended early (stopped, failed, or saved while streaming): it is shown but
    /// is not part of the chat's conversation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

impl Message {
    /// A one-line note.
    pub fn note(kind: Kind, text: impl Into<String>) -> Self {
        let text = text.into();
        Self {
            kind,
            title: first_line(&text),
            body: text,
            chat: None,
            expanded: false,
            streaming: false,
            reasoning: String::new(),
            tool_steps: Vec::new(),
            stopped: false,
        }
    }
}

/// A chat the user opened with `chat NAME [MODEL]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatInfo {
    /// Its name.
    pub name: String,
    /// The model asked for (`None`: the config's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The context set with `/context`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The MCP tools set with `/tools` (servers or `server.tool`), given to its next prompts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Attachments added with `/attach`, sent with the next prompt.
    #[serde(skip)]
    pub attached: Vec<oy3o::Part>,
    /// Answers still streaming.
    #[serde(skip)]
    pub running: usize,
}

/// A task chain started with `task NAME`.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskInfo {
    /// Its name.
    pub name: String,
    /// Tasks finished so far.
    pub done: usize,
    /// Tasks in all its stages.
    pub total: usize,
    /// Still running.
    pub running: bool,
}

/// What the main area shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Screen {
    /// The message flow with the input line.
    Flow,
    /// One message in full, scrolled by `scroll` lines.
    View {
        /// The message number.
        index: usize,
        /// Lines scrolled past.
        scroll: u16,
    },
    /// A message's JSON in the editor (`edit NUM`).
    Edit {
        /// The message number.
        index: usize,
        /// The JSON being edited.
        editor: Editor,
    },
}

/// The whole app state.
#[derive(Clone, Debug)]
pub struct App {
    /// The message flow; a message's number is its index.
    pub messages: Vec<Message>,
    /// Open chats, in the order they were opened.
    pub chats: Vec<ChatInfo>,
    /// Task chains started, in order.
    pub tasks: Vec<TaskInfo>,
    /// The chain being built with `task NAME`, which the input line answers.
    pub builder: Option<TaskBuilder>,
    /// The chat the input line talks to, if any.
    pub current: Option<String>,
    /// The input line.
    pub input: Editor,
    /// Lines entered before, oldest first.
    pub history: Vec<String>,
    /// Where Up/Down is in the history (`None`: at the live line).
    pub history_pos: Option<usize>,
    /// The line being typed before browsing the history.
    pub history_draft: String,
    /// What the screen shows.
    pub screen: Screen,
    /// Flow lines scrolled up from the bottom.
    pub flow_scroll: u16,
    /// The app should end.
    pub quit: bool,
    /// A short note in the status bar (e.g. "copied").
    pub notice: Option<String>,
    /// The config in use, as `save` keeps it (no secrets).
    pub config: SessionConfig,
}

/// The note a chat opens with: each line is a prompt to `model` (named once known).
pub fn open_note(name: &str, model: Option<&str>) -> String {
    match model {
        Some(model) => format!("chat {name} ({model}): each line is a prompt; /back leaves"),
        None => format!("chat {name}: each line is a prompt; /back leaves"),
    }
}

/// How an answer the person stopped ends.
const STOPPED_WITH_ESC: &str = "stopped with Esc";

/// The app's commands, for message 0 (an indented name is taken inside a chat).
const COMMAND_ROWS: &[(&str, &str)] = &[
    ("exit", "exit the app"),
    (
        "chat NAME [MODEL]",
        "start or resume a chat; then each line is a prompt",
    ),
    ("  /context TEXT", "set the chat's context (system prompt)"),
    ("  /model MODEL", "switch the chat's model"),
    ("  /back", "leave the chat (/exit exits the app)"),
    (
        "view NUM",
        "show a message in full (Up/Down/PgUp/PgDn scroll, Esc back)",
    ),
    (
        "edit NUM",
        "edit a message's JSON (Ctrl+D keeps, Esc drops)",
    ),
    (
        "task NAME",
        "build a task chain step by step, then run it in the background",
    ),
    ("save PATH", "save chats and messages as JSON (no secrets)"),
];

/// The app's keys, for message 0.
const KEY_ROWS: &[(&str, &str)] = &[
    ("Ctrl+A / Ctrl+E", "cursor to start / end"),
    ("Ctrl+X", "clear all content"),
    ("Ctrl+Z", "undo the last change"),
    (
        "Ctrl+C",
        "copy all content to the clipboard (system and OSC 52)",
    ),
    (
        "Ctrl+V",
        "paste from the system clipboard (or use your terminal's paste)",
    ),
    (
        "Esc",
        "leave without change; on an empty line, stop the chat's answer",
    ),
    ("Ctrl+D", "leave with change"),
    ("Alt+Enter/Ctrl+J", "a new line in the input"),
    ("Up / Down", "lines of the input, then its history"),
    ("PgUp / PgDn", "scroll the flow"),
];

/// Message 0: the commands and keys in one table whose columns line up, then a first step.
pub fn help() -> String {
    let name_width = COMMAND_ROWS
        .iter()
        .chain(KEY_ROWS)
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    let rule = format!("{}┼{}\n", "─".repeat(name_width + 1), "─".repeat(40));
    let row = |name: &str, what: &str| format!("{name:<name_width$} │ {what}\n");
    let mut text = row("command", "description");
    text.push_str(&rule);
    for (name, what) in COMMAND_ROWS {
        text.push_str(&row(name, what));
    }
    text.push_str(&rule);
    text.push_str(&row("shortcut", "description"));
    text.push_str(&rule);
    for (name, what) in KEY_ROWS {
        text.push_str(&row(name, what));
    }
    text.push_str("\nlet's try a first chat: enter 'chat a', then your question");
    text
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    /// A fresh app: the help as message 0 and the start-up hint.
    pub fn new() -> Self {
        let mut help = Message::note(Kind::Help, help());
        help.title = "help: commands and keys".into();
        Self {
            messages: vec![
                help,
                Message::note(Kind::Info, "enter \"view 0\" to show help"),
            ],
            chats: Vec::new(),
            tasks: Vec::new(),
            builder: None,
            current: None,
            input: Editor::default(),
            history: Vec::new(),
            history_pos: None,
            history_draft: String::new(),
            screen: Screen::Flow,
            flow_scroll: 0,
            quit: false,
            notice: None,
            config: SessionConfig::default(),
        }
    }

    /// Adds a message; returns its number.
    pub fn push(&mut self, message: Message) -> usize {
        self.messages.push(message);
        // New output brings the flow back to its end.
        self.flow_scroll = 0;
        self.messages.len() - 1
    }

    /// Adds a red message.
    pub fn error(&mut self, text: impl Into<String>) -> usize {
        self.push(Message::note(Kind::Error, text))
    }

    /// The chat named `name`.
    pub fn chat_mut(&mut self, name: &str) -> Option<&mut ChatInfo> {
        self.chats.iter_mut().find(|c| c.name == name)
    }

    /// The stored chat `name` came back: its turns (prompt, answer) go into the flow, and its
    /// model and context apply unless the session set them.
    pub fn resume(
        &mut self,
        name: &str,
        model: Option<String>,
        context: Option<String>,
        turns: &[(String, String)],
    ) {
        let mut named = None;
        if let Some(chat) = self.chat_mut(name) {
            if chat.model.is_none() {
                named = model.clone();
            }
            chat.model = chat.model.take().or(model);
            chat.context = chat.context.take().or(context);
        }
        // The chat's note named no model while the store was asked: now it names the one the
        // chat goes on with (stored, or the default), as the status bar does.
        if let Some(model) = named {
            let provisional = open_note(name, None);
            if let Some(note) = self
                .messages
                .iter_mut()
                .rev()
                .find(|m| m.kind == Kind::Info && m.body == provisional)
            {
                note.body = open_note(name, Some(&model));
                note.title = first_line(&note.body);
            }
        }
        if turns.is_empty() {
            return;
        }
        for (prompt, answer) in turns {
            for (kind, body) in [(Kind::Prompt, prompt), (Kind::Answer, answer)] {
                self.push(Message {
                    kind,
                    title: first_line(body),
                    body: body.clone(),
                    chat: Some(name.to_owned()),
                    expanded: true,
                    streaming: false,
                    reasoning: String::new(),
                    tool_steps: Vec::new(),
                    stopped: false,
                });
            }
        }
        let earlier = match turns.len() {
            1 => "1 earlier turn".to_owned(),
            n => format!("{n} earlier turns"),
        };
        self.push(Message::note(
            Kind::Info,
            format!("chat {name} resumed: {earlier} above"),
        ));
    }

    /// A piece of answer text arrived for message `index`.
    pub fn answer_text(&mut self, index: usize, text: &str) {
        // A stopped answer takes no more text, even what was already on its way.
        if let Some(m) = self.messages.get_mut(index).filter(|m| m.streaming) {
            m.body.push_str(text);
            m.title = first_line(&m.body);
        }
    }

    /// A tool call or result of the answer in message `index`, as one line.
    pub fn answer_tool_step(&mut self, index: usize, line: &str) {
        if let Some(m) = self.messages.get_mut(index).filter(|m| m.streaming) {
            m.tool_steps.push(line.to_owned());
        }
    }

    /// A piece of the model's reasoning arrived for message `index`.
    pub fn answer_reasoning(&mut self, index: usize, text: &str) {
        if let Some(m) = self.messages.get_mut(index).filter(|m| m.streaming) {
            m.reasoning.push_str(text);
        }
    }

    /// The person stopped the answer in message `index` (Esc).
    pub fn answer_stopped(&mut self, index: usize) {
        self.answer_done(index, Some(STOPPED_WITH_ESC.into()));
    }

    /// The answer in message `index` ended, with an error or not.
    pub fn answer_done(&mut self, index: usize, error: Option<String>) {
        let Some(m) = self.messages.get_mut(index).filter(|m| m.streaming) else {
            return;
        };
        m.streaming = false;
        let chat = m.chat.clone();
        if let Some(e) = error {
            m.stopped = true;
            if m.body.is_empty() {
                m.kind = Kind::Error;
                m.body = e;
            } else {
                // Keep the partial answer; say why it stopped.
                let why = if e == STOPPED_WITH_ESC {
                    e
                } else {
                    format!("stopped: {e}")
                };
                m.body.push_str(&format!("\n[{why}]"));
            }
            m.title = first_line(&m.body);
        }
        if let Some(chat) = chat.as_deref().and_then(|n| self.chat_mut(n)) {
            chat.running = chat.running.saturating_sub(1);
        }
    }

    /// The conversation of chat `name` as the flow shows it: each prompt with its answer,
    /// oldest first, leaving out answers that did not complete (stopped, failed, streaming).
    /// A chat's model starts from this when it is opened again (after `--load`, or `/model`).
    pub fn conversation(&self, name: &str) -> Vec<(String, String)> {
        conversation(&self.messages, name)
    }

    /// One task of chain `name` finished.
    pub fn task_done(&mut self, name: &str) {
        if let Some(t) = self.tasks.iter_mut().find(|t| t.name == name && t.running) {
            t.done = (t.done + 1).min(t.total);
        }
    }

    /// Chain `name` ended, with an error or not.
    pub fn task_end(&mut self, name: &str, error: Option<String>) {
        if let Some(t) = self.tasks.iter_mut().find(|t| t.name == name && t.running) {
            t.running = false;
        }
        match error {
            Some(e) => self.error(format!("task {name} failed: {e}")),
            None => self.push(Message::note(Kind::Info, format!("task {name} finished"))),
        };
    }

    /// Whether any answer is still streaming.
    pub fn streaming(&self) -> bool {
        self.chats.iter().any(|c| c.running > 0) || self.tasks.iter().any(|t| t.running)
    }
}

/// See [`App::conversation`]. A chat's prompt and its answer are pushed together, so an
/// answer is the message right after its prompt.
pub fn conversation(messages: &[Message], name: &str) -> Vec<(String, String)> {
    messages
        .windows(2)
        .filter_map(|pair| {
            let [prompt, answer] = pair else { return None };
            let ours = |m: &Message| m.chat.as_deref() == Some(name);
            let complete = answer.kind == Kind::Answer && !answer.streaming && !answer.stopped;
            (prompt.kind == Kind::Prompt && ours(prompt) && ours(answer) && complete)
                .then(|| (prompt.body.clone(), answer.body.clone()))
        })
        .collect()
}

/// The first non-empty line of `text`, for a title.
pub fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_tables_header_rules_and_rows_line_up() {
        let help = help();
        let columns: Vec<usize> = help
            .lines()
            .filter_map(|line| line.chars().position(|c| c == '│' || c == '┼'))
            .collect();
        assert!(columns.len() > 20, "{help}");
        assert!(
            columns.iter().all(|&c| c == columns[0]),
            "{columns:?}\n{help}"
        );
        assert!(help.starts_with("command "), "{help}");
        assert!(help.contains("  /context TEXT"), "{help}");
    }

    #[test]
    fn a_chats_conversation_is_its_prompts_with_their_finished_answers() {
        let mut app = App::new();
        let mut turn = |chat: &str, prompt: &str, answer: &str, end: Option<&str>| {
            let mut p = Message::note(Kind::Prompt, prompt);
            p.chat = Some(chat.into());
            app.push(p);
            let mut a = Message::note(Kind::Answer, "");
            a.chat = Some(chat.into());
            a.streaming = true;
            let n = app.push(a);
            app.answer_text(n, answer);
            if let Some(end) = end {
                app.answer_done(n, (!end.is_empty()).then(|| end.to_owned()));
            }
        };
        turn("a", "one", "1", Some(""));
        turn("b", "other", "B", Some(""));
        turn("a", "two", "partial", Some("stopped"));
        turn("a", "three", "3", Some(""));
        turn("a", "four", "still coming", None);
        assert_eq!(
            app.conversation("a"),
            [("one".into(), "1".into()), ("three".into(), "3".into())]
        );
        assert_eq!(app.conversation("b"), [("other".into(), "B".into())]);
        assert!(app.conversation("c").is_empty());
    }

    #[test]
    fn a_stopped_answer_keeps_its_text_and_ignores_late_updates() {
        let mut app = App::new();
        app.chats.push(ChatInfo {
            name: "a".into(),
            model: None,
            context: None,
            tools: Vec::new(),
            attached: Vec::new(),
            running: 1,
        });
        let n = app.push(Message {
            kind: Kind::Answer,
            title: String::new(),
            body: String::new(),
            chat: Some("a".into()),
            expanded: true,
            streaming: true,
            reasoning: String::new(),
            tool_steps: Vec::new(),
            stopped: false,
        });
        app.answer_text(n, "partial");
        app.answer_stopped(n);
        app.answer_text(n, " late");
        app.answer_done(n, None);
        assert_eq!(app.messages[n].body, "partial\n[stopped with Esc]");
        assert!(!app.streaming());
    }
}
