//! What both backends do alike, written once: chats one at a time, prune, heartbeat, recovery
//! and close. The SQL is the same text on both (SQLite reads `$1`-style placeholders as
//! positions, like PostgreSQL; `CAST(… AS TEXT)` types a NULL on both) and so is the Rust around
//! it, apart from the pool's type, so a macro stamps the methods onto each store; each
//! backend's `Store` impl calls them. What differs stays in `sqlite.rs` and `postgres.rs`: the
//! many-row upserts, `MAX`/`GREATEST`, JSON columns and search.
//!
//! A macro, not a function generic over `sqlx::Database`: the bounds such a function needs
//! (an executor for the pool and its transactions, `Encode`/`Decode`/`Type` for every column
//! type, `ColumnIndex` for the rows) are not implied by one trait and would be repeated on each
//! function, longer than the bodies they guard.

/// Inserts a named chat unless its owner has one of that name.
pub(crate) const INSERT_CHAT_IF_NEW: &str =
    "INSERT INTO chats (id, owner, name, model, context, handle, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (owner, name) DO NOTHING";

/// Adds a key unless one of its name or secret exists.
pub(crate) const INSERT_KEY: &str =
    "INSERT INTO api_keys (name, hash, models, rpm, tpm, concurrent,
     budget_usd, budget_period, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Builds a [`crate::key::KeyRecord`] from an `api_keys` row.
macro_rules! key_from_row {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        let models: Option<String> = row.try_get("models")?;
        let models: Vec<String> = match models {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| $crate::error::StoreError::Corrupt(format!("key models: {e}")))?,
            None => Vec::new(),
        };
        let count = |v: Option<i64>| v.map(|n| u64::try_from(n).unwrap_or(0));
        let usd: Option<f64> = row.try_get("budget_usd")?;
        let period: Option<String> = row.try_get("budget_period")?;
        let budget = match (usd, period) {
            (Some(usd), Some(period)) => Some($crate::key::Budget {
                usd,
                period: $crate::key::Period::parse(&period).ok_or_else(|| {
                    $crate::error::StoreError::Corrupt(format!("key budget period {period:?}"))
                })?,
            }),
            _ => None,
        };
        Ok::<_, $crate::error::StoreError>($crate::key::KeyRecord {
            name: row.try_get("name")?,
            hash: row.try_get("hash")?,
            models,
            rpm: count(row.try_get("rpm")?),
            tpm: count(row.try_get("tpm")?),
            concurrent: count(row.try_get("concurrent")?),
            budget,
            created_at: row.try_get("created_at")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    }};
}

pub(crate) use key_from_row;

/// Stores an attachment's bytes once under their digest (`crate::attachments`).
pub(crate) const INSERT_ATTACHMENT: &str =
    "INSERT INTO attachments (digest, mime, size, data, created_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (digest) DO NOTHING";

/// Adds the shared methods (`*_shared`) to a store type with `pool` and `instance` fields and
/// an `UPSERT_CHAT` statement in its module (one chat's model, context and update time; keeping
/// the later update time is `MAX` on SQLite, `GREATEST` on PostgreSQL).
macro_rules! shared_methods {
    ($store:ty) => {
        impl $store {
            /// [`crate::Store::open_chat`].
            async fn open_chat_shared(
                &self,
                owner: &str,
                name: &str,
                model: Option<&str>,
                context: Option<&str>,
            ) -> $crate::error::Result<$crate::record::ChatRecord> {
                if let Some(chat) = self.find_chat_shared(owner, name).await? {
                    return Ok(chat);
                }
                let chat = $crate::record::ChatRecord::new(owner, Some(name), model, context);
                // Another process may create it at the same moment: keep theirs.
                sqlx::query($crate::shared::INSERT_CHAT_IF_NEW)
                    .bind(&chat.id)
                    .bind(&chat.owner)
                    .bind(&chat.name)
                    .bind(&chat.model)
                    .bind(&chat.context)
                    .bind($crate::rows::json_text(chat.handle.as_ref()))
                    .bind(chat.created_at)
                    .bind(chat.updated_at)
                    .execute(&self.pool)
                    .await?;
                self.find_chat_shared(owner, name).await?.ok_or_else(|| {
                    $crate::error::StoreError::Corrupt(format!(
                        "chat {name:?} vanished after insert"
                    ))
                })
            }

            /// [`crate::Store::find_chat`].
            async fn find_chat_shared(
                &self,
                owner: &str,
                name: &str,
            ) -> $crate::error::Result<Option<$crate::record::ChatRecord>> {
                self.chat_where("SELECT * FROM chats WHERE owner = $1 AND name = $2", owner, name)
                    .await
            }

            /// [`crate::Store::chat_by_id`].
            async fn chat_by_id_shared(
                &self,
                owner: &str,
                id: &str,
            ) -> $crate::error::Result<Option<$crate::record::ChatRecord>> {
                self.chat_where("SELECT * FROM chats WHERE owner = $1 AND id = $2", owner, id)
                    .await
            }

            /// The chat `sql` selects by owner (`$1`) and one more key (`$2`).
            async fn chat_where(
                &self,
                sql: &'static str,
                owner: &str,
                key: &str,
            ) -> $crate::error::Result<Option<$crate::record::ChatRecord>> {
                let row = sqlx::query(sql)
                    .bind(owner)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => Some($crate::rows::chat_from_row!(&row)),
                    None => None,
                })
            }

            /// [`crate::Store::last_seq`].
            async fn last_seq_shared(
                &self,
                owner: &str,
                chat_id: &str,
            ) -> $crate::error::Result<Option<i64>> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT MAX(seq) AS last FROM turns WHERE owner = $1 AND chat_id = $2",
                )
                .bind(owner)
                .bind(chat_id)
                .fetch_one(&self.pool)
                .await?;
                Ok(row.try_get::<Option<i64>, _>("last")?)
            }

            /// [`crate::Store::save_chat`].
            async fn save_chat_shared(
                &self,
                chat: &$crate::record::ChatRecord,
            ) -> $crate::error::Result<()> {
                sqlx::query(UPSERT_CHAT)
                    .bind(&chat.id)
                    .bind(&chat.owner)
                    .bind(&chat.name)
                    .bind(&chat.model)
                    .bind(&chat.context)
                    .bind($crate::rows::json_text(chat.handle.as_ref()))
                    .bind(chat.created_at)
                    .bind(chat.updated_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            /// [`crate::Store::prune`].
            async fn prune_shared(
                &self,
                owner: Option<&str>,
                before_ms: i64,
            ) -> $crate::error::Result<$crate::record::Pruned> {
                let mut tx = self.pool.begin().await?;
                // No owner given (NULL) prunes everyone's rows.
                let turns = sqlx::query(
                    "DELETE FROM turns WHERE (CAST($1 AS TEXT) IS NULL OR owner = $1)
                     AND created_at < $2",
                )
                .bind(owner)
                .bind(before_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let chats = sqlx::query(
                    "DELETE FROM chats WHERE (CAST($1 AS TEXT) IS NULL OR owner = $1)
                     AND updated_at < $2
                     AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.chat_id = chats.id)",
                )
                .bind(owner)
                .bind(before_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let chain_runs = sqlx::query(
                    "DELETE FROM chain_runs WHERE (CAST($1 AS TEXT) IS NULL OR owner = $1)
                     AND created_at < $2",
                )
                .bind(owner)
                .bind(before_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // Attachments no turn refers to any more (a turn names its digest in `parts`).
                if turns > 0 {
                    sqlx::query(
                        "DELETE FROM attachments WHERE NOT EXISTS (SELECT 1 FROM turns t
                         WHERE t.parts IS NOT NULL AND t.parts LIKE '%' || attachments.digest || '%')",
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok($crate::record::Pruned {
                    turns,
                    chats,
                    chain_runs,
                })
            }

            /// [`crate::Store::heartbeat`].
            async fn heartbeat_shared(&self) -> $crate::error::Result<()> {
                let now = $crate::record::now_ms();
                sqlx::query(
                    "INSERT INTO instances (id, host, pid, started_at, seen_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                )
                .bind(&self.instance)
                .bind($crate::store::host_name())
                .bind(i64::from(std::process::id()))
                .bind(now)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            /// [`crate::Store::recover`].
            async fn recover_shared(
                &self,
                grace: std::time::Duration,
            ) -> $crate::error::Result<u64> {
                let candidates: Vec<$crate::rows::Candidate> = sqlx::query_as(
                    "SELECT DISTINCT t.instance, i.host, i.pid, i.seen_at FROM turns t
                     LEFT JOIN instances i ON i.id = t.instance WHERE t.state = 'streaming'",
                )
                .fetch_all(&self.pool)
                .await?;
                let dead = $crate::rows::dead_instances(candidates, grace, &self.instance);
                let mut recovered = 0;
                for id in dead {
                    let mut tx = self.pool.begin().await?;
                    recovered += sqlx::query(
                        "UPDATE turns SET state = 'interrupted', updated_at = $1
                         WHERE state = 'streaming' AND instance = $2",
                    )
                    .bind($crate::record::now_ms())
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    sqlx::query("DELETE FROM instances WHERE id = $1")
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                }
                // Instances gone quiet with nothing streaming (a CLI run exits without
                // closing): forget them, so the table holds live instances only.
                sqlx::query("DELETE FROM instances WHERE seen_at < $1 AND id <> $2")
                    .bind($crate::record::now_ms() - grace.as_millis() as i64)
                    .bind(&self.instance)
                    .execute(&self.pool)
                    .await?;
                Ok(recovered)
            }

            /// [`crate::Store::add_key`].
            async fn add_key_shared(
                &self,
                key: &$crate::key::KeyRecord,
            ) -> $crate::error::Result<()> {
                let models = (!key.models.is_empty())
                    .then(|| serde_json::to_string(&key.models).unwrap_or_default());
                let as_i64 = |v: Option<u64>| v.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
                let done = sqlx::query($crate::shared::INSERT_KEY)
                    .bind(&key.name)
                    .bind(&key.hash)
                    .bind(models)
                    .bind(as_i64(key.rpm))
                    .bind(as_i64(key.tpm))
                    .bind(as_i64(key.concurrent))
                    .bind(key.budget.map(|b| b.usd))
                    .bind(key.budget.map(|b| b.period.as_str()))
                    .bind(key.created_at)
                    .execute(&self.pool)
                    .await;
                match done {
                    Ok(_) => Ok(()),
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        Err($crate::error::StoreError::KeyExists(key.name.clone()))
                    }
                    Err(e) => Err(e.into()),
                }
            }

            /// [`crate::Store::keys`].
            async fn keys_shared(
                &self,
            ) -> $crate::error::Result<Vec<$crate::key::KeyRecord>> {
                let rows = sqlx::query("SELECT * FROM api_keys ORDER BY name")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|row| $crate::shared::key_from_row!(row)).collect()
            }

            /// [`crate::Store::key_by_hash`].
            async fn key_by_hash_shared(
                &self,
                hash: &str,
            ) -> $crate::error::Result<Option<$crate::key::KeyRecord>> {
                let row = sqlx::query("SELECT * FROM api_keys WHERE hash = $1")
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|row| $crate::shared::key_from_row!(&row)).transpose()
            }

            /// [`crate::Store::revoke_key`].
            async fn revoke_key_shared(&self, name: &str) -> $crate::error::Result<bool> {
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                )
                .bind(name)
                .bind($crate::record::now_ms())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            /// [`crate::Store::add_spend`].
            async fn add_spend_shared(
                &self,
                key: &str,
                period_start: i64,
                usd: f64,
            ) -> $crate::error::Result<f64> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "INSERT INTO key_spend (key_name, period_start, usd) VALUES ($1, $2, $3)
                     ON CONFLICT (key_name, period_start) DO UPDATE SET usd = key_spend.usd + excluded.usd
                     RETURNING usd",
                )
                .bind(key)
                .bind(period_start)
                .bind(usd)
                .fetch_one(&self.pool)
                .await?;
                Ok(row.try_get("usd")?)
            }

            /// [`crate::Store::spend`].
            async fn spend_shared(
                &self,
                key: &str,
                period_start: i64,
            ) -> $crate::error::Result<f64> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT usd FROM key_spend WHERE key_name = $1 AND period_start = $2",
                )
                .bind(key)
                .bind(period_start)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match row {
                    Some(row) => row.try_get("usd")?,
                    None => 0.0,
                })
            }

            /// [`crate::Store::usage_since`].
            async fn usage_since_shared(
                &self,
                since_ms: i64,
            ) -> $crate::error::Result<Vec<$crate::key::UsageRow>> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT model, owner, created_at, CAST(usage AS TEXT) AS usage, cost_usd
                     FROM turns WHERE created_at >= $1 AND state <> 'streaming'
                     ORDER BY created_at",
                )
                .bind(since_ms)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::key::UsageRow {
                            model: row.try_get("model")?,
                            owner: row.try_get("owner")?,
                            created_at: row.try_get("created_at")?,
                            usage: $crate::rows::usage(row.try_get("usage")?)?,
                            cost_usd: row.try_get("cost_usd")?,
                        })
                    })
                    .collect()
            }

            /// [`crate::Store::close`].
            async fn close_shared(&self) {
                let _ = sqlx::query("DELETE FROM instances WHERE id = $1")
                    .bind(&self.instance)
                    .execute(&self.pool)
                    .await;
                self.pool.close().await;
            }

            /// Puts the stored bytes of the attachments `turns` refer to back into their parts
            /// ([`crate::attachments::restore`]).
            async fn fill_attachments(
                &self,
                turns: Vec<&mut $crate::record::TurnRecord>,
            ) -> $crate::error::Result<()> {
                let mut wanted = std::collections::HashSet::new();
                for turn in &turns {
                    if let Some(parts) = &turn.parts {
                        wanted.extend($crate::attachments::digests(parts));
                    }
                }
                if wanted.is_empty() {
                    return Ok(());
                }
                let mut blobs = std::collections::BTreeMap::new();
                for digest in wanted {
                    let row: Option<(Vec<u8>,)> =
                        sqlx::query_as("SELECT data FROM attachments WHERE digest = $1")
                            .bind(&digest)
                            .fetch_optional(&self.pool)
                            .await?;
                    if let Some((data,)) = row {
                        blobs.insert(digest, data);
                    }
                }
                for turn in turns {
                    if let Some(parts) = &mut turn.parts {
                        $crate::attachments::restore(parts, &blobs);
                    }
                }
                Ok(())
            }
        }
    };
}

pub(crate) use shared_methods;
