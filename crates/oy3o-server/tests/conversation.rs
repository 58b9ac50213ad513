//! One ordered, stored conversation per chat, whatever the connection or instance: prompts sent
//! at once are answered in order, a reconnect right after an answer sees it, two connections on
//! one chat number its turns once, two servers on one PostgreSQL continue one chat in turn, and
//! the OpenAI API keeps an alias's fallbacks when the request carries history.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config_for, settings, start};
use oy3o::Config;
use oy3o_server::Settings;
use oy3o_store::{Store, StoreSetting};
use oy3o_testkit::FakeServer;
use oy3o_testkit::postgres::{Postgres, TempDir};
use serde_json::{Value, json};

/// An upstream that answers `<last prompt>#<user messages in the request>`, after `delay`, so
/// an answer tells how much history its request carried.
async fn counting(delay: Duration) -> FakeServer {
    let fake = FakeServer::start().await;
    fake.respond(move |r| {
        let body = r.json();
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let users = messages.iter().filter(|m| m["role"] == "user").count();
        let answer = format!("{}#{users}", oy3o_testkit::openai::prompt_of(r));
        let mut reply = oy3o_testkit::openai::answer(&[answer.as_str()]);
        if !delay.is_zero() {
            reply = reply.delay(delay);
        }
        reply.build()
    });
    fake
}

fn with_store(setting: StoreSetting) -> Settings {
    Settings {
        store: Some(setting),
        ..settings()
    }
}

/// The text of every reply to chat `id`, in the order the replies ended.
fn answers(frames: &[Value], id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for f in frames.iter().filter(|f| f["id"] == id) {
        match f["type"].as_str() {
            Some("message") => current.push_str(f["message"].as_str().unwrap_or_default()),
            Some("signal") => out.push(std::mem::take(&mut current)),
            _ => {}
        }
    }
    out
}

async fn stored_seqs(store: &Arc<dyn Store>, name: &str) -> Vec<i64> {
    let chat = store
        .find_chat("", name)
        .await
        .expect("read")
        .expect("the chat is stored");
    store
        .turns("", &chat.id)
        .await
        .expect("read")
        .iter()
        .map(|t| t.seq)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_prompts_sent_at_once_on_one_chat_are_answered_in_order_each_seeing_those_before() {
    let fake = counting(Duration::from_millis(3)).await;
    // Turns queued behind another turn of their chat count as replies in flight (each holds a
    // task and its frames): 20 at once need a limit above the default 16.
    let mut pipelined = settings();
    pipelined.limits.max_in_flight = 32;
    let server = start(config_for(&fake), pipelined).await;
    let mut client = server.client().await;
    client
        .send(json!({"id": "c", "model": "", "prompt": "p0"}))
        .await;
    for k in 1..20 {
        client
            .send(json!({"id": "c", "prompt": format!("p{k}")}))
            .await;
    }
    let frames = client.until_signals(20).await;
    let expected: Vec<String> = (0..20).map(|k| format!("p{k}#{}", k + 1)).collect();
    assert_eq!(answers(&frames, "c"), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_chats_on_one_connection_still_answer_at_the_same_time() {
    let fake = counting(Duration::from_millis(300)).await;
    let server = start(config_for(&fake), settings()).await;
    let mut client = server.client().await;
    client
        .send(json!({"id": "a", "model": "", "prompt": "x"}))
        .await;
    client
        .send(json!({"id": "b", "model": "", "prompt": "y"}))
        .await;
    let frames = client.until_signals(2).await;
    assert_eq!(answers(&frames, "a"), ["x#1"]);
    assert_eq!(answers(&frames, "b"), ["y#1"]);
    assert_eq!(
        fake.max_in_flight(),
        2,
        "the two chats were answered at once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_connection_right_after_an_answer_continues_with_it() {
    let fake = counting(Duration::ZERO).await;
    let dir = TempDir::new("server-reconnect");
    let setting = StoreSetting::Sqlite(dir.0.join("oy3o.db"));
    let server = start(config_for(&fake), with_store(setting.clone())).await;
    for k in 0..20 {
        let mut client = server.client().await;
        let frame = if k == 0 {
            json!({"id": "r", "model": "", "prompt": format!("t{k}")})
        } else {
            json!({"id": "r", "prompt": format!("t{k}")})
        };
        client.send(frame).await;
        let frames = client.until_signals(1).await;
        assert_eq!(
            answers(&frames, "r"),
            [format!("t{k}#{}", k + 1)],
            "{frames:?}"
        );
        // Gone at once: the next connection opens right behind it.
        drop(client);
    }
    let store = oy3o_store::open(&setting).await.unwrap().unwrap();
    assert_eq!(stored_seqs(&store, "r").await, (0..20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_connections_on_one_chat_take_turns_in_order_and_number_them_once() {
    let fake = counting(Duration::from_millis(20)).await;
    let dir = TempDir::new("server-two-connections");
    let setting = StoreSetting::Sqlite(dir.0.join("oy3o.db"));
    let server = start(config_for(&fake), with_store(setting.clone())).await;
    let mut first = server.client().await;
    let mut second = server.client().await;
    first
        .send(json!({"id": "s", "model": "", "prompt": "a"}))
        .await;
    first.until_signals(1).await;
    first.send(json!({"id": "s", "prompt": "b"})).await;
    second.send(json!({"id": "s", "prompt": "c"})).await;
    let one = first.until_signals(1).await;
    let two = second.until_signals(1).await;
    // Whichever arrived first went first; the other saw it.
    let mut seen: Vec<String> = [answers(&one, "s"), answers(&two, "s")]
        .iter()
        .map(|a| a[0].split('#').nth(1).unwrap_or_default().to_owned())
        .collect();
    seen.sort();
    assert_eq!(seen, ["2", "3"], "{one:?} {two:?}");
    let store = oy3o_store::open(&setting).await.unwrap().unwrap();
    assert_eq!(stored_seqs(&store, "s").await, [0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_on_one_postgres_continue_one_chat_in_turn_for_fifty_turns() {
    let pg = Postgres::start();
    let setting = StoreSetting::Postgres(pg.url());
    let fake = counting(Duration::ZERO).await;
    let servers = [
        start(config_for(&fake), with_store(setting.clone())).await,
        start(config_for(&fake), with_store(setting.clone())).await,
    ];
    // One connection kept open on each: each server must catch up before its turn.
    let mut kept = [servers[0].client().await, servers[1].client().await];
    for k in 0..50 {
        let frame = if k == 0 {
            json!({"id": "pg", "model": "", "prompt": format!("t{k}")})
        } else {
            json!({"id": "pg", "prompt": format!("t{k}")})
        };
        let frames = if k % 5 == 4 {
            // Now and then a new connection, opened right after the last answer.
            let mut fresh = servers[k % 2].client().await;
            fresh.send(frame).await;
            fresh.until_signals(1).await
        } else {
            let client = &mut kept[k % 2];
            client.send(frame).await;
            client.until_signals(1).await
        };
        assert_eq!(
            answers(&frames, "pg"),
            [format!("t{k}#{}", k + 1)],
            "{frames:?}"
        );
    }
    let store = oy3o_store::open(&setting).await.unwrap().unwrap();
    assert_eq!(stored_seqs(&store, "pg").await, (0..50).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openai_api_falls_back_to_the_next_model_with_the_requests_history() {
    let broken = FakeServer::start().await;
    broken.fallback(oy3o_testkit::Scripted::json(
        500,
        r#"{"type":"error","error":{"type":"api_error","message":"down"}}"#,
    ));
    let fake = counting(Duration::ZERO).await;
    let mut config: Config = config_for(&fake);
    let mut failing = config.providers["openai"].clone();
    failing.base_url = Some(broken.url());
    config.providers.insert("anthropic".into(), failing);
    config.aliases.insert(
        "smart".into(),
        vec!["anthropic:claude-sonnet-4-5", "openai:gpt-4o-mini"].into(),
    );
    let server = start(config, settings()).await;
    let body = json!({
        "model": "smart",
        "messages": [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "1"},
            {"role": "user", "content": "two"},
        ],
    });
    let response = reqwest::Client::new()
        .post(server.http("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "two#2");
    assert!(!broken.requests().is_empty(), "the first model was tried");
}
