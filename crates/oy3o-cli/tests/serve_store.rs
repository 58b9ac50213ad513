//! `oy3o serve` processes with a store (issue #10): two instances on one real PostgreSQL share
//! chats (a chat begun on the first continues on the second with its history sent upstream),
//! and a `kill -9` mid-answer leaves the turn `interrupted` at the next start, earlier turns
//! intact.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use oy3o_store::{Store, StoreSetting, TurnRecord, TurnState};
use oy3o_testkit::postgres::{Postgres, TempDir};
use oy3o_testkit::{FakeServer, openai};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A guard against hanging, not a measurement.
const PATIENCE: Duration = Duration::from_secs(60);

/// Starts `oy3o serve --port 0 --config CONFIG` (whose `store` is set) against the fake and
/// returns the child and its address.
async fn serve(config: &std::path::Path, base: &str, home: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oy3o"))
        .args(["serve", "--port", "0", "--config"])
        .arg(config)
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("OPENAI_BASE_URL", base)
        .env("OY3O_MODEL", "openai:gpt-4o-mini")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start oy3o serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("the server starts")
        .expect("read stdout")
        .expect("a first line");
    let addr = line
        .strip_prefix("listening on http://")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    (child, addr)
}

fn config_file(dir: &std::path::Path, store: &str) -> std::path::PathBuf {
    let path = dir.join("oy3o.toml");
    std::fs::write(&path, format!("store = {}\n", json!(store))).expect("write config");
    path
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(addr: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .expect("websocket handshake")
        .0
}

async fn next(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame within the test's patience")
            .expect("the connection is open")
            .expect("a frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("frames are JSON");
        }
    }
}

/// Sends `frame` and returns every frame up to its `signal`.
async fn ask(ws: &mut Ws, frame: Value) -> Vec<Value> {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .expect("send");
    let mut frames = Vec::new();
    loop {
        let frame = next(ws).await;
        let end = frame["type"] == "signal";
        frames.push(frame);
        if end {
            return frames;
        }
    }
}

fn text(frames: &[Value]) -> String {
    frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["message"].as_str().unwrap_or_default())
        .collect()
}

fn history(frames: &[Value]) -> Vec<&Value> {
    frames
        .iter()
        .filter(|f| f["type"] == "event" && f["event"] == "history")
        .map(|f| &f["message"])
        .collect()
}

async fn open(setting: &StoreSetting) -> Arc<dyn Store> {
    oy3o_store::open(setting)
        .await
        .expect("open the store")
        .expect("a store")
}

/// Waits (bounded) until `check` holds for the turns of the local chat `name`.
async fn turns_until(
    store: &Arc<dyn Store>,
    name: &str,
    check: impl Fn(&[TurnRecord]) -> bool,
) -> Vec<TurnRecord> {
    for _ in 0..1200 {
        if let Ok(Some(chat)) = store.find_chat("", name).await
            && let Ok(turns) = store.turns("", &chat.id).await
            && check(&turns)
        {
            return turns;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the store never showed the expected turns of chat {name}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_begun_on_one_instance_continues_on_another_sharing_postgres() {
    let pg = Postgres::start();
    let dir = TempDir::new("serve-two");
    let config = config_file(&dir.0, &pg.url());
    let fake = FakeServer::start().await;
    fake.respond(|r| {
        let answer = format!("ANSWER({})", openai::prompt_of(r));
        openai::answer(&[answer.as_str()]).build()
    });
    let (_first, a) = serve(&config, &fake.base_url(), &dir.0.join("a")).await;
    let (_second, b) = serve(&config, &fake.base_url(), &dir.0.join("b")).await;
    assert_ne!(a, b);

    let mut on_a = connect(&a).await;
    let frames = ask(
        &mut on_a,
        json!({"id": "trip", "model": "", "prompt": "one"}),
    )
    .await;
    assert_eq!(text(&frames), "ANSWER(one)");
    let store = open(&StoreSetting::Postgres(pg.url())).await;
    turns_until(&store, "trip", |t| t.len() == 1 && t[0].state.is_final()).await;

    let mut on_b = connect(&b).await;
    let frames = ask(&mut on_b, json!({"id": "trip", "prompt": "two"})).await;
    assert_eq!(text(&frames), "ANSWER(two)", "{frames:?}");
    let requests = fake.requests();
    let sent: Vec<String> = requests.last().expect("a request").json()["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(sent, ["one", "ANSWER(one)", "two"]);

    turns_until(&store, "trip", |t| t.len() == 2 && t[1].state.is_final()).await;
    let frames = ask(&mut on_b, json!({"id": "trip", "history": true})).await;
    let turns = history(&frames);
    assert_eq!(turns.len(), 2, "{frames:?}");
    assert_eq!(turns[0]["prompt"], "one");
    assert_eq!(turns[0]["answer"], "ANSWER(one)");
    assert_eq!(turns[1]["answer"], "ANSWER(two)");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_answer_leaves_the_turn_interrupted_at_the_next_start() {
    let dir = TempDir::new("serve-kill");
    let db = dir.0.join("store.db");
    let setting = StoreSetting::Sqlite(db.clone());
    let config = config_file(&dir.0, &setting.to_string());
    let fake = FakeServer::start().await;
    fake.push(openai::answer(&["whole answer"]).build());
    // The role chunk and one piece, then nothing more: the answer hangs mid-way.
    fake.push(
        openai::answer(&["partial ", "never sent"])
            .stall_after(2)
            .build(),
    );

    let (mut first, addr) = serve(&config, &fake.base_url(), &dir.0.join("home")).await;
    let mut ws = connect(&addr).await;
    let frames = ask(&mut ws, json!({"id": "k", "model": "", "prompt": "one"})).await;
    assert_eq!(text(&frames), "whole answer");
    ws.send(Message::Text(
        json!({"id": "k", "prompt": "two"}).to_string().into(),
    ))
    .await
    .expect("send");
    loop {
        let frame = next(&mut ws).await;
        if frame["type"] == "message" {
            assert_eq!(frame["message"], "partial ");
            break;
        }
    }
    // The server is alive: opening the store here recovers nothing of it.
    let store = open(&setting).await;
    let before = turns_until(&store, "k", |t| t.len() == 2 && t[1].answer == "partial ").await;
    assert_eq!(before[1].state, TurnState::Streaming);

    first.start_kill().expect("kill -9");
    first.wait().await.expect("reap");
    drop(ws);

    let (_second, addr) = serve(&config, &fake.base_url(), &dir.0.join("home")).await;
    let mut ws = connect(&addr).await;
    let frames = ask(&mut ws, json!({"id": "k", "history": true})).await;
    let turns = history(&frames);
    assert_eq!(turns.len(), 2, "{frames:?}");
    assert_eq!(turns[0]["state"], "done");
    assert_eq!(turns[0]["answer"], "whole answer");
    assert_eq!(turns[1]["state"], "interrupted");
    assert_eq!(turns[1]["answer"], "partial ");
}
