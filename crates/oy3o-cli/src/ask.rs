//! `oy3o 'prompt'`: one answer, streamed to stdout as it is written.

use std::io::{IsTerminal, Read, Write};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use oy3o::{Config, Error};

use crate::Common;
use crate::progress::ProgressLine;

/// Streams the answer to `prompt` (or to piped stdin) to stdout.
pub async fn run(prompt: Option<String>, common: &Common, config: &Config) -> Result<(), Error> {
    let piped = read_piped_stdin()?;
    let (prompt, stdin_context) = match (prompt, piped) {
        (Some(p), stdin) => (p, stdin),
        (None, Some(stdin)) => (stdin, None),
        (None, None) => {
            return Err(Error::config(
                "no prompt given: run oy3o 'your question' (or pipe the question into it)",
            ));
        }
    };
    let context = match (stdin_context, common.context.clone()) {
        (Some(s), Some(c)) => Some(format!("{c}\n\n{s}")),
        (s, c) => c.or(s),
    };
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
    let mut reply = oy3o::exec(&prompt, context.as_deref(), None, &config);
    let mut out = std::io::stdout().lock();
    let mut ended_with_newline = true;
    let mut first = true;
    while let Some(chunk) = reply.next().await {
        let chunk = chunk?;
        if first {
            first = false;
            if let Ok(mut l) = line.lock() {
                l.finish();
            }
        }
        ended_with_newline = chunk.ends_with('\n');
        // Flush every chunk: the answer appears as it is written.
        if out
            .write_all(chunk.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            // The reader went away (e.g. `| head`): stop quietly.
            return Ok(());
        }
    }
    if !ended_with_newline {
        let _ = writeln!(out);
    }
    Ok(())
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
