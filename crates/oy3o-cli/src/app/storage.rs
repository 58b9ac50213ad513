//! The app's side of the store: `chat NAME` opens the chat through the engine's conversations
//! (resuming a stored one), which record every answer without waiting for the database.
//!
//! The store opens in the background when the app starts; the first `chat NAME` waits for it
//! at most [`WAIT`], and a store that is not there costs one note in the status bar.

use std::time::Duration;

use oy3o::{Config, Conversation, Conversations, Message, Opening, Role};
use oy3o_store::{Health, Recorder, StoreSetting};

use crate::store::LOCAL;

/// The longest `chat NAME` waits for the store to open.
const WAIT: Duration = Duration::from_secs(3);

/// A chat as it comes back: its conversation, model, context and turns (prompt, answer).
pub struct Resumed {
    pub conversation: Conversation,
    pub model: Option<String>,
    pub context: Option<String>,
    pub turns: Vec<(String, String)>,
}

/// The store's recorder and the conversations kept in it (in memory without a store).
pub struct Storage {
    recorder: Option<Recorder>,
    conversations: Conversations,
}

impl Storage {
    /// Starts opening the store (none for `store = "none"`).
    pub fn start(setting: &StoreSetting, prices: oy3o::price::Prices) -> Self {
        let recorder = crate::store::recorder(setting, prices);
        let conversations = crate::store::conversations(recorder.as_ref());
        Self {
            recorder,
            conversations,
        }
    }

    /// Calls `notify` with a line for the status bar when writes start failing or recover.
    pub fn on_health(&self, notify: impl Fn(String) + Send + Sync + 'static) {
        let Some(recorder) = &self.recorder else {
            return;
        };
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

    /// Opens the chat `name`: the stored one resumed, else a new one kept under that name.
    /// `Err` says why the store could not be read (for the status bar).
    pub async fn resume(&self, name: &str, config: &Config) -> Result<Resumed, String> {
        let opening = Opening::named(LOCAL, name);
        let conversation =
            match tokio::time::timeout(WAIT, self.conversations.open(opening, config)).await {
                Err(_) => return Err("the store is still opening; this chat is not stored".into()),
                Ok(Err(e)) => return Err(format!("{}; this chat is not stored", e.message())),
                Ok(Ok(conversation)) => conversation,
            };
        let record = conversation.record();
        Ok(Resumed {
            turns: pairs(&conversation.history()),
            model: record.model,
            context: record.context,
            conversation,
        })
    }

    /// A chat that is not stored (the store failed, or a chat of a loaded session): a new
    /// conversation that continues `history` (prompt and answer pairs).
    pub fn unnamed(
        &self,
        model: Option<&str>,
        history: &[(String, String)],
        config: &Config,
    ) -> oy3o::Result<(Conversation, Option<oy3o::Error>)> {
        let opening = Opening::one_shot(LOCAL).model(model);
        let conversation = self.conversations.one_shot(&opening, config)?;
        // A model that keeps its conversation on the service's side cannot take one over.
        let refused = conversation.restore(super::history_of(history)).err();
        Ok((conversation, refused))
    }

    /// Writes what is left before the app exits.
    pub async fn finish(self) {
        crate::store::finish(self.recorder).await;
    }
}

/// A history as (prompt, answer) pairs, for the flow.
fn pairs(history: &[Message]) -> Vec<(String, String)> {
    history
        .windows(2)
        .filter(|pair| pair[0].role == Role::User && pair[1].role == Role::Assistant)
        .map(|pair| (pair[0].text().into_owned(), pair[1].text().into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_comes_back_as_prompt_and_answer_pairs() {
        let history = [
            Message::user("a"),
            Message::assistant("A"),
            Message::user("b"),
            Message::assistant("B"),
        ];
        assert_eq!(
            pairs(&history),
            [("a".into(), "A".into()), ("b".into(), "B".into())]
        );
    }
}
