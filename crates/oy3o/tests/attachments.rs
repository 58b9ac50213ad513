//! Attachments through every provider, against fakes on real sockets that check the request
//! for the recorded multimodal shape and answer with an "image echo" (TOOLS.md §7.0): each
//! provider's body (§1.4, §2.4, §3.4, §4.4, §5.4), what each model can take (refused before
//! anything is sent), a fallback that skips a model without vision, URLs kept or fetched, and
//! every kind of bad input named in its error.

mod common;

use common::{KEY, Run, config_for, tune};
use oy3o::attachment::{self, Limits};
use oy3o::{Chat, Config, Credential, ErrorCode, Event, Message, Options, Part, Role, Source};
use oy3o_testkit::image::{self, PNG1, png1};
use oy3o_testkit::{FakeServer, openai};
use serde_json::{Value, json};

const ECHO: &str = "image/png 69 bytes";
/// A tiny PDF: only its magic matters here.
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n";
/// A tiny WAV header.
const WAV: &[u8] =
    b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x40\x1f\0\0\x80\x3e\0\0\x02\0\x10\0data\0\0\0\0";

fn png_part() -> Part {
    Part::Image {
        mime: "image/png".into(),
        source: Source::Base64(PNG1.into()),
    }
}

fn bytes_part(bytes: &[u8], name: &str) -> Part {
    attachment::from_bytes(bytes, None, Some(name.into()), &Limits::default()).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn user(parts: Vec<Part>) -> Message {
    Message {
        role: Role::User,
        parts,
    }
}

async fn send(chat: &Chat, message: Message) -> Run {
    Run::of(chat.send_message(message, &Options::default())).await
}

/// The user messages of a recorded body's `key` list.
fn last_user(request: &oy3o_testkit::RecordedRequest, key: &str) -> Value {
    request.json()[key]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user").cloned())
        .unwrap_or(Value::Null)
}

/// A server that serves `bytes` as `content_type` at any path.
async fn file_server(content_type: &'static str, bytes: Vec<u8>) -> FakeServer {
    let files = FakeServer::start().await;
    files.respond(move |_| image::file(content_type, &bytes));
    files
}

fn assert_refused(run: &Run, server: &FakeServer, words: &[&str]) {
    let e = run.error.as_ref().expect("an error");
    assert_eq!(e.code(), ErrorCode::BadRequest, "{}", e.message());
    for w in words {
        assert!(e.message().contains(w), "{:?} lacks {w:?}", e.message());
    }
    assert!(server.requests().is_empty(), "nothing may be sent");
}

// ---- Each provider's body -------------------------------------------------------------------

#[tokio::test]
async fn openai_chat_sends_images_pdfs_and_text_documents_as_content_parts() {
    let server = FakeServer::start().await;
    server.respond(image::openai_echo);
    let chat = Chat::open(
        Some("openai:gpt-4o"),
        &config_for("openai", server.base_url()),
    )
    .unwrap();
    let message = user(vec![
        Part::text("What is in this image and this PDF?"),
        png_part(),
        bytes_part(PDF, "a.pdf"),
        bytes_part(b"# Notes\nfine", "notes.md"),
    ]);
    let run = send(&chat, message).await;
    assert_eq!(run.error, None);
    assert_eq!(run.text, ECHO);
    let sent = last_user(&server.requests()[0], "messages");
    assert_eq!(
        sent["content"],
        json!([
            {"type": "text", "text": "What is in this image and this PDF?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG1}")}},
            {"type": "file", "file": {"filename": "a.pdf",
                "file_data": format!("data:application/pdf;base64,{}", b64(PDF))}},
            {"type": "text", "text": "<document name=\"notes.md\">\n# Notes\nfine\n</document>"},
        ])
    );
    // The image joins the history and goes again with the next turn.
    assert_eq!(chat.history()[0].parts.len(), 4);
}

#[tokio::test]
async fn openai_chat_sends_audio_as_input_audio_to_an_audio_model() {
    let server = FakeServer::start().await;
    server.respond(|r| openai::reply_to(r, &["a beep"]));
    let config = config_for("openai", server.base_url());
    let chat = Chat::open(Some("openai:gpt-4o-audio-preview"), &config).unwrap();
    let run = send(
        &chat,
        user(vec![Part::text("hear"), bytes_part(WAV, "a.wav")]),
    )
    .await;
    assert_eq!(run.error, None);
    let sent = last_user(&server.requests()[0], "messages");
    assert_eq!(
        sent["content"][1],
        json!({"type": "input_audio", "input_audio": {"data": b64(WAV), "format": "wav"}})
    );
}

#[tokio::test]
async fn openai_image_urls_go_as_urls_without_being_fetched() {
    let server = FakeServer::start().await;
    server.respond(|r| openai::reply_to(r, &["a cat"]));
    let files = file_server("image/png", png1()).await;
    let url = format!("{}/cat.png", files.url());
    let chat = Chat::open(
        Some("openai:gpt-4o"),
        &config_for("openai", server.base_url()),
    )
    .unwrap();
    let part = attachment::from_url(&url, None, None).unwrap();
    let run = send(&chat, user(vec![Part::text("what?"), part])).await;
    assert_eq!(run.error, None);
    let sent = last_user(&server.requests()[0], "messages");
    assert_eq!(
        sent["content"][1],
        json!({"type": "image_url", "image_url": {"url": url}})
    );
    assert!(files.requests().is_empty(), "the model fetches it itself");
}

#[tokio::test]
async fn responses_sends_input_image_and_input_file_parts() {
    let server = FakeServer::start().await;
    server.respond(image::responses_echo);
    let mut config = config_for("openai", server.base_url());
    tune(&mut config, "openai", |s| s.api = Some("responses".into()));
    let chat = Chat::open(Some("openai:gpt-4o"), &config).unwrap();
    let pdf_url = "https://example.com/report.pdf";
    let message = user(vec![
        Part::text("Describe both"),
        png_part(),
        bytes_part(PDF, "a.pdf"),
        attachment::from_url(pdf_url, None, None).unwrap(),
    ]);
    let run = send(&chat, message).await;
    assert_eq!(run.error, None);
    assert_eq!(run.text, ECHO);
    let sent = last_user(&server.requests()[0], "input");
    assert_eq!(
        sent["content"],
        json!([
            {"type": "input_text", "text": "Describe both"},
            {"type": "input_image", "image_url": format!("data:image/png;base64,{PNG1}")},
            {"type": "input_file", "filename": "a.pdf",
             "file_data": format!("data:application/pdf;base64,{}", b64(PDF))},
            {"type": "input_file", "file_url": pdf_url},
        ])
    );
}

#[tokio::test]
async fn responses_refuses_audio_before_sending() {
    let server = FakeServer::start().await;
    server.respond(image::responses_echo);
    let mut config = config_for("openai", server.base_url());
    tune(&mut config, "openai", |s| s.api = Some("responses".into()));
    let chat = Chat::open(Some("openai:gpt-4o-audio-preview"), &config).unwrap();
    let run = send(&chat, user(vec![bytes_part(WAV, "a.wav")])).await;
    assert_refused(&run, &server, &["openai:gpt-4o-audio-preview", "audio"]);
}

#[tokio::test]
async fn anthropic_sends_image_and_document_blocks() {
    let server = FakeServer::start().await;
    server.respond(image::anthropic_echo);
    let chat = Chat::open(
        Some("anthropic:claude-sonnet-4-5"),
        &config_for("anthropic", server.url()),
    )
    .unwrap();
    let message = user(vec![
        png_part(),
        attachment::from_url("https://example.com/cat.jpg", None, None).unwrap(),
        bytes_part(PDF, "Report.pdf"),
        bytes_part(b"plain text here", "t.txt"),
        Part::text("Summarise."),
    ]);
    let run = send(&chat, message).await;
    assert_eq!(run.error, None);
    assert_eq!(run.text, ECHO);
    let sent = last_user(&server.requests()[0], "messages");
    assert_eq!(
        sent["content"],
        json!([
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG1}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            {"type": "document", "title": "Report.pdf", "source": {"type": "base64",
                "media_type": "application/pdf", "data": b64(PDF)}},
            {"type": "document", "title": "t.txt", "source": {"type": "text",
                "media_type": "text/plain", "data": "plain text here"}},
            {"type": "text", "text": "Summarise."},
        ])
    );
}

#[tokio::test]
async fn gemini_sends_inline_data_in_camel_case_and_fetches_other_urls() {
    let server = FakeServer::start().await;
    server.respond(image::gemini_echo);
    let files = file_server("image/png", png1()).await;
    let chat = Chat::open(
        Some("gemini:gemini-2.5-flash"),
        &config_for("gemini", server.url()),
    )
    .unwrap();
    let file_uri = "https://generativelanguage.googleapis.com/v1beta/files/abc";
    let message = user(vec![
        Part::text("What is in this image and PDF?"),
        attachment::from_url(&format!("{}/x.png", files.url()), None, None).unwrap(),
        bytes_part(PDF, "a.pdf"),
        bytes_part(WAV, "a.wav"),
        Part::Document {
            mime: "application/pdf".into(),
            source: Source::Url(file_uri.into()),
            name: None,
        },
    ]);
    let run = send(&chat, message).await;
    assert_eq!(run.error, None);
    assert_eq!(run.text, ECHO);
    let sent = last_user(&server.requests()[0], "contents");
    assert_eq!(
        sent["parts"],
        json!([
            {"text": "What is in this image and PDF?"},
            {"inlineData": {"mimeType": "image/png", "data": PNG1}},
            {"inlineData": {"mimeType": "application/pdf", "data": b64(PDF)}},
            {"inlineData": {"mimeType": "audio/wav", "data": b64(WAV)}},
            {"fileData": {"mimeType": "application/pdf", "fileUri": file_uri}},
        ])
    );
    assert_eq!(files.requests().len(), 1, "the plain URL was fetched");
}

#[tokio::test]
async fn ollama_sends_raw_base64_images_and_text_documents_in_the_content() {
    let server = FakeServer::start().await;
    server.respond(image::ollama_echo);
    let chat = Chat::open(Some("ollama:llava"), &config_for("ollama", server.url())).unwrap();
    let message = user(vec![
        Part::text("What is this?"),
        png_part(),
        bytes_part(b"ctx", "c.txt"),
    ]);
    let run = send(&chat, message).await;
    assert_eq!(run.error, None);
    assert_eq!(run.text, ECHO);
    let sent = last_user(&server.requests()[0], "messages");
    assert_eq!(sent["images"], json!([PNG1]));
    assert_eq!(
        sent["content"],
        "What is this?\n\n<document name=\"c.txt\">\nctx\n</document>"
    );
}

#[tokio::test]
async fn ollama_image_urls_are_fetched_and_sent_as_bytes() {
    let server = FakeServer::start().await;
    server.respond(image::ollama_echo);
    let files = file_server("image/png", png1()).await;
    let chat = Chat::open(
        Some("ollama:llama3.2-vision"),
        &config_for("ollama", server.url()),
    )
    .unwrap();
    let url = format!("{}/pics/cat.png", files.url());
    let run = send(
        &chat,
        user(vec![attachment::from_url(&url, None, None).unwrap()]),
    )
    .await;
    assert_eq!(run.error, None);
    assert_eq!(run.text, ECHO);
    assert_eq!(files.requests()[0].path, "/pics/cat.png");
    let sent = last_user(&server.requests()[0], "messages");
    assert_eq!(sent["images"], json!([PNG1]));
    // The history keeps the bytes that were sent, not the URL.
    assert!(matches!(
        &chat.history()[0].parts[0],
        Part::Image { source: Source::Base64(d), .. } if d == PNG1
    ));
}

// ---- What models can take -------------------------------------------------------------------

#[tokio::test]
async fn a_part_a_model_cannot_take_is_refused_before_anything_is_sent() {
    let cases: [(&str, &str, Part, &[&str]); 5] = [
        (
            "ollama",
            "ollama:llama3.2",
            png_part(),
            &["ollama:llama3.2", "image"],
        ),
        ("ollama", "ollama:llava", bytes_part(PDF, "a.pdf"), &["PDF"]),
        (
            "openai",
            "openai:gpt-3.5-turbo",
            png_part(),
            &["gpt-3.5-turbo", "image"],
        ),
        (
            "openai",
            "openai:gpt-4o",
            bytes_part(WAV, "a.wav"),
            &["audio/wav"],
        ),
        (
            "anthropic",
            "anthropic:claude-sonnet-4-5",
            bytes_part(WAV, "a.wav"),
            &["audio"],
        ),
    ];
    for (provider, model, part, words) in cases {
        let server = FakeServer::start().await;
        server.respond(image::openai_echo);
        let base = if provider == "openai" {
            server.base_url()
        } else {
            server.url()
        };
        let chat = Chat::open(Some(model), &config_for(provider, base)).unwrap();
        let run = send(&chat, user(vec![Part::text("x"), part])).await;
        assert_refused(&run, &server, words);
        assert!(chat.history().is_empty());
    }
}

#[tokio::test]
async fn a_url_of_a_kind_the_model_cannot_take_is_refused_without_fetching_it() {
    let server = FakeServer::start().await;
    let files = file_server("image/png", png1()).await;
    let chat = Chat::open(Some("ollama:llama3.2"), &config_for("ollama", server.url())).unwrap();
    let part = attachment::from_url(&format!("{}/a.png", files.url()), None, None).unwrap();
    let run = send(&chat, user(vec![part])).await;
    assert_refused(&run, &server, &["image"]);
    assert!(files.requests().is_empty());
}

#[tokio::test]
async fn an_attachment_in_a_restored_assistant_message_is_refused() {
    let chat = Chat::open(
        Some("ollama:llava"),
        &config_for("ollama", "http://127.0.0.1:9".into()),
    )
    .unwrap();
    let history = vec![Message {
        role: Role::Assistant,
        parts: vec![png_part()],
    }];
    let e = chat.restore(history).unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);
    assert!(
        e.message().contains("image parts in assistant messages"),
        "{}",
        e.message()
    );
}

#[test]
fn bing_takes_images_and_documents_and_local_takes_no_attachment() {
    let mut checked = 0;
    for model in ["bing", "local:smollm2"] {
        let config = Config {
            cookie: Some(Credential::parse(KEY)),
            ..Config::default()
        };
        // `local` resolves only when built with the local model.
        let Ok(target) = config.resolve(Some(model)) else {
            continue;
        };
        checked += 1;
        let can = target.provider.capabilities(&target);
        assert!(can.audio.is_empty(), "{model}");
        let attachments = user(vec![png_part(), bytes_part(PDF, "a.pdf")]);
        let taken = oy3o::require_supported(&[attachments], model, &can);
        if model == "bing" {
            // Copilot uploads images, PDFs and text documents (COPILOT.md A.2).
            assert!(can.images && can.pdfs && can.text_documents);
            assert!(taken.is_ok(), "{taken:?}");
        } else {
            assert!(!can.images && !can.pdfs && !can.text_documents);
            let e = taken.unwrap_err();
            assert!(
                e.message().contains("cannot take image parts"),
                "{}",
                e.message()
            );
        }
    }
    assert!(checked >= 1, "bing resolves");
}

// ---- Fallbacks --------------------------------------------------------------------------------

fn fallback_config(server: &FakeServer, models: Vec<&str>) -> Config {
    let mut config = config_for("ollama", server.url());
    config.aliases.insert("eyes".into(), models.into());
    config
}

#[tokio::test]
async fn a_fallback_skips_a_model_without_vision_and_says_why() {
    let server = FakeServer::start().await;
    server.respond(image::ollama_echo);
    let config = fallback_config(&server, vec!["ollama:llama3.2", "ollama:llava"]);
    let chat = Chat::open(Some("eyes"), &config).unwrap();
    let run = send(&chat, user(vec![Part::text("see"), png_part()])).await;
    assert_eq!(run.error, None);
    assert_eq!(run.text, ECHO);
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "the text-only model got nothing");
    assert_eq!(requests[0].json()["model"], "llava");
    let retry = run.named("retry");
    let Some(Event::Retry { reason, .. }) = retry.first() else {
        panic!("a retry event");
    };
    assert!(
        reason.contains("ollama:llama3.2 cannot take image parts")
            && reason.contains("ollama:llava"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_fallback_where_no_model_can_take_the_part_says_so_before_sending() {
    let server = FakeServer::start().await;
    let config = fallback_config(&server, vec!["ollama:llama3.2", "ollama:mistral"]);
    let chat = Chat::open(Some("eyes"), &config).unwrap();
    let run = send(&chat, user(vec![png_part()])).await;
    assert_refused(
        &run,
        &server,
        &[
            "none of the models (ollama:llama3.2, ollama:mistral)",
            "image",
        ],
    );
}

// ---- Bad input ----------------------------------------------------------------------------

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("oy3o-attach-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn files_load_with_their_type_checked_against_their_bytes() {
    let limits = Limits::default();
    let png = attachment::from_path(&temp_file("ok.png", &png1()), None, &limits).unwrap();
    assert_eq!(png, png_part());
    let md = attachment::from_path(&temp_file("n.md", b"# hi"), None, &limits).unwrap();
    assert!(
        matches!(&md, Part::Document { mime, name: Some(n), .. } if mime == "text/markdown" && n == "n.md")
    );

    /// File name, bytes, declared type, words the error must hold.
    type Case<'a> = (&'a str, &'a [u8], Option<&'a str>, &'a [&'a str]);
    let cases: [Case; 5] = [
        (
            "photo.jpg",
            &png1(),
            None,
            &["photo.jpg", "labelled image/jpeg", "image/png"],
        ),
        (
            "blob.bin",
            b"\x00\x01\x02\x03",
            None,
            &["blob.bin", "cannot tell what"],
        ),
        ("empty.txt", b"", None, &["empty.txt", "is empty"]),
        (
            "x.png",
            &png1(),
            Some("image/bmp"),
            &["x.png", "image/bmp", "cannot be attached"],
        ),
        (
            "fake.pdf",
            b"not a pdf at all",
            None,
            &["fake.pdf", "labelled application/pdf"],
        ),
    ];
    for (name, bytes, declared, words) in cases {
        let e = attachment::from_path(&temp_file(name, bytes), declared, &limits).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadRequest, "{name}");
        for w in words {
            assert!(e.message().contains(w), "{:?} lacks {w:?}", e.message());
        }
    }
    let missing = attachment::from_path(std::path::Path::new("/no/such.png"), None, &limits);
    assert_eq!(missing.unwrap_err().code(), ErrorCode::NotFound);
}

#[test]
fn an_oversized_file_names_the_limit_and_its_config_key() {
    let limits = Limits {
        max_image_bytes: 50,
        ..Limits::default()
    };
    let e = attachment::from_path(&temp_file("big.png", &png1()), None, &limits).unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);
    for w in [
        "big.png",
        "69 bytes",
        "50 bytes",
        "attachments.max_image_bytes",
    ] {
        assert!(e.message().contains(w), "{:?} lacks {w:?}", e.message());
    }
    let pdf_limit = Limits {
        max_pdf_bytes: 10,
        ..Limits::default()
    };
    let e = attachment::from_bytes(PDF, None, None, &pdf_limit).unwrap_err();
    assert!(e.message().contains("max_pdf_bytes"), "{}", e.message());
}

#[tokio::test]
async fn broken_unknown_or_mislabelled_parts_are_refused_by_the_chat_naming_the_part() {
    let jpeg_as_png = Part::Image {
        mime: "image/png".into(),
        source: Source::Base64(b64(b"\xFF\xD8\xFF\xE0 jpeg")),
    };
    let cases: [(Part, &[&str]); 5] = [
        (
            Part::Image {
                mime: "image/png".into(),
                source: Source::Base64("not base64!!".into()),
            },
            &["part 2 (image)", "not valid base64"],
        ),
        (
            Part::Image {
                mime: "image/x-unknown".into(),
                source: Source::Base64(PNG1.into()),
            },
            &["part 2 (image)", "image/x-unknown"],
        ),
        (
            Part::Image {
                mime: "application/pdf".into(),
                source: Source::Base64(b64(PDF)),
            },
            &["part 2 (image)", "not an image"],
        ),
        (
            jpeg_as_png,
            &["part 2 (image)", "labelled image/png", "image/jpeg"],
        ),
        (
            Part::Image {
                mime: "image/png".into(),
                source: Source::Url("file:///etc/passwd".into()),
            },
            &["part 2 (image)", "http://"],
        ),
    ];
    for (part, words) in cases {
        let server = FakeServer::start().await;
        let chat = Chat::open(Some("ollama:llava"), &config_for("ollama", server.url())).unwrap();
        let run = send(&chat, user(vec![Part::text("x"), part])).await;
        assert_refused(&run, &server, words);
    }
}

#[tokio::test]
async fn the_configured_limit_applies_to_a_chat() {
    let server = FakeServer::start().await;
    let mut config = config_for("ollama", server.url());
    config.attachments = Some(Limits {
        max_image_bytes: 10,
        ..Limits::default()
    });
    let chat = Chat::open(Some("ollama:llava"), &config).unwrap();
    let run = send(&chat, user(vec![png_part()])).await;
    assert_refused(&run, &server, &["part 1 (image)", "max_image_bytes"]);
}

#[tokio::test]
async fn a_url_that_fails_or_is_too_big_is_an_error_naming_it_and_nothing_is_sent() {
    let server = FakeServer::start().await;
    let files = FakeServer::start().await;
    files.respond(|r| {
        if r.path.starts_with("/missing") {
            oy3o_testkit::Scripted::json(404, "{}")
        } else {
            image::file("image/png", &vec![0x89; 4096])
        }
    });
    let mut config = config_for("ollama", server.url());
    config.attachments = Some(Limits {
        max_image_bytes: 1000,
        ..Limits::default()
    });
    let chat = Chat::open(Some("ollama:llava"), &config).unwrap();
    let missing = format!("{}/missing.png", files.url());
    let run = send(
        &chat,
        user(vec![attachment::from_url(&missing, None, None).unwrap()]),
    )
    .await;
    assert_refused(&run, &server, &[&missing, "404"]);
    let big = format!("{}/big.png", files.url());
    let run = send(
        &chat,
        user(vec![attachment::from_url(&big, None, None).unwrap()]),
    )
    .await;
    assert_refused(&run, &server, &[&big, "max_image_bytes"]);
    let e = attachment::from_url("https://example.com/download", None, None).unwrap_err();
    assert!(
        e.message().contains("give its media type"),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn a_fetched_file_whose_bytes_belie_its_content_type_is_refused() {
    let server = FakeServer::start().await;
    let files = file_server("image/jpeg", png1()).await;
    let chat = Chat::open(Some("ollama:llava"), &config_for("ollama", server.url())).unwrap();
    let url = format!("{}/cat", files.url());
    let e = attachment::fetch(
        &url,
        None,
        None,
        &reqwest::Client::new(),
        &Limits::default(),
    )
    .await
    .unwrap_err();
    assert!(
        e.message().contains("labelled image/jpeg"),
        "{}",
        e.message()
    );
    // Through the chat: the URL part says PNG, the bytes agree, the header is ignored.
    let part = attachment::from_url(&url, Some("image/png"), None).unwrap();
    server.respond(image::ollama_echo);
    let run = send(&chat, user(vec![part])).await;
    assert_eq!(run.error, None);
    assert_eq!(run.text, ECHO);
}

// ---- Config and digests ---------------------------------------------------------------------

#[test]
fn limits_load_from_the_config_file_and_unknown_keys_are_named() {
    let dir = std::env::temp_dir().join(format!("oy3o-attach-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("oy3o.toml");
    std::fs::write(&path, "[attachments]\nmax_image_bytes = 1024\n").unwrap();
    let config = Config::load(&path).unwrap();
    let limits = config.attachments.unwrap();
    assert_eq!(limits.max_image_bytes, 1024);
    assert_eq!(limits.max_pdf_bytes, Limits::default().max_pdf_bytes);
    std::fs::write(&path, "[attachments]\nmax_images = 1\n").unwrap();
    let e = Config::load(&path).unwrap_err();
    assert!(e.message().contains("max_images"), "{}", e.message());
}

#[test]
fn an_attachment_digest_is_the_sha256_of_its_bytes() {
    let d = png_part().digest().unwrap();
    assert_eq!(d, attachment::digest(&png1()));
    assert_eq!(d.len(), 64);
    let url = attachment::from_url("https://example.com/a.png", None, None).unwrap();
    assert_eq!(url.digest(), None);
    assert_eq!(Part::text("x").digest(), None);
}
