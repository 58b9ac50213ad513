//! The [`Store`] trait both backends implement, and [`open`], which picks one from the setting.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Result, StoreError};
use crate::key::{KeyRecord, UsageRow};
use crate::record::{ChainRunRecord, ChatRecord, ChatSummary, LoggedTurn, Pruned, TurnRecord};
use crate::setting::StoreSetting;

/// Where chats, turns and chain runs are kept: SQLite or PostgreSQL behind one interface.
///
/// Object-safe (`Arc<dyn Store>`) so faces hold one store whatever the backend; the async
/// methods go through `async-trait` (boxed futures) because native `async fn` in traits cannot
/// be called through `dyn`. Every read takes the owner: a row of another owner is never found,
/// listed or loaded.
///
/// Faces do not write turns through this trait while answers stream: they use a
/// [`crate::Recorder`], which batches writes off the hot path.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// This process's instance id: random per [`open`], written on every turn, refreshed by
    /// [`Store::heartbeat`].
    fn instance(&self) -> &str;

    /// The chat `name` of `owner`, created with `model` and `context` when it does not exist.
    /// An existing chat is returned as it is (see [`Store::save_chat`] to change it).
    async fn open_chat(
        &self,
        owner: &str,
        name: &str,
        model: Option<&str>,
        context: Option<&str>,
    ) -> Result<ChatRecord>;

    /// The chat `name` of `owner`, if any.
    async fn find_chat(&self, owner: &str, name: &str) -> Result<Option<ChatRecord>>;

    /// The chat `id` of `owner`, if any (another owner's chat is not found).
    async fn chat_by_id(&self, owner: &str, id: &str) -> Result<Option<ChatRecord>>;

    /// Writes a chat's model and context (and its update time); inserts it when new.
    async fn save_chat(&self, chat: &ChatRecord) -> Result<()>;

    /// Every chat of `owner` with its turn count, the last used first.
    async fn chats(&self, owner: &str) -> Result<Vec<ChatSummary>>;

    /// The turns of chat `chat_id` of `owner`, in order (empty for another owner's chat).
    async fn turns(&self, owner: &str, chat_id: &str) -> Result<Vec<TurnRecord>>;

    /// The number of the last turn of chat `chat_id` of `owner`, if it has any (one indexed
    /// read: how a conversation finds out another instance added turns).
    async fn last_seq(&self, owner: &str, chat_id: &str) -> Result<Option<i64>>;

    /// The latest `limit` turns of `owner`, newest first; with `search`, only final turns (not
    /// `streaming`) whose prompt or answer hold all its words (SQLite FTS5, PostgreSQL
    /// `tsvector`: only final turns are indexed, so the writes of a growing answer stay cheap).
    async fn recent_turns(
        &self,
        owner: &str,
        limit: u32,
        search: Option<&str>,
    ) -> Result<Vec<LoggedTurn>>;

    /// Upserts turns (with their chats) in one transaction: the latest state of each wins.
    async fn save_turns(&self, turns: &[(ChatRecord, TurnRecord)]) -> Result<()>;

    /// Writes one chain run.
    async fn save_chain_run(&self, run: &ChainRunRecord) -> Result<()>;

    /// The latest `limit` chain runs of `owner`, newest first.
    async fn chain_runs(&self, owner: &str, limit: u32) -> Result<Vec<ChainRunRecord>>;

    /// Removes turns and chain runs created before `before_ms` (Unix ms), then the chats left
    /// with no turn. `owner: None` prunes every owner.
    async fn prune(&self, owner: Option<&str>, before_ms: i64) -> Result<Pruned>;

    /// Adds a key ([`crate::StoreError::KeyExists`] when its name or secret is taken).
    async fn add_key(&self, key: &KeyRecord) -> Result<()>;

    /// Every key, revoked ones included, by name.
    async fn keys(&self) -> Result<Vec<KeyRecord>>;

    /// The key whose secret hashes to `hash`, revoked or not.
    async fn key_by_hash(&self, hash: &str) -> Result<Option<KeyRecord>>;

    /// Revokes the key `name`; `false` when there is no such live key.
    async fn revoke_key(&self, name: &str) -> Result<bool>;

    /// Adds `usd` to what key `key` spent in the period starting at `period_start` (Unix ms)
    /// and returns the new total, atomically: instances sharing the database add up.
    async fn add_spend(&self, key: &str, period_start: i64, usd: f64) -> Result<f64>;

    /// What key `key` spent in the period starting at `period_start`.
    async fn spend(&self, key: &str, period_start: i64) -> Result<f64>;

    /// Every owner's finished turns since `since_ms` (Unix ms), oldest first, for usage
    /// reports: an operator's view, across owners.
    async fn usage_since(&self, since_ms: i64) -> Result<Vec<UsageRow>>;

    /// Marks this instance alive now (`instances.seen_at`).
    async fn heartbeat(&self) -> Result<()>;

    /// Marks `interrupted` the turns still `streaming` whose instance is dead: not seen for
    /// longer than `grace`, or (same host) its process is gone; then forgets the instances not
    /// seen for longer than `grace`. Returns how many turns were marked.
    async fn recover(&self, grace: Duration) -> Result<u64>;

    /// Closes the connections (pending queries finish first) and unregisters the instance. A
    /// short-lived process may skip it and exit: nothing is lost (every write is committed), and
    /// its instance row is forgotten by a later [`Store::recover`]. Closing SQLite checkpoints
    /// the WAL, which costs ~10 ms.
    async fn close(&self);
}

/// How [`open_with`] opens a store.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// How long an instance may go unseen before its streaming turns become `interrupted`
    /// (default 30 s: several missed heartbeats).
    pub grace: Duration,
    /// The most connections in the pool (default 4 for SQLite, 8 for PostgreSQL).
    pub max_connections: Option<u32>,
    /// How long to wait for a connection (default 5 s).
    pub connect_timeout: Duration,
    /// Whether a PostgreSQL server that refuses connections is taken for one still starting
    /// up, and tried again until `connect_timeout` (default: yes, for a server started beside
    /// its database). Off, a refusal fails the open at once: a command a person waits on says
    /// at once that the store is down.
    pub wait_while_refused: bool,
    /// A process that opens the store for a turn or two and exits without closing it (the
    /// CLI), so what it pays on every open matters more than throughput. SQLite: one
    /// connection, on which the recorder writes too (each more costs its open, a thread and
    /// the schema's parse, on every run), and a WAL checkpointed every
    /// [`SHORT_LIVED_WAL_PAGES`] pages instead of 1,000: the first connection to open the file
    /// reads and checksums the whole WAL, which a process that never closes (closing
    /// checkpoints, ~10 ms) leaves behind. Its connection is never closed, not even when the
    /// store is dropped: the process's end releases it, without the checkpoint a close does
    /// (default: no).
    pub short_lived: bool,
}

/// The WAL size, in pages, at which a short-lived process's commit checkpoints
/// ([`OpenOptions::short_lived`]): at ~10-25 pages written per CLI answer, one run in five to
/// ten checkpoints (~1-2 ms, two fsyncs) and every open reads at most ~0.5 MB of WAL instead
/// of up to 4 MB (bench/README.md, "Terminal start-up").
pub const SHORT_LIVED_WAL_PAGES: u32 = 128;

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            max_connections: None,
            connect_timeout: Duration::from_secs(5),
            wait_while_refused: true,
            short_lived: false,
        }
    }
}

/// How often a [`crate::Recorder`] refreshes its instance's heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// Opens the store the setting names with the default options: `Ok(None)` for `none`.
///
/// Creates the SQLite file (and its directory) when missing, runs the versioned migrations of the
/// backend, registers this instance and recovers the turns of dead instances.
///
/// ```no_run
/// # async fn f() -> Result<(), oy3o_store::StoreError> {
/// use oy3o_store::{StoreSetting, open};
/// let store = open(&StoreSetting::default_sqlite()?).await?.expect("not `none`");
/// let chat = store.open_chat("", "work", Some("openai:gpt-4o-mini"), None).await?;
/// assert_eq!(store.turns("", &chat.id).await?.len(), 0);
/// # Ok(()) }
/// ```
pub async fn open(setting: &StoreSetting) -> Result<Option<Arc<dyn Store>>> {
    open_with(setting, &OpenOptions::default()).await
}

/// [`open`] with options.
pub async fn open_with(
    setting: &StoreSetting,
    options: &OpenOptions,
) -> Result<Option<Arc<dyn Store>>> {
    let store: Arc<dyn Store> = match setting {
        StoreSetting::None => return Ok(None),
        StoreSetting::Sqlite(path) => {
            Arc::new(crate::sqlite::SqliteStore::open(path, options).await?)
        }
        StoreSetting::Postgres(url) => {
            Arc::new(crate::postgres::PostgresStore::open(url, options).await?)
        }
    };
    store.heartbeat().await?;
    store.recover(options.grace).await?;
    Ok(Some(store))
}

/// The default SQLite file: `oy3o/oy3o.db` in the platform data dir (`$XDG_DATA_HOME`, else
/// `~/.local/share` on Linux), beside nothing else the CLI writes there.
pub fn default_sqlite_path() -> Result<PathBuf> {
    dirs::data_dir()
        .map(|d| d.join("oy3o").join("oy3o.db"))
        .ok_or(StoreError::NoDataDir)
}

impl StoreSetting {
    /// `sqlite:` the [`default_sqlite_path`].
    pub fn default_sqlite() -> Result<Self> {
        default_sqlite_path().map(Self::Sqlite)
    }
}

/// This machine's name, to tell whether an instance's process can be checked locally.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// Whether process `pid` of this host is gone: no such process, or one that has ended and
/// waits only for its parent to collect its exit status (a zombie, as a `kill -9`ed process
/// is until its shell reaps it). Only Linux can tell (through `/proc`); elsewhere a process is
/// presumed alive and only the heartbeat grace applies.
pub(crate) fn process_gone(pid: i64) -> bool {
    if pid == i64::from(std::process::id()) {
        return false;
    }
    if !std::path::Path::new("/proc/self").exists() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => ended(&stat),
        Err(_) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
    }
}

/// Whether a `/proc/PID/stat` line is that of a process that has ended: state `Z` (zombie) or
/// `X` (dead). The state follows the command name, which is in parentheses and may hold any
/// character, so it is read after the last `)`.
fn ended(stat: &str) -> bool {
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next());
    matches!(state, Some("Z" | "X"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_killed_process_is_gone_before_its_parent_reaps_it() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = i64::from(child.id());
        assert!(!process_gone(pid));
        child.kill().unwrap();
        // Not reaped: a zombie until `wait`.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !process_gone(pid) {
            assert!(std::time::Instant::now() < deadline, "still alive");
            std::thread::sleep(Duration::from_millis(10));
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        assert!(stat.contains(") Z "), "{stat}");
        child.wait().unwrap();
        assert!(process_gone(pid));
    }

    #[test]
    fn the_state_is_read_after_the_command_name_whatever_it_holds() {
        assert!(ended("42 (oy3o) Z 1 42 42 0"));
        assert!(ended("42 (a) b) X 1"));
        assert!(!ended("42 (Z ) S 1"));
        assert!(!ended("42 (oy3o) R 1"));
        assert!(!ended("garbage"));
    }
}
