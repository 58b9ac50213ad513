//! The PostgreSQL backend: shared by several `oy3o serve` instances; a `tsvector` column with a
//! GIN index for search; `jsonb` for events, usage and chain results.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use crate::error::{Result, StoreError};
use crate::pg_text;
use crate::record::{
    ChainRunRecord, ChatRecord, ChatSummary, LoggedTurn, Pruned, TITLE_CHARS, TurnRecord, new_id,
};
use crate::rows::{chain_run_from_row, chat_from_row, turn_from_row};
use crate::setting::redact;
use crate::store::{OpenOptions, Store};

/// A store in a PostgreSQL database.
#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    instance: String,
}

/// The turn columns with JSON read back as text (the same decoding as SQLite).
macro_rules! turn_select {
    ($rest:literal) => {
        concat!(
            "SELECT t.id, t.chat_id, t.seq, t.owner, t.prompt, t.answer, t.reasoning, t.events::text AS events,
                    t.usage::text AS usage, t.parts, t.model, t.cost_usd, t.first_token_ms, t.elapsed_ms, t.state, t.error, t.instance,
                    t.created_at, t.updated_at ",
            $rest
        )
    };
}

impl PostgresStore {
    /// Connects to `url` and migrates the database. A refused connection is retried until
    /// [`OpenOptions::connect_timeout`] unless [`OpenOptions::wait_while_refused`] is off.
    pub async fn open(url: &str, options: &OpenOptions) -> Result<Self> {
        let target = redact(url);
        let open_error = |source| StoreError::Open {
            target: target.clone(),
            source,
        };
        let pool_options = PgPoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(8))
            .acquire_timeout(options.connect_timeout);
        // Several instances may start at once: the migrator takes an advisory lock.
        let migrator = sqlx::migrate!("migrations/postgres");
        let migrate_error = |source| StoreError::Migrate {
            target: target.clone(),
            source,
        };
        let pool = if options.wait_while_refused {
            let pool = pool_options.connect(url).await.map_err(open_error)?;
            migrator.run(&pool).await.map_err(migrate_error)?;
            pool
        } else {
            // One attempt, not the pool's retries of a refused connection: the database is
            // down, and the person waiting hears it now. That connection migrates; the pool
            // connects when first used.
            let connect: PgConnectOptions = url.parse().map_err(open_error)?;
            let attempt = PgConnection::connect_with(&connect);
            let mut first = match tokio::time::timeout(options.connect_timeout, attempt).await {
                Ok(connected) => connected.map_err(open_error)?,
                Err(_) => {
                    let waited = options.connect_timeout.as_secs_f32();
                    let timeout = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {waited:.1}s"),
                    );
                    return Err(open_error(sqlx::Error::Io(timeout)));
                }
            };
            // `run_direct`: `run(&mut connection)` is not `Send` (sqlx's "Acquire is not
            // general enough"), and the recorder opens the store on a spawned task.
            migrator
                .run_direct(None, &mut first, false)
                .await
                .map_err(migrate_error)?;
            let _ = first.close().await;
            pool_options.connect_lazy_with(connect)
        };
        Ok(Self {
            pool,
            instance: new_id(),
        })
    }
}

crate::shared::shared_methods!(PostgresStore);

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        let (name, model, context) = (
            pg_text::text(name),
            model.map(pg_text::text),
            context.map(pg_text::text),
        );
        self.open_chat_shared(owner, &name, model.as_deref(), context.as_deref())
            .await
    }

    async fn find_chat(&self, owner: &str, name: &str) -> Result<Option<ChatRecord>> {
        // Found by the name it was written under (see `pg_text`).
        self.find_chat_shared(owner, &pg_text::text(name)).await
    }

    async fn chat_by_id(&self, owner: &str, id: &str) -> Result<Option<ChatRecord>> {
        self.chat_by_id_shared(owner, id).await
    }

    async fn save_chat(&self, chat: &ChatRecord) -> Result<()> {
        match pg_text::chat(chat) {
            Some(scrubbed) => self.save_chat_shared(&scrubbed).await,
            None => self.save_chat_shared(chat).await,
        }
    }

    async fn chats(&self, owner: &str) -> Result<Vec<ChatSummary>> {
        let rows = sqlx::query(
            "SELECT c.*, COUNT(t.id) AS turn_count,
                    GREATEST(COALESCE(MAX(t.updated_at), c.updated_at), c.updated_at) AS last_at,
                    (SELECT substr(f.prompt, 1, $2) FROM turns f WHERE f.chat_id = c.id ORDER BY f.seq LIMIT 1) AS first_prompt
             FROM chats c LEFT JOIN turns t ON t.chat_id = c.id
             WHERE c.owner = $1 GROUP BY c.id ORDER BY last_at DESC",
        )
        .bind(owner)
        .bind(TITLE_CHARS as i32)
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
        let rows = sqlx::query(turn_select!(
            "FROM turns t WHERE t.owner = $1 AND t.chat_id = $2 ORDER BY t.seq, t.created_at"
        ))
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
        let search = search.map(str::trim).filter(|s| !s.is_empty());
        let rows = match search {
            None => {
                sqlx::query(turn_select!(
                    ", c.name AS chat_name FROM turns t JOIN chats c ON c.id = t.chat_id
                     WHERE t.owner = $1 ORDER BY t.created_at DESC, t.seq DESC LIMIT $2"
                ))
                .bind(owner)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            // `state <> 'streaming'` is the GIN index's predicate (migration 0002): only final
            // turns are indexed, and the planner uses a partial index only when the query
            // implies its predicate.
            Some(search) => {
                sqlx::query(turn_select!(
                    ", c.name AS chat_name FROM turns t JOIN chats c ON c.id = t.chat_id
                     WHERE t.owner = $1 AND t.state <> 'streaming'
                       AND t.search @@ plainto_tsquery('simple', $2)
                     ORDER BY t.created_at DESC, t.seq DESC LIMIT $3"
                ))
                .bind(owner)
                .bind(search)
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
        let scrubbed = crate::pg_text::turns(turns);
        let turns = scrubbed.as_deref().unwrap_or(turns);
        // The whole batch in two statements, each row array one parameter (`UNNEST`), whatever
        // the batch size: the per-row cost is the database's own work, not a round trip.
        let chats = crate::rows::ChatColumns::of(turns);
        let mut turns = crate::rows::TurnColumns::of(turns);
        let blobs = std::mem::take(&mut turns.blobs);
        let mut tx = self.pool.begin().await?;
        sqlx::query(UPSERT_CHATS)
            .bind(chats.id)
            .bind(chats.owner)
            .bind(chats.name)
            .bind(chats.model)
            .bind(chats.context)
            .bind(chats.handle)
            .bind(chats.created_at)
            .bind(chats.updated_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(UPSERT_TURNS)
            .bind(turns.id)
            .bind(turns.chat_id)
            .bind(turns.seq)
            .bind(turns.owner)
            .bind(turns.prompt)
            .bind(turns.answer)
            .bind(turns.reasoning)
            .bind(turns.events)
            .bind(turns.usage)
            .bind(turns.parts)
            .bind(turns.model)
            .bind(turns.first_token_ms)
            .bind(turns.elapsed_ms)
            .bind(turns.state)
            .bind(turns.error)
            .bind(turns.instance)
            .bind(turns.created_at)
            .bind(turns.updated_at)
            .bind(turns.cost_usd)
            .execute(&mut *tx)
            .await?;
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
            "INSERT INTO chain_runs (id, owner, name, result, state, created_at)
             VALUES ($1, $2, $3, $4::jsonb, $5, $6)
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
            "SELECT id, owner, name, result::text AS result, state, created_at FROM chain_runs
             WHERE owner = $1 ORDER BY created_at DESC LIMIT $2",
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
        self.close_shared().await
    }
}

/// One chat, for the shared `save_chat` (`crate::shared`): the later update time wins.
const UPSERT_CHAT: &str =
    "INSERT INTO chats (id, owner, name, model, context, handle, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (id) DO UPDATE SET model = excluded.model, context = excluded.context,
        handle = COALESCE(excluded.handle, chats.handle),
        updated_at = GREATEST(chats.updated_at, excluded.updated_at)";

/// The chats of a batch, one array per column (each chat once: `ON CONFLICT DO UPDATE` may not
/// touch a row twice in one statement).
const UPSERT_CHATS: &str = "INSERT INTO chats (id, owner, name, model, context, handle, created_at, updated_at)
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])
     ON CONFLICT (id) DO UPDATE SET model = excluded.model, context = excluded.context,
        handle = COALESCE(excluded.handle, chats.handle),
        updated_at = GREATEST(chats.updated_at, excluded.updated_at)";

/// The turns of a batch, one array per column (each turn once); JSON travels as text.
const UPSERT_TURNS: &str = "INSERT INTO turns (id, chat_id, seq, owner, prompt, answer, reasoning, events, usage, parts,
                        model, first_token_ms, elapsed_ms, state, error, instance, created_at, updated_at, cost_usd)
     SELECT id, chat_id, seq, owner, prompt, answer, reasoning, events::jsonb, usage::jsonb, parts,
            model, first_token_ms, elapsed_ms, state, error, instance, created_at, updated_at, cost_usd
     FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
                 $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[],
                 $14::text[], $15::text[], $16::text[], $17::bigint[], $18::bigint[], $19::float8[])
          AS u(id, chat_id, seq, owner, prompt, answer, reasoning, events, usage, parts, model,
               first_token_ms, elapsed_ms, state, error, instance, created_at, updated_at, cost_usd)
     ON CONFLICT (id) DO UPDATE SET
        answer = excluded.answer, reasoning = excluded.reasoning, events = excluded.events,
        usage = excluded.usage, cost_usd = excluded.cost_usd, parts = excluded.parts, model = excluded.model, first_token_ms = excluded.first_token_ms,
        elapsed_ms = excluded.elapsed_ms, state = excluded.state, error = excluded.error,
        updated_at = excluded.updated_at";
