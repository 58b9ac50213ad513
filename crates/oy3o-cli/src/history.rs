//! `oy3o chats`, `oy3o log` and `oy3o log prune`: what the store kept, for the local user.

use std::io::Write;
use std::time::Duration;

use oy3o::Error;
use oy3o_store::{LoggedTurn, Store, StoreSetting, now_ms};
use serde_json::json;

use crate::Failure;
use crate::store::{self, LOCAL};

/// What `oy3o log` does.
#[derive(clap::Subcommand, Debug)]
pub enum LogAction {
    /// Remove turns (and the chats left empty) older than an age.
    Prune {
        /// The age: a number and a unit (s, m, h or d), e.g. `30d`.
        #[arg(long, value_name = "AGE")]
        older_than: String,
    },
}

/// `oy3o log` options.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LogArgs {
    /// What to do instead of listing.
    #[command(subcommand)]
    pub action: Option<LogAction>,
    /// How many turns to show (the latest).
    #[arg(short = 'n', long = "count", default_value_t = 10, value_name = "N")]
    pub count: u32,
    /// Print one JSON object per turn.
    #[arg(long)]
    pub json: bool,
    /// Show each turn's token counts and cost (US dollars, at the prices in force when it
    /// ended).
    #[arg(long)]
    pub cost: bool,
    /// Only turns whose prompt or answer hold all these words.
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
}

/// `oy3o chats`: the named chats, the last used first.
pub async fn chats(setting: &StoreSetting) -> Result<(), Error> {
    let store = store::open(setting).await?;
    // Not closed: the process exits (see `store::finish`).
    let chats = store.chats(LOCAL).await.map_err(Error::from);
    let named: Vec<_> = chats?
        .into_iter()
        .filter(|c| c.chat.name.is_some())
        .collect();
    if named.is_empty() {
        eprintln!("no chats yet: start one with oy3o --chat NAME 'prompt'");
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<20} {:<28} {:>5}  LAST USED",
        "NAME", "MODEL", "TURNS"
    );
    for c in named {
        let _ = writeln!(
            out,
            "{:<20} {:<28} {:>5}  {}",
            c.chat.name.unwrap_or_default(),
            c.chat.model.unwrap_or_else(|| "-".into()),
            c.turns,
            store::time(c.last_at)
        );
    }
    Ok(())
}

/// `oy3o log …`.
pub async fn log(args: &LogArgs, setting: &StoreSetting) -> Result<(), Failure> {
    match &args.action {
        Some(LogAction::Prune { older_than }) => {
            // A mistyped age is a usage mistake, told before the store is opened.
            let age = store::age(older_than).map_err(Failure::Usage)?;
            let store = store::open(setting).await?;
            Ok(prune(&*store, age, older_than).await?)
        }
        None => Ok(list(&*store::open(setting).await?, args).await?),
    }
    // Not closed: the process exits (see `store::finish`).
}

async fn prune(store: &dyn Store, age: Duration, older_than: &str) -> Result<(), Error> {
    let before = now_ms().saturating_sub(age.as_millis() as i64);
    let pruned = store
        .prune(Some(LOCAL), before)
        .await
        .map_err(Error::from)?;
    println!(
        "removed {} and {} older than {older_than}",
        count(pruned.turns, "turn"),
        count(pruned.chats, "chat")
    );
    Ok(())
}

/// `1 turn`, `4 turns`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

async fn list(store: &dyn Store, args: &LogArgs) -> Result<(), Error> {
    let mut turns = store
        .recent_turns(LOCAL, args.count, args.search.as_deref())
        .await
        .map_err(Error::from)?;
    // Read like a conversation: the oldest of the selection first.
    turns.reverse();
    let mut out = std::io::stdout().lock();
    for logged in &turns {
        let written = if args.json {
            writeln!(out, "{}", turn_json(logged))
        } else {
            write_turn(&mut out, logged, args.cost)
        };
        if written.is_err() {
            // The reader went away (`| head`).
            return Ok(());
        }
    }
    if turns.is_empty() && !args.json && args.count > 0 {
        match &args.search {
            Some(words) => eprintln!("no turn holds all of: {words}"),
            None => eprintln!("no turns logged yet"),
        }
    }
    Ok(())
}

fn write_turn(out: &mut impl Write, logged: &LoggedTurn, cost: bool) -> std::io::Result<()> {
    let t = &logged.turn;
    let chat = logged.chat_name.as_deref().unwrap_or("-");
    let model = t.model.as_deref().unwrap_or("-");
    writeln!(
        out,
        "# {}  chat: {chat}  model: {model}  ({})",
        store::time(t.created_at),
        t.state
    )?;
    for line in t.prompt.lines() {
        writeln!(out, "> {line}")?;
    }
    for line in attachment_lines(t) {
        writeln!(out, "> [attached {line}]")?;
    }
    writeln!(out)?;
    for event in &t.events {
        if let Some(line) = tool_step_line(event) {
            writeln!(out, "{line}")?;
        }
    }
    writeln!(out, "{}", t.answer.trim_end())?;
    if let Some(error) = &t.error {
        writeln!(out, "(error: {error})")?;
    }
    if cost {
        writeln!(out, "({})", cost_line(t))?;
    }
    writeln!(out)
}

/// `1,200 in (800 cached), 300 out (100 reasoning), $0.0042`, or what is not known of it.
pub(crate) fn cost_line(t: &oy3o_store::TurnRecord) -> String {
    let tokens = match &t.usage {
        Some(u) => {
            let mut s = format!("{} in", u.input_tokens);
            if let Some(c) = u.cached_tokens.filter(|c| *c > 0) {
                s.push_str(&format!(" ({c} cached)"));
            }
            s.push_str(&format!(", {} out", u.output_tokens));
            if let Some(r) = u.reasoning_tokens.filter(|r| *r > 0) {
                s.push_str(&format!(" ({r} reasoning)"));
            }
            s
        }
        None => "no usage reported".to_owned(),
    };
    match t.cost_usd {
        Some(usd) => format!("{tokens}, ${usd:.4}"),
        None if t.usage.is_some() => format!("{tokens}, no price for this model"),
        None => tokens,
    }
}

/// [`tool_step_line`] of a live event: only a tool call or result is turned into JSON, so the
/// answer's other events (a reasoning chunk each) cost one match.
pub(crate) fn live_tool_step_line(event: &oy3o::Event) -> Option<String> {
    match event {
        oy3o::Event::ToolCall(_) | oy3o::Event::ToolResult(_) => tool_step_line(&event.to_json()),
        _ => None,
    }
}

/// A `tool_call` or `tool_result` event (stored, or live as [`oy3o::Event::to_json`] gives it)
/// as one line of the log and of a running answer: `→ name {arguments}`,
/// `← name (12 ms): output` (`✗` for an error), cut at 200 characters; `None` for other events.
pub(crate) fn tool_step_line(event: &serde_json::Value) -> Option<String> {
    let message = &event["message"];
    let name = message["name"].as_str().unwrap_or("?");
    let line = match event["event"].as_str()? {
        "tool_call" => format!("→ {name} {}", message["arguments"]),
        "tool_result" => {
            let mark = if message["is_error"] == true {
                '✗'
            } else {
                '←'
            };
            let content = message["content"].as_str().unwrap_or_default();
            format!(
                "{mark} {name} ({} ms): {}",
                message["elapsed_ms"],
                content.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        }
        _ => return None,
    };
    Some(match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    })
}

/// The prompt's attachments as the log names them: `name, MIME, size, sha256:DIGEST12`.
fn attachment_lines(t: &oy3o_store::TurnRecord) -> Vec<String> {
    t.parts
        .as_ref()
        .and_then(|p| p["prompt"].as_array())
        .into_iter()
        .flatten()
        .filter_map(oy3o_store::attachment_line)
        .collect()
}

/// One turn as `--json` prints it.
fn turn_json(logged: &LoggedTurn) -> serde_json::Value {
    let t = &logged.turn;
    json!({
        "id": t.id,
        "chat": logged.chat_name,
        "chat_id": t.chat_id,
        "seq": t.seq,
        "model": t.model,
        "prompt": t.prompt,
        "attachments": attachment_lines(t),
        "answer": t.answer,
        "reasoning": t.reasoning,
        "events": t.events,
        "steps": t.steps(),
        "usage": t.usage,
        "cost_usd": t.cost_usd,
        "state": t.state,
        "error": t.error,
        "first_token_ms": t.first_token_ms,
        "elapsed_ms": t.elapsed_ms,
        "created_at": t.created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_steps_read_as_one_line_each_and_long_output_is_cut() {
        let call = json!({"event": "tool_call", "message":
            {"id": "c1", "name": "time__now", "arguments": {"tz": "UTC"}}});
        assert_eq!(
            tool_step_line(&call).as_deref(),
            Some(r#"→ time__now {"tz":"UTC"}"#)
        );
        let failed = json!({"event": "tool_result", "message": {"call_id": "c1",
            "name": "time__now", "content": "no\nsuch zone", "is_error": true, "elapsed_ms": 7}});
        assert_eq!(
            tool_step_line(&failed).as_deref(),
            Some("✗ time__now (7 ms): no such zone")
        );
        let long = json!({"event": "tool_result", "message": {"call_id": "c1",
            "name": "t", "content": "é".repeat(500), "is_error": false, "elapsed_ms": 1}});
        let line = tool_step_line(&long).unwrap();
        assert_eq!(line.chars().count(), 201);
        assert!(line.starts_with("← t (1 ms): éé") && line.ends_with('…'));
        assert_eq!(
            tool_step_line(&json!({"event": "title", "message": {}})),
            None
        );
    }
}
