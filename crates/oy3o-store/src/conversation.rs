//! The store as the engine's conversations use it: [`RecordedConversations`] implements
//! `oy3o::conversation::ConversationStore` over a [`Recorder`], so every face resumes from and
//! records into the store through the engine's one conversation path.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use oy3o::conversation::{
    ConversationRecord, ConversationStore, StoredConversation, StoredTurn, TurnEnd, TurnLog,
    TurnOutcome,
};
use oy3o::{Event, Message};
use serde_json::Value;

use crate::record::{ChatRecord, TurnRecord, TurnState, new_id, now_ms};
use crate::recorder::{Recorder, TurnRecorder};

/// Conversations kept in the store a [`Recorder`] writes to. Reads wait for the recorder's
/// store to be open.
#[derive(Clone, Debug)]
pub struct RecordedConversations {
    recorder: Recorder,
}

impl RecordedConversations {
    /// Conversations recorded by `recorder` (and read from its store).
    pub fn new(recorder: Recorder) -> Self {
        Self { recorder }
    }

    /// The recorder.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// As the engine wants it.
    pub fn shared(self) -> Arc<dyn ConversationStore> {
        Arc::new(self)
    }
}

/// A stored chat as the engine's record.
pub fn conversation_record(chat: &ChatRecord) -> ConversationRecord {
    ConversationRecord {
        id: chat.id.clone(),
        owner: chat.owner.clone(),
        name: chat.name.clone(),
        model: chat.model.clone(),
        context: chat.context.clone(),
        handle: chat.handle.clone(),
    }
}

/// The engine's record as a stored chat (times: now).
fn chat_record(record: &ConversationRecord) -> ChatRecord {
    let now = now_ms();
    ChatRecord {
        id: record.id.clone(),
        owner: record.owner.clone(),
        name: record.name.clone(),
        model: record.model.clone(),
        context: record.context.clone(),
        handle: record.handle.clone(),
        created_at: now,
        updated_at: now,
    }
}

fn outcome(state: TurnState) -> TurnOutcome {
    match state {
        TurnState::Streaming => TurnOutcome::Streaming,
        TurnState::Done => TurnOutcome::Done,
        TurnState::Error => TurnOutcome::Error,
        TurnState::Cancelled => TurnOutcome::Cancelled,
        TurnState::Interrupted => TurnOutcome::Interrupted,
    }
}

fn stored_turn(turn: &TurnRecord) -> StoredTurn {
    StoredTurn {
        seq: turn.seq,
        prompt: turn.prompt_message(),
        steps: turn.steps(),
        answer: turn.answer_message(),
        outcome: outcome(turn.state),
    }
}

impl ConversationStore for RecordedConversations {
    fn new_id(&self) -> String {
        new_id()
    }

    fn load<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, oy3o::Result<Option<StoredConversation>>> {
        async move {
            let store = self.recorder.opened().await?;
            let Some(chat) = store.find_chat(owner, name).await? else {
                return Ok(None);
            };
            let turns = store.turns(owner, &chat.id).await?;
            Ok(Some(StoredConversation {
                record: conversation_record(&chat),
                turns: turns.iter().map(stored_turn).collect(),
            }))
        }
        .boxed()
    }

    fn shared(&self) -> bool {
        self.recorder
            .store()
            .is_some_and(|store| store.backend() == "postgres")
    }

    fn last_seq<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, oy3o::Result<Option<i64>>> {
        async move {
            let store = self.recorder.opened().await?;
            Ok(store.last_seq(owner, id).await?)
        }
        .boxed()
    }

    fn begin_turn(
        &self,
        conversation: &ConversationRecord,
        seq: i64,
        prompt: &Message,
    ) -> Box<dyn TurnLog> {
        let chat = chat_record(conversation);
        Box::new(RecordedTurn(
            self.recorder.begin_message_turn(&chat, seq, prompt),
        ))
    }
}

/// One turn, recorded by the [`Recorder`].
struct RecordedTurn(TurnRecorder);

impl TurnLog for RecordedTurn {
    fn chunk(&self, text: &str) {
        self.0.chunk(text);
    }

    fn event(&self, event: &Event) {
        self.0.event(event);
    }

    fn handle(&self, handle: Option<&Value>) {
        self.0.handle(handle);
    }

    fn finish(&self, end: TurnEnd) -> BoxFuture<'static, oy3o::Result<()>> {
        match &end {
            TurnEnd::Done { usage } => self.0.finish(TurnState::Done, usage.as_ref(), None),
            TurnEnd::Error { message } => self.0.finish(TurnState::Error, None, Some(message)),
            TurnEnd::Cancelled => self.0.finish(TurnState::Cancelled, None, None),
        }
        let durable = self.0.durable();
        async move { Ok(durable.await?) }.boxed()
    }
}
