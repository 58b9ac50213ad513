//! The `bing` provider through the WebSocket face, as the original library's clients used it:
//! `{id, model: 'bing', cookie, prompt}` with the browser's cookie export sent by the client,
//! against the test kit's Copilot simulator.

mod common;

use common::{Running, settings, start, text_of};
use oy3o::{Config, ProviderSettings};
use oy3o_testkit::copilot::{self, Answer, CopilotSim, Turn};
use serde_json::{Value, json};

/// A server that knows where Copilot is (the simulator) but holds no cookie: clients send it.
async fn serve(sim: &CopilotSim) -> Running {
    let mut config = Config::default();
    config.providers.insert(
        "bing".into(),
        ProviderSettings {
            base_url: Some(sim.url()),
            max_retries: Some(0),
            ..ProviderSettings::default()
        },
    );
    start(config, settings()).await
}

fn cookie() -> Value {
    serde_json::from_str(&copilot::cookie_export()).expect("the export is JSON")
}

#[tokio::test]
async fn a_bing_chat_streams_continues_and_sends_its_events_as_frames() {
    let sim = CopilotSim::start().await;
    sim.push(Turn::Answer(
        Answer::text(&["Hello", ", I am", " Copilot."]).title("Greeting"),
    ));
    let server = serve(&sim).await;
    let mut ws = server.client().await;

    ws.send(json!({"id": "IdOfThisAi", "ref": 1, "model": "bing", "cookie": cookie(), "prompt": "hello"}))
        .await;
    let first = ws.until_signals(1).await;
    assert_eq!(text_of(&first, "IdOfThisAi"), "Hello, I am Copilot.");
    let events: Vec<&str> = first
        .iter()
        .filter(|f| f["type"] == "event")
        .map(|f| f["event"].as_str().unwrap())
        .collect();
    // `send` and `result` are not forwarded: the request and the streamed text already say it.
    assert_eq!(
        events,
        ["create", "title", "reply_suggestion", "reply_suggestion"]
    );
    assert!(
        first
            .iter()
            .all(|f| f["id"] == "IdOfThisAi" && f["ref"] == 1)
    );

    // The same chat goes on in the same Copilot conversation.
    ws.send(json!({"id": "IdOfThisAi", "ref": 2, "prompt": "how are you"}))
        .await;
    let second = ws.until_signals(1).await;
    assert_eq!(
        text_of(&second, "IdOfThisAi"),
        "Turn 2: you said how are you"
    );
    let sent = sim.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].conversation, sent[1].conversation);
    assert_eq!(
        sim.conversation(&sent[0].conversation),
        ["hello", "how are you"]
    );
    // The client's cookies reached Copilot, and never came back in a frame.
    let upgrade = &sim.upgrades()[0];
    let sent_cookies = upgrade.header("cookie").unwrap_or_default();
    for (name, value) in copilot::COOKIES {
        assert!(sent_cookies.contains(&format!("{name}={value}")));
        for frame in first.iter().chain(&second) {
            assert!(!frame.to_string().contains(value), "{frame}");
        }
    }
}

#[tokio::test]
async fn expired_cookies_and_a_browser_check_are_auth_error_frames_and_the_connection_stays() {
    let sim = CopilotSim::start().await;
    let server = serve(&sim).await;
    let mut ws = server.client().await;

    sim.push(Turn::cloudflare());
    ws.send(json!({"id": "a", "model": "bing", "cookie": cookie(), "prompt": "hi"}))
        .await;
    let frames = ws.until_signals(1).await;
    let error = frames
        .iter()
        .find(|f| f["type"] == "error")
        .expect("an error frame");
    assert_eq!(error["code"], "auth");
    assert!(error["message"].as_str().unwrap().contains("cf_clearance"));

    sim.expire_cookies();
    ws.send(json!({"id": "b", "model": "bing", "cookie": cookie(), "prompt": "hi"}))
        .await;
    let frames = ws.until_signals(1).await;
    let error = frames
        .iter()
        .find(|f| f["type"] == "error")
        .expect("an error frame");
    assert_eq!(error["code"], "auth");
    for (_, value) in copilot::COOKIES {
        assert!(!error.to_string().contains(value));
    }

    // Without any cookie at all: a clear auth error, not a crash.
    ws.send(json!({"id": "c", "model": "bing", "prompt": "hi"}))
        .await;
    let frames = ws.until_signals(1).await;
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "error" && f["code"] == "auth"),
        "{frames:?}"
    );
}
