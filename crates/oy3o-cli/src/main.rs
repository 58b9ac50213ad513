//! `oy3o 'prompt'`: streams one answer from a model to stdout.
//!
//! Errors go to stderr with a message that says what to do, and an exit code by kind (see
//! [`exit_code`]). The full terminal (interactive app, markdown) is built on this.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use futures::StreamExt;
use oy3o::{Config, Credential, Error, ErrorCode};

/// Ask an AI model from the terminal. With no configuration, a small local model answers.
#[derive(Parser, Debug)]
#[command(name = "oy3o", version, about)]
struct Args {
    /// The prompt. When stdin is piped too, stdin becomes the context.
    prompt: Option<String>,
    /// Model reference (`provider:model`, a bare provider, or an alias from the config).
    #[arg(long, short, env = "OY3O_MODEL")]
    model: Option<String>,
    /// Context (system prompt) for the answer.
    #[arg(long)]
    context: Option<String>,
    /// A config file (TOML or JSON).
    #[arg(long, env = "OY3O_CONFIG")]
    config: Option<PathBuf>,
    /// A file with the credential: a browser cookie export, or a key.
    #[arg(long)]
    cookie: Option<PathBuf>,
    /// An API key for the model's provider.
    #[arg(long, env = "OY3O_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Proxy URL (http://, https://, socks5://, socks5h://).
    #[arg(long)]
    proxy: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
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
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oy3o: {e}");
            ExitCode::from(exit_code(e.code()))
        }
    }
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

async fn run(args: Args) -> Result<(), Error> {
    let mut config = load_config(args.config.as_deref())?;
    if let Some(proxy) = args.proxy {
        config.proxy = Some(proxy);
    }
    if let Some(path) = &args.cookie {
        config.cookie = Some(Credential::from_file(path)?);
    }
    if let Some(key) = args.key {
        config.cookie = Some(Credential::Key(key));
    }
    let piped = read_piped_stdin()?;
    let (prompt, stdin_context) = match (args.prompt, piped) {
        (Some(p), stdin) => (p, stdin),
        (None, Some(stdin)) => (stdin, None),
        (None, None) => {
            return Err(Error::config(
                "no prompt given: run oy3o 'your question' (or pipe the question into it)",
            ));
        }
    };
    let context = match (stdin_context, args.context) {
        (Some(s), Some(c)) => Some(format!("{c}\n\n{s}")),
        (s, c) => c.or(s),
    };
    let mut reply = oy3o::exec(&prompt, context.as_deref(), args.model.as_deref(), &config);
    let mut out = std::io::stdout().lock();
    let mut ended_with_newline = true;
    while let Some(chunk) = reply.next().await {
        let chunk = chunk?;
        ended_with_newline = chunk.ends_with('\n');
        // Flush every chunk: the answer appears as it is written.
        let written = out.write_all(chunk.as_bytes()).and_then(|_| out.flush());
        if written.is_err() {
            // The reader went away (e.g. `| head`): stop quietly.
            return Ok(());
        }
    }
    if !ended_with_newline {
        let _ = writeln!(out);
    }
    Ok(())
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config, Error> {
    if let Some(path) = path {
        return Config::load(path);
    }
    let default = dirs::config_dir().map(|d| d.join("oy3o").join("config.toml"));
    match default {
        Some(path) if path.is_file() => Config::load(&path),
        _ => Ok(Config::default()),
    }
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
