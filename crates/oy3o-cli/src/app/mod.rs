//! The interactive app (`oy3o` with no prompt on a terminal): a numbered message flow, a
//! status bar and an input line, as in the original `oy3opy` app.
//!
//! - [`state`]: the state machine; [`commands`] and [`events`] change it; [`draw`] shows it.
//! - This module is the runtime: it owns the terminal, the chats and the streaming tasks.
//!   Answers reach the state through a channel, so the network never blocks the keys, and the
//!   screen is redrawn at most every [`REDRAW_EVERY`] (or `--redraw-ms`) while answers stream.
//!
//! The terminal is restored on every exit path, a panic included (ratatui's hook).

mod clipboard;
mod commands;
mod draw;
mod editor;
mod events;
mod session_config;
mod state;
mod storage;
mod task;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures::StreamExt;
use oy3o::{Chat, Config, Error, Event, Output};
use tokio::sync::mpsc;

use commands::Effect;
use oy3o_store::TurnState;
use state::App;

/// The default shortest time between two redraws while answers stream.
pub const REDRAW_EVERY: Duration = Duration::from_millis(250);

/// What a streaming task reports.
enum Update {
    Text(usize, String),
    Reasoning(usize, String),
    Done(usize, Option<String>),
    /// One task of the named chain finished.
    TaskDone(String),
    /// A task's result: chain, stage number, task label, answer or error.
    TaskResult(String, usize, String, Result<String, String>),
    /// The named chain ended.
    TaskEnd(String, Option<String>),
    /// A note for the status bar (a model download's progress).
    Notice(String),
}

/// An open chat and the settings it was opened with.
struct OpenChat {
    model: Option<String>,
    context: Option<String>,
    chat: Arc<Chat>,
}

/// Runs the app until `exit`; `load` reopens a session saved with `save`; `redraw` is the
/// shortest time between two redraws while answers stream; `store` keeps its chats; `chat`
/// opens that chat first (`oy3o --chat NAME` on a terminal).
pub async fn run(
    config: Config,
    load: Option<&std::path::Path>,
    redraw: Duration,
    store: &oy3o_store::StoreSetting,
    chat: Option<&str>,
) -> Result<(), Error> {
    let mut storage = storage::Storage::start(store);
    let mut app = App::new();
    let mut config = config;
    if let Some(path) = load {
        let saved = commands::load_session(&mut app, path).map_err(Error::config)?;
        saved.fill(&mut config);
    }
    if let Some(name) = chat {
        for effect in commands::run_line(&mut app, &format!("chat {name}")) {
            if let Effect::Resume { chat } = effect {
                match storage.resume(&chat).await {
                    Ok(Some(r)) => app.resume(&chat, r.model, r.context, &r.turns),
                    Ok(None) => {}
                    Err(e) => app.notice = Some(e),
                }
            }
        }
    }
    app.config = session_config::SessionConfig::of(&config);
    let mut terminal = ratatui::try_init()
        .map_err(|e| Error::config(format!("cannot open the terminal for the app: {e}")))?;
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::EnableBracketedPaste);
    // ratatui's hook restores the screen on a panic; ours also turns bracketed paste off first.
    let restore_screen = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableBracketedPaste);
        restore_screen(info);
    }));
    let result = event_loop(&mut terminal, app, &config, redraw, &mut storage).await;
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableBracketedPaste);
    ratatui::restore();
    storage.finish().await;
    result
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    mut app: App,
    config: &Config,
    redraw: Duration,
    storage: &mut storage::Storage,
) -> Result<(), Error> {
    // A zero interval would make the tick spin; keep a floor.
    let redraw = redraw.max(Duration::from_millis(10));
    let mut keys = EventStream::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<Update>();
    let mut chats: HashMap<String, OpenChat> = HashMap::new();
    let mut answers = Answers::new();
    let mut clipboard = clipboard::Clipboard::default();
    // A first answer from the local model may download it: show the progress in the status bar.
    let mut config = config.clone();
    {
        let tx = tx.clone();
        config.listeners.on("pull", move |event| {
            let m = event.message();
            let mb = |v: &serde_json::Value| v.as_u64().unwrap_or(0) as f64 / 1e6;
            let _ = tx.send(Update::Notice(format!(
                "downloading the model: {:.0}/{:.0} MB",
                mb(&m["downloaded"]),
                mb(&m["total"])
            )));
        });
    }
    {
        let tx = tx.clone();
        storage.on_health(move |line| {
            let _ = tx.send(Update::Notice(line));
        });
    }
    let config = &config;
    let mut tick = tokio::time::interval(redraw);
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    loop {
        let due = !app.streaming() || last_draw.is_none_or(|t| t.elapsed() >= redraw);
        if dirty && due {
            terminal
                .draw(|f| draw::draw(f, &app))
                .map_err(|e| Error::config(format!("cannot draw: {e}")))?;
            last_draw = Some(Instant::now());
            dirty = false;
        }
        let effects = tokio::select! {
            event = keys.next() => match event {
                Some(Ok(TermEvent::Key(key))) if key.kind != KeyEventKind::Release => {
                    // Keys redraw at once: typing must never wait for the throttle.
                    last_draw = None;
                    dirty = true;
                    events::key(&mut app, key)
                }
                Some(Ok(TermEvent::Paste(text))) => {
                    last_draw = None;
                    dirty = true;
                    events::paste(&mut app, &text);
                    Vec::new()
                }
                Some(Ok(TermEvent::Resize(..))) => {
                    last_draw = None;
                    dirty = true;
                    Vec::new()
                }
                Some(Ok(_)) => Vec::new(),
                Some(Err(e)) => return Err(Error::config(format!("cannot read the terminal: {e}"))),
                None => return Ok(()),
            },
            Some(update) = rx.recv() => {
                match update {
                    Update::Text(index, text) => app.answer_text(index, &text),
                    Update::Reasoning(index, text) => app.answer_reasoning(index, &text),
                    Update::Done(index, error) => app.answer_done(index, error),
                    Update::TaskDone(name) => app.task_done(&name),
                    Update::TaskResult(name, stage, label, result) => {
                        let (kind, body) = match result {
                            Ok(text) => (state::Kind::Answer, text),
                            Err(e) => (state::Kind::Error, e),
                        };
                        let mut m = state::Message::note(kind, body);
                        m.title = format!("{name} stage {stage} [{label}]: {}", m.title);
                        app.push(m);
                    }
                    Update::TaskEnd(name, error) => app.task_end(&name, error),
                    Update::Notice(text) => app.notice = Some(text),
                }
                dirty = true;
                Vec::new()
            },
            _ = tick.tick() => Vec::new(),
        };
        for effect in effects {
            match effect {
                Effect::Copy(text) => clipboard.copy(&text),
                Effect::Paste => match clipboard.paste() {
                    Some(text) => events::paste(&mut app, &text),
                    None => app.notice = Some(
                        "no system clipboard here: use your terminal's paste (e.g. Ctrl+Shift+V)"
                            .into(),
                    ),
                },
                Effect::Resume { chat } => match storage.resume(&chat).await {
                    Ok(Some(r)) => app.resume(&chat, r.model, r.context, &r.turns),
                    Ok(None) => {}
                    Err(e) => app.notice = Some(e),
                },
                effect => carry_out(
                    effect,
                    &mut app,
                    &mut chats,
                    &mut answers,
                    config,
                    &tx,
                    storage,
                ),
            }
        }
        if app.quit {
            return Ok(());
        }
    }
}

/// The streaming answers: message number → (chat, task), so Esc can stop a chat's answers.
type Answers = HashMap<usize, (String, tokio::task::AbortHandle)>;

fn carry_out(
    effect: Effect,
    app: &mut App,
    chats: &mut HashMap<String, OpenChat>,
    answers: &mut Answers,
    config: &Config,
    tx: &mpsc::UnboundedSender<Update>,
    storage: &mut storage::Storage,
) {
    match effect {
        // The clipboard and the store's resume are the event loop's (see there).
        Effect::Copy(_) | Effect::Paste | Effect::Resume { .. } => {}
        Effect::Stop(chat) => {
            answers.retain(|&message, (name, task)| {
                if *name != chat || task.is_finished() {
                    return !task.is_finished();
                }
                // Aborting drops the reply, which closes the request upstream.
                task.abort();
                app.answer_done(message, Some("stopped".into()));
                false
            });
        }
        Effect::RunChain { name, stages } => run_chain(name, stages, config, tx),
        Effect::Send {
            chat,
            model,
            context,
            prompt,
            message,
        } => {
            let open = match chats.get(&chat) {
                Some(open) if open.model == model => Ok(()),
                // A new chat, a new model for it, or a chat of a loaded session: the model
                // takes over the conversation the flow shows.
                _ => match open_chat(
                    model.as_deref(),
                    &app.conversation(&chat),
                    config,
                    &mut app.notice,
                ) {
                    Ok(c) => {
                        chats.insert(
                            chat.clone(),
                            OpenChat {
                                model: model.clone(),
                                context: None,
                                chat: Arc::new(c),
                            },
                        );
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = open {
                app.answer_done(message, Some(e.to_string()));
                return;
            }
            let Some(open) = chats.get_mut(&chat) else {
                return;
            };
            // Recorded when the chat is stored; dropped with an aborted task, it says `cancelled`.
            let turn = storage.begin(&chat, &prompt, model.as_deref(), context.as_deref());
            if open.context != context {
                open.chat.update(context.clone().unwrap_or_default());
                open.context = context;
            }
            let mut reply = open.chat.send(prompt).outputs();
            let tx = tx.clone();
            answers.retain(|_, (_, task)| !task.is_finished());
            let task = tokio::spawn(async move {
                while let Some(item) = reply.next().await {
                    if let (Some(turn), Ok(output)) = (&turn, &item) {
                        match output {
                            Output::Text(text) => turn.chunk(text),
                            Output::Event(event) => turn.event(event),
                        }
                    }
                    let update = match item {
                        Ok(Output::Text(text)) => Update::Text(message, text),
                        Ok(Output::Event(Event::Reasoning(text))) => {
                            Update::Reasoning(message, text)
                        }
                        Ok(Output::Event(_)) => continue,
                        Err(e) => {
                            if let Some(turn) = &turn {
                                turn.finish(TurnState::Error, None, Some(e.message()));
                            }
                            let _ = tx.send(Update::Done(message, Some(e.to_string())));
                            return;
                        }
                    };
                    if tx.send(update).is_err() {
                        // The app is gone: dropping the reply cancels the request.
                        return;
                    }
                }
                if let Some(turn) = &turn {
                    turn.finish(TurnState::Done, reply.reply().usage(), None);
                }
                let _ = tx.send(Update::Done(message, None));
            });
            answers.insert(message, (chat, task.abort_handle()));
        }
    }
}

/// The chat of a saved session that a one-shot prompt continues
/// (`oy3o 'prompt' --load PATH`).
#[derive(Debug)]
pub struct SavedChat {
    /// Its model (`None`: the config's default).
    pub model: Option<String>,
    /// Its context.
    pub context: Option<String>,
    /// Its conversation, as the engine's messages.
    pub history: Vec<oy3o::Message>,
    /// The session's config.
    config: session_config::SessionConfig,
}

impl SavedChat {
    /// Fills what `config` leaves unset from the session's config (see
    /// [`session_config::SessionConfig::fill`]).
    pub fn fill(&self, config: &mut Config) {
        self.config.fill(config);
    }
}

/// Reads the chat a one-shot prompt continues from a session saved with `save`: the chat that
/// was current, else the last one opened.
pub fn saved_chat(path: &std::path::Path) -> Result<SavedChat, Error> {
    let saved = commands::read_session(path).map_err(Error::config)?;
    let chat = saved.chat_to_continue().ok_or_else(|| {
        Error::config(format!(
            "{} has no chat to continue: open one in the app with chat NAME, then save",
            path.display()
        ))
    })?;
    Ok(SavedChat {
        model: chat.model.clone(),
        context: chat.context.clone(),
        history: history_of(&state::conversation(&saved.messages, &chat.name)),
        config: saved.config.clone(),
    })
}

/// Opens a chat with `model` that continues `conversation` (prompt and answer pairs). A model
/// that keeps its conversation on the service's side cannot take one over: it starts afresh,
/// and the status bar says so.
fn open_chat(
    model: Option<&str>,
    conversation: &[(String, String)],
    config: &Config,
    notice: &mut Option<String>,
) -> Result<Chat, Error> {
    let chat = Chat::open(model, config)?;
    if let Err(e) = chat.restore(history_of(conversation)) {
        *notice = Some(format!("{}: starts a new conversation ({e})", chat.model()));
    }
    Ok(chat)
}

/// Prompt and answer pairs as the engine's messages.
fn history_of(conversation: &[(String, String)]) -> Vec<oy3o::Message> {
    conversation
        .iter()
        .flat_map(|(prompt, answer)| {
            [
                oy3o::Message::user(prompt.clone()),
                oy3o::Message::assistant(answer.clone()),
            ]
        })
        .collect()
}

/// Runs a chain built with `task NAME` in the background; its progress and results come back
/// as updates.
fn run_chain(
    name: String,
    stages: Vec<Vec<task::TaskDraft>>,
    config: &Config,
    tx: &mpsc::UnboundedSender<Update>,
) {
    let stages: Vec<Vec<oy3o::Task>> = stages
        .into_iter()
        .map(|stage| {
            stage
                .into_iter()
                .map(|d| {
                    let task = oy3o::Task::new(d.model.as_deref(), d.prompt);
                    match d.context {
                        Some(c) => task.with_context(c),
                        None => task,
                    }
                })
                .collect()
        })
        .collect();
    let mut config = config.clone();
    {
        let (tx, name) = (tx.clone(), name.clone());
        config.listeners.on("task_done", move |_| {
            let _ = tx.send(Update::TaskDone(name.clone()));
        });
    }
    let mut results = oy3o::exec_tasks_chain(oy3o::Chain::from(stages), &config);
    let tx = tx.clone();
    tokio::spawn(async move {
        while let Some(stage) = results.next().await {
            let stage = match stage {
                Ok(stage) => stage,
                Err(e) => {
                    let _ = tx.send(Update::TaskEnd(name, Some(e.to_string())));
                    return;
                }
            };
            for r in stage.results {
                let result = match (r.response, r.error) {
                    (Some(text), _) => Ok(text),
                    (None, Some(e)) => Err(e.to_string()),
                    (None, None) => continue,
                };
                let label = r.task.label().to_owned();
                let update = Update::TaskResult(name.clone(), stage.index + 1, label, result);
                if tx.send(update).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Update::TaskEnd(name, None));
    });
}
