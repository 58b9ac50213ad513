//! `oy3o keys`: the keys of a team server, kept in the store that `oy3o serve` instances share
//! (with `[server] keys = true`). A key's secret is printed once, when it is made; the store
//! keeps only its SHA-256.

use std::io::Write as _;

use clap::Subcommand;
use oy3o::Error;
use oy3o_store::{Budget, KeyRecord, Store, StoreSetting, now_ms};
use serde_json::json;

use crate::store;

/// What `oy3o keys` does.
#[derive(Subcommand, Debug)]
pub enum KeysAction {
    /// Make a key and print its secret (once: only its hash is kept).
    Add {
        /// Its name (`alice`, `ci`), shown in `keys list`, `usage --by key` and metrics.
        name: String,
        /// Models it may use, as globs (`openai:*,ollama:llama*`); default: any.
        #[arg(long, value_delimiter = ',', value_name = "GLOB,...")]
        models: Vec<String>,
        /// Requests a minute, at most.
        #[arg(long, value_name = "N")]
        rpm: Option<u64>,
        /// Tokens (read and written) a minute, at most.
        #[arg(long, value_name = "N")]
        tpm: Option<u64>,
        /// Dollars a period, at most: `10/day`, `50/week`, `200/month` (UTC).
        #[arg(long, value_name = "USD/PERIOD")]
        budget: Option<String>,
        /// Requests running at once, at most.
        #[arg(long, value_name = "N")]
        concurrent: Option<u64>,
    },
    /// List the keys (never their secrets) with their limits and this period's spend.
    List {
        /// One JSON object per key.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: every server refuses it within seconds.
    Revoke {
        /// Its name.
        name: String,
    },
}

/// Runs `oy3o keys ACTION` against the store.
pub async fn run(action: &KeysAction, setting: &StoreSetting) -> Result<(), crate::Failure> {
    match action {
        KeysAction::Add {
            name,
            models,
            rpm,
            tpm,
            budget,
            concurrent,
        } => {
            let budget = budget
                .as_deref()
                .map(Budget::parse)
                .transpose()
                .map_err(crate::Failure::Usage)?;
            if name.trim().is_empty() || name.chars().any(char::is_control) {
                return Err(crate::Failure::Usage(
                    "a key needs a name of visible characters".into(),
                ));
            }
            let store = store::open(setting).await?;
            let secret = new_secret()?;
            let mut key = KeyRecord::new(name.trim(), &hash(&secret));
            key.models = models.iter().map(|m| m.trim().to_owned()).collect();
            key.rpm = *rpm;
            key.tpm = *tpm;
            key.concurrent = *concurrent;
            key.budget = budget;
            store.add_key(&key).await.map_err(Error::from)?;
            println!("{secret}");
            eprintln!(
                "key {:?} made: the line above is its secret, shown this once (clients send it as \
                 Authorization: Bearer SECRET); servers need keys = true in [server]",
                key.name
            );
            Ok(())
        }
        KeysAction::List { json } => Ok(list(&*store::open(setting).await?, *json).await?),
        KeysAction::Revoke { name } => {
            let store = store::open(setting).await?;
            if store.revoke_key(name).await.map_err(Error::from)? {
                eprintln!("key {name:?} revoked; servers refuse it within 2 s");
                Ok(())
            } else {
                Err(Error::new(
                    oy3o::ErrorCode::NotFound,
                    format!("no live key named {name:?}; see oy3o keys list"),
                )
                .into())
            }
        }
    }
}

/// 256 random bits from the operating system, as `oy3o-` and 64 hex digits.
fn new_secret() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::config(format!("no randomness from the system: {e}")))?;
    Ok(format!("oy3o-{}", hex(&bytes)))
}

/// The SHA-256 (lowercase hex) of a secret: what the store keeps, and what the server compares.
pub fn hash(secret: &str) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn list(store: &dyn Store, as_json: bool) -> Result<(), Error> {
    let keys = store.keys().await.map_err(Error::from)?;
    let now = now_ms();
    let mut out = std::io::stdout().lock();
    if !as_json && keys.is_empty() {
        eprintln!("no keys yet: make one with oy3o keys add NAME");
        return Ok(());
    }
    if !as_json {
        let _ = writeln!(
            out,
            "{:<16} {:<8} {:<24} {:>6} {:>8} {:>4} {:>16} {:>10}",
            "NAME", "STATE", "MODELS", "RPM", "TPM", "CONC", "BUDGET", "SPENT"
        );
    }
    for key in &keys {
        let spent = match key.budget {
            Some(b) => store
                .spend(&key.name, b.period.start(now))
                .await
                .map_err(Error::from)?,
            None => 0.0,
        };
        let state = if key.revoked_at.is_some() {
            "revoked"
        } else {
            "live"
        };
        let written = if as_json {
            writeln!(
                out,
                "{}",
                json!({
                    "name": key.name,
                    "state": state,
                    "models": key.models,
                    "rpm": key.rpm,
                    "tpm": key.tpm,
                    "concurrent": key.concurrent,
                    "budget": key.budget,
                    "spent_usd": spent,
                    "created_at": key.created_at,
                    "revoked_at": key.revoked_at,
                })
            )
        } else {
            let n = |v: Option<u64>| v.map_or("-".to_owned(), |n| n.to_string());
            let models = if key.models.is_empty() {
                "*".to_owned()
            } else {
                key.models.join(",")
            };
            writeln!(
                out,
                "{:<16} {:<8} {:<24} {:>6} {:>8} {:>4} {:>16} {:>10}",
                key.name,
                state,
                models,
                n(key.rpm),
                n(key.tpm),
                n(key.concurrent),
                key.budget.map_or("-".to_owned(), |b| b.to_string()),
                format!("${spent:.4}"),
            )
        };
        if written.is_err() {
            break; // stdout closed (a pager quit): stop quietly
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_only_their_hash_is_kept() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 5 + 64);
        assert_eq!(hash(&a).len(), 64);
        assert!(!hash(&a).contains(&a[5..]));
    }
}
