//! The recorder's background writer: one task per [`super::Recorder`] that takes the dirty
//! turns in rounds and writes each round in one transaction. A round goes through named steps:
//! [`Writer::wait_for_round`] (a tick, a finished turn, a flush; the group-commit gap; the
//! backoff after a failure), [`Writer::keep_alive`] (heartbeat and recovery),
//! [`Writer::take_round`] (what to write, under the queue lock), [`Writer::rows`] (the records,
//! moved out of final turns), [`Writer::write`] (turns, refused rows isolated, then chain runs)
//! and [`Writer::settle`] (the queue after success or failure, and the health to report).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{
    DROPPED_REPORT_EVERY, Health, Opening, Queue, RecorderOptions, Shared, TurnCell, lock,
};
use crate::error::Result;
use crate::record::{ChainRunRecord, ChatRecord, TurnRecord, now_ms};
use crate::store::{HEARTBEAT_EVERY, Store};

pub(super) fn report(shared: &Shared, health: Health) {
    match &health {
        Health::Failing(e) => tracing::warn!("store: writes fail, turns wait in memory: {e}"),
        Health::Recovered => tracing::info!("store: writes recovered"),
        Health::Dropped { turns } => {
            let mib = shared.options.max_pending_bytes >> 20;
            let message = format!(
                "store: {turns} finished turn(s) dropped unwritten: more than {mib} MiB of turns \
                 waited for the database, which is down or writes slower than answers arrive; \
                 check the database (its disk, load and network), or give the recorder a larger \
                 max_pending_bytes"
            );
            tracing::error!("{message}");
            // Faces that collect no `tracing` output still show it.
            eprintln!("oy3o: {message}");
        }
        Health::Refused { id, error } => {
            tracing::warn!(id = %id, "store: the database refused a row, dropped: {error}");
            eprintln!("oy3o: store: the database refused row {id}, dropped: {error}");
        }
    }
    let listeners = lock(&shared.listeners).clone();
    for listener in listeners {
        listener(&health);
    }
}

/// Writes `rows` after the database refused them as one batch: halves are tried in turn until
/// every refused row stands alone; a refused row whose named chat is stored under another id
/// (opened at once by another connection or instance before either chat row was written) goes
/// into that chat ([`adopt`]); the rest are dropped into `refused` (turn id, error), so a few
/// bad rows cost a few extra transactions, not one per row. `Err` when a write failed for
/// another reason (the database went away meanwhile); the rest is still tried.
async fn save_isolating(
    store: &dyn Store,
    rows: &[(ChatRecord, TurnRecord)],
    aliases: &mut HashMap<String, String>,
    refused: &mut Vec<(String, String)>,
) -> Result<()> {
    let mut outage = None;
    // Refused slices still to split, as (start, end) into `rows`.
    let mut pending = vec![(0, rows.len())];
    while let Some((start, end)) = pending.pop() {
        if end - start == 1 {
            let row = &rows[start];
            // Already refused within its batch; alone, it may still be refused.
            match store.save_turns(&rows[start..end]).await {
                Ok(()) => {}
                Err(e) if e.is_constraint() => match adopt(store, row, aliases).await {
                    Ok(true) => {}
                    Ok(false) => refused.push((row.1.id.clone(), e.to_string())),
                    Err(other) => outage = Some(other),
                },
                Err(e) => outage = Some(e),
            }
            continue;
        }
        let middle = start + (end - start) / 2;
        // The second half goes on the stack first, so rows are tried oldest first.
        for (a, b) in [(middle, end), (start, middle)] {
            if b - a == 1 {
                pending.push((a, b));
                continue;
            }
            match store.save_turns(&rows[a..b]).await {
                Ok(()) => {}
                Err(e) if e.is_constraint() => pending.push((a, b)),
                Err(e) => outage = Some(e),
            }
        }
    }
    outage.map_or(Ok(()), Err)
}

/// Writes the refused `row` into the stored chat of the same owner and name, when that chat has
/// another id: two connections or instances opened the chat before either had written it, and
/// the chat row's (owner, name) key refused the second. Its turns then belong to the first
/// (`aliases` maps the second id to it for later rounds). `Ok(false)`: no such chat, or written
/// there and still refused.
async fn adopt(
    store: &dyn Store,
    row: &(ChatRecord, TurnRecord),
    aliases: &mut HashMap<String, String>,
) -> Result<bool> {
    let (chat, turn) = row;
    let Some(name) = &chat.name else {
        return Ok(false);
    };
    let Some(stored) = store.find_chat(&chat.owner, name).await? else {
        return Ok(false);
    };
    if stored.id == chat.id {
        return Ok(false);
    }
    let mut chat = chat.clone();
    let mut turn = turn.clone();
    chat.id.clone_from(&stored.id);
    turn.chat_id.clone_from(&stored.id);
    match store.save_turns(&[(chat, turn)]).await {
        Ok(()) => {
            tracing::info!(
                "store: chat {name:?} was opened twice at once; its turns go into the stored one"
            );
            aliases.insert(row.0.id.clone(), stored.id);
            Ok(true)
        }
        Err(e) if e.is_constraint() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes `runs` in order: one the database refuses goes to `refused` (id, error); at the first
/// other failure, that run and the rest go to `left` and the error is returned.
async fn save_runs(
    store: &dyn Store,
    runs: Vec<(ChainRunRecord, usize)>,
    refused: &mut Vec<(String, String)>,
    left: &mut Vec<(ChainRunRecord, usize)>,
) -> Result<()> {
    let mut runs = runs.into_iter();
    while let Some((run, size)) = runs.next() {
        match store.save_chain_run(&run).await {
            Ok(()) => {}
            Err(e) if e.is_constraint() => refused.push((run.id.clone(), e.to_string())),
            Err(e) => {
                left.push((run, size));
                left.extend(runs);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Takes up to `max` dirty turns, oldest first: all of them when `everything`, else the
/// finished ones only (streaming ones stay for the next tick). Their bytes are still counted.
fn take_batch(q: &mut Queue, max: usize, everything: bool) -> Vec<Arc<TurnCell>> {
    if everything {
        let n = q.dirty.len().min(max);
        return q.dirty.drain(..n).collect();
    }
    let mut batch = Vec::new();
    // Between ticks the queue holds the finished turns and at most the streaming ones (a few
    // per open answer), so this scan is as long as the batch plus the answers under way.
    q.dirty.retain(|cell| {
        if batch.len() < max && cell.finished.load(Ordering::Acquire) {
            batch.push(cell.clone());
            false
        } else {
            true
        }
    });
    batch
}

/// Opens the store, then writes rounds until the recorder closes.
pub(super) async fn run(shared: Arc<Shared>, open: Opening) {
    if let Some(writer) = Writer::open(shared, open).await {
        writer.run().await;
    }
}

/// What one round takes from the queue.
struct Round {
    batch: Vec<Arc<TurnCell>>,
    /// What each turn of `batch` counted in the queue's bytes.
    sizes: Vec<usize>,
    runs: Vec<(ChainRunRecord, usize)>,
    /// The recorder is closing: this is the last round unless it fails.
    closed: bool,
}

/// How writing a round went.
struct Outcome {
    result: Result<()>,
    /// Chain runs not written (after a failure), to put back.
    runs_left: Vec<(ChainRunRecord, usize)>,
}

/// The writer's state between rounds.
struct Writer {
    shared: Arc<Shared>,
    store: Arc<dyn Store>,
    /// This process's instance id, for turns begun before the store was open.
    instance: String,
    options: RecorderOptions,
    /// The wait before the next try, after a failed round.
    backoff: Option<Duration>,
    last_beat: Instant,
    last_recovery: Instant,
    last_dropped_report: Option<Instant>,
    /// Streaming turns are written at ticks, a fixed `flush_every` apart however often finished
    /// turns wake the writer in between.
    next_tick: tokio::time::Instant,
    last_round: tokio::time::Instant,
    /// The last round was full and more turns wait: go again at once.
    more: bool,
    /// Chat ids whose turns go into another stored chat of the same name (see [`adopt`]).
    aliases: HashMap<String, String>,
}

impl Writer {
    /// Waits for the store; if it cannot be opened, nothing will ever be written: the queue is
    /// emptied, listeners hear why, and waiters are woken.
    async fn open(shared: Arc<Shared>, open: Opening) -> Option<Self> {
        let store = match open.await {
            Ok(store) => store,
            Err(e) => {
                let message = e.to_string();
                {
                    let mut q = lock(&shared.queue);
                    q.dead = Some(message.clone());
                    q.dirty.clear();
                    q.bytes = 0;
                }
                report(&shared, Health::Failing(message));
                shared.progress.notify_waiters();
                return None;
            }
        };
        let _ = shared.store.set(store.clone());
        // `Recorder::opened` waits for this.
        shared.progress.notify_waiters();
        let options = shared.options.clone();
        let now = tokio::time::Instant::now();
        Some(Self {
            instance: store.instance().to_owned(),
            store,
            shared,
            backoff: None,
            // Beat at once: the store may have been open (and quiet) for long, and a peer's
            // recovery forgets quiet instances.
            last_beat: Instant::now()
                .checked_sub(HEARTBEAT_EVERY)
                .unwrap_or_else(Instant::now),
            last_recovery: Instant::now(),
            last_dropped_report: None,
            next_tick: now + options.flush_every,
            last_round: now.checked_sub(options.min_round_gap).unwrap_or(now),
            more: false,
            aliases: HashMap::new(),
            options,
        })
    }

    async fn run(mut self) {
        loop {
            self.wait_for_round().await;
            let tick = self.start_round();
            self.keep_alive().await;
            let round = self.take_round(tick);
            if round.batch.is_empty() && round.runs.is_empty() {
                lock(&self.shared.queue).rounds += 1;
                self.shared.progress.notify_waiters();
                if round.closed {
                    return;
                }
                continue;
            }
            let (rows, finals) = self.rows(&round.batch);
            let outcome = self.write(&rows, round.runs).await;
            if outcome.result.is_err() {
                put_back(&round.batch, rows);
            }
            let health = self.settle(round.batch, round.sizes, &finals, outcome);
            if let Some(health) = health {
                report(&self.shared, health);
            }
            self.shared.progress.notify_waiters();
            if round.closed && self.backoff.is_none() && !self.more {
                return;
            }
        }
    }

    /// Waits until a round is due: after a failure, the backoff; with more waiting, at once;
    /// else the next tick or a wake-up, then the rest of the group-commit gap unless a flush
    /// or the close is waiting.
    async fn wait_for_round(&self) {
        let shared = &self.shared;
        match self.backoff {
            Some(delay) => tokio::time::sleep(delay).await,
            None if self.more => {}
            None => {
                // Idle, this is one timer a `flush_every`: an empty round touches no database.
                tokio::select! {
                    _ = tokio::time::sleep_until(self.next_tick) => {}
                    _ = shared.wake.notified() => {}
                }
                // Group commit: a round right after the last one waits out the gap, so the
                // turns finishing meanwhile share its transaction.
                let ready = self.last_round + self.options.min_round_gap;
                let urgent = || {
                    let q = lock(&shared.queue);
                    q.everything || q.closed
                };
                if tokio::time::Instant::now() < ready && !urgent() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(ready) => {}
                        _ = shared.urgent.notified() => {}
                    }
                }
            }
        }
    }

    /// Notes the round's start; whether it is a tick (streaming turns are written too).
    fn start_round(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        self.last_round = now;
        let tick = now >= self.next_tick;
        if tick {
            self.next_tick = now + self.options.flush_every;
        }
        tick
    }

    /// The heartbeat that keeps this instance's streaming turns its own, and the recovery of
    /// dead instances' turns, when due.
    async fn keep_alive(&mut self) {
        if self.last_beat.elapsed() >= HEARTBEAT_EVERY.min(self.options.recover_every)
            && self.store.heartbeat().await.is_ok()
        {
            self.last_beat = Instant::now();
        }
        if self.last_recovery.elapsed() >= self.options.recover_every
            && self.store.recover(self.options.grace).await.is_ok()
        {
            self.last_recovery = Instant::now();
        }
    }

    /// Takes this round's turns and chain runs from the queue, and reports turns dropped for
    /// the byte budget (at once, then at most every 10 s, summed, and at the end).
    fn take_round(&mut self, tick: bool) -> Round {
        let (round, dropped) = {
            let mut q = lock(&self.shared.queue);
            // Streaming turns wait for a tick, unless a flush waits, the writer closes or it
            // retries after a failure (the failed batch went back to the queue whole).
            let everything = tick || q.everything || q.closed || self.backoff.is_some();
            q.everything = false;
            let batch = take_batch(&mut q, self.options.max_batch, everything);
            let sizes: Vec<usize> = batch
                .iter()
                .map(|cell| cell.counted.swap(0, Ordering::Relaxed))
                .collect();
            q.bytes -= sizes.iter().sum::<usize>();
            let runs: Vec<(ChainRunRecord, usize)> = q.runs.drain(..).collect();
            q.bytes -= runs.iter().map(|(_, size)| size).sum::<usize>();
            q.writing = batch.len() + runs.len();
            self.more = batch.len() == self.options.max_batch && !q.dirty.is_empty();
            let due = q.closed
                || self
                    .last_dropped_report
                    .is_none_or(|at| at.elapsed() >= DROPPED_REPORT_EVERY);
            let dropped = if due {
                std::mem::take(&mut q.dropped)
            } else {
                0
            };
            let round = Round {
                batch,
                sizes,
                runs,
                closed: q.closed,
            };
            (round, dropped)
        };
        if dropped > 0 {
            self.last_dropped_report = Some(Instant::now());
            report(&self.shared, Health::Dropped { turns: dropped });
        }
        round
    }

    /// The rows of `batch` and whether each carries its turn's final state (what
    /// `TurnRecorder::durable` waits for). A final turn's records move out of it instead of
    /// being copied (a dozen strings, the whole answer among them); a failed write puts them
    /// back.
    fn rows(&self, batch: &[Arc<TurnCell>]) -> (Vec<(ChatRecord, TurnRecord)>, Vec<bool>) {
        let now = now_ms();
        let mut finals = Vec::with_capacity(batch.len());
        let rows = batch
            .iter()
            .map(|cell| {
                cell.dirty.store(false, Ordering::Release);
                let mut d = lock(&cell.data);
                if d.turn.instance.is_empty() {
                    d.turn.instance = self.instance.clone();
                }
                finals.push(d.turn.state.is_final());
                let (chat, mut turn) = if d.turn.state.is_final() {
                    (
                        std::mem::replace(&mut d.chat, ChatRecord::taken()),
                        std::mem::replace(&mut d.turn, TurnRecord::taken()),
                    )
                } else {
                    let mut turn = d.turn.clone();
                    turn.elapsed_ms = Some(d.started.elapsed().as_millis() as i64);
                    (d.chat.clone(), turn)
                };
                turn.updated_at = now;
                let mut chat = chat;
                if let Some(stored) = self.aliases.get(&chat.id).cloned() {
                    turn.chat_id.clone_from(&stored);
                    chat.id = stored;
                }
                (chat, turn)
            })
            .collect();
        (rows, finals)
    }

    /// Writes the turns in one transaction (a refused batch is split until the refused rows
    /// stand alone, see [`save_isolating`]), then the chain runs; reports what the database
    /// refused, once: after a failed round every turn is tried again, refused ones too.
    async fn write(
        &mut self,
        rows: &[(ChatRecord, TurnRecord)],
        runs: Vec<(ChainRunRecord, usize)>,
    ) -> Outcome {
        let store = &*self.store;
        let mut refused = Vec::new();
        let result = match store.save_turns(rows).await {
            Err(e) if e.is_constraint() => {
                save_isolating(store, rows, &mut self.aliases, &mut refused)
                    .await
                    .map_err(|_| e)
            }
            other => other,
        };
        // Chain runs after the turns, one statement each (a run ends a whole chain: rare).
        let mut runs_left = Vec::new();
        let mut refused_runs = Vec::new();
        let result = match result {
            Ok(()) => save_runs(store, runs, &mut refused_runs, &mut runs_left).await,
            Err(e) => {
                runs_left = runs;
                Err(e)
            }
        };
        if result.is_err() {
            refused.clear();
        }
        for (id, error) in refused.into_iter().chain(refused_runs) {
            report(&self.shared, Health::Refused { id, error });
        }
        Outcome { result, runs_left }
    }

    /// After a round: on success the final turns are marked written and an outage is over; on
    /// failure the turns and runs go back to the front of the queue (unless the hot path queued
    /// them again), the backoff grows and the outage is reported once. Returns the health
    /// change to report.
    fn settle(
        &mut self,
        batch: Vec<Arc<TurnCell>>,
        sizes: Vec<usize>,
        finals: &[bool],
        outcome: Outcome,
    ) -> Option<Health> {
        let mut q = lock(&self.shared.queue);
        q.writing = 0;
        q.rounds += 1;
        match outcome.result {
            Ok(()) => {
                for (cell, _) in batch.iter().zip(finals).filter(|(_, f)| **f) {
                    cell.written.store(true, Ordering::Release);
                }
                self.backoff = None;
                q.failing.take().map(|_| Health::Recovered)
            }
            Err(e) => {
                requeue(&mut q, batch, sizes, outcome.runs_left);
                self.shared.enforce_budget(&mut q);
                self.backoff = Some(match self.backoff {
                    None => self.options.flush_every.max(Duration::from_millis(100)),
                    Some(d) => (d * 2).min(self.options.max_backoff),
                });
                self.more = false;
                let message = e.to_string();
                if q.failing.is_none() {
                    q.failing = Some(message.clone());
                    Some(Health::Failing(message))
                } else {
                    None
                }
            }
        }
    }
}

/// After a failed write, the records taken from final turns go back, for the retry.
fn put_back(batch: &[Arc<TurnCell>], rows: Vec<(ChatRecord, TurnRecord)>) {
    for (cell, (chat, turn)) in batch.iter().zip(rows) {
        let mut d = lock(&cell.data);
        if d.turn.id.is_empty() {
            d.chat = chat;
            d.turn = turn;
        }
    }
}

/// Puts a failed round back at the front of the queue, oldest first, unless the hot path
/// queued a turn again meanwhile.
fn requeue(
    q: &mut Queue,
    batch: Vec<Arc<TurnCell>>,
    sizes: Vec<usize>,
    runs: Vec<(ChainRunRecord, usize)>,
) {
    for (run, size) in runs.into_iter().rev() {
        q.bytes += size;
        q.runs.push_front((run, size));
    }
    for (cell, size) in batch.into_iter().zip(sizes).rev() {
        if !cell.dirty.swap(true, Ordering::AcqRel) {
            cell.counted.store(size, Ordering::Relaxed);
            q.bytes += size;
            q.dirty.push_front(cell);
        }
    }
}
