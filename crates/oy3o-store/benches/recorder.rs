//! The store's cost, measured through the public API: what one `TurnRecorder::chunk` costs on
//! the streaming path, and how many turns per second the background writer sustains on SQLite
//! and on a throwaway PostgreSQL (10,000 turns of 20 chunks each, as fast as they come), and
//! what turns paced like a busy server's cost: row writes per turn and CPU time.
//!
//! Run: `cargo bench -j2 -p oy3o-store --bench recorder` (numbers go to bench/README.md).
//! Arguments pick a part: `sqlite` or `postgres` runs one backend, `writer` skips the `chunk()`
//! cost (so `valgrind --tool=callgrind` counts the writer alone); `rows-once` / `rows-twice`
//! write 10,000 SQLite rows straight through `save_turns`, final once or streaming then final.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/gated/mod.rs"]
mod gated;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Db;
use gated::Gated;
use oy3o_store::{ChatRecord, Recorder, Store, TurnState, open};

const TURNS: usize = 10_000;
const CHUNKS: usize = 20;
const CHUNK: &str = "a piece of answer text, ";

async fn open_store(db: &Db) -> Arc<dyn Store> {
    open(&db.setting())
        .await
        .expect("the store opens")
        .expect("not none")
}

/// Nanoseconds per `chunk()` call, the median of 5 runs of 200,000 calls spread over 1,000
/// turns (so the writer is busy meanwhile).
async fn chunk_cost(db: &Db) -> f64 {
    let store = open_store(db).await;
    let recorder = Recorder::new(store.clone());
    let chat = ChatRecord::new("", None, None, None);
    let mut runs = Vec::new();
    for run in 0..5 {
        let turns: Vec<_> = (0..1000)
            .map(|i| recorder.begin_turn(&chat, (run * 1000 + i) as i64, "prompt"))
            .collect();
        let start = Instant::now();
        for _ in 0..200 {
            for turn in &turns {
                turn.chunk(CHUNK);
            }
        }
        runs.push(start.elapsed().as_nanos() as f64 / 200_000.0);
        for turn in &turns {
            turn.finish(TurnState::Done, None, None);
        }
        drop(turns);
        recorder.flush().await.expect("flush");
    }
    store.close().await;
    runs.sort_by(|a, b| a.total_cmp(b));
    runs[2]
}

/// Turns per second from the first `begin_turn` until `flush` returns with all of them written.
async fn turns_per_second(db: &Db) -> (f64, Duration) {
    let store = open_store(db).await;
    let recorder = Recorder::new(store.clone());
    let chat = ChatRecord::new("", None, None, None);
    let start = Instant::now();
    for i in 0..TURNS {
        let turn = recorder.begin_turn(&chat, i as i64, "What is the answer?");
        for _ in 0..CHUNKS {
            turn.chunk(CHUNK);
        }
        turn.finish(TurnState::Done, None, None);
        // Answers arrive over time, not in one burst: let the writer run between them.
        if i % 100 == 99 {
            tokio::task::yield_now().await;
        }
    }
    recorder.flush().await.expect("flush");
    let elapsed = start.elapsed();
    let written = store.turns("", &chat.id).await.expect("turns").len();
    assert_eq!(written, TURNS, "every turn written");
    store.close().await;
    (TURNS as f64 / elapsed.as_secs_f64(), elapsed)
}

/// The store's work as a busy server makes it: `OPEN` answers under way at once, each getting a
/// chunk per step and finished `OPEN` steps after it began, paced at `RATE` turns a second (so
/// each turn streams for `OPEN / RATE` = 4 ms while others end, as at WebSocket concurrency 32
/// in the load bench). Returns the row writes per turn (a turn the writer catches streaming
/// costs one more) and this process's CPU time per 1,000 turns (on SQLite the database's work
/// too; PostgreSQL's server is another process).
async fn paced_turns(db: &Db) -> (f64, f64) {
    const OPEN: usize = 32;
    const RATE: f64 = 8_000.0;
    let store = open_store(db).await;
    // Always open: it only counts the rows each write carries.
    let counted = Gated::new(store.clone(), true);
    let recorder = Recorder::new(counted.clone());
    let chat = ChatRecord::new("", None, None, None);
    let cpu = cpu_seconds();
    let start = tokio::time::Instant::now();
    let mut open = std::collections::VecDeque::with_capacity(OPEN);
    for i in 0..TURNS + OPEN {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / RATE)).await;
        if i < TURNS {
            open.push_back(recorder.begin_turn(&chat, i as i64, "What is the answer?"));
        }
        for turn in &open {
            turn.chunk(CHUNK);
        }
        if (open.len() == OPEN || i >= TURNS)
            && let Some(turn) = open.pop_front()
        {
            turn.finish(TurnState::Done, None, None);
        }
    }
    recorder.flush().await.expect("flush");
    let cpu = cpu_seconds() - cpu;
    let written = store.turns("", &chat.id).await.expect("turns").len();
    assert_eq!(written, TURNS, "every turn written");
    store.close().await;
    let rows_per_turn = counted.rows_written() as f64 / TURNS as f64;
    (rows_per_turn, cpu * 1000.0 / TURNS as f64 * 1000.0)
}

/// This process's user + system CPU time (Linux `/proc/self/stat`, in clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at `state`, field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15, so 11 and 12 after `state`.
    (ticks(11) + ticks(12)) / 100.0
}

/// Row writes straight through `Store::save_turns`, for callgrind (no timing in the way):
/// 10,000 turns in batches of 500, written final once, or first streaming (half the answer)
/// and then final, as the writer does for a turn it catches streaming.
async fn row_writes(db: &Db, streaming_first: bool) {
    let store = open_store(db).await;
    let chat = ChatRecord::new("", None, None, None);
    let answer = CHUNK.repeat(CHUNKS);
    let turns: Vec<(ChatRecord, oy3o_store::TurnRecord)> = (0..TURNS)
        .map(|i| {
            let turn = oy3o_store::TurnRecord {
                id: oy3o_store::new_id(),
                chat_id: chat.id.clone(),
                seq: i as i64,
                owner: String::new(),
                prompt: "What is the answer?".into(),
                answer: answer.clone(),
                reasoning: String::new(),
                events: Vec::new(),
                usage: None,
                cost_usd: None,
                parts: None,
                model: None,
                first_token_ms: Some(1),
                elapsed_ms: Some(2),
                state: TurnState::Done,
                error: None,
                instance: store.instance().to_owned(),
                created_at: i as i64,
                updated_at: i as i64,
            };
            (chat.clone(), turn)
        })
        .collect();
    let start = Instant::now();
    for batch in turns.chunks(500) {
        if streaming_first {
            let streaming: Vec<_> = batch
                .iter()
                .map(|(chat, turn)| {
                    let mut turn = turn.clone();
                    turn.answer.truncate(answer.len() / 2);
                    turn.state = TurnState::Streaming;
                    (chat.clone(), turn)
                })
                .collect();
            store.save_turns(&streaming).await.expect("streaming rows");
        }
        store.save_turns(batch).await.expect("final rows");
    }
    println!(
        "{TURNS} turns written {} in {:.2} s",
        if streaming_first {
            "streaming, then final"
        } else {
            "final once"
        },
        start.elapsed().as_secs_f64()
    );
    store.close().await;
}

async fn bench(name: &str, db: Db, writer_only: bool) {
    let chunk = if writer_only {
        String::new()
    } else {
        format!("chunk(): {:>6.1} ns/call | ", chunk_cost(&db).await)
    };
    let (rate, elapsed) = turns_per_second(&db).await;
    println!(
        "{name:<10} {chunk}{TURNS} turns x {CHUNKS} chunks written in {:.2} s = {rate:>8.0} turns/s",
        elapsed.as_secs_f64()
    );
    let (rows, cpu_ms) = paced_turns(&db).await;
    println!(
        "{name:<10} {TURNS} turns paced at 8,000/s, 32 open at once: {rows:.2} row writes a turn, {cpu_ms:.0} ms CPU per 1,000 turns"
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // `cargo bench` passes `--bench`; the other arguments pick parts.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let writer_only = args.iter().any(|a| a == "writer");
    let wants = |backend: &str| {
        args.iter().any(|a| a == backend) || !args.iter().any(|a| a == "sqlite" || a == "postgres")
    };
    if let Some(rows) = args.iter().find(|a| a.starts_with("rows")) {
        // `rows-once` or `rows-twice`, on SQLite (PostgreSQL's work is in its server).
        runtime.block_on(row_writes(&Db::sqlite(), rows == "rows-twice"));
        return;
    }
    runtime.block_on(async {
        if wants("sqlite") {
            bench("sqlite", Db::sqlite(), writer_only).await;
        }
        if wants("postgres") {
            bench("postgres", Db::postgres(), writer_only).await;
        }
    });
}
