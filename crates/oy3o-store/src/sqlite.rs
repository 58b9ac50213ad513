//! The SQLite backend: one file, WAL mode (readers never wait for the writer), a busy timeout
//! (several `oy3o` processes share the file), FTS5 for search.

use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::{Result, StoreError};
use crate::record::{
    ChainRunRecord, ChatRecord, ChatSummary, LoggedTurn, Pruned, TITLE_CHARS, TurnRecord, new_id,
};
use crate::rows::{chain_run_from_row, chat_from_row, turn_from_row};
use crate::store::{OpenOptions, Store};

/// A store in an SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection for the recorder's batches ([`Store::save_turns`]), apart from `pool`: a
    /// connection that another one's commit went past discards its whole page cache (SQLite
    /// checks the WAL at each transaction's start), so batches spread over the pool's
    /// connections re-read the B-trees' upper pages every round. The only frequent writer
    /// keeps its cache valid on a connection of its own.
    writer: SqlitePool,
    instance: String,
}

impl SqliteStore {
    /// Opens (creating when missing) the file at `path` and migrates it.
    pub async fn open(path: &Path, options: &OpenOptions) -> Result<Self> {
        let target = format!("sqlite:{}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let connect = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|source| StoreError::Open {
                target: target.clone(),
                source,
            })?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL sync is durable across a process crash; a power cut may lose the
            // last commits, which the recorder's 100 ms batches already accept.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let (connect, connections) = if options.short_lived {
            let pages = crate::store::SHORT_LIVED_WAL_PAGES.to_string();
            (connect.pragma("wal_autocheckpoint", pages), 1)
        } else {
            (connect, options.max_connections.unwrap_or(4))
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(|source| StoreError::Open {
                target: target.clone(),
                source,
            })?;
        migrate(&pool, &target).await?;
        let writer = if options.short_lived {
            // Never closed: closing the last connection checkpoints the WAL (copies it into
            // the file, two or three fsyncs) and did so on every CLI exit, on the exit path,
            // for the next run to do no less. The process's end releases the connection; every
            // write is committed by then, and the WAL checkpoints as it fills
            // (SHORT_LIVED_WAL_PAGES).
            std::mem::forget(pool.clone());
            pool.clone()
        } else {
            // Connected when the first batch comes (and again after a failure).
            SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(options.connect_timeout)
                .connect_lazy_with(connect)
        };
        Ok(Self {
            pool,
            writer,
            instance: new_id(),
        })
    }
}

/// Runs the migrations; retried because two processes opening a new file at once race to
/// create the tables, and the loser then sees them applied.
async fn migrate(pool: &SqlitePool, target: &str) -> Result<()> {
    let migrator = sqlx::migrate!("migrations/sqlite");
    let mut attempt = 0;
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(_) if attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(source) => {
                return Err(StoreError::Migrate {
                    target: target.to_owned(),
                    source,
                });
            }
        }
    }
}

crate::shared::shared_methods!(SqliteStore);

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn instance(&self) -> &str {
        &self.instance
    }

    async fn open_chat(
        &self,
        owner: &str,
        name: &str,
        model: Option<&str>,
        context: Option<&str>,
    ) -> Result<ChatRecord> {
        self.open_chat_shared(owner, name, model, context).await
    }

    async fn find_chat(&self, owner: &str, name: &str) -> Result<Option<ChatRecord>> {
        self.find_chat_shared(owner, name).await
    }

    async fn chat_by_id(&self, owner: &str, id: &str) -> Result<Option<ChatRecord>> {
        self.chat_by_id_shared(owner, id).await
    }

    async fn save_chat(&self, chat: &ChatRecord) -> Result<()> {
        self.save_chat_shared(chat).await
    }

    async fn chats(&self, owner: &str) -> Result<Vec<ChatSummary>> {
        let rows = sqlx::query(
            "SELECT c.*, COUNT(t.id) AS turn_count, MAX(COALESCE(MAX(t.updated_at), c.updated_at), c.updated_at) AS last_at,
                    (SELECT substr(f.prompt, 1, ?) FROM turns f WHERE f.chat_id = c.id ORDER BY f.seq LIMIT 1) AS first_prompt
             FROM chats c LEFT JOIN turns t ON t.chat_id = c.id
             WHERE c.owner = ? GROUP BY c.id ORDER BY last_at DESC",
        )
        .bind(TITLE_CHARS as i64)
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            use sqlx::Row as _;
            let turns: i64 = row.try_get("turn_count")?;
            out.push(ChatSummary {
                chat: chat_from_row!(row),
                turns: turns.max(0) as u64,
                last_at: row.try_get("last_at")?,
                first_prompt: row.try_get("first_prompt")?,
            });
        }
        Ok(out)
    }

    async fn turns(&self, owner: &str, chat_id: &str) -> Result<Vec<TurnRecord>> {
        let rows = sqlx::query(
            "SELECT t.* FROM turns t WHERE t.owner = ? AND t.chat_id = ? ORDER BY t.seq, t.created_at",
        )
        .bind(owner)
        .bind(chat_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(turn_from_row!(row));
        }
        self.fill_attachments(out.iter_mut().collect()).await?;
        Ok(out)
    }

    async fn last_seq(&self, owner: &str, chat_id: &str) -> Result<Option<i64>> {
        self.last_seq_shared(owner, chat_id).await
    }

    async fn recent_turns(
        &self,
        owner: &str,
        limit: u32,
        search: Option<&str>,
    ) -> Result<Vec<LoggedTurn>> {
        let search = search
            .map(crate::rows::fts5_query)
            .filter(|q| !q.is_empty());
        let rows =
            match &search {
                None => sqlx::query(
                    "SELECT t.*, c.name AS chat_name FROM turns t JOIN chats c ON c.id = t.chat_id
                     WHERE t.owner = ? ORDER BY t.created_at DESC, t.seq DESC LIMIT ?",
                )
                .bind(owner)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?,
                Some(query) => {
                    sqlx::query(
                        "SELECT t.*, c.name AS chat_name FROM turns_fts f
                     JOIN turns t ON t.rowid = f.rowid JOIN chats c ON c.id = t.chat_id
                     WHERE turns_fts MATCH ? AND t.owner = ?
                     ORDER BY t.created_at DESC, t.seq DESC LIMIT ?",
                    )
                    .bind(query)
                    .bind(owner)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
                }
            };
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            use sqlx::Row as _;
            out.push(LoggedTurn {
                turn: turn_from_row!(row),
                chat_name: row.try_get("chat_name")?,
            });
        }
        self.fill_attachments(out.iter_mut().map(|l| &mut l.turn).collect())
            .await?;
        Ok(out)
    }

    async fn save_turns(&self, turns: &[(ChatRecord, TurnRecord)]) -> Result<()> {
        if turns.is_empty() {
            return Ok(());
        }
        // A few multi-row upserts instead of one per row: each statement is a trip to the
        // connection's worker thread and a `sqlite3_step` loop of its own.
        let chats = crate::rows::chats_of(turns);
        let unique = crate::rows::unique_turns(turns);
        let mut tx = self.writer.begin().await?;
        for part in shaped(&chats) {
            // Built from the constants below only: no outside text in the SQL.
            let sql = shape(
                &CHAT_SHAPES,
                UPSERT_CHATS_HEAD,
                CHAT_ROW,
                UPSERT_CHATS_TAIL,
                part.len(),
            );
            let mut query = sqlx::query(sql);
            for (chat, updated_at) in part {
                query = query
                    .bind(&chat.id)
                    .bind(&chat.owner)
                    .bind(&chat.name)
                    .bind(&chat.model)
                    .bind(&chat.context)
                    .bind(crate::rows::json_text(chat.handle.as_ref()))
                    .bind(chat.created_at)
                    .bind(*updated_at);
            }
            query.execute(&mut *tx).await?;
        }
        let mut blobs = Vec::new();
        for part in shaped(&unique) {
            // Built from the constants below only: no outside text in the SQL.
            let sql = shape(
                &TURN_SHAPES,
                UPSERT_TURNS_HEAD,
                TURN_ROW,
                UPSERT_TURNS_TAIL,
                part.len(),
            );
            let mut query = sqlx::query(sql);
            for turn in part {
                let (events, usage) = crate::rows::turn_json(turn);
                let parts = crate::rows::stored_parts(turn.parts.as_ref(), &mut blobs);
                query = query
                    .bind(&turn.id)
                    .bind(&turn.chat_id)
                    .bind(turn.seq)
                    .bind(&turn.owner)
                    .bind(&turn.prompt)
                    .bind(&turn.answer)
                    .bind(&turn.reasoning)
                    .bind(events)
                    .bind(usage)
                    .bind(parts)
                    .bind(&turn.model)
                    .bind(turn.first_token_ms)
                    .bind(turn.elapsed_ms)
                    .bind(turn.state.as_str())
                    .bind(&turn.error)
                    .bind(&turn.instance)
                    .bind(turn.created_at)
                    .bind(turn.updated_at)
                    .bind(turn.cost_usd);
            }
            query.execute(&mut *tx).await?;
        }
        // The attachments the turns refer to, in the same transaction: a turn is never
        // written without its bytes.
        for blob in &blobs {
            sqlx::query(crate::shared::INSERT_ATTACHMENT)
                .bind(&blob.digest)
                .bind(&blob.mime)
                .bind(blob.data.len() as i64)
                .bind(&blob.data)
                .bind(crate::record::now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn save_chain_run(&self, run: &ChainRunRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO chain_runs (id, owner, name, result, state, created_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET result = excluded.result, state = excluded.state",
        )
        .bind(&run.id)
        .bind(&run.owner)
        .bind(&run.name)
        .bind(run.result.to_string())
        .bind(run.state.as_str())
        .bind(run.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn chain_runs(&self, owner: &str, limit: u32) -> Result<Vec<ChainRunRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM chain_runs WHERE owner = ? ORDER BY created_at DESC LIMIT ?",
        )
        .bind(owner)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(chain_run_from_row!(row));
        }
        Ok(out)
    }

    async fn prune(&self, owner: Option<&str>, before_ms: i64) -> Result<Pruned> {
        self.prune_shared(owner, before_ms).await
    }

    async fn add_key(&self, key: &crate::KeyRecord) -> Result<()> {
        self.add_key_shared(key).await
    }

    async fn keys(&self) -> Result<Vec<crate::KeyRecord>> {
        self.keys_shared().await
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<crate::KeyRecord>> {
        self.key_by_hash_shared(hash).await
    }

    async fn revoke_key(&self, name: &str) -> Result<bool> {
        self.revoke_key_shared(name).await
    }

    async fn add_spend(&self, key: &str, period_start: i64, usd: f64) -> Result<f64> {
        self.add_spend_shared(key, period_start, usd).await
    }

    async fn spend(&self, key: &str, period_start: i64) -> Result<f64> {
        self.spend_shared(key, period_start).await
    }

    async fn usage_since(&self, since_ms: i64) -> Result<Vec<crate::UsageRow>> {
        self.usage_since_shared(since_ms).await
    }

    async fn heartbeat(&self) -> Result<()> {
        self.heartbeat_shared().await
    }

    async fn recover(&self, grace: Duration) -> Result<u64> {
        self.recover_shared(grace).await
    }

    async fn close(&self) {
        self.close_shared().await;
        self.writer.close().await;
    }
}

/// One chat, for the shared `save_chat` (`crate::shared`): the later update time wins.
const UPSERT_CHAT: &str =
    "INSERT INTO chats (id, owner, name, model, context, handle, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (id) DO UPDATE SET model = excluded.model, context = excluded.context,
        handle = COALESCE(excluded.handle, chats.handle),
        updated_at = MAX(chats.updated_at, excluded.updated_at)";

/// The most rows one upsert statement carries: 512 x 19 bound parameters, within the 32,766
/// SQLite allows since 3.32 (the bundled SQLite is 3.51, `SQLITE_MAX_VARIABLE_NUMBER` in its
/// `sqlite3.c`; https://www.sqlite.org/limits.html #9). A batch is cut into statements of 512,
/// 256, …, 1 rows (the binary digits of its length), so each table has ten statement shapes,
/// each prepared once per connection and kept in sqlx's statement cache. Preparing a fresh
/// many-row statement every round cost more than running it (callgrind: SQLite's parser was
/// 36 % of the server's instructions with a store, 202 M of 567 M over 600 answers).
const MAX_ROWS_PER_STATEMENT: usize = 512;

/// `rows` cut into runs of power-of-two lengths, longest first (see [`MAX_ROWS_PER_STATEMENT`]).
fn shaped<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let take = MAX_ROWS_PER_STATEMENT.min(1 << rows.len().ilog2());
        let (part, rest) = rows.split_at(take);
        rows = rest;
        Some(part)
    })
}

/// The upsert of `rows` (a power of two up to [`MAX_ROWS_PER_STATEMENT`]) rows, from `shapes`,
/// which holds every shape once built.
fn shape(
    shapes: &'static OnceLock<Vec<String>>,
    head: &str,
    row: &str,
    tail: &str,
    rows: usize,
) -> &'static str {
    let all = shapes.get_or_init(|| {
        (0..=MAX_ROWS_PER_STATEMENT.ilog2())
            .map(|k| upsert_sql(head, row, 1 << k, tail))
            .collect()
    });
    &all[rows.ilog2() as usize]
}

static CHAT_SHAPES: OnceLock<Vec<String>> = OnceLock::new();
static TURN_SHAPES: OnceLock<Vec<String>> = OnceLock::new();

const UPSERT_CHATS_HEAD: &str =
    "INSERT INTO chats (id, owner, name, model, context, handle, created_at, updated_at) VALUES ";
const CHAT_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?)";
const UPSERT_CHATS_TAIL: &str =
    " ON CONFLICT (id) DO UPDATE SET model = excluded.model, context = excluded.context,
        handle = COALESCE(excluded.handle, chats.handle),
        updated_at = MAX(chats.updated_at, excluded.updated_at)";

const UPSERT_TURNS_HEAD: &str = "INSERT INTO turns (id, chat_id, seq, owner, prompt, answer, reasoning, events, usage, parts,
                    model, first_token_ms, elapsed_ms, state, error, instance, created_at, updated_at, cost_usd) VALUES ";
const TURN_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
// The FTS5 triggers fire per row, as for one-row statements: a final row is indexed when it is
// inserted or becomes final, re-indexed when it changes; streaming rows are not indexed
// (migration 0002).
const UPSERT_TURNS_TAIL: &str = " ON CONFLICT (id) DO UPDATE SET
        answer = excluded.answer, reasoning = excluded.reasoning, events = excluded.events,
        usage = excluded.usage, cost_usd = excluded.cost_usd, parts = excluded.parts, model = excluded.model, first_token_ms = excluded.first_token_ms,
        elapsed_ms = excluded.elapsed_ms, state = excluded.state, error = excluded.error,
        updated_at = excluded.updated_at";

/// `head` + `rows` copies of `row` separated by commas + `tail`.
fn upsert_sql(head: &str, row: &str, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (row.len() + 1) + tail.len());
    sql.push_str(head);
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(row);
    }
    sql.push_str(tail);
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(n: usize) -> Vec<usize> {
        let rows: Vec<usize> = (0..n).collect();
        let parts: Vec<&[usize]> = shaped(&rows).collect();
        // In order, nothing lost or repeated.
        assert_eq!(parts.concat(), rows);
        parts.iter().map(|p| p.len()).collect()
    }

    #[test]
    fn batches_are_cut_into_power_of_two_statements_of_at_most_512_rows() {
        assert_eq!(lengths(0), Vec::<usize>::new());
        assert_eq!(lengths(1), [1]);
        assert_eq!(lengths(7), [4, 2, 1]);
        assert_eq!(lengths(512), [512]);
        assert_eq!(lengths(1_300), [512, 512, 256, 16, 4]);
    }

    #[test]
    fn each_shape_has_its_row_count_of_placeholders() {
        for rows in [1, 2, 64, 512] {
            let sql = shape(
                &TURN_SHAPES,
                UPSERT_TURNS_HEAD,
                TURN_ROW,
                UPSERT_TURNS_TAIL,
                rows,
            );
            assert_eq!(sql.matches('?').count(), rows * 19, "{rows} rows");
            // The same text every time: what the statement cache keys on.
            let again = shape(
                &TURN_SHAPES,
                UPSERT_TURNS_HEAD,
                TURN_ROW,
                UPSERT_TURNS_TAIL,
                rows,
            );
            assert!(std::ptr::eq(sql, again));
        }
    }
}
