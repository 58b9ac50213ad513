//! `oy3o 'prompt'`: one answer, streamed to stdout as it is written.
//!
//! On a terminal the answer is rendered as markdown and the model's reasoning is shown dimmed
//! on stderr; through a pipe stdout carries the raw answer only. `--json` writes events and
//! answer as JSON lines instead. Ctrl+C stops the answer (exit code 130) and, by dropping the
//! reply, closes the request upstream.
//!
//! Every answer is recorded in the store (see [`crate::store`]) through the engine's
//! conversations, without waiting for it; `--chat NAME` resumes a stored chat (history,
//! context, model, and a provider's own conversation such as Copilot's).

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use oy3o::{
    Config, Conversation, Error, ErrorCode, Event, Message, Opening, Options, Output, Usage,
};
use oy3o_store::StoreSetting;
use serde_json::json;

use crate::history::live_tool_step_line;
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
    /// Give the model tools of the config's MCP servers (`[mcp.NAME]`): a server (`time`, all
    /// its tools) or one tool (`time.get_current_time`); comma-separated or repeated. Each call
    /// and result is shown on stderr as it runs.
    #[arg(long, value_name = "NAME[,NAME]", value_delimiter = ',')]
    pub tools: Vec<String>,
    /// Request controls (reasoning, schema, search, stop sequences, extra body).
    #[command(flatten)]
    pub controls: crate::controls::ControlArgs,
    /// Send a file or an http(s) URL with the prompt: a PNG, JPEG, WebP or GIF image, a PDF,
    /// a text document or a WAV/MP3 sound (repeat for more). Sizes are limited by the
    /// config's `[attachments]`.
    #[arg(short = 'a', long = "attach", value_name = "FILE|URL")]
    pub attach: Vec<String>,
}

/// The prompt as a user message: its text, then the `--attach` files and URLs, loaded and
/// checked by the engine's loader (an error names the attachment; nothing is sent).
pub fn prompt_message(
    prompt: &str,
    attach: &[String],
    config: &Config,
) -> Result<Message, Failure> {
    let inputs: Vec<oy3o::attachment::Input> = attach
        .iter()
        .map(|a| oy3o::attachment::Input::arg(a))
        .collect();
    let limits = config.attachments.unwrap_or_default();
    let parts =
        oy3o::attachment::load_all(&inputs, &limits, |i| format!("--attach {}", attach[i]))?;
    let mut message = Message::user(prompt);
    message.parts.extend(parts);
    Ok(message)
}

/// Whether the answer is rendered with styles: on a terminal, unless `--raw` or `--json` asks
/// for the text as written, or `NO_COLOR` (set and not empty) asks for no colours at all.
/// An answer that follows a schema is JSON: printed as written, never rendered.
fn styled(tty: bool, options: &AskOptions, no_color: Option<std::ffi::OsString>) -> bool {
    tty && !options.raw
        && !options.json
        && !options.controls.structured()
        && no_color.is_none_or(|v| v.is_empty())
}

/// Where each part of the answer goes, decided once from the options and the terminals.
struct Sink {
    json: bool,
    stream: bool,
    markdown: Option<Renderer>,
    /// Reasoning goes to stderr, dimmed, only when stderr is a terminal someone reads.
    reasoning: bool,
    /// Tool steps go to stderr (stdout stays the answer), dimmed on a terminal.
    dim_tools: bool,
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
            markdown: styled(tty, options, std::env::var_os("NO_COLOR")).then(Renderer::default),
            reasoning: !options.no_reasoning && !options.json && std::io::stderr().is_terminal(),
            dim_tools: std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
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
                } else if let Event::Other { name, message } = event
                    && name == "store"
                {
                    // The turn waits in memory: say so once, the answer is not hurt.
                    let error = message["error"].as_str().unwrap_or("no answer");
                    self.end_reasoning();
                    store::warn(&format!("the store did not confirm this turn ({error})"));
                } else if let Some(line) = live_tool_step_line(event) {
                    // A tool step on its own line, between the answer's text (which goes on).
                    self.end_reasoning();
                    let mut err = std::io::stderr().lock();
                    let _ = if self.dim_tools {
                        writeln!(err, "\x1b[2m{line}\x1b[0m")
                    } else {
                        writeln!(err, "{line}")
                    };
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
    // An empty prompt (`oy3o ''`) is no prompt: nothing is sent.
    let prompt = prompt.filter(|p| !p.trim().is_empty());
    let (prompt, stdin_context) = match (prompt, piped) {
        (Some(p), stdin) => (p, stdin),
        (None, Some(stdin)) => (stdin, None),
        (None, None) => {
            return Err(Failure::Usage(
                "no prompt given: run oy3o 'your question' (or pipe the question into it)".into(),
            ));
        }
    };
    // Attachments are read and checked before anything is opened or sent.
    let message = prompt_message(&prompt, &options.attach, config)?;
    let recorder = store::recorder(setting, config.prices());
    // A first answer from the local model may download it: show the progress. The listener
    // goes on the config before the conversation opens, so its model carries it.
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
    let by_default = config.model.is_none() && !options.json;
    let answered_by = Arc::new(Mutex::new(None::<String>));
    let by = answered_by.clone();
    config.listeners.on("create", move |event| {
        if let (Some(model), Ok(mut by)) = (event.message()["model"].as_str(), by.lock()) {
            *by = Some(model.to_owned());
        }
    });
    // The tools are found (their servers started) before anything is sent: an unknown name
    // fails the command with the names that exist.
    let mcp = (!options.tools.is_empty()).then(|| oy3o::mcp::McpTools::new(&config));
    let result = async {
        let mut send = options.controls.options()?;
        if let Some(mcp) = &mcp {
            let names: Vec<&str> = options.tools.iter().map(|n| n.trim()).collect();
            send.toolbox = Some(Arc::new(mcp.toolbox(&names).await?));
        }
        let conversation = open(from, common, &config, recorder.as_ref()).await?;
        if let Some(stdin) = stdin_context {
            // Piped stdin adds to the context in force (given, saved or stored).
            let context = match conversation.record().context {
                Some(c) => format!("{c}\n\n{stdin}"),
                None => stdin,
            };
            conversation.update(context);
        }
        answer(&conversation, message, &send, options, &line).await
    }
    .await;
    // The tool servers this process started stop with it.
    if let Some(mcp) = mcp {
        mcp.close().await;
    }
    if let Ok(Some(usage)) = &result {
        let answered_by = answered_by.lock().ok().and_then(|by| by.clone());
        if let Some(model) = answered_by.filter(|_| by_default)
            && std::io::stderr().is_terminal()
        {
            eprintln!("\x1b[2m({model}, the default model; --model picks another)\x1b[0m");
        }
        if options.usage {
            match usage {
                Some(usage) => eprintln!("{}", usage_line(usage)),
                None => eprintln!("tokens: not reported by the provider"),
            }
        }
    }
    if let Err(Failure::Engine(e)) = &result
        && options.json
    {
        // A JSON reader sees the failure in the stream too, not only the exit code.
        let _ = writeln!(std::io::stdout(), "{}", error_event(e).to_json());
    }
    store::finish(recorder).await;
    result.map(|_| ())
}

/// Opens the conversation the prompt continues, through the engine's one conversation path:
/// the stored chat (`--chat`), the chat of a saved session (`--load`), or a new one. An explicit
/// model or context wins over the continued chat's.
async fn open(
    from: Continue<'_>,
    common: &Common,
    config: &Config,
    recorder: Option<&oy3o_store::Recorder>,
) -> Result<Conversation, Failure> {
    let conversations = store::conversations(recorder);
    let model = common.model.as_deref();
    let context = common.context.as_deref();
    match from {
        Continue::Stored(name) => {
            if recorder.is_none() {
                store::warn(&format!(
                    "no store is configured (store = \"none\"): the chat {name:?} is not kept"
                ));
            }
            let opening = Opening::named(LOCAL, name).model(model).context(context);
            Ok(conversations.open(opening, config).await?)
        }
        Continue::Saved(path) => {
            let saved = crate::app::saved_chat(path)?;
            let mut config = config.clone();
            saved.fill(&mut config);
            let opening = Opening::one_shot(LOCAL)
                .model(model.or(saved.model.as_deref()))
                .context(context.or(saved.context.as_deref()));
            let conversation = conversations.one_shot(&opening, &config)?;
            conversation.restore(saved.history)?;
            Ok(conversation)
        }
        Continue::Nothing => {
            let opening = Opening::one_shot(LOCAL).model(model).context(context);
            Ok(conversations.one_shot(&opening, config)?)
        }
    }
}

/// Streams the answer to `prompt`; the conversation records the turn. `Ok(Some(usage))` once
/// the answer is complete, `Ok(None)` when the reader went away.
async fn answer(
    conversation: &Conversation,
    prompt: Message,
    send: &Options,
    options: &AskOptions,
    line: &Mutex<ProgressLine>,
) -> Result<Option<Option<Usage>>, Failure> {
    // Listen for Ctrl+C before the request starts, so an early one is not lost.
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut sink = Sink::new(options);
    let mut out = std::io::stdout().lock();
    let reply = conversation.send(prompt, send);
    let mut outputs = reply.outputs();
    let mut first = true;
    loop {
        let item = tokio::select! {
            item = outputs.next() => item,
            _ = &mut ctrl_c => {
                // Dropping the reply closes the connection (the provider stops generating) and
                // records the turn as cancelled.
                drop(outputs);
                let _ = sink.finish(&mut out);
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
                let _ = sink.finish(&mut out);
                return Err(e.into());
            }
        };
        if sink.write(&output, &mut out).is_err() {
            // The reader went away (e.g. `| head`): stop quietly (the turn is cancelled).
            return Ok(None);
        }
    }
    let _ = sink.finish(&mut out);
    Ok(Some(outputs.reply().usage().cloned()))
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
    fn no_color_turns_the_styled_markdown_off_on_a_terminal() {
        let options = AskOptions::default();
        assert!(styled(true, &options, None));
        assert!(styled(true, &options, Some("".into())));
        assert!(!styled(true, &options, Some("1".into())));
        assert!(!styled(false, &options, None));
        let raw = AskOptions {
            raw: true,
            ..AskOptions::default()
        };
        assert!(!styled(true, &raw, None));
    }

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
