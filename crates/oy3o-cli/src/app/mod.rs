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
mod update;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures::StreamExt;
use oy3o::{Config, Conversation, Error, Event, Message, Options, Output};
use tokio::sync::mpsc;

use commands::Effect;
use state::App;
use update::Update;

/// The default shortest time between two redraws while answers stream.
pub const REDRAW_EVERY: Duration = Duration::from_millis(250);

/// An open chat and the settings its conversation has now.
struct OpenChat {
    model: Option<String>,
    context: Option<String>,
    conversation: Conversation,
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
    let storage = storage::Storage::start(store, config.prices());
    let mut chats = HashMap::new();
    let mut app = App::new();
    let mut config = config;
    if let Some(path) = load {
        let saved = commands::load_session(&mut app, path).map_err(Error::config)?;
        saved.fill(&mut config);
    }
    if let Some(name) = chat {
        for effect in commands::run_line(&mut app, &format!("chat {name}")) {
            if let Effect::Resume { chat } = effect {
                resume(&mut app, &mut chats, &storage, &chat, &config).await;
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
    // The chats' tools (`/tools`): servers start on first use and stop when the app ends.
    let mcp = oy3o::mcp::McpTools::new(&config);
    let result = event_loop(&mut terminal, app, &config, &mcp, redraw, &storage, chats).await;
    mcp.close().await;
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableBracketedPaste);
    ratatui::restore();
    storage.finish().await;
    match result {
        // Killed politely (SIGTERM, SIGHUP): the terminal is restored, the answers so far are
        // written; the exit status says which signal, as the shell would.
        Ok(Ended::Signal(number)) => std::process::exit(128 + number),
        Ok(Ended::Quit) => Ok(()),
        Err(e) => Err(e),
    }
}

/// How the event loop ended.
enum Ended {
    /// The person quit (`exit`, Ctrl+D, or the terminal's input closed).
    Quit,
    /// A signal asked the app to end (its number).
    Signal(i32),
}

/// Waits for SIGTERM or SIGHUP; never resolves where they cannot be listened to.
async fn termination() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hangup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => 15,
        _ = hangup.recv() => 1,
    }
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    mut app: App,
    config: &Config,
    mcp: &oy3o::mcp::McpTools,
    redraw: Duration,
    storage: &storage::Storage,
    mut chats: HashMap<String, OpenChat>,
) -> Result<Ended, Error> {
    // A zero interval would make the tick spin; keep a floor.
    let redraw = redraw.max(Duration::from_millis(10));
    let mut keys = EventStream::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<Update>();
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
    let mut terminated = std::pin::pin!(termination());
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
                None => return Ok(stop_all(&mut answers, Ended::Quit)),
            },
            Some(update) = rx.recv() => {
                app.apply(update);
                dirty = true;
                Vec::new()
            },
            _ = tick.tick() => Vec::new(),
            number = &mut terminated => return Ok(stop_all(&mut answers, Ended::Signal(number))),
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
                Effect::Resume { chat } => {
                    resume(&mut app, &mut chats, storage, &chat, config).await;
                }
                effect => {
                    let engine = Engine {
                        config,
                        mcp,
                        storage,
                        updates: &tx,
                    };
                    carry_out(effect, &mut app, &mut chats, &mut answers, &engine);
                }
            }
        }
        if app.quit {
            return Ok(stop_all(&mut answers, Ended::Quit));
        }
    }
}

/// Opens the chat `name` through the store (resuming a stored one): its turns go into the flow
/// and its conversation is the one the chat's prompts go to.
async fn resume(
    app: &mut App,
    chats: &mut HashMap<String, OpenChat>,
    storage: &storage::Storage,
    name: &str,
    config: &Config,
) {
    match storage.resume(name, config).await {
        Ok(r) => {
            app.resume(name, r.model.clone(), r.context.clone(), &r.turns);
            let open = OpenChat {
                model: r.model,
                context: r.context,
                conversation: r.conversation,
            };
            chats.insert(name.to_owned(), open);
        }
        Err(e) => app.notice = Some(e),
    }
}

/// The streaming answers: message number → (chat, task), so Esc can stop a chat's answers.
type Answers = HashMap<usize, (String, tokio::task::AbortHandle)>;

/// Stops every answer still streaming as the app ends, so each is recorded as cancelled
/// before the store's last flush; passes `ended` on.
fn stop_all(answers: &mut Answers, ended: Ended) -> Ended {
    for (_, (_, task)) in answers.drain() {
        task.abort();
    }
    ended
}

/// What the app's effects are carried out with: the engine's side of the app, shared by every
/// effect (the app's own state is passed beside it).
struct Engine<'a> {
    config: &'a Config,
    /// The chats' MCP tool servers.
    mcp: &'a oy3o::mcp::McpTools,
    storage: &'a storage::Storage,
    /// Where running answers and chains report their updates.
    updates: &'a mpsc::UnboundedSender<Update>,
}

fn carry_out(
    effect: Effect,
    app: &mut App,
    chats: &mut HashMap<String, OpenChat>,
    answers: &mut Answers,
    engine: &Engine<'_>,
) {
    let Engine {
        config,
        mcp,
        storage,
        updates: tx,
    } = *engine;
    match effect {
        // The clipboard and the store's resume are the event loop's (see there).
        Effect::Copy(_) | Effect::Paste | Effect::Resume { .. } => {}
        Effect::Stop(chat) => {
            answers.retain(|&message, (name, task)| {
                if *name != chat || task.is_finished() {
                    return !task.is_finished();
                }
                // Aborting drops the reply: the request upstream closes and the turn is
                // recorded as cancelled.
                task.abort();
                app.apply(Update::Stopped(message));
                false
            });
        }
        Effect::RunChain { name, stages } => run_chain(name, stages, config, tx),
        Effect::Attach { chat, path } => {
            let limits = config.attachments.unwrap_or_default();
            let result = oy3o::attachment::Input::arg(&path)
                .load(&limits)
                .map_err(|e| e.to_string());
            app.apply(Update::Attached { chat, path, result });
        }
        Effect::Model { chat, model } => {
            let error = config
                .resolve_all(Some(&model))
                .err()
                .map(|e| e.to_string());
            app.apply(Update::Model { chat, model, error });
        }
        Effect::Send {
            chat,
            model,
            context,
            prompt,
            message,
            tools,
            attachments,
        } => {
            let open = match open_chat(chats, &chat, model.as_deref(), app, config, storage) {
                Ok(open) => open,
                Err(e) => {
                    app.apply(Update::Done(message, Some(e.to_string())));
                    return;
                }
            };
            if open.context != context {
                open.conversation
                    .update(context.clone().unwrap_or_default());
                open.context = context;
            }
            // Without tools the prompt is sent at once (in the order prompts were entered);
            // with tools, once their servers are up, and a name they lack is the answer's error.
            let conversation = open.conversation.clone();
            let mut prompt_message = Message::user(prompt);
            prompt_message.parts.extend(attachments);
            let sent = tools
                .is_empty()
                .then(|| conversation.send(prompt_message.clone(), &Options::default()));
            let mcp = mcp.clone();
            let tx = tx.clone();
            answers.retain(|_, (_, task)| !task.is_finished());
            let task = tokio::spawn(async move {
                let reply = match sent {
                    Some(reply) => reply,
                    None => {
                        let names: Vec<&str> = tools.iter().map(String::as_str).collect();
                        match mcp.toolbox(&names).await {
                            Ok(toolbox) => {
                                let options = Options {
                                    toolbox: Some(std::sync::Arc::new(toolbox)),
                                    ..Options::default()
                                };
                                conversation.send(prompt_message, &options)
                            }
                            Err(e) => {
                                let _ = tx.send(Update::Done(message, Some(e.to_string())));
                                return;
                            }
                        }
                    }
                };
                let mut outputs = reply.outputs();
                while let Some(item) = outputs.next().await {
                    let update = match item {
                        Ok(Output::Text(text)) => Update::Text(message, text),
                        Ok(Output::Event(Event::Reasoning(text))) => {
                            Update::Reasoning(message, text)
                        }
                        Ok(Output::Event(Event::Other { name, message: m })) if name == "store" => {
                            let error = m["error"].as_str().unwrap_or("no answer").to_owned();
                            Update::Notice(format!("store: {error}; the answer is kept in memory"))
                        }
                        Ok(Output::Event(event)) => {
                            match crate::history::live_tool_step_line(&event) {
                                Some(line) => Update::ToolStep(message, line),
                                None => continue,
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Update::Done(message, Some(e.to_string())));
                            return;
                        }
                    };
                    if tx.send(update).is_err() {
                        // The app is gone: dropping the reply cancels the request.
                        return;
                    }
                }
                let _ = tx.send(Update::Done(message, None));
            });
            answers.insert(message, (chat, task.abort_handle()));
        }
    }
}

/// The open chat `name` on `model`: its conversation switched to `model` when another was
/// asked for. A chat with no conversation yet (its store failed, or it comes from a loaded
/// session) gets a new one that continues the conversation the flow shows; a model that keeps
/// its conversation on the service's side starts afresh, and the status bar says so.
fn open_chat<'a>(
    chats: &'a mut HashMap<String, OpenChat>,
    name: &str,
    model: Option<&str>,
    app: &mut App,
    config: &Config,
    storage: &storage::Storage,
) -> Result<&'a mut OpenChat, Error> {
    match chats.get_mut(name) {
        Some(open) if open.model.as_deref() == model => {}
        Some(open) => {
            open.conversation.switch(&config.resolve_all(model)?)?;
            open.model = model.map(str::to_owned);
        }
        None => {
            let (conversation, refused) =
                storage.unnamed(model, &app.conversation(name), config)?;
            if let Some(e) = refused {
                app.notice = Some(format!(
                    "{}: starts a new conversation ({e})",
                    conversation.model()
                ));
            }
            let open = OpenChat {
                model: model.map(str::to_owned),
                context: None,
                conversation,
            };
            chats.insert(name.to_owned(), open);
        }
    }
    chats
        .get_mut(name)
        .ok_or_else(|| Error::config(format!("the chat {name} is not open")))
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
