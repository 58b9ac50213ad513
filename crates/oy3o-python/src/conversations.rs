//! The Python face's conversations: one process-wide [`oy3o::Conversations`] per store, so two
//! `Chat(..., name='x')` objects in one process share one conversation, and every named chat
//! resumes and records through the engine's one conversation path.

use std::sync::{Arc, Mutex, OnceLock};

use oy3o::{Config, Conversations};
use oy3o_store::{RecordedConversations, Recorder, RecorderOptions, StoreSetting};

/// The store in force, chosen as on every face ([`StoreSetting::choose`]: Python has no flag,
/// so `OY3O_STORE`, else the config's `store`), else the SQLite file the terminal uses.
pub fn store_setting(config: &Config) -> oy3o::Result<StoreSetting> {
    let env = std::env::var("OY3O_STORE").ok();
    match StoreSetting::choose(None, env.as_deref(), config.store.as_deref()) {
        Ok(Some(setting)) => Ok(setting),
        Ok(None) => Ok(StoreSetting::default_sqlite()?),
        Err(e) => Err(oy3o::Error::config(format!("store setting: {e}"))),
    }
}

/// Conversations without a store: unnamed chats, one-shot prompts and `store = "none"`.
pub fn unstored() -> Arc<Conversations> {
    static NONE: OnceLock<Arc<Conversations>> = OnceLock::new();
    NONE.get_or_init(|| Arc::new(Conversations::new(None)))
        .clone()
}

type Opened = Vec<(StoreSetting, Arc<Conversations>)>;

fn opened() -> std::sync::MutexGuard<'static, Opened> {
    static OPENED: OnceLock<Mutex<Opened>> = OnceLock::new();
    OPENED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// The conversations kept in `setting`'s store: opened (in the background, on the extension's
/// runtime, which must be entered) the first time it is asked for.
pub fn stored(setting: &StoreSetting) -> Arc<Conversations> {
    if *setting == StoreSetting::None {
        return unstored();
    }
    let mut opened = opened();
    if let Some((_, found)) = opened.iter().find(|(s, _)| s == setting) {
        return found.clone();
    }
    let target = setting.clone();
    let recorder = Recorder::opening(
        async move {
            oy3o_store::open(&target)
                .await?
                .ok_or_else(|| oy3o_store::StoreError::unavailable("no store is configured"))
        },
        RecorderOptions::default(),
    );
    let conversations = Arc::new(Conversations::new(Some(
        RecordedConversations::new(recorder).shared(),
    )));
    opened.push((setting.clone(), conversations.clone()));
    conversations
}

/// Forgets `setting`'s store after it could not be opened, so the next chat tries again.
pub fn forget(setting: &StoreSetting) {
    opened().retain(|(s, _)| s != setting);
}
