//! [`Conversations`]: opens conversations by owner and name, resuming stored ones, and keeps
//! one live [`Conversation`] per owner and name in the process, so that two connections (or two
//! `Chat` objects) on one name share one history and one turn order.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::{Conversation, ConversationRecord, ConversationStore, Inner};
use crate::chat::Chat;
use crate::config::{Config, Target};
use crate::error::Result;

/// What to open: whose, which name (none: a one-shot conversation that is never resumed), and
/// what the face asked for explicitly. A stored conversation keeps its model and context unless
/// the face names others.
#[derive(Clone, Default)]
pub struct Opening<'a> {
    /// Whose conversation: `""` for the local user, a token's hash on a server.
    pub owner: &'a str,
    /// Its name; `None` for a one-shot prompt.
    pub name: Option<&'a str>,
    /// The model asked for (else the stored one, else the config's default).
    pub model: Option<&'a str>,
    /// The context asked for (else the stored one, else the config's for the model).
    pub context: Option<&'a str>,
    /// The model's targets, already resolved (a server resolves each name once); else `model`
    /// is resolved against the config.
    pub targets: Option<&'a [Target]>,
    /// The face creates the chat again (a WebSocket `{id, model}` or a new credential): a live
    /// conversation reopens its model (or the one asked for) with this config.
    pub renew: bool,
}

impl<'a> Opening<'a> {
    /// The conversation `name` of `owner`.
    pub fn named(owner: &'a str, name: &'a str) -> Self {
        Self {
            owner,
            name: Some(name),
            ..Self::default()
        }
    }

    /// A one-shot conversation of `owner`.
    pub fn one_shot(owner: &'a str) -> Self {
        Self {
            owner,
            ..Self::default()
        }
    }

    /// With the model asked for.
    pub fn model(mut self, model: Option<&'a str>) -> Self {
        self.model = model;
        self
    }

    /// Reopening a live conversation's models with this config (see [`Opening::renew`]).
    pub fn renew(mut self, renew: bool) -> Self {
        self.renew = renew;
        self
    }

    /// With the model's targets already resolved.
    pub fn targets(mut self, targets: Option<&'a [Target]>) -> Self {
        self.targets = targets;
        self
    }

    /// The targets to open: those given, else `model` (or `fallback`) resolved against
    /// `config`.
    /// Borrowed when they were given: a server opens a conversation per HTTP request, and
    /// copying the targets (strings, settings, listeners) each time is measurable there.
    fn resolve(&self, fallback: Option<&str>, config: &Config) -> Result<Cow<'a, [Target]>> {
        match self.targets {
            Some(targets) => Ok(Cow::Borrowed(targets)),
            None => config.resolve_all(self.model.or(fallback)).map(Cow::Owned),
        }
    }

    /// With the context asked for.
    pub fn context(mut self, context: Option<&'a str>) -> Self {
        self.context = context;
        self
    }
}

/// Where conversations come from: the store (if any) and the conversations live in this
/// process. One per face process (the server, the CLI, the Python module).
pub struct Conversations {
    store: Option<Arc<dyn ConversationStore>>,
    live: Mutex<HashMap<(String, String), Weak<Inner>>>,
}

impl Conversations {
    /// Conversations recorded in `store` (`None`: kept in memory only).
    pub fn new(store: Option<Arc<dyn ConversationStore>>) -> Self {
        Self {
            store,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// The store, if any.
    pub fn store(&self) -> Option<&Arc<dyn ConversationStore>> {
        self.store.as_ref()
    }

    /// The conversation `name` of `owner` if it is open in this process.
    pub fn live(&self, owner: &str, name: &str) -> Option<Conversation> {
        let mut live = self.lock();
        let key = (owner.to_owned(), name.to_owned());
        match live.get(&key).and_then(Weak::upgrade) {
            Some(inner) => Some(Conversation { inner }),
            None => {
                live.remove(&key);
                None
            }
        }
    }

    /// Opens a conversation: the live one of that owner and name (switched to the model asked
    /// for, given the context asked for), else the stored one resumed (history, context, model,
    /// provider handle, next turn number), else a new one. A one-shot opening is always new.
    /// A store that cannot be read is an error (its code says whether to check the network or
    /// the setting), never a silently empty history.
    pub async fn open(&self, opening: Opening<'_>, config: &Config) -> Result<Conversation> {
        let Some(name) = opening.name else {
            return self.fresh(&opening, config, None);
        };
        match self.find(opening.clone(), config).await? {
            Some(found) => Ok(found),
            None => {
                let fresh = self.fresh(&opening, config, Some(name))?;
                Ok(self.register(opening.owner, name, fresh))
            }
        }
    }

    /// Like [`Conversations::open`], but only an existing conversation (live here, or stored):
    /// `None` when there is none of that owner and name.
    pub async fn find(
        &self,
        opening: Opening<'_>,
        config: &Config,
    ) -> Result<Option<Conversation>> {
        let Some(name) = opening.name else {
            return Ok(None);
        };
        if let Some(open) = self.live(opening.owner, name) {
            if opening.renew || opening.model.is_some() || opening.targets.is_some() {
                let current = open.model();
                open.switch(&opening.resolve(Some(&current), config)?)?;
            }
            if let Some(context) = opening.context {
                open.update(context);
            }
            return Ok(Some(open));
        }
        let stored = match &self.store {
            Some(store) => store.load(opening.owner, name).await?,
            None => None,
        };
        let conversation = match stored {
            None => return Ok(None),
            Some(stored) => {
                let targets = opening.resolve(stored.record.model.as_deref(), config)?;
                let chat = Chat::open_targets(&targets)?;
                let context = opening.context.or(stored.record.context.as_deref());
                if let Some(context) = context {
                    chat.update(context);
                }
                chat.resume(stored.record.handle.as_ref(), stored.history())?;
                let mut record = stored.record.clone();
                record.model = Some(chat.model().to_owned());
                record.context = context.map(str::to_owned).filter(|c| !c.is_empty());
                Conversation::new(chat, record, stored.next_seq(), self.store.clone())
            }
        };
        Ok(Some(self.register(opening.owner, name, conversation)))
    }

    /// Keeps `conversation` as the live one of `owner` and `name`; when two opens of one name
    /// raced, the first registered wins and the other is dropped.
    fn register(&self, owner: &str, name: &str, conversation: Conversation) -> Conversation {
        let mut live = self.lock();
        let key = (owner.to_owned(), name.to_owned());
        if let Some(inner) = live.get(&key).and_then(Weak::upgrade) {
            return Conversation { inner };
        }
        live.retain(|_, weak| weak.strong_count() > 0);
        live.insert(key, Arc::downgrade(&conversation.inner));
        conversation
    }

    /// A one-shot conversation (never resumed, not kept by name): nothing is read from the
    /// store, so nothing waits. `opening.name` is ignored.
    pub fn one_shot(&self, opening: &Opening<'_>, config: &Config) -> Result<Conversation> {
        self.fresh(opening, config, None)
    }

    fn fresh(
        &self,
        opening: &Opening<'_>,
        config: &Config,
        name: Option<&str>,
    ) -> Result<Conversation> {
        let chat = Chat::open_targets(&opening.resolve(None, config)?)?;
        if let Some(context) = opening.context {
            chat.update(context);
        }
        let record = ConversationRecord {
            id: self.store.as_ref().map(|s| s.new_id()).unwrap_or_default(),
            owner: opening.owner.to_owned(),
            name: name.map(str::to_owned),
            model: Some(chat.model().to_owned()),
            context: opening.context.map(str::to_owned).filter(|c| !c.is_empty()),
            handle: None,
        };
        Ok(Conversation::new(chat, record, 0, self.store.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Weak<Inner>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for Conversations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversations")
            .field("store", &self.store.is_some())
            .finish()
    }
}
