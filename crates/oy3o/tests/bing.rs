//! Behaviour of the `bing` provider (Copilot's web chat) against the test kit's simulator on a
//! real socket: HTTP start, then one WebSocket per turn.

mod common;

use common::{Run, names, recorder, tune};
use futures::StreamExt;
use oy3o::{Chat, Config, Credential, ErrorCode, Event};
use oy3o_testkit::copilot::{self, Answer, CopilotSim, Turn};
use oy3o_testkit::{HttpProxy, Socks5Proxy};

/// A config whose `bing` provider is the simulator, with the cookies it accepts.
fn config(sim: &CopilotSim) -> Config {
    let mut config = Config::default();
    tune(&mut config, "bing", |s| {
        s.base_url = Some(sim.url());
        s.max_retries = Some(0);
    });
    config.cookie = Some(Credential::parse(&copilot::cookie_export()));
    config
}

#[tokio::test]
async fn a_chat_streams_the_append_text_deltas_and_events_reach_the_listeners() {
    let sim = CopilotSim::start().await;
    sim.push(Turn::Answer(
        Answer::text(&["Hello", ", I am", " Copilot."]).title("Greeting"),
    ));
    let mut config = config(&sim);
    let seen = recorder(&mut config);
    let chat = Chat::open(Some("bing"), &config).unwrap();
    assert_eq!(chat.model(), "bing:chat");

    let chunks: Vec<String> = chat.send("hi").map(|c| c.unwrap()).collect().await;
    assert_eq!(chunks, ["Hello", ", I am", " Copilot."]);
    assert_eq!(
        names(&seen),
        [
            "create",
            "send",
            "title",
            "reply_suggestion",
            "reply_suggestion",
            "result"
        ]
    );
    assert!(
        seen.lock()
            .unwrap()
            .contains(&Event::Title("Greeting".into()))
    );

    // The frames a 2026 server requires, in order, and the turn as sent.
    let frames = sim.frames();
    let events: Vec<&str> = frames
        .iter()
        .map(|f| f["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["setOptions", "reportLocalConsents", "send"]);
    let sent = &sim.sent()[0];
    assert_eq!(sent.text, "hi");
    assert_eq!(sent.mode, "chat");
    assert!(
        sent.query.starts_with("api-version=2&clientSessionId="),
        "{}",
        sent.query
    );
    // The browser's cookies and the one /c/api/start set ride on the upgrade.
    assert_eq!(
        sent.cookies,
        ["MUID", "cf_clearance", "__Host-copilot-anon"]
    );
    let upgrade = &sim.upgrades()[0];
    assert_eq!(upgrade.header("origin"), Some(sim.url().as_str()));
    assert!(
        upgrade
            .header("user-agent")
            .unwrap()
            .contains("Mozilla/5.0")
    );
}

#[tokio::test]
async fn the_second_turn_continues_the_same_conversation_on_a_new_socket() {
    let sim = CopilotSim::start().await;
    let chat = Chat::open(Some("copilot"), &config(&sim)).unwrap();
    let first = chat.send_once("What is 1+1?").await.unwrap();
    let second = chat.send_once("And 2+2?").await.unwrap();
    assert_eq!(first, "Turn 1: you said What is 1+1?");
    assert_eq!(
        second, "Turn 2: you said And 2+2?",
        "the server remembers turn 1"
    );

    assert_eq!(sim.starts(), 1, "one conversation");
    assert_eq!(sim.upgrades().len(), 2, "one socket per turn");
    let sent = sim.sent();
    assert_eq!(sent[0].conversation, sent[1].conversation);
    assert_eq!(
        sim.conversation(&sent[0].conversation),
        ["What is 1+1?", "And 2+2?"]
    );
    let session = |q: &str| q.split('&').nth(1).unwrap().to_owned();
    assert_ne!(
        session(&sent[0].query),
        session(&sent[1].query),
        "a fresh clientSessionId"
    );
    assert_eq!(chat.history().len(), 4);
}

#[tokio::test]
async fn the_context_goes_with_the_first_message_and_again_only_when_it_changes() {
    let sim = CopilotSim::start().await;
    let chat = Chat::open(Some("bing"), &config(&sim)).unwrap();
    chat.update("current time: 2024-05-20 00:00:00");
    let answer = chat.send_once("what is the time on page?").await.unwrap();
    assert!(
        answer.contains("(page: current time: 2024-05-20 00:00:00)"),
        "{answer}"
    );
    chat.send_once("and now?").await.unwrap();
    chat.update("current time: 2024-05-21 09:30:00");
    let third = chat.send_once("and now?").await.unwrap();
    assert!(third.contains("2024-05-21 09:30:00"), "{third}");

    let sent = sim.sent();
    let contexts: Vec<Option<&str>> = sent.iter().map(|s| s.context.as_deref()).collect();
    assert_eq!(
        contexts,
        [
            Some("current time: 2024-05-20 00:00:00"),
            None,
            Some("current time: 2024-05-21 09:30:00")
        ]
    );
    assert!(
        sent[0]
            .query
            .contains("features=-%2Cncedge%2Cedgepagecontext"),
        "{}",
        sent[0].query
    );
    assert!(!sent[1].query.contains("features="));
}

#[tokio::test]
async fn reasoning_mode_citations_and_a_hashcash_challenge() {
    let sim = CopilotSim::start().await;
    sim.push(Turn::hashcash(
        Answer::text(&["Paris", " is the capital."])
            .reasoning(&["The user asks about France."])
            .cite("https://example.com/paris", "Paris"),
    ));
    let run = Run::of(oy3o::exec(
        "Capital of France?",
        None,
        Some("bing:reasoning"),
        &config(&sim),
    ))
    .await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.text, "Paris is the capital.");
    assert_eq!(run.reasoning(), "The user asks about France.");
    let Event::Citation(c) = run.named("citation")[0] else {
        panic!("no citation");
    };
    assert_eq!(
        (c.url.as_str(), c.start),
        ("https://example.com/paris", Some(5))
    );

    let frames = sim.frames();
    let events: Vec<&str> = frames
        .iter()
        .map(|f| f["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "setOptions",
            "reportLocalConsents",
            "send",
            "challengeResponse",
            "send"
        ],
        "the held send is repeated after the answer"
    );
    assert_eq!(frames[2]["mode"], "reasoning");
}

#[tokio::test]
async fn a_cloudflare_challenge_is_an_auth_error_that_says_to_refresh_cf_clearance() {
    let sim = CopilotSim::start().await;
    sim.push(Turn::cloudflare());
    let mut config = config(&sim);
    let seen = recorder(&mut config);
    let run = Run::of(oy3o::exec("hi", None, Some("bing"), &config)).await;
    let e = run.err();
    assert_eq!(e.code(), ErrorCode::Auth);
    assert!(e.message().contains("cf_clearance"), "{}", e.message());
    assert!(
        e.message().contains("export the cookies again"),
        "{}",
        e.message()
    );
    assert!(names(&seen).contains(&"error".to_owned()));
}

#[tokio::test]
async fn wrong_or_missing_cookies_are_auth_errors_that_never_show_the_values() {
    let sim = CopilotSim::start().await;
    let mut config = config(&sim);
    config.cookie = Some(Credential::parse(
        r#"[{"name":"MUID","value":"stale-muid-value-123"},{"name":"cf_clearance","value":"stale-clearance-456"}]"#,
    ));
    let run = Run::of(oy3o::exec("hi", None, Some("bing"), &config)).await;
    let e = run.err();
    assert_eq!(e.code(), ErrorCode::Auth);
    assert!(e.message().contains("export them again"), "{}", e.message());
    assert!(!e.message().contains("stale-"), "{}", e.message());

    config.cookie = None;
    let e = Chat::open(Some("bing"), &config).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Auth);
    assert!(e.message().contains("BING_COOKIE"), "{}", e.message());
}

#[tokio::test]
async fn cookies_that_expire_between_turns_fail_the_next_turn_with_auth() {
    let sim = CopilotSim::start().await;
    let chat = Chat::open(Some("bing"), &config(&sim)).unwrap();
    chat.send_once("first").await.unwrap();
    sim.expire_cookies();
    let e = chat.send_once("second").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Auth);
    assert!(e.message().contains("HTTP 401"), "{}", e.message());
    assert_eq!(chat.history().len(), 2, "the failed turn leaves no trace");
}

#[tokio::test]
async fn a_connection_that_dies_mid_answer_is_a_network_error() {
    let sim = CopilotSim::start().await;
    sim.push(Turn::DropAfter(2, Answer::text(&["one ", "two ", "three"])));
    let run = Run::of(oy3o::exec("count", None, Some("bing"), &config(&sim))).await;
    assert_eq!(run.text, "one two ");
    assert_eq!(run.err().code(), ErrorCode::Network);
    assert!(
        run.err().message().contains("incomplete"),
        "{}",
        run.err().message()
    );
    assert!(run.named("result").is_empty());
}

#[tokio::test]
async fn service_errors_become_error_codes() {
    let sim = CopilotSim::start().await;
    sim.push(Turn::Error("chat-service-unavailable".into()));
    sim.push(Turn::Error("throttled".into()));
    let config = config(&sim);
    let region = Run::of(oy3o::exec("a", None, Some("bing"), &config)).await;
    assert_eq!(region.err().code(), ErrorCode::Provider);
    assert!(
        region.err().message().contains("region"),
        "{}",
        region.err().message()
    );
    let slow = Run::of(oy3o::exec("b", None, Some("bing"), &config)).await;
    assert_eq!(slow.err().code(), ErrorCode::RateLimit);
}

#[tokio::test]
async fn both_the_start_and_the_socket_go_through_the_proxy() {
    let sim = CopilotSim::start().await;
    let proxy = HttpProxy::start().await;
    let mut config = config(&sim);
    config.proxies.insert("bing".into(), proxy.url());
    let answer = oy3o::exec_once("hi", None, Some("bing"), &config)
        .await
        .unwrap();
    assert_eq!(answer, "Turn 1: you said hi");
    let seen = proxy.seen();
    let host = sim.url().trim_start_matches("http://").to_owned();
    assert!(
        seen.contains(&format!("POST {}/c/api/start", sim.url())),
        "{seen:?}"
    );
    assert!(seen.contains(&format!("CONNECT {host}")), "{seen:?}");
}

#[tokio::test]
async fn a_socks5_proxy_with_a_login_carries_both_connections() {
    let sim = CopilotSim::start().await;
    let proxy = Socks5Proxy::start(Some(("user", "p@ss"))).await;
    let mut config = config(&sim);
    let url = proxy.url().replace("socks5h://", "socks5h://user:p%40ss@");
    config.proxies.insert("bing".into(), url);
    let answer = oy3o::exec_once("hi", None, Some("bing"), &config)
        .await
        .unwrap();
    assert_eq!(answer, "Turn 1: you said hi");
    let host = sim.url().trim_start_matches("http://").to_owned();
    assert_eq!(
        proxy.seen(),
        [host.clone(), host],
        "the start, then the socket"
    );

    let wrong = Socks5Proxy::start(Some(("user", "other"))).await;
    let mut config = self::config(&sim);
    config.proxies.insert(
        "bing".into(),
        wrong.url().replace("socks5h://", "socks5h://user:p%40ss@"),
    );
    let run = Run::of(oy3o::exec("hi", None, Some("bing"), &config)).await;
    assert_eq!(run.err().code(), ErrorCode::Network);
    assert!(
        !run.err().message().contains("p@ss"),
        "{}",
        run.err().message()
    );
}

#[test]
fn events_of_bing_list_the_original_names_that_fit() {
    let names = oy3o::events("bing").unwrap();
    for name in [
        "create",
        "update",
        "send",
        "result",
        "error",
        "reply_suggestion",
        "reasoning",
        "citation",
        "title",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(oy3o::events("copilot").unwrap(), names);
}

/// A prompt with an image: the image is uploaded (`POST /c/api/attachments`, COPILOT.md §A.2)
/// and the `send` names the URL the upload answered, before the text.
#[tokio::test]
async fn an_image_is_uploaded_and_sent_as_an_image_item_before_the_text() {
    use oy3o::{Message, Part, Role, Source};
    use oy3o_testkit::image::{PNG1, png1};
    let sim = CopilotSim::start().await;
    sim.push(Turn::Answer(Answer::text(&["A dot."])));
    let chat = Chat::open(Some("bing"), &config(&sim)).unwrap();
    let prompt = Message {
        role: Role::User,
        parts: vec![
            Part::text("What is this?"),
            Part::Image {
                mime: "image/png".into(),
                source: Source::Base64(PNG1.into()),
            },
        ],
    };
    let answer = chat
        .send_message(prompt, &oy3o::Options::default())
        .text()
        .await
        .unwrap();
    assert_eq!(answer, "A dot.");
    let uploads = sim.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        (uploads[0].mime.as_str(), &uploads[0].bytes),
        ("image/png", &png1())
    );
    let sent = sim.sent();
    assert_eq!(sent[0].images, [uploads[0].url.clone()]);
    assert_eq!(sent[0].text, "What is this?");
    let frame = sim
        .frames()
        .into_iter()
        .find(|f| f["event"] == "send")
        .unwrap();
    assert_eq!(frame["content"][0]["type"], "image");
    assert_eq!(frame["content"][1]["type"], "text");
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A small PDF with binary bytes (`\r\n`, `\x00`, `\xff`) that a lossy form would break.
const PDF: &[u8] =
    b"%PDF-1.4\r\n%\xe2\xe3\xcf\xd3\r\n1 0 obj <<>> endobj\n\x00\xff\ntrailer <<>>\n%%EOF\n";
const NOTES: &str = "Meeting notes\n- ship the release on Friday\n- caf\u{e9} budget: 42\n";

fn document(mime: &str, bytes: &[u8], name: &str) -> oy3o::Part {
    oy3o::Part::Document {
        mime: mime.into(),
        source: oy3o::Source::Base64(b64(bytes)),
        name: Some(name.into()),
    }
}

/// Documents are uploaded as a multipart `file` part each (COPILOT.md §A.2), byte for byte, and
/// the `send` names the ids the uploads answered (`{"type":"document","attachmentId"}`, §A.6.3)
/// before the text; the answer streams.
#[tokio::test]
async fn a_pdf_and_a_text_document_reach_copilot_byte_for_byte_and_the_answer_streams() {
    use oy3o::{Message, Part, Role};
    let sim = CopilotSim::start().await;
    sim.push(Turn::Answer(Answer::text(&["Ship", " on Friday."])));
    let chat = Chat::open(Some("bing"), &config(&sim)).unwrap();
    let prompt = Message {
        role: Role::User,
        parts: vec![
            Part::text("When do we ship?"),
            document("application/pdf", PDF, "plan.pdf"),
            document("text/plain", NOTES.as_bytes(), "notes.txt"),
        ],
    };
    let chunks: Vec<String> = chat
        .send_message(prompt, &oy3o::Options::default())
        .map(|c| c.unwrap())
        .collect()
        .await;
    assert_eq!(chunks, ["Ship", " on Friday."]);

    let uploads = sim.uploads();
    assert_eq!(uploads.len(), 2);
    assert_eq!(
        (uploads[0].name.as_deref(), uploads[0].mime.as_str()),
        (Some("plan.pdf"), "application/pdf")
    );
    assert_eq!(uploads[0].bytes, PDF);
    assert_eq!(
        (uploads[1].name.as_deref(), uploads[1].mime.as_str()),
        (Some("notes.txt"), "text/plain")
    );
    assert_eq!(uploads[1].bytes, NOTES.as_bytes());

    let sent = sim.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].documents,
        [uploads[0].id.clone(), uploads[1].id.clone()]
    );
    assert_eq!(sent[0].text, "When do we ship?");
    let frame = sim
        .frames()
        .into_iter()
        .find(|f| f["event"] == "send")
        .unwrap();
    let content = frame["content"].as_array().unwrap();
    let types: Vec<&str> = content
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["document", "document", "text"]);
    assert_eq!(content[0]["attachmentId"], uploads[0].id.as_str());
    let history = chat.history();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].text(), "Ship on Friday.");
}

/// An upload Copilot refuses fails the turn with an error naming the attachment; nothing is
/// sent on the socket and the chat's history stays as it was.
#[tokio::test]
async fn a_refused_upload_names_the_document_and_loses_nothing() {
    use oy3o::{Message, Part, Role};
    let sim = CopilotSim::start().await;
    sim.push(Turn::Answer(Answer::text(&["Hello."])));
    let chat = Chat::open(Some("bing"), &config(&sim)).unwrap();
    chat.send("hi").text().await.unwrap();
    let before = chat.history();
    assert_eq!(before.len(), 2);

    sim.refuse_next_upload(500);
    let prompt = Message {
        role: Role::User,
        parts: vec![
            Part::text("Summarize"),
            document("text/plain", NOTES.as_bytes(), "notes.txt"),
        ],
    };
    let err = chat
        .send_message(prompt, &oy3o::Options::default())
        .text()
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Provider, "{err}");
    assert!(
        err.message().contains("document 1 (notes.txt, text/plain)")
            && err.message().contains("HTTP 500"),
        "{err}"
    );
    assert_eq!(
        sim.sent().len(),
        1,
        "only the first turn reached the socket"
    );
    assert!(sim.uploads().is_empty());
    assert_eq!(chat.history(), before);

    // The same document goes through on the next try; the chat carries on.
    sim.push(Turn::Answer(Answer::text(&["Notes read."])));
    let prompt = Message {
        role: Role::User,
        parts: vec![
            Part::text("Summarize"),
            document("text/plain", NOTES.as_bytes(), "notes.txt"),
        ],
    };
    let answer = chat
        .send_message(prompt, &oy3o::Options::default())
        .text()
        .await
        .unwrap();
    assert_eq!(answer, "Notes read.");
    assert_eq!(sim.uploads()[0].bytes, NOTES.as_bytes());
    assert_eq!(chat.history().len(), 4);
}

/// The simulator refuses what the service would: a form it cannot read, no `file` part, no
/// file name, a type that is no document, bytes that are not the type, and no cookies.
#[tokio::test]
async fn the_simulator_refuses_document_uploads_the_service_could_not_take() {
    use oy3o::transport::multipart;
    let sim = CopilotSim::start().await;
    let cookie: String = copilot::COOKIES
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let http = reqwest::Client::new();
    let post = |content_type: String, body: Vec<u8>, cookie: Option<&str>| {
        let mut request = http
            .post(format!("{}/c/api/attachments", sim.url()))
            .header("content-type", content_type)
            .body(body);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie.to_owned());
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let good = multipart::file("file", "a.pdf", "application/pdf", PDF);
    let (status, body) = post(good.content_type.clone(), good.body.clone(), Some(&cookie)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"id\""), "{body}");
    assert_eq!(post(good.content_type, good.body, None).await.0, 401);

    let refused = [
        multipart::file("upload", "a.pdf", "application/pdf", PDF),
        multipart::file("file", "", "application/pdf", PDF),
        multipart::file("file", "a.exe", "application/octet-stream", b"MZ"),
        multipart::file("file", "a.pdf", "application/pdf", b"not a pdf"),
        multipart::file("file", "a.txt", "text/plain", b"\xff\xfe\x00"),
        multipart::file("file", "a.txt", "text/plain", b""),
    ];
    for form in refused {
        let (status, body) = post(form.content_type, form.body, Some(&cookie)).await;
        assert_eq!(status, 400, "{body}");
    }
    let cut = multipart::file("file", "a.pdf", "application/pdf", PDF);
    let half = cut.body[..cut.body.len() - 8].to_vec();
    assert_eq!(post(cut.content_type, half, Some(&cookie)).await.0, 400);
    assert_eq!(sim.uploads().len(), 1);
}

/// What Copilot cannot take (audio) is refused before anything is sent, naming the part.
#[tokio::test]
async fn audio_is_refused_before_anything_reaches_copilot() {
    use oy3o::{Message, Part, Role, Source};
    let sim = CopilotSim::start().await;
    let chat = Chat::open(Some("bing"), &config(&sim)).unwrap();
    let prompt = Message {
        role: Role::User,
        parts: vec![
            Part::text("Transcribe"),
            Part::Audio {
                mime: "audio/wav".into(),
                source: Source::Base64(b64(b"RIFF\x24\x00\x00\x00WAVEfmt ")),
            },
        ],
    };
    let err = chat
        .send_message(prompt, &oy3o::Options::default())
        .text()
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest, "{err}");
    assert!(err.message().contains("cannot take audio"), "{err}");
    assert_eq!((sim.starts(), sim.uploads().len()), (0, 0));
    assert!(chat.history().is_empty());
}
