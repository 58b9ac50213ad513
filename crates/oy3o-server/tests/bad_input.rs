//! Bad input and limits: each is answered with an `error` frame with a code, and the connection
//! (and the server) keep working.

mod common;

use std::time::Duration;

use common::{Client, config_for, echo, settings, start, text_of};
use oy3o_server::Limits;
use oy3o_testkit::{FakeServer, openai};
use serde_json::{Value, json};

/// Sends `text` and returns the error frame it gets; a frame that asked for a reply (a
/// prompt, a chain, history) also gets its `signal`, as every reply ends with one.
async fn refused(ws: &mut Client, text: &str) -> Value {
    ws.send_text(text.to_owned()).await;
    let frame = ws.frame().await;
    assert_eq!(frame["type"], "error", "{text} → {frame}");
    let asks = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v.as_object().map(|m| {
                ["prompt", "chain", "history"]
                    .iter()
                    .any(|k| m.get(*k).is_some_and(|v| !v.is_null()))
            })
        })
        .unwrap_or(false);
    if asks {
        let signal = ws.frame().await;
        assert_eq!(signal["type"], "signal", "{text} → {signal}");
        assert_eq!(
            (&signal["id"], &signal["ref"]),
            (&frame["id"], &frame["ref"])
        );
    }
    frame
}

/// The connection still answers a prompt.
async fn still_answers(ws: &mut Client) {
    ws.send(json!({"id": "alive", "model": "openai", "prompt": "ping"}))
        .await;
    let frames = ws.until_signals(1).await;
    assert_eq!(text_of(&frames, "alive"), "ANSWER(ping)", "{frames:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_frames_get_bad_request_errors_and_the_connection_stays_open() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    for text in [
        "{not json",
        "[1, 2]",
        "\"hello\"",
        "",
        r#"{"promt": "typo"}"#,
        r#"{"prompt": 5}"#,
        r#"{"id": {"a": 1}, "prompt": "x"}"#,
        r#"{"cancel": "yes", "id": "x"}"#,
        r#"{"chain": 7}"#,
        r#"{"chain": [[{"prompt": 1}]]}"#,
        r#"{"cookie": 5, "prompt": "x"}"#,
    ] {
        let frame = refused(&mut ws, text).await;
        assert_eq!(frame["code"], "bad_request", "{text}");
        assert!(!frame["message"].as_str().unwrap().is_empty());
    }
    let frame = refused(&mut ws, r#"{"id": "t", "ref": [1], "prompt": 5}"#).await;
    assert_eq!(
        (frame["id"].as_str(), frame["ref"].clone()),
        (Some("t"), json!([1]))
    );
    assert!(
        frame["message"].as_str().unwrap().contains("`prompt`"),
        "{frame}"
    );
    ws.send_binary(vec![1, 2, 3]).await;
    assert_eq!(ws.frame().await["code"], "bad_request");
    still_answers(&mut ws).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_models_and_missing_credentials_are_errors_with_their_codes() {
    let fake = echo().await;
    let mut config = config_for(&fake);
    // Anthropic always needs a key; point its variable at one that is never set.
    config
        .providers
        .entry("anthropic".into())
        .or_default()
        .api_key_env = Some("OY3O_TEST_NEVER_SET_KEY".into());
    let server = start(config, settings()).await;
    let mut ws = server.client().await;

    ws.send(json!({"id": "x", "ref": 1, "model": "nosuch:model", "prompt": "hi"}))
        .await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["code"], "not_found", "{frames:?}");
    assert!(frames[0]["message"].as_str().unwrap().contains("nosuch"));
    assert_eq!(
        (frames[1]["id"].as_str(), frames[1]["ref"].as_i64()),
        (Some("x"), Some(1))
    );

    ws.send(json!({"model": "anthropic", "prompt": "hi"})).await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["code"], "auth", "{frames:?}");
    assert!(
        frames[0]["message"]
            .as_str()
            .unwrap()
            .contains("OY3O_TEST_NEVER_SET_KEY")
    );

    ws.send(json!({"id": "never", "prompt": "hi"})).await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["code"], "not_found");
    assert!(
        frames[0]["message"]
            .as_str()
            .unwrap()
            .contains("chat never is not initialized")
    );

    ws.send(json!({"cancel": true})).await;
    assert_eq!(ws.frame().await["code"], "bad_request");
    ws.send(json!({"chain": "nosuch"})).await;
    assert_eq!(ws.until_signals(1).await[0]["code"], "not_found");
    assert!(fake.requests().is_empty());
    still_answers(&mut ws).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_failure_is_an_error_frame_then_a_signal() {
    let fake = FakeServer::start().await;
    fake.push(openai::server_error());
    fake.push(openai::answer(&["x"]).cut_after(2).build());
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    ws.send(json!({"prompt": "a"})).await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["code"], "provider", "{frames:?}");
    ws.send(json!({"prompt": "b"})).await;
    let frames = ws.until_signals(1).await;
    assert_eq!(
        frames.iter().find(|f| f["type"] == "error").unwrap()["code"],
        "network"
    );
}

fn limited(limits: Limits) -> oy3o_server::Settings {
    oy3o_server::Settings {
        limits,
        ..settings()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frame_over_the_size_limit_is_refused_and_a_huge_one_closes_with_1009() {
    let fake = echo().await;
    let limits = Limits {
        max_frame_bytes: 1024,
        ..Limits::default()
    };
    let server = start(config_for(&fake), limited(limits)).await;
    let mut ws = server.client().await;
    let big = json!({"prompt": "y".repeat(2000)}).to_string();
    let frame = refused(&mut ws, &big).await;
    assert_eq!(frame["code"], "too_large");
    still_answers(&mut ws).await;

    let huge = json!({"prompt": "z".repeat(200_000)}).to_string();
    ws.send_text(huge).await;
    assert_eq!(ws.frame().await["code"], "too_large");
    assert_eq!(ws.close_code().await, Some(1009));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_frame_limit_is_one_mebibyte() {
    let fake = echo().await;
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    let over = json!({"prompt": "y".repeat(1 << 20)}).to_string();
    assert_eq!(refused(&mut ws, &over).await["code"], "too_large");
    let under = json!({"id": "alive", "model": "openai", "prompt": "y".repeat((1 << 20) - 100)});
    ws.send(under).await;
    let frames = ws.until_signals(1).await;
    assert!(
        frames.iter().all(|f| f["type"] != "error"),
        "{:?}",
        frames[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chats_per_connection_limit_is_an_error_until_one_is_closed() {
    let fake = echo().await;
    let limits = Limits {
        max_chats: 2,
        ..Limits::default()
    };
    let server = start(config_for(&fake), limited(limits)).await;
    let mut ws = server.client().await;
    for id in ["a", "b"] {
        ws.send(json!({"id": id, "model": "openai"})).await;
        assert_eq!(ws.frame().await["event"], "create");
    }
    ws.send(json!({"id": "c", "model": "openai", "prompt": "hi"}))
        .await;
    let frames = ws.until_signals(1).await;
    assert_eq!(frames[0]["code"], "limit");
    assert!(
        frames[0]["message"]
            .as_str()
            .unwrap()
            .contains("max_chats = 2")
    );
    // Re-creating an open chat is not a new one.
    ws.send(json!({"id": "a", "model": "openai"})).await;
    assert_eq!(ws.frame().await["event"], "create");
    ws.send(json!({"id": "b", "close": true})).await;
    assert_eq!(ws.frame().await["event"], "close");
    ws.send(json!({"id": "c", "model": "openai", "prompt": "hi"}))
        .await;
    assert_eq!(text_of(&ws.until_signals(1).await, "c"), "ANSWER(hi)");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_in_flight_limit_refuses_a_second_reply_while_one_runs() {
    let fake = FakeServer::start().await;
    fake.push(
        openai::answer(&vec!["x"; 40])
            .delay(Duration::from_millis(50))
            .build(),
    );
    fake.push(openai::answer(&["later"]).build());
    let limits = Limits {
        max_in_flight: 1,
        ..Limits::default()
    };
    let server = start(config_for(&fake), limited(limits)).await;
    let mut ws = server.client().await;
    ws.send(json!({"id": "a", "model": "openai", "prompt": "slow"}))
        .await;
    assert_eq!(ws.frame().await["event"], "create");
    ws.send(json!({"ref": "second", "prompt": "now"})).await;
    let mut frames = Vec::new();
    loop {
        let frame = ws.frame().await;
        let ours = frame["ref"] == "second" && frame["type"] == "signal";
        frames.push(frame);
        if ours {
            break;
        }
    }
    let error = frames
        .iter()
        .find(|f| f["ref"] == "second" && f["type"] == "error")
        .unwrap();
    assert_eq!(error["code"], "limit");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("max_in_flight = 1")
    );
    ws.until_signals(1).await; // chat a ends
    ws.send(json!({"prompt": "now"})).await;
    let frames = ws.until_signals(1).await;
    assert!(frames.iter().all(|f| f["type"] != "error"), "{frames:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_connection_is_told_and_closed_but_not_while_a_reply_runs() {
    let fake = FakeServer::start().await;
    // 20 pieces, 50 ms apart: the reply outlives the idle limit.
    fake.push(
        openai::answer(&vec!["x"; 20])
            .delay(Duration::from_millis(50))
            .build(),
    );
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let server = start(config_for(&fake), limited(limits)).await;
    let mut ws = server.client().await;
    ws.send(json!({"id": "a", "model": "openai", "prompt": "slow"}))
        .await;
    let frames = ws.until_signals(1).await;
    assert_eq!(text_of(&frames, "a"), "x".repeat(20));
    let frame = ws.frame().await;
    assert_eq!(
        (frame["type"].as_str(), frame["code"].as_str()),
        (Some("error"), Some("idle_timeout"))
    );
    assert_eq!(ws.close_code().await, Some(1000));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_vanishes_mid_reply_does_not_disturb_the_server() {
    let fake = FakeServer::start().await;
    fake.push(
        openai::answer(&vec!["x"; 200])
            .delay(Duration::from_millis(50))
            .build(),
    );
    fake.fallback(openai::answer(&["fine"]).build());
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    ws.send(json!({"id": "a", "model": "openai", "prompt": "slow"}))
        .await;
    while ws.frame().await["type"] != "message" {}
    drop(ws);
    assert!(common::eventually(|| fake.aborted_by_client() == 1).await);
    let mut again = Client::connect(&server.ws_url("/"), &[]).await.unwrap();
    again.send(json!({"prompt": "x"})).await;
    assert_eq!(again.until_signals(1).await[0]["message"], "fine");
}
