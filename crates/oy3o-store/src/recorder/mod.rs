//! The [`Recorder`]: how faces record turns without ever waiting for the database.
//!
//! The hot path ([`TurnRecorder::chunk`] and friends) only appends to the turn's in-memory state
//! under a short mutex and, the first time after a write, queues the turn as dirty. A background
//! writer upserts the *latest* state of dirty turns (up to 5,000 a round) in one transaction of a
//! few multi-row statements: every ~100 ms (a tick) all of them, streaming ones too; when a turn
//! ends, at once, the finished ones only, so a turn shorter than a tick costs one row write. While
//! a round is written the next batch gathers, so batches grow with the backlog. A missed or failed
//! write loses nothing: the next write carries the whole text. A failing database keeps the turns
//! dirty and is retried with backoff; the outage is reported once (a [`Health`] event and a log
//! line), never to the answer. The backlog is bounded by memory, not by a turn count (see
//! [`RecorderOptions::max_pending_bytes`]).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use oy3o::{Event, Usage};
use tokio::sync::Notify;

use crate::error::{Result, StoreError};
use crate::record::{ChainRunRecord, ChatRecord, TurnRecord, TurnState, new_id, now_ms};

mod steps;
mod writer;
use crate::store::Store;

/// How a [`Recorder`] batches its writes.
#[derive(Clone, Debug)]
pub struct RecorderOptions {
    /// The longest a change waits before it is written (default 100 ms): the writer's tick. A
    /// finished turn is written at once; a streaming one at the next tick.
    pub flush_every: Duration,
    /// The most memory the turns waiting to be written may hold (their text, plus
    /// [`PENDING_TURN_OVERHEAD`] each; default 256 MiB, some 250,000 short answers). Beyond it
    /// the oldest finished turns are dropped and reported ([`Health::Dropped`] and a log line):
    /// a bound for a database that is down for long, never reached under load. Streaming turns
    /// are never dropped.
    pub max_pending_bytes: usize,
    /// The most turns written in one transaction (default 5,000); more wait for the next round,
    /// which starts at once. A round writes every dirty turn up to this, so batches grow with
    /// the backlog and a busy writer spends its time on rows, not on transactions.
    pub max_batch: usize,
    /// The least time between the starts of two rounds woken by finished turns (default 10 ms):
    /// group commit. An idle writer writes a finished turn at once; a busy one gathers the
    /// turns that finish within this gap into one transaction, since a commit's fixed cost
    /// (SQLite rewrites every page it touched into the WAL, PostgreSQL flushes its WAL) is
    /// most of a short turn's. A flush or close is never held back by it.
    pub min_round_gap: Duration,
    /// The longest wait between two retries of a failing database (default 5 s).
    pub max_backoff: Duration,
    /// How often the writer marks `interrupted` the streaming turns of instances that died
    /// since this one started (default 60 s), for servers that run for long beside others.
    pub recover_every: Duration,
    /// How long an instance may go unseen before that (default 30 s, as [`crate::OpenOptions`]).
    pub grace: Duration,
    /// The prices a finished turn's cost is computed with ([`TurnRecord::cost_usd`]; default
    /// the shipped table). Faces pass their config's (`oy3o::Config::prices`).
    pub prices: oy3o::price::Prices,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        Self {
            flush_every: Duration::from_millis(100),
            max_pending_bytes: 256 << 20,
            max_batch: 5_000,
            min_round_gap: Duration::from_millis(10),
            max_backoff: Duration::from_secs(5),
            recover_every: Duration::from_secs(60),
            grace: Duration::from_secs(30),
            prices: oy3o::price::Prices::shipped().clone(),
        }
    }
}

/// The store's health as the recorder sees it, reported to [`Recorder::on_health`] listeners
/// once per change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Writes fail (the database is down, slow or could not be opened); turns wait in memory.
    Failing(String),
    /// Writes go through again; the waiting turns were written.
    Recovered,
    /// More than [`RecorderOptions::max_pending_bytes`] waited to be written: this many finished
    /// turns were dropped unwritten (since the last such report; at most one report every
    /// 10 s).
    Dropped {
        /// How many turns were dropped.
        turns: u64,
    },
    /// The database refused a turn or a chain run (a constraint it breaks, which retrying cannot
    /// mend): it was dropped unwritten. Reported once per row, with the database's message.
    Refused {
        /// The turn's (or chain run's) id.
        id: String,
        /// What the database said (it may name stored values: show it to the store's owner,
        /// not to every client).
        error: String,
    },
}

/// What a waiting turn is counted for beyond its text, in [`RecorderOptions::max_pending_bytes`]:
/// its records, ids and queue entry.
pub const PENDING_TURN_OVERHEAD: usize = 512;

/// The least time between two [`Health::Dropped`] reports.
const DROPPED_REPORT_EVERY: Duration = Duration::from_secs(10);

type Listener = Arc<dyn Fn(&Health) + Send + Sync>;
type Opening = Pin<Box<dyn Future<Output = Result<Arc<dyn Store>>> + Send>>;

/// Records turns in a store from the streaming path without blocking it. Cheap to clone; every
/// clone feeds the same background writer, which stops when the last clone is dropped (after one
/// last write).
///
/// ```no_run
/// # async fn f(store: std::sync::Arc<dyn oy3o_store::Store>) {
/// use oy3o_store::{ChatRecord, Recorder, TurnState};
/// let recorder = Recorder::new(store);
/// let chat = ChatRecord::new("", None, Some("openai:gpt-4o-mini"), None);
/// let turn = recorder.begin_turn(&chat, 0, "Say hi");
/// turn.chunk("Hi");
/// turn.chunk(" there!");
/// turn.finish(TurnState::Done, None, None);
/// recorder.flush().await.ok();
/// # }
/// ```
#[derive(Clone)]
pub struct Recorder {
    handle: Arc<Handle>,
}

/// Ends the writer when the last [`Recorder`] clone goes.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        lock(&self.shared.queue).closed = true;
        self.shared.wake.notify_one();
        self.shared.urgent.notify_one();
    }
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer (a turn ended, a flush, the last clone went, turns were dropped).
    wake: Notify,
    /// Cuts the group-commit gap short (a flush waits, or the recorder closes).
    urgent: Notify,
    /// Signalled by the writer after every round.
    progress: Notify,
    store: OnceLock<Arc<dyn Store>>,
    listeners: Mutex<Vec<Listener>>,
    options: RecorderOptions,
}

#[derive(Default)]
struct Queue {
    dirty: VecDeque<Arc<TurnCell>>,
    /// What the turns in `dirty` hold: the sum of their `counted`.
    bytes: usize,
    /// Turns taken by the writer and not yet written.
    writing: usize,
    /// A flush waits: the next round takes every dirty turn, streaming ones too.
    everything: bool,
    /// Finished turns dropped for the byte budget and not yet reported.
    dropped: u64,
    /// The current outage, if any.
    failing: Option<String>,
    /// The store could not be opened: nothing will ever be written.
    dead: Option<String>,
    closed: bool,
    rounds: u64,
    /// Chain runs to write, oldest first (their bytes are in `bytes`).
    runs: VecDeque<(ChainRunRecord, usize)>,
}

struct TurnCell {
    data: Mutex<TurnData>,
    /// Queued for the writer; set by the hot path, cleared by the writer before it reads.
    dirty: AtomicBool,
    /// [`TurnRecorder::finish`] ran: the writer takes the turn without waiting for a tick.
    finished: AtomicBool,
    /// Its final state is committed ([`TurnRecorder::durable`]).
    written: AtomicBool,
    /// What this turn adds to `Queue::bytes` while it is in `Queue::dirty`; 0 when it is not.
    /// Changed under the queue lock only.
    counted: AtomicUsize,
}

struct TurnData {
    chat: ChatRecord,
    turn: TurnRecord,
    started: Instant,
    /// Its tool steps, written into `turn.parts` when it ends.
    steps: steps::ToolSteps,
}

impl TurnData {
    /// What the turn holds in memory, as the byte budget counts it.
    fn size(&self) -> usize {
        turn_size(&self.turn) + self.steps.bytes
    }
}

/// What a turn holds in memory, as the byte budget counts it: its text and a fixed overhead.
fn turn_size(turn: &TurnRecord) -> usize {
    PENDING_TURN_OVERHEAD
        + turn.prompt.len()
        + turn.answer.len()
        + turn.reasoning.len()
        + turn.error.as_ref().map_or(0, String::len)
        + turn.events.len() * PENDING_TURN_OVERHEAD
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind: keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recorder {
    /// A recorder writing to `store`. Must be called inside a Tokio runtime (it spawns the
    /// writer).
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_options(store, RecorderOptions::default())
    }

    /// [`Recorder::new`] with options.
    pub fn with_options(store: Arc<dyn Store>, options: RecorderOptions) -> Self {
        Self::start(Box::pin(async move { Ok(store) }), options)
    }

    /// A recorder that opens its store in the background, so the first answer never waits for
    /// the database: turns recorded meanwhile are written once it is open. If it cannot be
    /// opened, listeners get [`Health::Failing`] and [`Recorder::flush`] returns the error.
    pub fn opening(
        open: impl Future<Output = Result<Arc<dyn Store>>> + Send + 'static,
        options: RecorderOptions,
    ) -> Self {
        Self::start(Box::pin(open), options)
    }

    fn start(open: Opening, options: RecorderOptions) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            urgent: Notify::new(),
            progress: Notify::new(),
            store: OnceLock::new(),
            listeners: Mutex::new(Vec::new()),
            options,
        });
        tokio::spawn(writer::run(shared.clone(), open));
        Self {
            handle: Arc::new(Handle { shared }),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The store, once open.
    pub fn store(&self) -> Option<Arc<dyn Store>> {
        self.shared().store.get().cloned()
    }

    /// Calls `listener` on every health change (an outage begins, writes recover). It runs on
    /// the writer task: keep it short.
    pub fn on_health(&self, listener: impl Fn(&Health) + Send + Sync + 'static) {
        lock(&self.shared().listeners).push(Arc::new(listener));
    }

    /// Starts recording the answer to `prompt` in `chat` as its turn number `seq` (the number of
    /// turns before it). The chat row is written with the turn if it is new. Non-blocking.
    ///
    /// A named chat should come from [`Store::open_chat`]: a new [`ChatRecord`] whose
    /// `(owner, name)` exists already is refused by the database, and its turns are dropped
    /// with a log line (they never block other turns).
    pub fn begin_turn(&self, chat: &ChatRecord, seq: i64, prompt: &str) -> TurnRecorder {
        self.begin(chat, seq, prompt, None)
    }

    /// [`Recorder::begin_turn`] for a prompt made of parts: its text goes in `prompt`, its other
    /// parts in `parts` (see [`TurnRecord::parts`]).
    pub fn begin_message_turn(
        &self,
        chat: &ChatRecord,
        seq: i64,
        prompt: &oy3o::Message,
    ) -> TurnRecorder {
        self.begin(
            chat,
            seq,
            &prompt.text(),
            crate::record::prompt_parts(prompt),
        )
    }

    fn begin(
        &self,
        chat: &ChatRecord,
        seq: i64,
        prompt: &str,
        parts: Option<serde_json::Value>,
    ) -> TurnRecorder {
        let now = now_ms();
        let instance = self
            .shared()
            .store
            .get()
            .map(|s| s.instance().to_owned())
            .unwrap_or_default();
        let turn = TurnRecord {
            id: new_id(),
            chat_id: chat.id.clone(),
            seq,
            owner: chat.owner.clone(),
            prompt: prompt.to_owned(),
            answer: String::new(),
            reasoning: String::new(),
            events: Vec::new(),
            usage: None,
            parts,
            model: chat.model.clone(),
            cost_usd: None,
            first_token_ms: None,
            elapsed_ms: None,
            state: TurnState::Streaming,
            error: None,
            instance,
            created_at: now,
            updated_at: now,
        };
        let id = turn.id.clone();
        let cell = Arc::new(TurnCell {
            data: Mutex::new(TurnData {
                chat: chat.clone(),
                turn,
                started: Instant::now(),
                steps: steps::ToolSteps::default(),
            }),
            dirty: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            written: AtomicBool::new(false),
            counted: AtomicUsize::new(0),
        });
        let recorder = TurnRecorder {
            id,
            cell,
            shared: self.shared().clone(),
        };
        // Queued, not woken for: the next tick writes the streaming row (so a crash leaves it
        // `interrupted`), and a turn that ends before it is written once, finished.
        recorder.touched();
        recorder
    }

    /// Keeps a finished chain run: written by the background writer like a turn (retried while
    /// the database fails, refused runs reported), so the caller never waits for the database.
    pub fn save_chain_run(&self, run: ChainRunRecord) {
        let shared = self.shared();
        {
            let mut q = lock(&shared.queue);
            if q.dead.is_some() {
                return;
            }
            let size = run.result.to_string().len() + PENDING_TURN_OVERHEAD;
            q.bytes += size;
            q.runs.push_back((run, size));
        }
        shared.wake.notify_one();
    }

    /// How many turns (and chain runs) wait to be written.
    pub fn pending(&self) -> usize {
        let q = lock(&self.shared().queue);
        q.dirty.len() + q.runs.len() + q.writing
    }

    /// What the turns waiting to be written hold, as [`RecorderOptions::max_pending_bytes`]
    /// counts it (not counting those being written).
    pub fn pending_bytes(&self) -> usize {
        lock(&self.shared().queue).bytes
    }

    /// The store, once the recorder has opened it; the error if it could not be opened.
    pub async fn opened(&self) -> Result<Arc<dyn Store>> {
        let shared = self.shared();
        loop {
            let progressed = shared.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            if let Some(store) = shared.store.get() {
                return Ok(store.clone());
            }
            if let Some(e) = &lock(&shared.queue).dead {
                return Err(StoreError::unavailable(e.clone()));
            }
            progressed.await;
        }
    }

    /// Writes everything recorded so far and returns once it is in the store. Returns the error
    /// if the store could not be opened or a write failed after this call (the turns stay queued
    /// and are retried). Wrap it in a timeout at shutdown.
    pub async fn flush(&self) -> Result<()> {
        let shared = self.shared();
        let start = lock(&shared.queue).rounds;
        loop {
            let progressed = shared.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            {
                let mut q = lock(&shared.queue);
                if let Some(e) = &q.dead {
                    return Err(StoreError::unavailable(e.clone()));
                }
                if q.dirty.is_empty() && q.runs.is_empty() && q.writing == 0 {
                    return Ok(());
                }
                if q.rounds > start
                    && let Some(e) = &q.failing
                {
                    return Err(StoreError::unavailable(e.clone()));
                }
                q.everything = true;
            }
            shared.wake.notify_one();
            shared.urgent.notify_one();
            progressed.await;
        }
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("pending", &self.pending())
            .finish()
    }
}

/// Records one answer; from [`Recorder::begin_turn`]. Every method is synchronous and
/// non-blocking (a short mutex, no I/O). Dropped before [`TurnRecorder::finish`], the turn is
/// recorded as `cancelled`.
pub struct TurnRecorder {
    id: String,
    cell: Arc<TurnCell>,
    shared: Arc<Shared>,
}

impl TurnRecorder {
    /// The turn's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Notes the model that answers (e.g. once a fallback is chosen); the chat keeps it as the
    /// model it last used.
    pub fn model(&self, model: &str) {
        self.change(|d| {
            d.turn.model = Some(model.to_owned());
            d.chat.model = Some(model.to_owned());
        });
    }

    /// Notes what the provider keeps of the conversation (`oy3o::Session::handle`), written
    /// with the chat.
    pub fn handle(&self, handle: Option<&serde_json::Value>) {
        self.change(|d| d.chat.handle = handle.cloned());
    }

    /// Resolves once this turn's final state is committed (after [`TurnRecorder::finish`]);
    /// an error when a write round fails meanwhile (the turn stays queued and is retried) or
    /// the store could not be opened. Wrap it in a timeout.
    pub fn durable(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        let cell = self.cell.clone();
        let shared = self.shared.clone();
        async move {
            let start = lock(&shared.queue).rounds;
            loop {
                let progressed = shared.progress.notified();
                tokio::pin!(progressed);
                progressed.as_mut().enable();
                if cell.written.load(Ordering::Acquire) {
                    return Ok(());
                }
                {
                    let q = lock(&shared.queue);
                    if let Some(e) = &q.dead {
                        return Err(StoreError::unavailable(e.clone()));
                    }
                    if q.rounds > start
                        && let Some(e) = &q.failing
                    {
                        return Err(StoreError::unavailable(e.clone()));
                    }
                }
                progressed.await;
            }
        }
    }

    /// Appends answer text.
    pub fn chunk(&self, text: &str) {
        self.change(|d| {
            if d.turn.first_token_ms.is_none() {
                d.turn.first_token_ms = Some(d.started.elapsed().as_millis() as i64);
            }
            d.turn.answer.push_str(text);
        });
    }

    /// Appends reasoning text.
    pub fn reasoning(&self, text: &str) {
        self.change(|d| d.turn.reasoning.push_str(text));
    }

    /// Keeps an event of note: citations, search queries and results, a title, reply
    /// suggestions, throttling, provider-specific events; reasoning is appended and usage kept.
    /// `create` notes the model. Tool calls and results are kept as events (for the log, with
    /// their times) and as the turn's tool steps (for the history, see [`TurnRecord::steps`]);
    /// the fragments of a call as it streams are not. Other lifecycle events (`send`,
    /// `result`, `retry`, `error`) are not stored: the turn's own fields hold them.
    pub fn event(&self, event: &Event) {
        match event {
            Event::Reasoning(text) => self.reasoning(text),
            Event::Usage(usage) => self.change(|d| d.turn.usage = Some(usage.clone())),
            Event::Create { model } => self.model(model),
            Event::ToolCall(call) => self.change(|d| {
                d.steps.call(call);
                d.turn.events.push(event.to_json());
            }),
            Event::ToolResult(result) => self.change(|d| {
                d.steps.result(&d.turn.answer, result);
                d.turn.events.push(event.to_json());
            }),
            Event::Update { .. }
            | Event::Send { .. }
            | Event::Result { .. }
            | Event::Error { .. }
            | Event::ToolCallDelta(_)
            | Event::Retry { .. } => {}
            other => self.change(|d| d.turn.events.push(other.to_json())),
        }
    }

    /// Ends the turn: its final state, its usage (when known) and why it failed (for `error`).
    /// Later calls of any method change nothing: the turn is final as `finish` left it (so the
    /// writer can take its records instead of copying them).
    pub fn finish(&self, state: TurnState, usage: Option<&Usage>, error: Option<&str>) {
        if self.cell.finished.load(Ordering::Acquire) {
            return;
        }
        let size = {
            let mut d = lock(&self.cell.data);
            if self.cell.finished.swap(true, Ordering::AcqRel) {
                return;
            }
            d.turn.state = if state == TurnState::Streaming {
                TurnState::Done
            } else {
                state
            };
            if let Some(usage) = usage {
                d.turn.cost_usd = d
                    .turn
                    .model
                    .as_deref()
                    .and_then(|model| self.shared.options.prices.cost(model, usage));
                d.turn.usage = Some(usage.clone());
            }
            d.turn.error = error.map(str::to_owned);
            d.turn.elapsed_ms = Some(d.started.elapsed().as_millis() as i64);
            let TurnData { turn, steps, .. } = &mut *d;
            steps.write(&turn.answer, &mut turn.parts);
            d.size()
        };
        // Once per turn, so the queue lock is taken whether or not the turn is queued: its
        // final size replaces the one counted when it was queued.
        let newly = !self.cell.dirty.swap(true, Ordering::AcqRel);
        {
            let mut q = lock(&self.shared.queue);
            if q.dead.is_some() {
                return;
            }
            let counted = self.cell.counted.load(Ordering::Relaxed);
            if newly {
                q.dirty.push_back(self.cell.clone());
            }
            // In the queue (just now, or since before): count its final size. Taken by the
            // writer (`counted` 0 and not new): the writer reads the final state anyway.
            if newly || counted > 0 {
                self.cell.counted.store(size, Ordering::Relaxed);
                q.bytes = q.bytes - counted + size;
                self.shared.enforce_budget(&mut q);
            }
        }
        self.shared.wake.notify_one();
    }

    /// Applies a change to a turn still under way (after [`TurnRecorder::finish`], none) and
    /// queues it for the writer.
    fn change(&self, f: impl FnOnce(&mut TurnData)) {
        {
            let mut d = lock(&self.cell.data);
            if d.turn.state.is_final() {
                return;
            }
            f(&mut d);
        }
        self.touched();
    }

    /// Queues the turn for the writer unless it is queued already.
    fn touched(&self) {
        if self.cell.dirty.swap(true, Ordering::AcqRel) {
            return;
        }
        let size = lock(&self.cell.data).size();
        let mut q = lock(&self.shared.queue);
        // A store that never opened writes nothing: the turn stays marked dirty, so later
        // changes cost one atomic swap and the queue does not grow.
        if q.dead.is_some() {
            return;
        }
        self.cell.counted.store(size, Ordering::Relaxed);
        q.bytes += size;
        q.dirty.push_back(self.cell.clone());
        self.shared.enforce_budget(&mut q);
    }
}

impl Drop for TurnRecorder {
    fn drop(&mut self) {
        self.finish(TurnState::Cancelled, None, None);
    }
}

impl Shared {
    /// Keeps the waiting turns within the byte budget: beyond it, the oldest finished turns go
    /// (their final state is lost) until a tenth of the budget is free again, so a full queue is
    /// not scanned on every change. Streaming turns stay (their face holds the text anyway).
    fn enforce_budget(&self, q: &mut Queue) {
        let budget = self.options.max_pending_bytes;
        if q.bytes <= budget {
            return;
        }
        let target = budget - budget / 10;
        let mut dropped = 0;
        let mut bytes = q.bytes;
        q.dirty.retain(|cell| {
            if bytes <= target || !cell.finished.load(Ordering::Acquire) {
                return true;
            }
            bytes -= cell.counted.swap(0, Ordering::Relaxed);
            // Finished: nothing will queue it again.
            dropped += 1;
            false
        });
        q.bytes = bytes;
        if dropped > 0 {
            q.dropped += dropped;
            // The writer reports it (listeners run on its task).
            self.wake.notify_one();
        }
    }
}
