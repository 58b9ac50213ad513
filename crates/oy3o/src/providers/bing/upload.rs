//! Copilot's image upload (`shared/wire/COPILOT.md` §A.2): each image of a prompt is sent with
//! `POST /c/api/attachments` (the raw bytes, their `content-type`, the session's cookies), and
//! the `url` it answers goes in the `send` frame's `content`, before the text (§A.6.3).

use serde_json::{Value, json};

use super::Client;
use super::auth::Identity;
use super::frames;
use crate::error::{Error, ErrorCode, Result};
use crate::message::{Message, Part, Source};

/// Uploads the images of `prompt`, in order, and gives their `content` items
/// (`{"type": "image", "url": …}`). An upload Copilot refuses is an error naming the image.
pub(super) async fn images(
    client: &Client,
    identity: &Identity,
    prompt: &Message,
) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    let images = prompt.parts.iter().filter_map(|p| match p {
        Part::Image {
            mime,
            source: Source::Base64(data),
        } => Some((mime, data)),
        _ => None,
    });
    for (n, (mime, data)) in images.enumerate() {
        let label = format!("image {} ({mime})", n + 1);
        let bytes = crate::attachment::decoded(data).ok_or_else(|| {
            Error::new(ErrorCode::BadRequest, format!("{label}: not valid base64"))
        })?;
        let url = upload(client, identity, mime, bytes, &label).await?;
        items.push(json!({"type": "image", "url": url}));
    }
    Ok(items)
}

async fn upload(
    client: &Client,
    identity: &Identity,
    mime: &str,
    bytes: Vec<u8>,
    label: &str,
) -> Result<String> {
    let http = crate::transport::client::shared(client.proxy.as_deref(), client.timeouts.connect)?;
    let mut request = http
        .post(frames::http_url(&client.base, "/c/api/attachments"))
        .header(reqwest::header::CONTENT_TYPE, mime)
        .timeout(client.timeouts.first_byte.max(client.timeouts.idle))
        .body(bytes);
    for (name, value) in client.headers() {
        request = request.header(name, value);
    }
    if let Some(cookie) = identity.cookie_header()
        && let Ok(mut value) = reqwest::header::HeaderValue::from_str(&cookie)
    {
        value.set_sensitive(true);
        request = request.header(reqwest::header::COOKIE, value);
    }
    let response = request.send().await.map_err(|e| {
        let code = if e.is_timeout() {
            ErrorCode::Timeout
        } else {
            ErrorCode::Network
        };
        Error::new(
            code,
            identity.redact(&format!("uploading {label} to Copilot failed: {e}")),
        )
    })?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        let said: String = identity.redact(body.trim()).chars().take(200).collect();
        let code = match status.as_u16() {
            401 | 403 => ErrorCode::Auth,
            429 => ErrorCode::RateLimit,
            400 | 413 | 415 => ErrorCode::BadRequest,
            _ => ErrorCode::Provider,
        };
        return Err(Error::new(
            code,
            format!("Copilot refused {label} with HTTP {status}: {said}"),
        ));
    }
    let value: Value = serde_json::from_str(&body).unwrap_or_default();
    value["url"]
        .as_str()
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::provider(format!(
                "Copilot took {label} but gave no url for it; the web protocol may have \
                 changed: update oy3o"
            ))
        })
}
