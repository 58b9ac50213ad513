//! Multimodal fakes (`shared/wire/TOOLS.md` §7.0, §7.1–§7.5 (d)): the shared 1×1 PNG, and
//! "image echo" replies: each fake checks that the request carries the image in its
//! provider's recorded shape and answers `image/png 69 bytes`, or answers the provider's 400
//! error naming what is wrong, so a test sees a broken mapping as an error.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::server::{RecordedRequest, Scripted};
use crate::{anthropic, gemini, ollama, openai, responses};

/// `PNG1`: a 1×1 PNG, 69 bytes, base64 (TOOLS.md §7.0).
pub const PNG1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

/// The bytes of [`PNG1`].
pub fn png1() -> Vec<u8> {
    STANDARD.decode(PNG1).unwrap_or_default()
}

/// What an image echo answers for `data` (raw base64) said to be `mime`: `image/png 69
/// bytes`; or why it cannot (a data URL where raw base64 belongs, broken base64, bytes that
/// are not a PNG).
pub fn describe(mime: &str, data: &str) -> Result<String, String> {
    if data.starts_with("data:") {
        return Err("illegal base64 data at input byte 4".into());
    }
    let bytes = STANDARD
        .decode(data)
        .map_err(|e| format!("invalid base64: {e}"))?;
    if mime == "image/png" && !bytes.starts_with(b"\x89PNG") {
        return Err("the image is not a PNG".into());
    }
    Ok(format!("{mime} {} bytes", bytes.len()))
}

/// Raw base64 out of a `data:MIME;base64,DATA` URL, with its type.
fn data_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("data:")
        .ok_or_else(|| format!("not a data URL: {url}"))?;
    let (mime, data) = rest
        .split_once(";base64,")
        .ok_or_else(|| "a data URL without ;base64,".to_owned())?;
    Ok((mime, data))
}

/// The content parts of the user messages of `messages`, after checking that no other role
/// holds a part of `kinds`.
fn user_parts<'a>(
    messages: &'a Value,
    kinds: &[&str],
    content: &str,
) -> Result<Vec<&'a Value>, String> {
    let mut out = Vec::new();
    for m in messages.as_array().into_iter().flatten() {
        let parts = m[content].as_array().into_iter().flatten();
        if m["role"] == "user" {
            out.extend(parts);
        } else if let Some(p) = parts
            .into_iter()
            .find(|p| kinds.iter().any(|k| p["type"] == *k))
        {
            return Err(format!("a {} part in a {} message", p["type"], m["role"]));
        }
    }
    Ok(out)
}

/// The first echo of `found`, or an error when there is none.
fn first(found: Vec<Result<String, String>>) -> Result<String, String> {
    found
        .into_iter()
        .next()
        .unwrap_or_else(|| Err("no image in the request".into()))
}

/// OpenAI Chat Completions (§7.1 d): a user `image_url` part with a data URL; an image in a
/// `system` or `tool` message is a 400.
pub fn openai_echo(request: &RecordedRequest) -> Scripted {
    let check = || -> Result<String, String> {
        let json = request.json();
        let parts = user_parts(&json["messages"], &["image_url"], "content")?;
        first(
            parts
                .iter()
                .filter(|p| p["type"] == "image_url")
                .map(|p| {
                    let url = p["image_url"]["url"].as_str().unwrap_or_default();
                    let (mime, data) = data_url(url)?;
                    describe(mime, data)
                })
                .collect(),
        )
    };
    match check() {
        Ok(text) => openai::reply_to(request, &[&text]),
        Err(why) => openai_400(&why),
    }
}

fn openai_400(message: &str) -> Scripted {
    let body = serde_json::json!({"error": {"message": message, "type": "invalid_request_error",
        "param": "messages", "code": null}});
    Scripted::json(400, &body.to_string())
}

/// OpenAI Responses (§7.2 d): an `input_image` with a data URL inside a user message;
/// `input_audio` in message content is a 400.
pub fn responses_echo(request: &RecordedRequest) -> Scripted {
    let check = || -> Result<String, String> {
        let json = request.json();
        let parts = user_parts(&json["input"], &["input_image"], "content")?;
        if parts.iter().any(|p| p["type"] == "input_audio") {
            return Err("Invalid value: 'input_audio'.".into());
        }
        first(
            parts
                .iter()
                .filter(|p| p["type"] == "input_image")
                .map(|p| {
                    let (mime, data) = data_url(p["image_url"].as_str().unwrap_or_default())?;
                    describe(mime, data)
                })
                .collect(),
        )
    };
    match check() {
        Ok(text) => responses::answer(&[&text]).build(),
        Err(why) => openai_400(&why),
    }
}

/// Anthropic (§7.3 d): an `image` block with a `base64` source in a user message, its
/// `media_type` one of the four allowed, its data raw base64.
pub fn anthropic_echo(request: &RecordedRequest) -> Scripted {
    let check = || -> Result<String, String> {
        let json = request.json();
        let parts = user_parts(&json["messages"], &["image", "document"], "content")?;
        first(
            parts
                .iter()
                .filter(|p| p["type"] == "image")
                .map(|p| {
                    let source = &p["source"];
                    let mime = source["media_type"].as_str().unwrap_or_default();
                    if !["image/jpeg", "image/png", "image/gif", "image/webp"].contains(&mime) {
                        return Err(format!("messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp' (got {mime:?})"));
                    }
                    if source["type"] != "base64" {
                        return Err("not a base64 source".into());
                    }
                    describe(mime, source["data"].as_str().unwrap_or_default())
                })
                .collect(),
        )
    };
    match check() {
        Ok(text) => anthropic::answer(&[&text]).build(),
        Err(why) => anthropic::error(400, "invalid_request_error", &why),
    }
}

/// Gemini (§7.4 d): an `inlineData` (or `inline_data`) part in a user turn, its data raw
/// base64.
pub fn gemini_echo(request: &RecordedRequest) -> Scripted {
    let check = || -> Result<String, String> {
        let json = request.json();
        let mut found = Vec::new();
        for c in json["contents"].as_array().into_iter().flatten() {
            for p in c["parts"].as_array().into_iter().flatten() {
                let blob = if p["inlineData"].is_object() {
                    (&p["inlineData"], "mimeType")
                } else if p["inline_data"].is_object() {
                    (&p["inline_data"], "mime_type")
                } else {
                    continue;
                };
                if c["role"] != "user" {
                    return Err("inline data in a model turn".into());
                }
                let mime = blob.0[blob.1].as_str().unwrap_or_default();
                found.push(describe(mime, blob.0["data"].as_str().unwrap_or_default()));
            }
        }
        first(found)
    };
    match check() {
        Ok(text) => gemini::answer(&[&text]).build(),
        Err(why) => gemini::error(400, "INVALID_ARGUMENT", &why, ""),
    }
}

/// Ollama (§7.5 d): raw base64 in a message's `images`; a data URL is the decoder's 400.
pub fn ollama_echo(request: &RecordedRequest) -> Scripted {
    let check = || -> Result<String, String> {
        let json = request.json();
        let mut found = Vec::new();
        for m in json["messages"].as_array().into_iter().flatten() {
            for image in m["images"].as_array().into_iter().flatten() {
                found.push(describe("image/png", image.as_str().unwrap_or_default()));
            }
        }
        first(found)
    };
    match check() {
        Ok(text) => ollama::answer(&[&text]).build(),
        Err(why) => ollama::error(400, &why),
    }
}

/// A plain HTTP answer with these bytes and this `Content-Type`, for attachments fetched from
/// a URL.
pub fn file(content_type: &str, bytes: &[u8]) -> Scripted {
    Scripted {
        status: 200,
        headers: vec![("content-type".into(), content_type.into())],
        parts: vec![crate::server::Part::Bytes(bytes.to_vec())],
    }
}
