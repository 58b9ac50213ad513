//! Where the CLI keeps conversations: the `store` setting (`--store`, `OY3O_STORE`, the config
//! file's `store`, else SQLite in the data dir), opened without delaying any answer.
//!
//! The local user is owner `""`. A store that cannot be opened or written costs one warning on
//! stderr; the answer never waits for it beyond [`FLUSH_TIMEOUT`] at exit.

use std::sync::Arc;
use std::time::Duration;

use oy3o::{Config, Conversations, Error};
use oy3o_store::{
    OpenOptions, RecordedConversations, Recorder, RecorderOptions, Store, StoreError, StoreSetting,
};

/// The owner of every local row.
pub const LOCAL: &str = "";

/// How long the CLI waits at exit for its last writes.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// The store setting in force: `--store`, else `OY3O_STORE`, else the config file's `store`
/// (the one precedence every face shares, [`StoreSetting::choose`]), else the default SQLite
/// file.
pub fn setting(given: Option<&str>, config: &Config) -> Result<StoreSetting, Error> {
    let env = std::env::var("OY3O_STORE").ok();
    // clap fills `--store` from OY3O_STORE too: a value that is the variable's came from it.
    let flag = given.filter(|g| env.as_deref() != Some(*g));
    match StoreSetting::choose(flag, env.as_deref(), config.store.as_deref()) {
        Ok(Some(setting)) => Ok(setting),
        Ok(None) => StoreSetting::default_sqlite().map_err(Error::from),
        Err(e) => Err(Error::config(e.to_string())),
    }
}

/// How the CLI opens its store: a database that refuses connections is down, said at once
/// (a server would wait for one still starting), and opened as a short-lived process's (one
/// connection, a small WAL: [`OpenOptions::short_lived`]).
fn open_options() -> OpenOptions {
    OpenOptions {
        wait_while_refused: false,
        short_lived: true,
        ..OpenOptions::default()
    }
}

/// Opens the store now, for commands that read it (`chats`, `log`). A database that cannot be
/// reached is a network error, a wrong setting a config error.
pub async fn open(setting: &StoreSetting) -> Result<Arc<dyn Store>, Error> {
    match oy3o_store::open_with(setting, &open_options()).await {
        Ok(Some(store)) => Ok(store),
        Ok(None) => Err(Error::config(
            "no store is configured (store = \"none\"): set `store` in the config or OY3O_STORE",
        )),
        Err(e) => Err(e.into()),
    }
}

/// A recorder whose store opens in the background, or `None` for `store = "none"`.
/// Finished turns are costed at `prices` (the config's, `Config::prices`).
pub fn recorder(setting: &StoreSetting, prices: oy3o::price::Prices) -> Option<Recorder> {
    if *setting == StoreSetting::None {
        return None;
    }
    let setting = setting.clone();
    Some(Recorder::opening(
        async move {
            oy3o_store::open_with(&setting, &open_options())
                .await?
                .ok_or(StoreError::Disabled)
        },
        RecorderOptions {
            prices,
            ..RecorderOptions::default()
        },
    ))
}

/// The engine's conversations, resumed from and recorded in the store `recorder` writes to
/// (in memory only without one).
pub fn conversations(recorder: Option<&Recorder>) -> Conversations {
    Conversations::new(recorder.map(|r| RecordedConversations::new(r.clone()).shared()))
}

/// Writes what is left, waiting at most [`FLUSH_TIMEOUT`]; a failure is one warning.
pub async fn finish(recorder: Option<Recorder>) {
    let Some(recorder) = recorder else { return };
    match tokio::time::timeout(FLUSH_TIMEOUT, recorder.flush()).await {
        Ok(Ok(())) => {}
        // The process ends now: what the store did not take is lost, and the warning says so
        // (not that it waits in memory).
        Ok(Err(StoreError::Unavailable(why))) => warn(&format!("{why}; this run was not saved")),
        Ok(Err(e)) => warn(&format!("{e}; this run was not saved")),
        Err(_) => warn("the store did not answer in time; this run was not saved"),
    }
    // No `close()`: the process exits now, every write is committed, and closing SQLite would
    // checkpoint its WAL (~10 ms on every run); a later open forgets this instance.
}

/// The one line a store failure costs.
pub fn warn(message: &str) {
    eprintln!("oy3o: warning: {message}");
}

/// `1970-01-01 00:00` (UTC) for a Unix-ms time.
pub fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm), proleptic Gregorian, UTC.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Parses an age like `30d`, `12h`, `90m` or `45s`.
pub fn age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let n: u64 = number.parse().map_err(|_| {
        format!("cannot read the age {text:?}: use a number and a unit, e.g. 30d, 12h, 90m or 45s")
    })?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "unknown unit in {text:?}: use s, m, h or d, e.g. 30d"
            ));
        }
    };
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(time(0), "1970-01-01 00:00");
        assert_eq!(time(1_764_213_000_000), "2025-11-27 03:10");
    }

    #[test]
    fn ages_take_s_m_h_d_and_explain_a_mistake() {
        assert_eq!(age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(age("90m"), Ok(Duration::from_secs(5400)));
        assert!(age("30").unwrap_err().contains("unit"));
        assert!(age("3w").unwrap_err().contains("s, m, h or d"));
        assert!(age("d").unwrap_err().contains("e.g. 30d"));
    }
}
