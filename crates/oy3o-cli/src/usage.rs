//! `oy3o usage`: tokens and dollars over a time, by model, key or day, across every owner of
//! the store (an operator's report for a team server).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;

use clap::{Args, ValueEnum};
use oy3o::Error;
use oy3o_store::{StoreSetting, UsageRow, now_ms};
use serde_json::json;

use crate::store;

/// `oy3o usage [--by model|key|day] [--since 7d] [--json]`.
#[derive(Args, Debug)]
pub struct UsageArgs {
    /// How to group the turns.
    #[arg(long, value_enum, default_value_t = By::Model)]
    pub by: By,
    /// How far back: `90m`, `24h`, `7d`.
    #[arg(long, default_value = "7d", value_name = "AGE")]
    pub since: String,
    /// One JSON object per group.
    #[arg(long)]
    pub json: bool,
}

/// What `oy3o usage` groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// The model that answered.
    Model,
    /// The key (or token) that asked.
    Key,
    /// The UTC day it was asked.
    Day,
}

/// One group's sums.
#[derive(Debug, Default, PartialEq)]
pub struct Totals {
    turns: u64,
    input: u64,
    cached: u64,
    output: u64,
    reasoning: u64,
    usd: f64,
    unpriced: u64,
}

/// Runs `oy3o usage`.
pub async fn run(args: &UsageArgs, setting: &StoreSetting) -> Result<(), crate::Failure> {
    let age = store::age(&args.since).map_err(crate::Failure::Usage)?;
    let store = store::open(setting).await?;
    let since = now_ms().saturating_sub(age.as_millis() as i64);
    let rows = store.usage_since(since).await.map_err(Error::from)?;
    let names: HashMap<String, String> = match args.by {
        By::Key => store
            .keys()
            .await
            .map_err(Error::from)?
            .into_iter()
            .map(|k| (k.hash, k.name))
            .collect(),
        _ => HashMap::new(),
    };
    let groups = group(&rows, args.by, &names);
    print(&groups, args);
    Ok(())
}

/// Sums `rows` by `by`; owners are named by `names` (hash to key name).
pub fn group(
    rows: &[UsageRow],
    by: By,
    names: &HashMap<String, String>,
) -> BTreeMap<String, Totals> {
    let mut out: BTreeMap<String, Totals> = BTreeMap::new();
    for row in rows {
        let label = match by {
            By::Model => row.model.clone().unwrap_or_else(|| "-".into()),
            By::Key => match names.get(&row.owner) {
                Some(name) => name.clone(),
                None if row.owner.is_empty() => "(local)".into(),
                None => format!("token:{}", &row.owner[..row.owner.len().min(8)]),
            },
            By::Day => store::time(row.created_at).chars().take(10).collect(),
        };
        let t = out.entry(label).or_default();
        t.turns += 1;
        if let Some(u) = &row.usage {
            t.input += u.input_tokens;
            t.cached += u.cached_tokens.unwrap_or(0);
            t.output += u.output_tokens;
            t.reasoning += u.reasoning_tokens.unwrap_or(0);
        }
        match row.cost_usd {
            Some(usd) => t.usd += usd,
            None if row.usage.is_some() => t.unpriced += 1,
            None => {}
        }
    }
    out
}

fn print(groups: &BTreeMap<String, Totals>, args: &UsageArgs) {
    let mut out = std::io::stdout().lock();
    if groups.is_empty() && !args.json {
        eprintln!("no finished turns in the last {}", args.since);
        return;
    }
    let by = format!("{:?}", args.by).to_uppercase();
    if !args.json {
        let _ = writeln!(
            out,
            "{by:<32} {:>7} {:>10} {:>10} {:>10} {:>10} {:>11}",
            "TURNS", "INPUT", "CACHED", "OUTPUT", "REASONING", "COST"
        );
    }
    let mut total = Totals::default();
    for (label, t) in groups {
        let written = if args.json {
            writeln!(
                out,
                "{}",
                json!({
                    "by": format!("{:?}", args.by).to_lowercase(),
                    "group": label,
                    "turns": t.turns,
                    "input_tokens": t.input,
                    "cached_tokens": t.cached,
                    "output_tokens": t.output,
                    "reasoning_tokens": t.reasoning,
                    "cost_usd": t.usd,
                    "unpriced_turns": t.unpriced,
                })
            )
        } else {
            writeln!(
                out,
                "{label:<32} {:>7} {:>10} {:>10} {:>10} {:>10} {:>11}",
                t.turns,
                t.input,
                t.cached,
                t.output,
                t.reasoning,
                format!("${:.4}", t.usd)
            )
        };
        if written.is_err() {
            return;
        }
        total.turns += t.turns;
        total.input += t.input;
        total.cached += t.cached;
        total.output += t.output;
        total.reasoning += t.reasoning;
        total.usd += t.usd;
        total.unpriced += t.unpriced;
    }
    if !args.json {
        let _ = writeln!(
            out,
            "{:<32} {:>7} {:>10} {:>10} {:>10} {:>10} {:>11}",
            "TOTAL",
            total.turns,
            total.input,
            total.cached,
            total.output,
            total.reasoning,
            format!("${:.4}", total.usd)
        );
        if total.unpriced > 0 {
            let _ = writeln!(
                out,
                "({} turns of models without a price are not in the cost; add [prices.\"provider:model\"] to the config)",
                total.unpriced
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, owner: &str, at: i64, input: u64, usd: Option<f64>) -> UsageRow {
        UsageRow {
            model: Some(model.into()),
            owner: owner.into(),
            created_at: at,
            usage: Some(oy3o::Usage {
                input_tokens: input,
                output_tokens: 1,
                ..Default::default()
            }),
            cost_usd: usd,
        }
    }

    #[test]
    fn turns_sum_by_model_key_and_utc_day() {
        let rows = [
            row("openai:a", "h1", 0, 10, Some(0.5)),
            row("openai:a", "h2", 86_400_000, 5, Some(0.25)),
            row("my:b", "", 86_400_001, 1, None),
        ];
        let names = HashMap::from([("h1".to_owned(), "alice".to_owned())]);
        let by_model = group(&rows, By::Model, &names);
        assert_eq!(by_model["openai:a"].turns, 2);
        assert_eq!(by_model["openai:a"].input, 15);
        assert!((by_model["openai:a"].usd - 0.75).abs() < 1e-12);
        assert_eq!(by_model["my:b"].unpriced, 1);
        let by_key = group(&rows, By::Key, &names);
        assert_eq!(
            by_key.keys().collect::<Vec<_>>(),
            ["(local)", "alice", "token:h2"]
        );
        let by_day = group(&rows, By::Day, &names);
        assert_eq!(
            by_day.keys().collect::<Vec<_>>(),
            ["1970-01-01", "1970-01-02"]
        );
    }
}
