//! `oy3o 'prompt'`: one answer, streamed to stdout as it is written.
//!
//! On a terminal the answer is rendered as markdown and the model's reasoning is shown dimmed
//! on stderr; through a pipe stdout carries the raw answer only. `--json` writes events and
//! answer as JSON lines instead. Ctrl+C stops the answer (exit code 130) and, by dropping the
//! reply, closes the request upstream.
//!
//! Every answer is recorded in the store (see [`crate::store`]) without waiting for it;
//! `--chat NAME` continues a stored chat with its history.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use oy3o::{Config, Error, ErrorCode, Event, Output, Usage};
use oy3o_store::{ChatRecord, Recorder, StoreSetting, TurnRecorder, TurnState};
use serde_json::json;

use crate::markdown::Renderer;
use crate::progress::ProgressLine;
use crate::store::{self, LOCAL};
use crate::{Common, Failure};

/// What a one-shot prompt continues.
#[derive(Clone, Copy, Debug)]
pub enum Continue<'a> {
    /// Nothing: a new conversation of one turn.
    Nothing,
    /// The current chat of a session saved in the app (`--load PATH`).
    Saved(&'a Path),
    /// The stored chat of that name (`--chat NAME`), created when new.
    Stored(&'a str),
}

/// A stored chat opened for `--chat`: the store, the chat and its history.
struct StoredChat {
    store: std::sync::Arc<dyn oy3o_store::Store>,
    chat: ChatRecord,
    turns: Vec<oy3o_store::TurnRecord>,
}

/// Opens the stored chat `name` (creating it), or says why not in one warning.
async fn stored_chat(name: &str, setting: &StoreSetting) -> Option<StoredChat> {
    let store = match store::open(setting).await {
        Ok(store) => store,
        Err(e) => {
            store::warn(&format!("{e}; answering without the chat's history"));
            return None;
        }
    };
    let opened = async {
        let chat = store.open_chat(LOCAL, name, None, None).await?;
        let turns = store.turns(LOCAL, &chat.id).await?;
        Ok::<_, oy3o_store::StoreError>((chat, turns))
    };
    match opened.await {
        Ok((chat, turns)) => Some(StoredChat { store, chat, turns }),
        Err(e) => {
            store::warn(&format!("{e}; answering without the chat's history"));
            None
        }
    }
}

/// How the one-shot answer is shown.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AskOptions {
    /// Print the whole answer at once, when it is complete.
    #[arg(long)]
    pub no_stream: bool,
    /// Print the answer as the model wrote it (no markdown rendering).
    #[arg(long)]
    pub raw: bool,
    /// Print events and answer as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print the token counts at the end, on stderr.
    #[arg(long)]
    pub usage: bool,
    /// Do not show the model's reasoning.
    #[arg(long)]
    pub no_reasoning: bool,
}

/// Where each part of the answer goes, decided once from the options and the terminals.
struct Sink {
    json: bool,
    stream: bool,
    markdown: Option<Renderer>,
    /// Reasoning goes to stderr, dimmed, only when stderr is a terminal someone reads.
    reasoning: bool,
    in_reasoning: bool,
    held: String,
    ended_with_newline: bool,
}

impl Sink {
    fn new(options: &AskOptions) -> Self {
        let tty = std::io::stdout().is_terminal();
        Self {
            json: options.json,
            stream: !options.no_stream,
            markdown: (tty && !options.raw && !options.json).then(Renderer::default),
            reasoning: !options.no_reasoning && !options.json && std::io::stderr().is_terminal(),
            in_reasoning: false,
            held: String::new(),
            ended_with_newline: true,
        }
    }

    /// Writes one output; `Err` means the reader went away.
    fn write(&mut self, output: &Output, out: &mut impl Write) -> std::io::Result<()> {
        match output {
            Output::Text(text) => {
                self.end_reasoning();
                if self.json {
                    if self.stream {
                        writeln!(
                            out,
                            "{}",
                            json!({"event": "text", "message": {"text": text}})
                        )?;
                    }
                } else if self.stream {
                    self.text(text, out)?;
                } else {
                    self.held.push_str(text);
                }
            }
            Output::Event(event) => {
                if self.json {
                    writeln!(out, "{}", event.to_json())?;
                } else if let Event::Retry {
                    attempt,
                    delay_ms,
                    reason,
                } = event
                {
                    // Say why the answer is late; stdout stays the answer only.
                    self.end_reasoning();
                    eprintln!(
                        "oy3o: retry {attempt} in {:.1}s ({reason})",
                        *delay_ms as f64 / 1000.0
                    );
                } else if let Event::Reasoning(text) = event
                    && self.reasoning
                {
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\x1b[2m{text}\x1b[0m");
                    let _ = err.flush();
                    self.in_reasoning = true;
                }
            }
        }
        out.flush()
    }

    fn text(&mut self, text: &str, out: &mut impl Write) -> std::io::Result<()> {
        self.ended_with_newline = text.ends_with('\n');
        match &mut self.markdown {
            Some(renderer) => out.write_all(renderer.push(text).as_bytes()),
            None => out.write_all(text.as_bytes()),
        }
    }

    fn end_reasoning(&mut self) {
        if self.in_reasoning {
            self.in_reasoning = false;
            eprintln!();
        }
    }

    /// Writes what was held back and ends the last line.
    fn finish(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        self.end_reasoning();
        if !self.json {
            let held = std::mem::take(&mut self.held);
            if !held.is_empty() {
                self.text(&held, out)?;
            }
            if let Some(renderer) = &mut self.markdown {
                out.write_all(renderer.finish().as_bytes())?;
            }
            if !self.ended_with_newline {
                writeln!(out)?;
                self.ended_with_newline = true;
            }
        }
        out.flush()
    }
}

/// Streams the answer to `prompt` (or to piped stdin) to stdout, continuing what `from` names,
/// and records the turn in the store `setting` names.
pub async fn run(
    prompt: Option<String>,
    from: Continue<'_>,
    common: &Common,
    options: &AskOptions,
    config: &Config,
    setting: &StoreSetting,
) -> Result<(), Failure> {
    let piped = read_piped_stdin()?;
    let (prompt, stdin_context) = match (prompt, piped) {
        (Some(p), stdin) => (p, stdin),
        (None, Some(stdin)) => (stdin, None),
        (None, None) => {
            return Err(Failure::Usage(
                "no prompt given: run oy3o 'your question' (or pipe the question into it)".into(),
            ));
        }
    };
    let saved = match from {
        Continue::Saved(path) => Some(crate::app::saved_chat(path)?),
        _ => None,
    };
    let stored = match from {
        Continue::Stored(name) => stored_chat(name, setting).await,
        _ => None,
    };
    // An explicit context or model wins over the saved (or stored) chat's.
    let given_context = common
        .context
        .clone()
        .or_else(|| saved.as_ref().and_then(|s| s.context.clone()))
        .or_else(|| stored.as_ref().and_then(|s| s.chat.context.clone()));
    let context = match (stdin_context, given_context) {
        (Some(s), Some(c)) => Some(format!("{c}\n\n{s}")),
        (s, c) => c.or(s),
    };
    let mut config = config.clone();
    if let Some(model) = saved.as_ref().and_then(|s| s.model.clone())
        && common.model.is_none()
    {
        config.model = Some(model);
    }
    if let Some(model) = stored.as_ref().and_then(|s| s.chat.model.clone())
        && common.model.is_none()
    {
        config.model = Some(model);
    }
    if let Some(saved) = &saved {
        saved.fill(&mut config);
    }
    // The turn's record: in the stored chat, else in a chat of its own. A `--chat` whose store
    // failed to open already cost its warning: nothing more is tried.
    let (recorder, record) = match (&stored, from) {
        (Some(s), _) => {
            let mut chat = s.chat.clone();
            chat.context = context.clone();
            chat.model = config.model.clone().or(chat.model);
            let recorder = store::recorder_on(s.store.clone());
            (Some(recorder), Some((chat, s.turns.len() as i64)))
        }
        (None, Continue::Stored(_)) => (None, None),
        (None, _) => {
            let chat = ChatRecord::new(LOCAL, None, config.model.as_deref(), context.as_deref());
            (store::recorder(setting), Some((chat, 0)))
        }
    };
    let history = match (saved.as_ref(), stored.as_ref()) {
        (Some(saved), _) => Some(saved.history.clone()),
        (None, Some(s)) if !s.turns.is_empty() => Some(oy3o_store::history(&s.turns)),
        _ => None,
    };
    let result = answer(
        &prompt,
        history,
        context,
        options,
        &config,
        recorder.as_ref().zip(record),
    )
    .await;
    store::finish(recorder).await;
    result
}

/// Streams the answer, recording it through `recorder` in `chat` (as its turn `seq`).
async fn answer(
    prompt: &str,
    history: Option<Vec<oy3o::Message>>,
    context: Option<String>,
    options: &AskOptions,
    config: &Config,
    recorder: Option<(&Recorder, (ChatRecord, i64))>,
) -> Result<(), Failure> {
    let mut config = config.clone();
    let line = Arc::new(Mutex::new(ProgressLine::new()));
    let bar = line.clone();
    config.listeners.on("pull", move |event| {
        let m = event.message();
        let source = m["source"].as_str().unwrap_or("source");
        let downloaded = m["downloaded"].as_u64().unwrap_or(0);
        if let Ok(mut bar) = bar.lock() {
            bar.pull(source, downloaded, m["total"].as_u64());
        }
    });
    // The first answer of a process loads a local model first: show it on a terminal.
    let loading = line.clone();
    config.listeners.on("load", move |event| {
        if let (true, Ok(mut line)) = (std::io::stderr().is_terminal(), loading.lock()) {
            let model = event.message()["model"]
                .as_str()
                .unwrap_or("the model")
                .to_owned();
            line.status(&format!("loading {model}…"));
        }
    });
    // Nobody chose the model: say which one answered, once the answer is out.
    let by_default = config.model.is_none();
    let answered_by = Arc::new(Mutex::new(None::<String>));
    let by = answered_by.clone();
    config.listeners.on("create", move |event| {
        if let (Some(model), Ok(mut by)) = (event.message()["model"].as_str(), by.lock()) {
            *by = Some(model.to_owned());
        }
    });
    // Listen for Ctrl+C before the request starts, so an early one is not lost.
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut sink = Sink::new(options);
    let mut out = std::io::stdout().lock();
    let reply = match history {
        None => oy3o::exec(prompt, context.as_deref(), None, &config),
        Some(history) => match continue_chat(history, prompt, context, &config) {
            Ok(reply) => reply,
            Err(e) => {
                if options.json {
                    let _ = writeln!(out, "{}", error_event(&e).to_json());
                }
                return Err(e.into());
            }
        },
    };
    let turn = recorder.map(|(r, (chat, seq))| r.begin_turn(&chat, seq, prompt));
    let mut outputs = reply.outputs();
    let mut first = true;
    loop {
        let item = tokio::select! {
            item = outputs.next() => item,
            _ = &mut ctrl_c => {
                // Dropping the reply closes the connection: the provider stops generating.
                drop(outputs);
                let _ = sink.finish(&mut out);
                end(&turn, TurnState::Cancelled, None, None);
                return Err(Error::new(ErrorCode::Cancelled, "stopped (Ctrl+C)").into());
            }
        };
        let Some(item) = item else { break };
        // Progress (a pull, the load) lasts until the answer or an error comes.
        if first && !matches!(item, Ok(Output::Event(_))) {
            first = false;
            if let Ok(mut l) = line.lock() {
                l.clear();
            }
        }
        let output = match item {
            Ok(output) => output,
            Err(e) => {
                if options.json {
                    // A JSON reader sees the failure in the stream too, not only the exit code.
                    let _ = writeln!(out, "{}", error_event(&e).to_json());
                }
                let _ = sink.finish(&mut out);
                end(&turn, TurnState::Error, None, Some(e.message()));
                return Err(e.into());
            }
        };
        if let Some(turn) = &turn {
            match &output {
                Output::Text(text) => turn.chunk(text),
                Output::Event(event) => turn.event(event),
            }
        }
        if sink.write(&output, &mut out).is_err() {
            // The reader went away (e.g. `| head`): stop quietly.
            end(&turn, TurnState::Cancelled, None, None);
            return Ok(());
        }
    }
    let _ = sink.finish(&mut out);
    end(&turn, TurnState::Done, outputs.reply().usage(), None);
    let answered_by = answered_by.lock().ok().and_then(|by| by.clone());
    if let Some(model) = answered_by.filter(|_| by_default && !options.json)
        && std::io::stderr().is_terminal()
    {
        eprintln!("\x1b[2m({model}, the default model; --model picks another)\x1b[0m");
    }
    if options.usage {
        match outputs.reply().usage() {
            Some(usage) => eprintln!("{}", usage_line(usage)),
            None => eprintln!("tokens: not reported by the provider"),
        }
    }
    Ok(())
}

/// Ends the turn's record, if there is one.
fn end(turn: &Option<TurnRecorder>, state: TurnState, usage: Option<&Usage>, error: Option<&str>) {
    if let Some(turn) = turn {
        turn.finish(state, usage, error);
    }
}

/// Opens the config's model, gives it a saved conversation and sends the next prompt.
fn continue_chat(
    history: Vec<oy3o::Message>,
    prompt: &str,
    context: Option<String>,
    config: &Config,
) -> Result<oy3o::Reply, Error> {
    let chat = oy3o::Chat::open(None, config)?;
    if let Some(context) = context {
        chat.update(context);
    }
    chat.restore(history)?;
    // The reply owns what it needs: the chat may go.
    Ok(chat.send(prompt))
}

fn error_event(e: &Error) -> Event {
    Event::Error {
        code: e.code(),
        message: e.message().to_owned(),
    }
}

/// `tokens: 19 in, 2 out (…)`: what `--usage` prints.
fn usage_line(usage: &Usage) -> String {
    let mut extra = Vec::new();
    if let Some(n) = usage.cached_tokens.filter(|n| *n > 0) {
        extra.push(format!("{n} cached"));
    }
    if let Some(n) = usage.reasoning_tokens.filter(|n| *n > 0) {
        extra.push(format!("{n} reasoning"));
    }
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(" ({})", extra.join(", "))
    };
    format!(
        "tokens: {} in, {} out{extra}",
        usage.input_tokens, usage.output_tokens
    )
}

fn read_piped_stdin() -> Result<Option<String>, Error> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(None);
    }
    let mut text = String::new();
    stdin
        .lock()
        .read_to_string(&mut text)
        .map_err(|e| Error::config(format!("cannot read stdin: {e}")))?;
    Ok(Some(text).filter(|t| !t.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usage_line_names_in_and_out_tokens_and_the_extras_when_known() {
        let mut usage = Usage {
            input_tokens: 19,
            output_tokens: 2,
            ..Usage::default()
        };
        assert_eq!(usage_line(&usage), "tokens: 19 in, 2 out");
        usage.reasoning_tokens = Some(5);
        assert_eq!(usage_line(&usage), "tokens: 19 in, 2 out (5 reasoning)");
    }
}
