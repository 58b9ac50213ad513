//! The WebSocket protocol against the fake OpenAI upstream, over real sockets: chats, one-shot
//! prompts, context updates, cancel, close, chains, and replies of many chats on one connection.

mod common;

use std::time::Duration;

use common::{Client, config_for, echo, eventually, settings, start, text_of};
use oy3o_testkit::{FakeServer, openai};
use serde_json::{Value, json};

/// An upstream that answers `ANSWER(prompt)` in one piece.
/// An answer of `n` pieces `x`, one every 50 ms: long enough to be cancelled mid-way.
fn slow(n: usize) -> oy3o_testkit::Scripted {
    let pieces = vec!["x"; n];
    openai::answer(&pieces)
        .delay(Duration::from_millis(50))
        .build()
}

fn of_id<'a>(frames: &'a [Value], id: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["id"] == id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_is_created_continued_and_keeps_its_history() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    ws.send(json!({"id": "c1", "ref": 1, "model": "openai:gpt-4o-mini", "prompt": "hello"}))
        .await;
    let first = ws.until_signals(1).await;
    ws.send(json!({"id": "c1", "ref": 2, "prompt": "how are you"}))
        .await;
    let second = ws.until_signals(1).await;

    assert_eq!(first[0]["type"], "event");
    assert_eq!(first[0]["event"], "create");
    assert_eq!(first[0]["message"]["model"], "openai:gpt-4o-mini");
    assert_eq!(text_of(&first, "c1"), "ANSWER(hello)");
    assert_eq!(text_of(&second, "c1"), "ANSWER(how are you)");
    for (frames, reference) in [(&first, 1), (&second, 2)] {
        assert!(
            frames
                .iter()
                .all(|f| f["id"] == "c1" && f["ref"] == reference),
            "{frames:?}"
        );
        let signal = frames.last().unwrap();
        assert_eq!(signal["type"], "signal");
        assert_eq!(signal["message"], "done");
        assert_eq!(signal["usage"]["input_tokens"], 19);
        assert_eq!(signal["finish_reason"], "stop");
    }
    let requests = fake.requests();
    let messages = requests[1].json()["messages"].clone();
    assert_eq!(messages.as_array().unwrap().len(), 3, "{messages}");
    assert_eq!(messages[1]["content"], "ANSWER(hello)");
    // The server's own key went upstream; the client never sent one.
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {}", common::SERVER_KEY).as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_model_creates_a_chat_on_the_servers_default_model() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    ws.send(json!({"id": 7, "model": "", "prompt": "default"}))
        .await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["message"]["model"], "openai:gpt-4o-mini");
    assert_eq!(frames[0]["id"], 7, "a numeric id is echoed as a number");
    assert_eq!(text_of(&frames, "7"), "");
    let text: String = frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(text, "ANSWER(default)");
    ws.send(json!({"id": 7, "prompt": "again"})).await;
    assert!(
        ws.until_signals(1)
            .await
            .iter()
            .all(|f| f["type"] != "error")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_context_update_reaches_the_upstream_as_the_system_message() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    ws.send(json!({"id": "c", "model": "openai", "context": "Be brief.", "prompt": "one"}))
        .await;
    let created = ws.until_signals(1).await;
    assert!(
        created
            .iter()
            .any(|f| f["event"] == "update" && f["message"]["context"] == "Be brief.")
    );
    ws.send(json!({"id": "c", "context": "current time: 2024-05-20 00:00:00"}))
        .await;
    let update = ws.frame().await;
    assert_eq!(
        (update["type"].as_str(), update["event"].as_str()),
        (Some("event"), Some("update"))
    );
    ws.send(json!({"id": "c", "prompt": "two"})).await;
    ws.until_signals(1).await;

    let requests = fake.requests();
    assert_eq!(
        openai::system_of(&requests[0]).as_deref(),
        Some("Be brief.")
    );
    assert_eq!(
        openai::system_of(&requests[1]).as_deref(),
        Some("current time: 2024-05-20 00:00:00")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_shot_prompt_has_no_id_and_keeps_its_ref() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    ws.send(json!({"ref": "r-9", "prompt": "solo", "context": "ctx"}))
        .await;
    let frames = ws.until_signals(1).await;
    assert!(
        frames
            .iter()
            .all(|f| f.get("id").is_none() && f["ref"] == "r-9"),
        "{frames:?}"
    );
    let text: String = frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(text, "ANSWER(solo)");
    assert_eq!(
        openai::system_of(&fake.requests()[0]).as_deref(),
        Some("ctx")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_of_two_chats_interleave_and_a_cancel_stops_only_its_upstream_request() {
    let fake = FakeServer::start().await;
    fake.push(slow(2000)); // chat a: 100 seconds of "x", longer than any wait below
    fake.push(openai::answer(&["quick", " answer"]).build()); // chat b
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;

    ws.send(json!({"id": "a", "model": "openai", "prompt": "long"}))
        .await;
    let mut frames = Vec::new();
    while !frames.iter().any(|f: &Value| f["type"] == "message") {
        frames.push(ws.frame().await);
    }
    ws.send(json!({"id": "b", "model": "openai", "prompt": "short"}))
        .await;
    loop {
        let frame = ws.frame().await;
        let done = frame["type"] == "signal" && frame["id"] == "b";
        frames.push(frame);
        if done {
            break;
        }
    }
    // b finished while a was still streaming; a's frames came before and (usually) between.
    assert_eq!(text_of(&frames, "b"), "quick answer");
    assert!(!of_id(&frames, "a").iter().any(|f| f["type"] == "signal"));

    ws.send(json!({"id": "a", "cancel": true})).await;
    loop {
        let frame = ws.frame().await;
        let done = frame["type"] == "signal" && frame["id"] == "a";
        frames.push(frame);
        if done {
            break;
        }
    }
    let signal = frames.last().unwrap();
    assert_eq!(signal["cancelled"], true);
    let a_text = text_of(&frames, "a");
    assert!(
        !a_text.is_empty() && a_text.len() < 2000,
        "{}",
        a_text.len()
    );
    // Both upstream responses end within the wait, so a's was cut by us: it had far longer to
    // go. (b may count as either: the engine stops reading at `[DONE]`, and the fake's last
    // write can race with that hang-up.)
    assert!(
        eventually(|| fake.aborted_by_client() + fake.completed() == 2).await,
        "the upstream saw the hang-up"
    );
    assert!(fake.aborted_by_client() >= 1);

    // The chat survives a cancel: it answers the next prompt.
    fake.push(openai::answer(&["again"]).build());
    ws.send(json!({"id": "a", "prompt": "more"})).await;
    let frames = ws.until_signals(1).await;
    assert_eq!(text_of(&frames, "a"), "again");
}

#[tokio::test(flavor = "multi_thread")]
async fn many_chats_on_one_connection_stream_at_once() {
    let fake = FakeServer::start().await;
    fake.respond(|r| {
        let prompt = openai::prompt_of(r);
        let pieces: Vec<String> = (0..5).map(|i| format!("{prompt}.{i} ")).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        openai::answer(&refs)
            .delay(Duration::from_millis(20))
            .build()
    });
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    for i in 0..8 {
        ws.send(json!({"id": format!("chat{i}"), "model": "openai", "prompt": format!("p{i}")}))
            .await;
    }
    let frames = ws.until_signals(8).await;
    for i in 0..8 {
        let expected: String = (0..5).map(|k| format!("p{i}.{k} ")).collect();
        assert_eq!(text_of(&frames, &format!("chat{i}")), expected);
    }
    assert!(fake.max_in_flight() > 1, "the upstream requests overlapped");
}

#[tokio::test(flavor = "multi_thread")]
async fn close_ends_a_chat_and_a_later_prompt_is_an_error() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    ws.send(json!({"id": "gone", "model": "openai"})).await;
    assert_eq!(ws.frame().await["event"], "create");
    ws.send(json!({"id": "gone", "close": true, "ref": 5}))
        .await;
    let closed = ws.frame().await;
    assert_eq!(
        (closed["event"].as_str(), closed["ref"].as_i64()),
        (Some("close"), Some(5))
    );
    ws.send(json!({"id": "gone", "prompt": "still there?"}))
        .await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["type"], "error");
    assert_eq!(frames[0]["code"], "not_found");
    assert!(
        frames[0]["message"]
            .as_str()
            .unwrap()
            .contains("chat gone is not initialized")
    );
    assert_eq!(frames[0]["id"], "gone");
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_reports_each_stage_and_ends_with_a_signal() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    ws.send(json!({"id": "ch", "ref": 3, "chain": [
        [{"name": "goldbach", "prompt": "What is Goldbach?"}, {"name": "peano", "prompt": "What is Peano?"}],
        [{"prompt": "Compare {{goldbach}} with {{peano}}."}]
    ]}))
    .await;
    let frames = ws.until_signals(1).await;
    assert!(
        frames.iter().all(|f| f["id"] == "ch" && f["ref"] == 3),
        "{frames:?}"
    );
    let done: Vec<&Value> = frames
        .iter()
        .filter(|f| f["event"] == "stage_done")
        .collect();
    assert_eq!(done.len(), 2, "{frames:?}");
    let first = &done[0]["message"]["answers"];
    assert_eq!(first[0]["name"], "goldbach");
    assert_eq!(first[0]["response"], "ANSWER(What is Goldbach?)");
    assert_eq!(
        done[1]["message"]["answers"][0]["response"],
        "ANSWER(Compare ANSWER(What is Goldbach?) with ANSWER(What is Peano?).)"
    );
    assert!(frames.iter().any(|f| f["event"] == "stage_start"));
    let signal = frames.last().unwrap();
    assert_eq!(signal["usage"]["input_tokens"], 3 * 19);
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_original_demo_clients_three_frames_work_unchanged() {
    let fake = echo().await;
    let mut config = config_for(&fake);
    config
        .aliases
        .insert("bing".into(), "openai:gpt-4o-mini".into());
    let server = start(config, settings()).await;
    let mut ws = server.client().await;
    let cookie = json!([{"name": "_U", "value": "cookie-value-1234"}]);
    ws.send(json!({"id": "IdOfThisAi", "model": "bing", "cookie": cookie, "prompt": "hello"}))
        .await;
    ws.send(json!({"id": "IdOfThisAi", "prompt": "how are you"}))
        .await;
    ws.send(json!({"model": "bing", "cookie": cookie, "prompt": "hello"}))
        .await;
    let frames = ws.until_signals(3).await;
    assert!(frames.iter().all(|f| f["type"] != "error"), "{frames:?}");
    assert_eq!(
        text_of(&frames, "IdOfThisAi"),
        "ANSWER(hello)ANSWER(how are you)"
    );
    // The client's cookie, not the server's key, went upstream for its requests.
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer _U=cookie-value-1234"))
    );
    assert!(
        !frames
            .iter()
            .any(|f| f.to_string().contains("cookie-value-1234"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_on_the_ws_path_speaks_the_same_protocol() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let mut ws = Client::connect(&server.ws_url("/ws"), &[]).await.unwrap();
    ws.send(json!({"prompt": "path"})).await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["message"], "ANSWER(path)");
}
