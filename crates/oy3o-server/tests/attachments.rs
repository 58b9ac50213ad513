//! Attachments through the server's faces: WebSocket `attachments: [{mime, data | url, name?}]`
//! and the HTTP API's `image_url`, `input_audio` and `file` content parts. The fake upstream is
//! the image echo (TOOLS.md §7.1 d): it answers `image/png 69 bytes` only when the request
//! carries the image in OpenAI's shape. Bad attachments are refused naming the attachment,
//! with nothing sent upstream and nothing added to the chat.

mod common;

use common::{Client, config_for, settings, start, text_of};
use oy3o_server::Settings;
use oy3o_testkit::FakeServer;
use oy3o_testkit::image::{self, PNG1};
use serde_json::{Value, json};

/// A fake OpenAI upstream answering with the image echo.
async fn image_echo() -> FakeServer {
    let fake = FakeServer::start().await;
    fake.respond(image::openai_echo);
    fake
}

/// The `image_url` URLs of the user messages of an upstream request.
fn image_urls(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "user")
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["type"] == "image_url")
        .map(|p| {
            p["image_url"]["url"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// An error frame and its `signal`; returns the error.
async fn refused(ws: &mut Client, request: Value) -> Value {
    ws.send(request.clone()).await;
    let frame = ws.frame().await;
    assert_eq!(frame["type"], "error", "{request} → {frame}");
    let signal = ws.frame().await;
    assert_eq!(signal["type"], "signal", "{signal}");
    frame
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_prompt_carries_its_image_to_the_provider() {
    let fake = image_echo().await;
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    ws.send(json!({
        "id": "c", "model": "openai", "prompt": "What is this?",
        "attachments": [{"mime": "image/png", "data": PNG1, "name": "dot.png"}]
    }))
    .await;
    let frames = ws.until_signals(1).await;
    assert_eq!(text_of(&frames, "c"), "image/png 69 bytes", "{frames:?}");
    let requests = fake.requests();
    let body = requests[0].json();
    assert_eq!(image_urls(&body), [format!("data:image/png;base64,{PNG1}")]);
    assert_eq!(body["messages"][0]["content"][0]["text"], "What is this?");
    // The image joins the chat: the next turn sends it again as history.
    ws.send(json!({"id": "c", "prompt": "And now?"})).await;
    ws.until_signals(1).await;
    let body = fake.requests()[1].json();
    assert_eq!(image_urls(&body).len(), 1, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_websocket_attachments_are_refused_by_index_with_nothing_sent_or_kept() {
    let fake = image_echo().await;
    let server = start(config_for(&fake), settings()).await;
    let mut ws = server.client().await;
    // A first turn, so that the chat has something to lose.
    ws.send(json!({
        "id": "c", "model": "openai", "prompt": "first",
        "attachments": [{"mime": "image/png", "data": PNG1}]
    }))
    .await;
    ws.until_signals(1).await;
    assert_eq!(fake.requests().len(), 1);
    let good = json!({"mime": "image/png", "data": PNG1});
    let jpeg_label = json!({"mime": "image/jpeg", "data": PNG1});
    let cases = [
        (
            json!([good, {"mime": "image/png", "data": "not base64!"}]),
            "attachments[1]",
            "base64",
        ),
        (
            json!([{"mime": "application/x-thing", "data": PNG1}]),
            "attachments[0]",
            "application/x-thing",
        ),
        (
            json!([good, good, jpeg_label]),
            "attachments[2]",
            "labelled image/jpeg",
        ),
        (
            json!([{"mime": "image/png", "data": "aGVsbG8="}]),
            "attachments[0]",
            "labelled image/png",
        ),
        (
            json!([{"mime": "image/png"}]),
            "attachments[0]",
            "either `data`",
        ),
        (
            json!([{"url": "http://169.254.169.254/latest/meta-data/x.png"}]),
            "attachments[0]",
            "allow_attachment_urls",
        ),
    ];
    for (attachments, at, why) in cases {
        let frame = refused(
            &mut ws,
            json!({"id": "c", "prompt": "second", "attachments": attachments}),
        )
        .await;
        let message = frame["message"].as_str().unwrap();
        assert!(
            message.contains(at) && message.contains(why),
            "{at}: {frame}"
        );
    }
    let too_many = vec![good.clone(); 17];
    let frame = refused(
        &mut ws,
        json!({"id": "c", "prompt": "x", "attachments": too_many}),
    )
    .await;
    assert_eq!(frame["code"], "limit", "{frame}");
    assert!(
        frame["message"]
            .as_str()
            .unwrap()
            .contains("max_attachments = 16")
    );
    let frame = ws_error_without_prompt(&mut ws).await;
    assert!(
        frame["message"]
            .as_str()
            .unwrap()
            .contains("go with a prompt")
    );
    // Nothing went upstream, and the chat holds only its first turn.
    assert_eq!(fake.requests().len(), 1);
    ws.send(json!({"id": "c", "prompt": "third"})).await;
    ws.until_signals(1).await;
    let body = fake.requests()[1].json();
    let prompts: Vec<&Value> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .collect();
    assert_eq!(prompts.len(), 2, "{body}");
    assert_eq!(prompts[1]["content"], "third");
}

async fn ws_error_without_prompt(ws: &mut Client) -> Value {
    ws.send(json!({"id": "c", "attachments": [{"mime": "image/png", "data": PNG1}]}))
        .await;
    let frame = ws.frame().await;
    assert_eq!(frame["type"], "error", "{frame}");
    frame
}

#[tokio::test(flavor = "multi_thread")]
async fn attachment_urls_are_taken_only_when_the_server_allows_them() {
    let fake = FakeServer::start().await;
    fake.respond(|r| oy3o_testkit::openai::reply_to(r, &["seen"]));
    let url = "https://images.example/cat.png";
    let settings = Settings {
        allow_attachment_urls: true,
        ..settings()
    };
    let server = start(config_for(&fake), settings).await;
    let mut ws = server.client().await;
    ws.send(json!({"prompt": "what?", "attachments": [{"url": url}]}))
        .await;
    ws.until_signals(1).await;
    // OpenAI fetches image URLs itself: the URL goes as it is, the server fetches nothing.
    assert_eq!(image_urls(&fake.requests()[0].json()), [url]);
}

/// `POST /v1/chat/completions` with `body`.
async fn completions(server: &common::Running, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.http("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn http_image_url_file_and_input_audio_parts_reach_the_provider() {
    let fake = FakeServer::start().await;
    // The image echo for requests with an image; a plain answer for the sound alone.
    fake.respond(|r| match image_urls(&r.json()).is_empty() {
        true => oy3o_testkit::openai::reply_to(r, &["heard"]),
        false => image::openai_echo(r),
    });
    let server = start(config_for(&fake), settings()).await;
    let pdf = "JVBERi0xLjQKJcfs";
    let (status, body) = completions(
        &server,
        json!({
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Describe these."},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG1}"), "detail": "low"}},
                {"type": "file", "file": {"file_data": format!("data:application/pdf;base64,{pdf}"), "filename": "a.pdf"}},
            ]}]
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "image/png 69 bytes"
    );
    let upstream = fake.requests()[0].json();
    let parts = upstream["messages"][0]["content"]
        .as_array()
        .unwrap()
        .clone();
    let kinds: Vec<&str> = parts.iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["text", "image_url", "file"], "{upstream}");
    assert_eq!(
        parts[2]["file"],
        json!({"filename": "a.pdf", "file_data": format!("data:application/pdf;base64,{pdf}")})
    );
    // A sound goes to an audio model as `input_audio`.
    let (status, body) = completions(
        &server,
        json!({
            "model": "openai:gpt-4o-audio-preview",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Listen."},
                {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}},
            ]}]
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let upstream = fake.requests()[1].json();
    assert_eq!(
        upstream["messages"][0]["content"][1],
        json!({"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}})
    );
}

/// A WAV header with no samples.
const WAV: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=";

#[tokio::test(flavor = "multi_thread")]
async fn bad_http_attachments_are_400s_naming_the_content_part_with_nothing_sent() {
    let fake = image_echo().await;
    let server = start(config_for(&fake), settings()).await;
    let image = |url: &str| json!({"type": "image_url", "image_url": {"url": url}});
    let ok = format!("data:image/png;base64,{PNG1}");
    let cases = [
        (image("data:image/png;base64,%%%"), 400, "base64"),
        (
            image(&format!("data:image/jpeg;base64,{PNG1}")),
            400,
            "labelled image/jpeg",
        ),
        (
            image(&format!("data:image/x-bmp;base64,{PNG1}")),
            400,
            "image/x-bmp",
        ),
        (
            image("http://127.0.0.1:1/secret.png"),
            403,
            "allow_attachment_urls",
        ),
        (
            json!({"type": "input_audio", "input_audio": {"data": PNG1, "format": "flac"}}),
            400,
            "flac",
        ),
        (
            json!({"type": "file", "file": {"file_id": "file-abc"}}),
            400,
            "file_id",
        ),
    ];
    for (part, status, why) in cases {
        let (got, body) = completions(
            &server,
            json!({"messages": [{"role": "user", "content": [
                {"type": "text", "text": "look"}, image(&ok), part,
            ]}]}),
        )
        .await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{body}");
        assert!(
            message.contains("messages[0].content[2]") && message.contains(why),
            "{why}: {body}"
        );
    }
    assert!(fake.requests().is_empty(), "nothing is sent upstream");
}
