//! What a line entered in the app does: the commands (`exit`, `chat`, `view`, `edit`, `save`),
//! the in-chat commands (`/context`, `/model`, `/back`) and prompts. Work that leaves the state
//! (the network, the clipboard) comes back as an [`Effect`] for the runtime to carry out.

use std::path::Path;

use serde_json::json;

use super::session_config::SessionConfig;
use super::state::{App, ChatInfo, Kind, Message, Screen, TaskInfo, first_line, open_note};
use super::task::{Next, TaskBuilder, TaskDraft};

/// Work for the runtime.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send `prompt` to chat `chat` and stream the answer into message `message`.
    Send {
        /// The chat's name.
        chat: String,
        /// Its model (`None`: the config's default).
        model: Option<String>,
        /// Its context.
        context: Option<String>,
        /// The prompt.
        prompt: String,
        /// The answer's message number.
        message: usize,
        /// The MCP tools it may call (`/tools`).
        tools: Vec<String>,
        /// Attachments sent with the prompt (`/attach`), already loaded and checked.
        attachments: Vec<oy3o::Part>,
    },
    /// Load the file or URL `path` as an attachment of chat `chat`'s next prompt (`/attach`).
    Attach {
        /// The chat's name.
        chat: String,
        /// The file or URL.
        path: String,
    },
    /// Put this text on the clipboard.
    Copy(String),
    /// Insert the clipboard's text where the cursor is.
    Paste,
    /// Stop the answers still streaming in this chat.
    Stop(String),
    /// Bring back the stored chat `chat` (its history into the flow), creating it in the store
    /// when new: `chat NAME` for a chat the session does not have yet.
    Resume {
        /// The chat's name.
        chat: String,
    },
    /// Check `model` against the config, then let chat `chat` use it (`/model MODEL`).
    Model {
        /// The chat's name.
        chat: String,
        /// The model asked for.
        model: String,
    },
    /// Run the chain built with `task NAME`.
    RunChain {
        /// The chain's name.
        name: String,
        /// Its stages of tasks.
        stages: Vec<Vec<TaskDraft>>,
    },
}

const CHAT_GUIDE: &str = "\
chat guide
──────────
chat NAME [MODEL]   opens the chat NAME (or goes back to it); MODEL is provider:model or an alias
then every line you enter is a prompt to it, and the answer streams into the flow.
inside a chat:
    /context TEXT   sets the context (system prompt) for the next prompts
    /model MODEL    switches the model (the conversation goes on with it)
    /tools NAME[,NAME]
                    gives the next prompts tools of the config's MCP servers (a server, or
                    server.tool); the calls show dimmed in the answer; /tools alone clears them
    /back           leaves the chat (it stays open: chat NAME resumes it)
    /exit           exits the app
    /view N, /edit N, /save PATH, /chat NAME, /task NAME, /help
                    the app's commands, with a slash inside a chat
    Esc             on an empty line, stops the answer that is streaming
a new chat NAME continues the stored chat of that name (`oy3o --chat NAME`), its history
shown in the flow; every prompt and answer is kept in the store (oy3o log shows them).
view NUM shows an answer in full; save PATH keeps the flow.";

/// Runs the line in the input (Enter or Ctrl+D): records it in the history and clears it.
pub fn submit(app: &mut App) -> Vec<Effect> {
    let line = app.input.text();
    app.input = Default::default();
    app.history_pos = None;
    app.history_draft.clear();
    if !line.trim().is_empty() && app.history.last() != Some(&line) {
        app.history.push(line.clone());
    }
    run_line(app, &line)
}

/// Runs one line: a command, or a prompt when a chat is open.
pub fn run_line(app: &mut App, line: &str) -> Vec<Effect> {
    // The task builder takes empty answers too (an empty prompt ends a stage).
    if app.builder.is_some() {
        return build_task(app, line);
    }
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    if let Some(chat) = app.current.clone() {
        return in_chat(app, &chat, line);
    }
    let (word, rest) = split_word(trimmed);
    command(app, word, rest)
}

/// The app's commands, also taken inside a chat with a slash (`/view 3`).
const COMMANDS: [&str; 7] = ["exit", "chat", "view", "edit", "save", "task", "help"];

/// Runs the app command `word` with its arguments.
fn command(app: &mut App, word: &str, rest: &str) -> Vec<Effect> {
    match word {
        "exit" | "quit" => app.quit = true,
        "chat" => return open_chat(app, rest),
        "view" => match message_number(app, rest) {
            Ok(index) => app.screen = Screen::View { index, scroll: 0 },
            Err(e) => {
                app.error(e);
            }
        },
        "edit" => match message_number(app, rest) {
            Ok(index) => start_edit(app, index),
            Err(e) => {
                app.error(e);
            }
        },
        "save" => save(app, rest),
        "task" => start_task(app, rest),
        "help" => {
            app.screen = Screen::View {
                index: 0,
                scroll: 0,
            }
        }
        _ => {
            app.error(format!(
                "unknown command: {word}; enter \"view 0\" to show help"
            ));
        }
    }
    Vec::new()
}

fn split_word(line: &str) -> (&str, &str) {
    match line.split_once(char::is_whitespace) {
        Some((w, rest)) => (w, rest.trim()),
        None => (line, ""),
    }
}

fn message_number(app: &App, arg: &str) -> Result<usize, String> {
    match arg.parse::<usize>() {
        Ok(n) if n < app.messages.len() => Ok(n),
        Ok(n) => Err(format!(
            "no message {n}: messages are numbered 0 to {}",
            app.messages.len() - 1
        )),
        Err(_) => Err(format!("expected a message number, got {arg:?}")),
    }
}

fn open_chat(app: &mut App, args: &str) -> Vec<Effect> {
    let (name, model) = split_word(args);
    if name.is_empty() {
        app.error("chat needs a name: chat NAME [MODEL]");
        return Vec::new();
    }
    if name == "help" {
        let mut guide = Message::note(Kind::Help, CHAT_GUIDE);
        guide.title = "chat guide".into();
        let index = app.push(guide);
        app.screen = Screen::View { index, scroll: 0 };
        return Vec::new();
    }
    let model = (!model.is_empty()).then(|| model.to_owned());
    let mut effects = Vec::new();
    let note = match app.chat_mut(name) {
        Some(chat) => {
            if model.is_some() {
                chat.model = model;
            }
            format!("back in chat {name}")
        }
        None => {
            effects.push(Effect::Resume {
                chat: name.to_owned(),
            });
            app.chats.push(ChatInfo {
                name: name.to_owned(),
                model: model.clone(),
                context: None,
                tools: Vec::new(),
                attached: Vec::new(),
                running: 0,
            });
            // Without a model given, the store says which one the chat goes on with, and
            // `App::resume` names it in this note.
            open_note(name, model.as_deref())
        }
    };
    app.current = Some(name.to_owned());
    app.push(Message::note(Kind::Info, note));
    effects
}

fn in_chat(app: &mut App, chat: &str, line: &str) -> Vec<Effect> {
    let trimmed = line.trim();
    if trimmed.starts_with('/') {
        let (word, rest) = split_word(trimmed);
        match word {
            "/exit" => app.quit = true,
            "/back" => {
                app.current = None;
                app.push(Message::note(Kind::Info, format!("left chat {chat}")));
            }
            "/context" => {
                if let Some(c) = app.chat_mut(chat) {
                    c.context = (!rest.is_empty()).then(|| rest.to_owned());
                }
                app.push(Message::note(Kind::Info, format!("context of {chat} set")));
            }
            "/tools" => {
                let names: Vec<String> = rest
                    .split([',', ' '])
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect();
                let note = if names.is_empty() {
                    format!("{chat} uses no tools")
                } else {
                    format!("{chat} uses the tools {}", names.join(", "))
                };
                if let Some(c) = app.chat_mut(chat) {
                    c.tools = names;
                }
                app.push(Message::note(Kind::Info, note));
            }
            "/attach" if !rest.is_empty() => {
                // Loaded (and checked) by the runtime; see `Update::Attached`.
                return vec![Effect::Attach {
                    chat: chat.to_owned(),
                    path: rest.to_owned(),
                }];
            }
            "/attach" => {
                let pending = app.chat_mut(chat).map_or(0, |c| c.attached.len());
                app.error(format!(
                    "/attach needs a file or URL: /attach PATH ({pending} attached for the next \
                     prompt)"
                ));
            }
            "/model" if !rest.is_empty() => {
                // Checked against the config before it is taken (see `Update::Model`).
                return vec![Effect::Model {
                    chat: chat.to_owned(),
                    model: rest.to_owned(),
                }];
            }
            other => match other.strip_prefix('/') {
                Some(name) if COMMANDS.contains(&name) => return command(app, name, rest),
                _ => {
                    app.error(format!(
                        "unknown chat command: {word}; use /context TEXT, /model MODEL, /tools NAME, \
                         /attach PATH, /back, \
                         /exit, or an app command with a slash (/view N, /edit N, /save PATH, \
                         /chat NAME, /task NAME, /help)"
                    ));
                }
            },
        }
        return Vec::new();
    }
    let Some(info) = app.chat_mut(chat) else {
        app.current = None;
        return Vec::new();
    };
    info.running += 1;
    let (model, context, tools) = (info.model.clone(), info.context.clone(), info.tools.clone());
    let attachments = std::mem::take(&mut info.attached);
    app.push(Message {
        kind: Kind::Prompt,
        title: first_line(line),
        body: line.to_owned(),
        chat: Some(chat.to_owned()),
        expanded: true,
        streaming: false,
        reasoning: String::new(),
        tool_steps: Vec::new(),
        stopped: false,
    });
    let message = app.push(Message {
        kind: Kind::Answer,
        title: String::new(),
        body: String::new(),
        chat: Some(chat.to_owned()),
        expanded: true,
        streaming: true,
        reasoning: String::new(),
        tool_steps: Vec::new(),
        stopped: false,
    });
    vec![Effect::Send {
        chat: chat.to_owned(),
        model,
        context,
        prompt: line.to_owned(),
        message,
        tools,
        attachments,
    }]
}

fn start_task(app: &mut App, name: &str) {
    if name.is_empty() || name.contains(char::is_whitespace) {
        app.error("task needs a name: task NAME");
        return;
    }
    if app.tasks.iter().any(|t| t.name == name && t.running) {
        app.error(format!("task {name} is still running"));
        return;
    }
    app.builder = Some(TaskBuilder::new(name));
    app.push(Message::note(
        Kind::Info,
        format!("building task {name}: answer each question; an empty prompt ends a stage"),
    ));
}

fn build_task(app: &mut App, line: &str) -> Vec<Effect> {
    let Some(builder) = app.builder.as_mut() else {
        return Vec::new();
    };
    let name = builder.name.clone();
    match builder.answer(line) {
        Next::Ask => {}
        Next::Invalid(why) => app.notice = Some(why),
        Next::Cancelled => {
            app.builder = None;
            app.push(Message::note(
                Kind::Info,
                format!("task {name}: nothing to run"),
            ));
        }
        Next::Run(stages) => {
            app.builder = None;
            let total = stages.iter().map(Vec::len).sum();
            app.tasks.retain(|t| t.name != name);
            app.tasks.push(TaskInfo {
                name: name.clone(),
                done: 0,
                total,
                running: true,
            });
            app.push(Message::note(
                Kind::Info,
                format!(
                    "task {name}: {} stages, {total} tasks, running",
                    stages.len()
                ),
            ));
            return vec![Effect::RunChain { name, stages }];
        }
    }
    Vec::new()
}

fn start_edit(app: &mut App, index: usize) {
    let Some(message) = app.messages.get(index) else {
        return;
    };
    match serde_json::to_string_pretty(message) {
        Ok(text) => {
            app.screen = Screen::Edit {
                index,
                editor: super::editor::Editor::with_text(&text),
            }
        }
        Err(e) => {
            app.error(format!("cannot show message {index} as JSON: {e}"));
        }
    }
}

/// Applies the edited JSON of message `index` (Ctrl+D). On bad JSON the editor stays open and
/// the status bar says what is wrong.
pub fn finish_edit(app: &mut App) {
    let Screen::Edit { index, editor } = &app.screen else {
        return;
    };
    let index = *index;
    match serde_json::from_str::<Message>(&editor.text()) {
        Ok(mut message) => {
            if message.title.is_empty() {
                message.title = first_line(&message.body);
            }
            message.streaming = app.messages.get(index).is_some_and(|m| m.streaming);
            if let Some(slot) = app.messages.get_mut(index) {
                *slot = message;
            }
            app.screen = Screen::Flow;
            app.notice = Some(format!("message {index} changed"));
        }
        Err(e) => app.notice = Some(format!("not valid message JSON: {e}")),
    }
}

/// The saved session: the config in use (no secrets: see [`SessionConfig`]), chats (name,
/// model, context) and the flow. Keys, cookies and proxies never go in.
pub fn session_json(app: &App) -> serde_json::Value {
    json!({
        "version": 1,
        "config": app.config,
        "chats": app.chats,
        "current": app.current,
        "messages": app.messages,
    })
}

/// A session file written by `save`.
#[derive(Debug, serde::Deserialize)]
pub struct Saved {
    /// Its chats.
    #[serde(default)]
    pub chats: Vec<ChatInfo>,
    /// The chat the input line talked to.
    #[serde(default)]
    pub current: Option<String>,
    /// The flow.
    pub messages: Vec<Message>,
    /// The config it was saved with.
    #[serde(default)]
    pub config: SessionConfig,
}

impl Saved {
    /// The chat a one-shot prompt continues: the current one, else the last one opened.
    pub fn chat_to_continue(&self) -> Option<&ChatInfo> {
        let current = self.current.as_deref();
        current
            .and_then(|c| self.chats.iter().find(|chat| chat.name == c))
            .or(self.chats.last())
    }
}

/// Reads a session written by `save`. An answer that was streaming when it was saved will
/// not go on: it is marked stopped, so it is not part of its chat's conversation.
pub fn read_session(path: &Path) -> Result<Saved, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read session {}: {e}", path.display()))?;
    let mut saved: Saved = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a session saved by the app: {e}", path.display()))?;
    for m in &mut saved.messages {
        if m.streaming {
            m.streaming = false;
            m.stopped = true;
        }
    }
    Ok(saved)
}

/// Reopens a session written by `save`: its flow, chats and current chat. Each chat's model
/// continues the conversation shown in the flow when the chat's next prompt opens it
/// ([`App::conversation`]).
/// Returns the session's config, for the runtime to fill in what the config in use leaves unset.
pub fn load_session(app: &mut App, path: &Path) -> Result<SessionConfig, String> {
    let saved = read_session(path)?;
    app.messages = saved.messages;
    app.chats = saved.chats;
    app.current = saved
        .current
        .filter(|c| app.chats.iter().any(|chat| &chat.name == c));
    app.push(Message::note(
        Kind::Info,
        format!("loaded {}; chats go on where they were", path.display()),
    ));
    Ok(saved.config)
}

fn save(app: &mut App, path: &str) {
    if path.is_empty() {
        app.error("save needs a path: save PATH");
        return;
    }
    let text = match serde_json::to_string_pretty(&session_json(app)) {
        Ok(t) => t,
        Err(e) => {
            app.error(format!("cannot save: {e}"));
            return;
        }
    };
    match std::fs::write(Path::new(path), text) {
        Ok(()) => {
            app.push(Message::note(Kind::Info, format!("saved to {path}")));
        }
        Err(e) => {
            app.error(format!("cannot write {path}: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::update::Update;

    fn enter(app: &mut App, line: &str) -> Vec<Effect> {
        app.input = super::super::editor::Editor::with_text(line);
        submit(app)
    }

    #[test]
    fn the_app_starts_with_the_help_as_message_0_and_the_hint() {
        let app = App::new();
        assert_eq!(app.messages[0].kind, Kind::Help);
        assert!(app.messages[0].body.contains("chat NAME"));
        assert_eq!(app.messages[1].body, "enter \"view 0\" to show help");
    }

    #[test]
    fn an_unknown_command_answers_in_red() {
        let mut app = App::new();
        assert!(enter(&mut app, "frobnicate now").is_empty());
        let last = app.messages.last().unwrap();
        assert_eq!(last.kind, Kind::Error);
        assert!(last.body.contains("unknown command: frobnicate"));
    }

    #[test]
    fn a_line_in_a_chat_becomes_a_prompt_and_a_streaming_answer() {
        let mut app = App::new();
        enter(&mut app, "chat a openai:x");
        assert_eq!(app.current.as_deref(), Some("a"));
        enter(&mut app, "/context Be brief.");
        enter(&mut app, "/tools time, git.git_status");
        assert_eq!(app.chats[0].tools, ["time", "git.git_status"]);
        enter(&mut app, "/tools");
        assert!(app.chats[0].tools.is_empty(), "/tools alone clears them");
        enter(&mut app, "/tools time");
        let effects = enter(&mut app, "What is 1+1?");
        let n = app.messages.len() - 1;
        assert_eq!(
            effects,
            vec![Effect::Send {
                chat: "a".into(),
                model: Some("openai:x".into()),
                context: Some("Be brief.".into()),
                prompt: "What is 1+1?".into(),
                message: n,
                tools: vec!["time".into()],
                attachments: Vec::new(),
            }]
        );
        assert!(app.streaming());
        app.answer_text(n, "1 + 1");
        app.answer_text(n, " = 2");
        app.answer_done(n, None);
        assert!(!app.streaming());
        assert_eq!(app.messages[n].body, "1 + 1 = 2");
        enter(&mut app, "/back");
        assert_eq!(app.current, None);
        assert_eq!(app.history.len(), 7);
    }

    #[test]
    fn a_new_chat_asks_for_its_stored_history_and_it_comes_back_into_the_flow() {
        let mut app = App::new();
        let effects = enter(&mut app, "chat work");
        assert_eq!(
            effects,
            vec![Effect::Resume {
                chat: "work".into()
            }]
        );
        app.resume(
            "work",
            Some("openai:stored".into()),
            Some("Be brief.".into()),
            &[("My name is Ada.".into(), "Hello, Ada!".into())],
        );
        assert_eq!(
            app.conversation("work"),
            [("My name is Ada.".to_string(), "Hello, Ada!".to_string())]
        );
        // The flow names the model the status bar shows, and no "default model".
        let notes: Vec<&str> = app.messages.iter().map(|m| m.body.as_str()).collect();
        assert!(
            !notes.iter().any(|n| n.contains("default model")),
            "{notes:?}"
        );
        assert!(
            notes.contains(&"chat work (openai:stored): each line is a prompt; /back leaves"),
            "{notes:?}"
        );
        assert!(
            notes.contains(&"chat work resumed: 1 earlier turn above"),
            "{notes:?}"
        );
        let effects = enter(&mut app, "What is my name?");
        let Effect::Send { model, context, .. } = &effects[0] else {
            panic!("{effects:?}");
        };
        assert_eq!(model.as_deref(), Some("openai:stored"));
        assert_eq!(context.as_deref(), Some("Be brief."));
        // Going back to a chat of this session asks the store nothing.
        enter(&mut app, "/back");
        assert!(enter(&mut app, "chat work").is_empty());
    }

    #[test]
    fn model_switches_and_a_failed_answer_shows_its_error() {
        let mut app = App::new();
        enter(&mut app, "chat b");
        let asked = enter(&mut app, "/model openai:y");
        let model = "openai:y".to_owned();
        assert_eq!(
            asked,
            [Effect::Model {
                chat: "b".into(),
                model: model.clone()
            }]
        );
        app.apply(Update::Model {
            chat: "b".into(),
            model,
            error: None,
        });
        let effects = enter(&mut app, "hi");
        let Effect::Send { model, message, .. } = &effects[0] else {
            panic!("{effects:?}");
        };
        assert_eq!(model.as_deref(), Some("openai:y"));
        app.answer_done(*message, Some("network: refused".into()));
        assert_eq!(app.messages[*message].kind, Kind::Error);
    }

    #[test]
    fn a_model_the_config_refuses_is_not_taken_and_says_why() {
        let mut app = App::new();
        enter(&mut app, "chat b openai:x");
        enter(&mut app, "/model nosuch:x");
        app.apply(Update::Model {
            chat: "b".into(),
            model: "nosuch:x".into(),
            error: Some("unknown provider nosuch".into()),
        });
        let last = app.messages.last().unwrap();
        assert_eq!(last.kind, Kind::Error);
        assert!(
            last.body.contains("unknown provider nosuch"),
            "{}",
            last.body
        );
        let Effect::Send { model, .. } = &enter(&mut app, "hi")[0] else {
            panic!("a prompt is sent");
        };
        assert_eq!(model.as_deref(), Some("openai:x"));
    }

    #[test]
    fn app_commands_work_inside_a_chat_with_a_slash_and_are_never_sent() {
        let mut app = App::new();
        enter(&mut app, "chat a");
        assert!(enter(&mut app, "/view 1").is_empty());
        assert!(matches!(app.screen, Screen::View { index: 1, .. }));
        app.screen = Screen::Flow;
        let effects = enter(&mut app, "/chat b");
        assert_eq!(effects, [Effect::Resume { chat: "b".into() }]);
        assert_eq!(app.current.as_deref(), Some("b"));
        assert!(enter(&mut app, "/frob").is_empty());
        assert!(app.messages.last().unwrap().body.contains("/view N"));
    }

    #[test]
    fn view_and_edit_check_the_number() {
        let mut app = App::new();
        enter(&mut app, "view 0");
        assert_eq!(
            app.screen,
            Screen::View {
                index: 0,
                scroll: 0
            }
        );
        app.screen = Screen::Flow;
        enter(&mut app, "view 99");
        assert!(app.messages.last().unwrap().body.contains("no message 99"));
        enter(&mut app, "edit x");
        assert_eq!(app.messages.last().unwrap().kind, Kind::Error);
    }

    #[test]
    fn edit_replaces_the_message_from_its_json_and_refuses_bad_json() {
        let mut app = App::new();
        enter(&mut app, "edit 1");
        let Screen::Edit { editor, .. } = &mut app.screen else {
            panic!("not editing");
        };
        let text = editor.text().replace("show help", "show the help");
        *editor = super::super::editor::Editor::with_text(&text);
        finish_edit(&mut app);
        assert_eq!(app.screen, Screen::Flow);
        assert_eq!(app.messages[1].body, "enter \"view 0\" to show the help");

        enter(&mut app, "edit 1");
        if let Screen::Edit { editor, .. } = &mut app.screen {
            editor.insert('{');
        }
        finish_edit(&mut app);
        assert!(matches!(app.screen, Screen::Edit { .. }));
        assert!(app.notice.as_deref().unwrap_or("").contains("not valid"));
    }

    #[test]
    fn task_builds_a_two_stage_chain_and_shows_its_progress() {
        let mut app = App::new();
        enter(&mut app, "task t");
        assert!(app.builder.is_some());
        for line in ["What is 1+1?", "", "", ""] {
            assert!(enter(&mut app, line).is_empty());
        }
        enter(&mut app, "y");
        for line in ["Check {{previous}}", "openai:x", "", ""] {
            assert!(enter(&mut app, line).is_empty());
        }
        let effects = enter(&mut app, "n");
        let [Effect::RunChain { name, stages }] = effects.as_slice() else {
            panic!("{effects:?}");
        };
        assert_eq!((name.as_str(), stages.len()), ("t", 2));
        assert!(app.builder.is_none());
        assert_eq!(app.tasks[0].total, 2);
        app.task_done("t");
        assert_eq!(app.tasks[0].done, 1);
        app.task_end("t", None);
        assert!(!app.tasks[0].running);
        assert!(
            app.messages
                .last()
                .unwrap()
                .body
                .contains("task t finished")
        );
    }

    #[test]
    fn save_writes_chats_and_flow_without_secrets() {
        let dir = std::env::temp_dir().join(format!("oy3o-app-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("session.json");
        let mut app = App::new();
        app.config.model = Some("openai:default".into());
        app.config.options.temperature = Some(0.25);
        enter(&mut app, "chat a openai:x");
        enter(&mut app, "/back");
        enter(&mut app, &format!("save {}", path.display()));
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(saved["chats"][0]["name"], "a");
        assert_eq!(saved["chats"][0]["model"], "openai:x");
        assert!(saved["messages"].as_array().unwrap().len() >= 3);
        let text = saved.to_string();
        assert!(!text.contains("api_key") && !text.contains("cookie"));

        assert_eq!(saved["config"]["model"], "openai:default");
        let mut loaded = App::new();
        let config = load_session(&mut loaded, &path).unwrap();
        assert_eq!(config, app.config);
        assert_eq!(loaded.chats, app.chats);
        // Everything up to the "saved to" note, which came after the save.
        let n = app.messages.len() - 1;
        assert_eq!(loaded.messages[..n], app.messages[..n]);
        std::fs::write(&path, "{not json").unwrap();
        let err = load_session(&mut App::new(), &path).unwrap_err();
        assert!(err.contains("not a session"), "{err}");
    }
}
