//! A store wrapper for the store's own tests and bench: writes wait while a gate is shut, and
//! every turn row written is noted. Apart from `common/mod.rs` because other crates' tests
//! include that file and do not depend on `async-trait`.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oy3o_store::{ChatRecord, Store, TurnRecord, TurnState};

/// A store whose turn writes wait while the gate is shut (a stalled database), noting the turns
/// each write carried; everything else goes straight through.
#[derive(Debug)]
pub struct Gated {
    inner: Arc<dyn Store>,
    open: tokio::sync::watch::Sender<bool>,
    writes: Mutex<Vec<(String, TurnState)>>,
    batches: Mutex<Vec<usize>>,
}

impl Gated {
    pub fn new(inner: Arc<dyn Store>, open: bool) -> Arc<Self> {
        Arc::new(Self {
            inner,
            open: tokio::sync::watch::Sender::new(open),
            writes: Mutex::new(Vec::new()),
            batches: Mutex::new(Vec::new()),
        })
    }

    pub fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }

    /// How many turn rows were written so far.
    pub fn rows_written(&self) -> usize {
        self.writes.lock().unwrap().len()
    }

    /// How many turns each `save_turns` call carried, in order: the writer's rounds.
    pub fn batches(&self) -> Vec<usize> {
        self.batches.lock().unwrap().clone()
    }

    /// Every turn written so far, in order, with the state it was written in.
    pub fn writes(&self) -> Vec<(String, TurnState)> {
        self.writes.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Store for Gated {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn instance(&self) -> &str {
        self.inner.instance()
    }
    async fn open_chat(
        &self,
        owner: &str,
        name: &str,
        model: Option<&str>,
        context: Option<&str>,
    ) -> oy3o_store::Result<ChatRecord> {
        self.inner.open_chat(owner, name, model, context).await
    }
    async fn find_chat(&self, owner: &str, name: &str) -> oy3o_store::Result<Option<ChatRecord>> {
        self.inner.find_chat(owner, name).await
    }
    async fn chat_by_id(&self, owner: &str, id: &str) -> oy3o_store::Result<Option<ChatRecord>> {
        self.inner.chat_by_id(owner, id).await
    }
    async fn save_chat(&self, chat: &ChatRecord) -> oy3o_store::Result<()> {
        self.inner.save_chat(chat).await
    }
    async fn last_seq(&self, owner: &str, chat_id: &str) -> oy3o_store::Result<Option<i64>> {
        self.inner.last_seq(owner, chat_id).await
    }
    async fn chats(&self, owner: &str) -> oy3o_store::Result<Vec<oy3o_store::ChatSummary>> {
        self.inner.chats(owner).await
    }
    async fn turns(&self, owner: &str, chat_id: &str) -> oy3o_store::Result<Vec<TurnRecord>> {
        self.inner.turns(owner, chat_id).await
    }
    async fn recent_turns(
        &self,
        owner: &str,
        limit: u32,
        search: Option<&str>,
    ) -> oy3o_store::Result<Vec<oy3o_store::LoggedTurn>> {
        self.inner.recent_turns(owner, limit, search).await
    }
    async fn save_turns(&self, turns: &[(ChatRecord, TurnRecord)]) -> oy3o_store::Result<()> {
        let mut open = self.open.subscribe();
        open.wait_for(|open| *open).await.expect("the gate lives");
        self.writes
            .lock()
            .unwrap()
            .extend(turns.iter().map(|(_, t)| (t.id.clone(), t.state)));
        self.batches.lock().unwrap().push(turns.len());
        self.inner.save_turns(turns).await
    }
    async fn save_chain_run(&self, run: &oy3o_store::ChainRunRecord) -> oy3o_store::Result<()> {
        self.inner.save_chain_run(run).await
    }
    async fn chain_runs(
        &self,
        owner: &str,
        limit: u32,
    ) -> oy3o_store::Result<Vec<oy3o_store::ChainRunRecord>> {
        self.inner.chain_runs(owner, limit).await
    }
    async fn prune(
        &self,
        owner: Option<&str>,
        before_ms: i64,
    ) -> oy3o_store::Result<oy3o_store::Pruned> {
        self.inner.prune(owner, before_ms).await
    }
    async fn add_key(&self, key: &oy3o_store::KeyRecord) -> oy3o_store::Result<()> {
        self.inner.add_key(key).await
    }
    async fn keys(&self) -> oy3o_store::Result<Vec<oy3o_store::KeyRecord>> {
        self.inner.keys().await
    }
    async fn key_by_hash(&self, hash: &str) -> oy3o_store::Result<Option<oy3o_store::KeyRecord>> {
        self.inner.key_by_hash(hash).await
    }
    async fn revoke_key(&self, name: &str) -> oy3o_store::Result<bool> {
        self.inner.revoke_key(name).await
    }
    async fn add_spend(&self, key: &str, start: i64, usd: f64) -> oy3o_store::Result<f64> {
        self.inner.add_spend(key, start, usd).await
    }
    async fn spend(&self, key: &str, start: i64) -> oy3o_store::Result<f64> {
        self.inner.spend(key, start).await
    }
    async fn usage_since(&self, since: i64) -> oy3o_store::Result<Vec<oy3o_store::UsageRow>> {
        self.inner.usage_since(since).await
    }
    async fn heartbeat(&self) -> oy3o_store::Result<()> {
        self.inner.heartbeat().await
    }
    async fn recover(&self, grace: Duration) -> oy3o_store::Result<u64> {
        self.inner.recover(grace).await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}
