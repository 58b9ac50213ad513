//! The app's side of the store: `chat NAME` resumes a stored chat, and every answer of a
//! stored chat is recorded without waiting for the database.
//!
//! The store opens in the background when the app starts; the first `chat NAME` waits for it
//! at most [`WAIT`], and a store that is not there costs one note in the status bar.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use oy3o_store::{ChatRecord, Health, Recorder, Store, StoreSetting, TurnRecorder};
use tokio::task::JoinHandle;

use crate::store::LOCAL;

/// The longest `chat NAME` waits for the store to open.
const WAIT: Duration = Duration::from_secs(3);

/// A stored chat as it comes back: its model, context and turns (prompt, answer).
pub struct Resumed {
    pub model: Option<String>,
    pub context: Option<String>,
    pub turns: Vec<(String, String)>,
}

enum Slot {
    Opening(JoinHandle<Result<Option<Arc<dyn Store>>, String>>),
    Ready(Option<Arc<dyn Store>>),
}

/// Shows a store outage (or its end) to the person.
type Notify = Arc<dyn Fn(String) + Send + Sync>;

/// The store, its recorder and the chats of this session that live in it.
pub struct Storage {
    slot: Slot,
    recorder: Option<Recorder>,
    notify: Option<Notify>,
    /// Chat name → its record and the number of its turns so far.
    chats: HashMap<String, (ChatRecord, i64)>,
}

impl Storage {
    /// Starts opening the store (none for `store = "none"`).
    pub fn start(setting: &StoreSetting) -> Self {
        let setting = setting.clone();
        let task =
            tokio::spawn(
                async move { oy3o_store::open(&setting).await.map_err(|e| e.to_string()) },
            );
        Self {
            slot: Slot::Opening(task),
            recorder: None,
            notify: None,
            chats: HashMap::new(),
        }
    }

    /// The store, once open; `Err` says why not (for the status bar, once).
    async fn store(&mut self) -> Result<Option<Arc<dyn Store>>, String> {
        if let Slot::Opening(task) = &mut self.slot {
            let opened = match tokio::time::timeout(WAIT, task).await {
                Err(_) => return Err("the store is still opening; this chat is not stored".into()),
                Ok(Err(e)) => Err(format!("the store failed to open: {e}")),
                Ok(Ok(result)) => result,
            };
            let store = match opened {
                Ok(store) => store,
                Err(e) => {
                    self.slot = Slot::Ready(None);
                    return Err(format!("{e}; chats are not stored"));
                }
            };
            self.recorder = store.clone().map(Recorder::new);
            self.listen();
            self.slot = Slot::Ready(store);
        }
        match &self.slot {
            Slot::Ready(store) => Ok(store.clone()),
            Slot::Opening(_) => Ok(None),
        }
    }

    /// Calls `notify` with a line for the status bar when writes start failing or recover.
    pub fn on_health(&mut self, notify: impl Fn(String) + Send + Sync + 'static) {
        self.notify = Some(Arc::new(notify));
        self.listen();
    }

    /// Puts the notifier on the recorder once both exist (in either order).
    fn listen(&self) {
        if let (Some(recorder), Some(notify)) = (&self.recorder, self.notify.clone()) {
            recorder.on_health(move |health| {
                notify(match health {
                    Health::Failing(e) => format!("store: {e}; answers are kept in memory"),
                    Health::Recovered => "store: writing again".into(),
                    Health::Dropped { turns } => {
                        format!("store: {turns} answer(s) not kept: the store fell too far behind")
                    }
                    Health::Refused { error, .. } => {
                        format!("store: the database refused an answer, not kept: {error}")
                    }
                })
            });
        }
    }

    /// Finds (or creates) the stored chat `name`: `Ok(None)` with no store.
    pub async fn resume(&mut self, name: &str) -> Result<Option<Resumed>, String> {
        let Some(store) = self.store().await? else {
            return Ok(None);
        };
        let chat = store
            .open_chat(LOCAL, name, None, None)
            .await
            .map_err(|e| e.to_string())?;
        let turns = store
            .turns(LOCAL, &chat.id)
            .await
            .map_err(|e| e.to_string())?;
        let history = turns
            .iter()
            .filter(|t| !t.answer.is_empty())
            .map(|t| (t.prompt.clone(), t.answer.clone()))
            .collect();
        let resumed = Resumed {
            model: chat.model.clone(),
            context: chat.context.clone(),
            turns: history,
        };
        self.chats
            .insert(name.to_owned(), (chat, turns.len() as i64));
        Ok(Some(resumed))
    }

    /// Starts recording a prompt of chat `name`, if that chat is stored.
    pub fn begin(
        &mut self,
        name: &str,
        prompt: &str,
        model: Option<&str>,
        context: Option<&str>,
    ) -> Option<TurnRecorder> {
        let recorder = self.recorder.as_ref()?;
        let (chat, seq) = self.chats.get_mut(name)?;
        if model.is_some() {
            chat.model = model.map(str::to_owned);
        }
        chat.context = context.map(str::to_owned);
        let turn = recorder.begin_turn(chat, *seq, prompt);
        *seq += 1;
        Some(turn)
    }

    /// Writes what is left before the app exits.
    pub async fn finish(self) {
        crate::store::finish(self.recorder).await;
    }
}
