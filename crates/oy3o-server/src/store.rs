//! The server's optional conversation store (issue #10): opened at start from the `store`
//! setting, written through a background [`Recorder`] (never on the streaming path), read when a
//! client asks for a chat's history. Chats resume through the engine's conversations
//! (`AppState::conversations`), not here.

use std::sync::Arc;
use std::time::Duration;

use oy3o_store::{ChatRecord, ChatSummary, Health, Recorder, Store, StoreSetting, TurnRecord};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

/// The longest a read (resume, history) waits for the database before the request is answered
/// as if the store were not there.
const READ_PATIENCE: Duration = Duration::from_secs(5);

/// The longest the start waits for the database before serving without it.
const OPEN_PATIENCE: Duration = Duration::from_secs(15);

/// The store as the server holds it.
pub(crate) enum Stored {
    /// No store configured.
    Off,
    /// Configured, but it could not be opened: the server serves without it.
    Unavailable {
        /// The setting, as shown (password redacted).
        setting: String,
        /// Why it could not be opened.
        error: String,
    },
    /// Open.
    On(Open),
}

/// An open store and its writer.
pub(crate) struct Open {
    /// Reads (`history` events).
    pub store: Arc<dyn Store>,
    /// Writes, off the streaming path.
    pub recorder: Recorder,
    /// The current write outage, reported by the recorder; connections watch it to tell their
    /// clients (a `store` event, see [`Open::health_changes`]).
    failing: watch::Sender<Option<String>>,
    /// Turns the store lost (dropped for the backlog's memory bound, or refused by the
    /// database), as the `message` of a `store` event for every connection.
    notices: broadcast::Sender<Value>,
}

impl Stored {
    /// Opens the store the setting names; a failure is logged and the server goes on without it.
    pub(crate) async fn open(setting: Option<&StoreSetting>, prices: oy3o::price::Prices) -> Self {
        let Some(setting) = setting else {
            return Self::Off;
        };
        let opened = tokio::time::timeout(OPEN_PATIENCE, oy3o_store::open(setting)).await;
        let store = match opened {
            Ok(Ok(Some(store))) => store,
            Ok(Ok(None)) => return Self::Off,
            Ok(Err(e)) => return Self::unavailable(setting, e.to_string()),
            Err(_) => {
                return Self::unavailable(
                    setting,
                    format!("no answer within {}s", OPEN_PATIENCE.as_secs()),
                );
            }
        };
        tracing::info!("store: {} ({})", setting, store.backend());
        let recorder = Recorder::with_options(
            store.clone(),
            oy3o_store::RecorderOptions {
                prices,
                ..Default::default()
            },
        );
        let failing = watch::Sender::new(None);
        let (notices, _) = broadcast::channel(16);
        let seen = failing.clone();
        let notify = notices.clone();
        recorder.on_health(move |health| {
            match health {
                Health::Failing(e) => {
                    seen.send_replace(Some(e.clone()));
                }
                Health::Recovered => {
                    seen.send_replace(None);
                }
                // The recorder logs the details; clients hear that turns were lost. (No
                // connection listening is not an error.)
                Health::Dropped { .. } | Health::Refused { .. } => {
                    let _ = notify.send(loss_event(health));
                }
            }
        });
        Self::On(Open {
            store,
            recorder,
            failing,
            notices,
        })
    }

    fn unavailable(setting: &StoreSetting, error: String) -> Self {
        tracing::warn!("store {setting} is unavailable, serving without it: {error}");
        eprintln!("oy3o: store {setting} is unavailable, serving without it: {error}");
        Self::Unavailable {
            setting: setting.to_string(),
            error,
        }
    }

    /// The open store, if any.
    pub(crate) fn open_store(&self) -> Option<&Open> {
        match self {
            Self::On(open) => Some(open),
            _ => None,
        }
    }

    /// The `store` field of `GET /health`: `{"status": "off" | "ok" | "failing" |
    /// "unavailable", "backend"?, "error"?}`.
    pub(crate) fn health(&self) -> Value {
        match self {
            Self::Off => json!({ "status": "off" }),
            Self::Unavailable { setting, error } => json!({
                "status": "unavailable",
                "store": setting,
                "error": error,
            }),
            Self::On(open) => {
                let failing = open.failing.borrow().clone();
                match failing {
                    None => json!({ "status": "ok", "backend": open.store.backend() }),
                    Some(error) => json!({
                        "status": "failing",
                        "backend": open.store.backend(),
                        "error": error,
                        "pending": open.recorder.pending(),
                    }),
                }
            }
        }
    }
}

/// The `message` of the `store` event that tells a client turns were lost:
/// `{"status": "dropped", "turns": N, "reason": "backlog" | "refused"}`. The database's own words
/// stay in the server's log: they may name another owner's stored values.
fn loss_event(health: &Health) -> Value {
    match health {
        Health::Dropped { turns } => {
            json!({ "status": "dropped", "turns": turns, "reason": "backlog" })
        }
        _ => json!({ "status": "dropped", "turns": 1, "reason": "refused" }),
    }
}

impl Open {
    /// Turns lost from now on, as `store` event messages (see [`loss_event`]).
    pub(crate) fn losses(&self) -> broadcast::Receiver<Value> {
        self.notices.subscribe()
    }

    /// The write outage as it changes: `Some(error)` while writes fail, `None` once they go
    /// through again.
    pub(crate) fn health_changes(&self) -> watch::Receiver<Option<String>> {
        self.failing.subscribe()
    }

    /// The `message` of the `store` event that tells a client of an outage (`error` given)
    /// or of its end: `{"status": "failing", "error", "pending"}` or `{"status": "ok"}`.
    pub(crate) fn health_event(&self, error: Option<&str>) -> Value {
        match error {
            Some(error) => json!({
                "status": "failing",
                "error": error,
                "pending": self.recorder.pending(),
            }),
            None => json!({ "status": "ok" }),
        }
    }

    /// The chat `name` of `owner` and its turns, if it is stored. A database that fails or
    /// does not answer in time is logged and read as "not stored".
    pub(crate) async fn find(
        &self,
        owner: &str,
        name: &str,
    ) -> Option<(ChatRecord, Vec<TurnRecord>)> {
        let read = async {
            let Some(chat) = self.store.find_chat(owner, name).await? else {
                return Ok(None);
            };
            let turns = self.store.turns(owner, &chat.id).await?;
            Ok::<_, oy3o_store::StoreError>(Some((chat, turns)))
        };
        match tokio::time::timeout(READ_PATIENCE, read).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::warn!("store: cannot read chat: {e}");
                None
            }
            Err(_) => {
                tracing::warn!("store: no answer within {}s", READ_PATIENCE.as_secs());
                None
            }
        }
    }
}

impl Open {
    /// The chats of `owner`, the last used first; `None` when the database fails or does not
    /// answer in time (logged: its words may name another owner's stored values).
    pub(crate) async fn chats(&self, owner: &str) -> Option<Vec<ChatSummary>> {
        match tokio::time::timeout(READ_PATIENCE, self.store.chats(owner)).await {
            Ok(Ok(chats)) => Some(chats),
            Ok(Err(e)) => {
                tracing::warn!("store: cannot list chats: {e}");
                None
            }
            Err(_) => {
                tracing::warn!("store: no answer within {}s", READ_PATIENCE.as_secs());
                None
            }
        }
    }
}

/// One stored turn as the `message` of a `history` event: what was asked and answered, how it
/// ended, and when.
pub(crate) fn turn_json(turn: &TurnRecord) -> Value {
    let mut out = json!({
        "seq": turn.seq,
        "prompt": turn.prompt,
        "answer": turn.answer,
        "state": turn.state.as_str(),
        "model": turn.model,
        "created_at": turn.created_at,
    });
    if !turn.reasoning.is_empty() {
        out["reasoning"] = json!(turn.reasoning);
    }
    if !turn.events.is_empty() {
        out["events"] = json!(turn.events);
    }
    if let Some(usage) = &turn.usage {
        out["usage"] = json!(usage);
    }
    if let Some(error) = &turn.error {
        out["error"] = json!(error);
    }
    out
}
