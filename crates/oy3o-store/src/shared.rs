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
