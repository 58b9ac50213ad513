//! Soak run of `oy3o serve` (issue 18): bounded in time, loopback only, never part of CI.
//! `OY3O_SOAK_SECS` long (default 120; the issue asks for 1800), clients keep up a mix of
//! streamed WebSocket answers, cancels mid-answer, reconnects, HTTP whole and streamed answers,
//! and a client that stops reading; every 30 s the SQLite store is locked for 10 s by another
//! connection (an outage: the server's writes fail and are retried). Every 10 s it prints the
//! server's RSS (and its anonymous part: the heap, apart from mapped files such as SQLite's
//! shared WAL index), open descriptors and, with the store, the longest chat's turn count;
//! at the end, whether they came back flat.
//!
//! The WebSocket clients reuse their chat names (8 each, 10 for the slow readers), so with a
//! store every reconnect resumes chats whose history grows for the whole run;
//! `OY3O_SOAK_CHATS=fresh` gives each connection names of its own (chats of a few turns), to
//! tell the chats' own history from the rest.
//!
//! `cargo build --release -p oy3o-cli && cargo bench -p oy3o-server --bench soak`

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::{Children, rss_kib, spawn_oy3o};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// The anonymous part of a process's resident memory (its heap and stacks), in KiB.
fn rss_anon_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("RssAnon:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The most turns any stored chat holds (0 without a store or when it cannot be read).
async fn longest_chat(db: &std::path::Path) -> i64 {
    use sqlx::Connection as _;
    let url = format!("sqlite://{}?mode=ro", db.display());
    let Ok(mut conn) = sqlx::SqliteConnection::connect(&url).await else {
        return 0;
    };
    let longest: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) + 1 FROM turns")
        .fetch_one(&mut conn)
        .await
        .unwrap_or(None);
    let _ = conn.close().await;
    longest.unwrap_or(0)
}

#[derive(Default)]
struct Counts {
    answers: AtomicU64,
    cancels: AtomicU64,
    reconnects: AtomicU64,
    http: AtomicU64,
    errors: AtomicU64,
}

async fn run() {
    let secs: u64 = std::env::var("OY3O_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let upstream = oy3o_testkit::upstream::Upstream::start(Duration::from_millis(2)).addr();
    let dir = std::env::temp_dir().join(format!("oy3o-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("soak.db");
    // `OY3O_SOAK_STORE=none` runs without a store (and without the outages), to tell the
    // store's share of the memory from the rest.
    let with_store = std::env::var("OY3O_SOAK_STORE").map_or(true, |s| s != "none");
    let store = if with_store {
        format!("sqlite:{}", db.display())
    } else {
        "none".to_owned()
    };
    let (child, addr) = spawn_oy3o(&dir, upstream, &store);
    let pid = child.id();
    let _children = Children(vec![child]);
    wait_until_up(addr).await;

    let fresh_chats = std::env::var("OY3O_SOAK_CHATS").is_ok_and(|c| c == "fresh");
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let mut workers = Vec::new();
    for i in 0..8 {
        let (stop, counts) = (stop.clone(), counts.clone());
        workers.push(tokio::spawn(async move {
            match i % 4 {
                0 | 1 => websocket_client(addr, i, fresh_chats, &stop, &counts).await,
                2 => http_client(addr, &stop, &counts).await,
                _ => slow_reader(addr, i, fresh_chats, &stop, &counts).await,
            }
        }));
    }
    let outage = with_store.then(|| tokio::spawn(store_outages(db.clone(), stop.clone())));

    let started = Instant::now();
    let mut samples = Vec::new();
    println!(
        "   t(s)   RSS(MiB)  anon(MiB)  fds  answers cancels reconnects   http errors longest"
    );
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let (rss, fds) = (rss_kib(pid), open_fds(pid));
        let longest = if with_store {
            longest_chat(&db).await
        } else {
            0
        };
        samples.push((rss, fds));
        println!(
            "{:7.0} {:10.1} {:10.1} {:4} {:8} {:7} {:10} {:6} {:6} {:7}",
            started.elapsed().as_secs_f64(),
            rss as f64 / 1024.0,
            rss_anon_kib(pid) as f64 / 1024.0,
            fds,
            counts.answers.load(Ordering::Relaxed),
            counts.cancels.load(Ordering::Relaxed),
            counts.reconnects.load(Ordering::Relaxed),
            counts.http.load(Ordering::Relaxed),
            counts.errors.load(Ordering::Relaxed),
            longest,
        );
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    if let Some(outage) = outage {
        let _ = outage.await;
    }
    // After the load: what stays once every client is gone.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss, fds) = (rss_kib(pid), open_fds(pid));
    println!(
        "after the clients left: RSS {:.1} MiB ({:.1} MiB anonymous), {fds} descriptors",
        rss as f64 / 1024.0,
        rss_anon_kib(pid) as f64 / 1024.0
    );
    if samples.len() >= 4 {
        let half = samples.len() / 2;
        let mean = |s: &[(u64, usize)]| s.iter().map(|x| x.0).sum::<u64>() as f64 / s.len() as f64;
        let (first, second) = (mean(&samples[..half]), mean(&samples[half..]));
        println!(
            "RSS mean first half {:.1} MiB, second half {:.1} MiB ({:+.1} %)",
            first / 1024.0,
            second / 1024.0,
            (second - first) / first * 100.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn wait_until_up(addr: SocketAddr) {
    for _ in 0..200 {
        if reqwest::get(format!("http://{addr}/health")).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("oy3o serve did not start");
}

/// Chats on one connection: answers read to the end, every fifth cancelled mid-answer, and a
/// reconnect every 20 answers; the same 8 chat names on every connection, or (`fresh`) names
/// of the connection's own.
async fn websocket_client(
    addr: SocketAddr,
    i: usize,
    fresh: bool,
    stop: &AtomicBool,
    counts: &Counts,
) {
    let url = format!("ws://{addr}/");
    let mut n = 0u64;
    let mut connection = 0u64;
    while !stop.load(Ordering::Relaxed) {
        connection += 1;
        let prefix = if fresh {
            format!("c{i}-{connection}")
        } else {
            format!("c{i}")
        };
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        counts.reconnects.fetch_add(1, Ordering::Relaxed);
        for _ in 0..20 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            n += 1;
            let id = format!("{prefix}-{}", n % 8);
            let create = serde_json::json!({"id": id, "model": "", "prompt": format!("soak {n}")});
            if ws
                .send(Message::Text(create.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
            let cancel = n.is_multiple_of(5);
            let mut seen = 0;
            while let Ok(Some(Ok(message))) =
                tokio::time::timeout(Duration::from_secs(30), ws.next()).await
            {
                let Message::Text(text) = message else {
                    continue;
                };
                seen += 1;
                if cancel && seen == 3 {
                    let frame = serde_json::json!({"id": id, "cancel": true});
                    let _ = ws.send(Message::Text(frame.to_string().into())).await;
                    counts.cancels.fetch_add(1, Ordering::Relaxed);
                }
                if text.contains("\"type\":\"error\"") {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                }
                if text.contains("\"type\":\"signal\"") {
                    counts.answers.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        let _ = ws.close(None).await;
    }
}

/// OpenAI-style requests, whole and streamed in turn.
async fn http_client(addr: SocketAddr, stop: &AtomicBool, counts: &Counts) {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/v1/chat/completions");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = serde_json::json!({
            "messages": [{"role": "user", "content": format!("soak {n}")}],
            "stream": n.is_multiple_of(2),
        });
        match http.post(&url).json(&body).send().await {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
                counts.http.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A client that asks and then reads nothing for a while before hanging up; the same 10 chat
/// names on every connection, or (`fresh`) names of the connection's own.
async fn slow_reader(addr: SocketAddr, i: usize, fresh: bool, stop: &AtomicBool, counts: &Counts) {
    let url = format!("ws://{addr}/");
    let mut connection = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        connection += 1;
        for k in 0..10 {
            let id = if fresh {
                format!("s{i}-{connection}-{k}")
            } else {
                format!("s{k}")
            };
            let frame = serde_json::json!({"id": id, "model": "", "prompt": "slow"});
            let _ = ws.send(Message::Text(frame.to_string().into())).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(ws);
        counts.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every 30 s, holds SQLite's write lock for 10 s from another connection: the server's
/// writes fail with `database is locked` until it is released.
async fn store_outages(db: std::path::PathBuf, stop: Arc<AtomicBool>) {
    use sqlx::Connection as _;
    let url = format!("sqlite://{}", db.display());
    loop {
        for _ in 0..20 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let Ok(mut conn) = sqlx::SqliteConnection::connect(&url).await else {
            continue;
        };
        if sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut conn)
            .await
            .is_ok()
        {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
        }
        let _ = conn.close().await;
    }
}
