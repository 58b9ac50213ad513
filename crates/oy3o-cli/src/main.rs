//! `oy3o`: ask AI models from the terminal.
//!
//! - `oy3o` with no prompt on a terminal opens the interactive app (see [`app`]).
//! - `oy3o 'prompt'` streams one answer (see [`ask`]).
//! - `oy3o config path|init` shows or creates the config file (see [`config_file`]).
//! - `oy3o chain FILE` runs a task chain (see [`chain`]).
//! - `oy3o pull [NAME]` fetches a local model; `oy3o models` lists providers and aliases.
//! - `oy3o mcp` lists the configured MCP servers and their tools (see [`mcp`]).
//! - `oy3o serve` runs the WebSocket + HTTP server (see [`serve`]).
//! - `oy3o --chat NAME 'prompt'` continues a stored chat; `oy3o chats` and `oy3o log` show what
//!   the store kept (see [`store`] and [`history`]); `oy3o log --cost` with tokens and dollars.
//! - `oy3o keys add|list|revoke` manages a team server's keys (see [`keys`]); `oy3o usage`
//!   sums tokens and dollars by model, key or day (see [`usage`]).
//!
//! Errors go to stderr with a message that says what to do, and an exit code by kind: 2 for a
//! command called the wrong way, else see [`exit_code`].

mod app;
mod ask;
mod chain;
mod command_line;
mod config_file;
mod controls;
mod highlight;
mod history;
mod keys;
mod markdown;
mod mcp;
mod models;
mod progress;
mod serve;
mod store;
mod typos;
mod usage;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use oy3o::transport::client::check_proxy_setting;
use oy3o::{Config, Credential, Error, ErrorCode};

/// Ask AI models from the terminal. With no configuration, a small local model answers.
#[derive(Parser, Debug)]
#[command(name = "oy3o", version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The prompt. When stdin is piped too, stdin becomes the context.
    prompt: Option<String>,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    ask: ask::AskOptions,
    /// A session saved in the app with `save PATH`: with no prompt, the app reopens it; with a
    /// prompt, the prompt continues its current chat (its model and context, unless given).
    #[arg(long, value_name = "PATH", conflicts_with = "chat")]
    load: Option<PathBuf>,
    /// Continue (or start) the stored chat NAME: its history goes with the prompt, and the
    /// prompt and answer are added to it. With no prompt on a terminal, the app opens in it.
    #[arg(long, value_name = "NAME")]
    chat: Option<String>,
    /// In the app: the shortest time between two redraws while answers stream, in ms.
    #[arg(long, default_value_t = app::REDRAW_EVERY.as_millis() as u64, value_name = "MS")]
    redraw_ms: u64,
}

/// Options every command takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Model reference (`provider:model`, a bare provider, or an alias from the config).
    #[arg(long, short, env = "OY3O_MODEL", hide_env_values = true, global = true)]
    pub model: Option<String>,
    /// Context (system prompt) for the answer.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// A config file (TOML or JSON).
    #[arg(long, env = "OY3O_CONFIG", hide_env_values = true, global = true)]
    pub config: Option<PathBuf>,
    /// A file with the credential: a browser cookie export, or a key.
    #[arg(long, global = true)]
    pub cookie: Option<PathBuf>,
    /// An API key for the model's provider.
    #[arg(long, env = "OY3O_API_KEY", hide_env_values = true, global = true)]
    pub key: Option<String>,
    /// Proxy URL (http://, https://, socks5://, socks5h://); '' for none, over the config's
    /// and HTTPS_PROXY.
    #[arg(long, global = true, value_name = "URL")]
    pub proxy: Option<String>,
    /// Where conversations are kept: `none`, `sqlite:PATH` or `postgres://USER@HOST/DB`
    /// (default: SQLite in the data dir).
    #[arg(long, env = "OY3O_STORE", hide_env_values = true, global = true)]
    pub store: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a task chain file (TOML or JSON) and print each stage's answers.
    Chain {
        /// The chain file.
        file: PathBuf,
        /// Print machine-readable JSON lines (one per stage) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Download and verify a local model (default: smollm2) into the cache, and check its chat
    /// template.
    Pull {
        /// A catalog name: smollm2, qwen2.5-0.5b or qwen2.5-1.5b.
        #[arg(default_value = "smollm2")]
        name: String,
    },
    /// List providers, their default models, aliases and whether a credential is configured.
    Models,
    /// List the MCP servers of the config (`[mcp.NAME]`) and their tools, starting each.
    Mcp {
        /// Print one JSON line per server instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve every model over WebSocket (the original protocol) and an OpenAI-compatible HTTP API.
    Serve(serve::ServeArgs),
    /// List the stored chats (name, model, turns, last used).
    Chats,
    /// Show past prompts and answers, or prune old ones (`log prune --older-than 30d`).
    Log(history::LogArgs),
    /// Make, list and revoke the keys of a team server (kept in the store, hashed).
    Keys {
        /// What to do.
        #[command(subcommand)]
        action: keys::KeysAction,
    },
    /// Tokens and dollars spent, by model, key or day (`usage --by key --since 30d`).
    Usage(usage::UsageArgs),
    /// Show or create the config file.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// The options every command takes that a subcommand has no use for (by field name): refused
/// on its command line and left out of its help. `--config` is taken everywhere, so an alias
/// such as `oy3o --config ~/work.toml` works with every subcommand.
pub const UNUSED_OPTIONS: command_line::Unused<'static> = &[
    (
        "pull",
        &["model", "context", "cookie", "key", "proxy", "store"],
    ),
    ("models", &["model", "context", "proxy", "store"]),
    (
        "mcp",
        &["model", "context", "cookie", "key", "proxy", "store"],
    ),
    ("chats", &["model", "context", "cookie", "key", "proxy"]),
    ("log", &["model", "context", "cookie", "key", "proxy"]),
    ("keys", &["model", "context", "cookie", "key", "proxy"]),
    ("usage", &["model", "context", "cookie", "key", "proxy"]),
    (
        "config",
        &["model", "context", "cookie", "key", "proxy", "store"],
    ),
];

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Print the path of the config file (`--config`, `OY3O_CONFIG`, or the platform's).
    Path,
    /// Write a commented example config there (never overwrites).
    Init,
}

fn main() -> ExitCode {
    // Options every command takes mean the same before or after a subcommand; a typo is no prompt.
    let args: Args = typos::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("oy3o: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(args));
    // The tasks still running (answers a Ctrl+C or an exit left behind) end with the runtime.
    drop(runtime);
    let code = match result {
        Ok(()) => 0,
        Err(Failure::Usage(message)) => {
            eprintln!("oy3o: {message}");
            USAGE
        }
        Err(Failure::Engine(e)) => {
            eprintln!("oy3o: {e}");
            exit_code(e.code())
        }
    };
    exit(code)
}

/// How long the exit waits for a local model to stop: one decode step, or one chunk of a long
/// prompt on a slow machine.
const UNLOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Ends the process with `code` once no local model is computing. llama.cpp's static data is
/// destroyed when the process exits, and a model thread still decoding then crashes it (exit
/// 139 instead of 130 after a Ctrl+C): the models are unloaded first. A model that does not
/// stop in time is left behind by exiting without those destructors.
fn exit(code: u8) -> ExitCode {
    if oy3o::providers::unload_local_models(UNLOAD_WAIT) {
        return ExitCode::from(code);
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes no pointers and ends the process at once; every write the process
    // owes (output, the store's flush) is done by now.
    unsafe { libc::_exit(i32::from(code)) }
}

/// The exit code of a command called the wrong way, the same as clap's for bad options.
const USAGE: u8 = 2;

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// The command was called the wrong way (exit code 2); the message says how to call it.
    Usage(String),
    /// The engine or a model failed; the exit code follows its kind ([`exit_code`]).
    Engine(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Engine(e)
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    // The config commands must work when the config file is missing or broken.
    if let Some(Command::Config { action }) = &args.command {
        let path = config_file::path(args.common.config.as_deref())?;
        if let ConfigAction::Init = action {
            config_file::init(&path)?;
            eprintln!("wrote an example config to:");
        }
        println!("{}", path.display());
        return Ok(());
    }
    let config = config_from(&args.common)?;
    match args.command {
        None if args.prompt.is_none() && interactive() => {
            let redraw = std::time::Duration::from_millis(args.redraw_ms);
            let store = store::setting(args.common.store.as_deref(), &config)?;
            let chat = args.chat.as_deref();
            Ok(app::run(config, args.load.as_deref(), redraw, &store, chat).await?)
        }
        None => {
            let store = store::setting(args.common.store.as_deref(), &config)?;
            let from = match (&args.load, &args.chat) {
                (Some(path), _) => ask::Continue::Saved(path),
                (None, Some(name)) => ask::Continue::Stored(name),
                (None, None) => ask::Continue::Nothing,
            };
            ask::run(args.prompt, from, &args.common, &args.ask, &config, &store).await
        }
        Some(Command::Chats) => {
            let store = store::setting(args.common.store.as_deref(), &config)?;
            Ok(history::chats(&store).await?)
        }
        Some(Command::Log(log)) => {
            let store = store::setting(args.common.store.as_deref(), &config)?;
            Ok(history::log(&log, &store).await?)
        }
        Some(Command::Keys { action }) => {
            let store = store::setting(args.common.store.as_deref(), &config)?;
            keys::run(&action, &store).await
        }
        Some(Command::Usage(usage)) => {
            let store = store::setting(args.common.store.as_deref(), &config)?;
            usage::run(&usage, &store).await
        }
        Some(Command::Chain { file, json }) => {
            let store = store::setting(args.common.store.as_deref(), &config)?;
            Ok(chain::run(&file, json, &config, &store).await?)
        }
        Some(Command::Pull { name }) => Ok(pull(&name).await?),
        Some(Command::Models) => Ok(models::run(&config)?),
        Some(Command::Mcp { json }) => Ok(mcp::run(&config, json).await?),
        Some(Command::Serve(serve)) => {
            let store = store::setting(args.common.store.as_deref(), &config)?;
            Ok(serve::run(&serve, args.common.config.as_deref(), config, store).await?)
        }
        Some(Command::Config { .. }) => Ok(()),
    }
}

/// Whether a person is at the terminal: stdin and stdout both on one.
fn interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// Exit codes by error kind, so scripts can tell them apart.
fn exit_code(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::Config | ErrorCode::NotFound => 3,
        ErrorCode::Auth => 4,
        ErrorCode::Network | ErrorCode::Timeout => 5,
        ErrorCode::RateLimit | ErrorCode::Provider | ErrorCode::BadRequest => 6,
        ErrorCode::Cancelled => 130,
    }
}

/// The config file (given, or the default one if present) with the command-line options on top.
fn config_from(common: &Common) -> Result<Config, Error> {
    let mut config = load_config(common.config.as_deref())?;
    if let Some(proxy) = &common.proxy {
        // Checked now, before anything is sent, even when the model asked needs no network.
        check_proxy_setting(proxy)
            .map_err(|e| Error::config(format!("--proxy: {}", e.message())))?;
        config.proxy = Some(proxy.clone());
    }
    if let Some(path) = &common.cookie {
        config.cookie = Some(Credential::from_file(path)?);
    }
    if let Some(key) = &common.key {
        config.cookie = Some(Credential::Key(key.clone()));
    }
    if let Some(model) = &common.model {
        config.model = Some(model.clone());
    }
    Ok(config)
}

fn load_config(path: Option<&Path>) -> Result<Config, Error> {
    if let Some(path) = path {
        return Config::load(path);
    }
    match config_file::path(None) {
        Ok(path) if path.is_file() => Config::load(&path),
        _ => Ok(Config::default()),
    }
}

async fn pull(name: &str) -> Result<(), Error> {
    let mut line = progress::ProgressLine::new();
    let path = oy3o::providers::local::pull(name, &mut |p| {
        line.pull(&p.source, p.downloaded, p.total);
    })
    .await?;
    line.finish();
    println!("{}", path.display());
    Ok(())
}
