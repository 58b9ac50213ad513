//! Copilot's attachment upload (`shared/wire/COPILOT.md` §A.2): each attachment of a prompt is
//! sent with `POST /c/api/attachments` and the session's cookies. An image goes as its raw bytes
//! with its `content-type` and is answered `{"url": …}`; a document (a PDF, a text document)
//! goes as `multipart/form-data` with one `file` part and is answered `{"id": …}`. What the
//! upload answers goes in the `send` frame's `content`, before the text (§A.6.3, see
//! [`frames::image_item`] and [`frames::document_item`]).

use serde_json::Value;

use super::Client;
use super::auth::Identity;
use super::frames;
use crate::error::{Error, ErrorCode, Result};
use crate::message::{Message, Part, Source};

/// Uploads the images and documents of `prompt`, in order, and gives their `content` items. An
/// upload Copilot refuses is an error naming the attachment.
pub(super) async fn attachments(
    client: &Client,
    identity: &Identity,
    prompt: &Message,
) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    let (mut images, mut documents) = (0, 0);
    for part in &prompt.parts {
        match part {
            Part::Image {
                mime,
                source: Source::Base64(data),
            } => {
                images += 1;
                let label = format!("image {images} ({mime})");
                let bytes = decoded(data, &label)?;
                let answer = upload(client, identity, mime, bytes, &label).await?;
                items.push(frames::image_item(&handed_back(&answer, "url", &label)?));
            }
            Part::Document {
                mime,
                source: Source::Base64(data),
                name,
            } => {
                documents += 1;
                let filename = name
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| default_name(documents, mime));
                let label = format!("document {documents} ({filename}, {mime})");
                let bytes = decoded(data, &label)?;
                let form = crate::transport::multipart::file("file", &filename, mime, &bytes);
                let answer =
                    upload(client, identity, &form.content_type, form.body, &label).await?;
                items.push(frames::document_item(&handed_back(&answer, "id", &label)?));
            }
            // URLs were fetched into bytes by the chat, and other parts were refused, before
            // the provider saw the prompt (`require_supported`).
            _ => {}
        }
    }
    Ok(items)
}

fn decoded(data: &str, label: &str) -> Result<Vec<u8>> {
    crate::attachment::decoded(data)
        .ok_or_else(|| Error::new(ErrorCode::BadRequest, format!("{label}: not valid base64")))
}

/// `document-2.pdf`: a file name for a document that came without one (the form needs one).
fn default_name(n: usize, mime: &str) -> String {
    let extension = match crate::attachment::mime::normalize(mime) {
        Some("application/pdf") => "pdf",
        Some("text/markdown") => "md",
        Some("text/csv") => "csv",
        Some("text/html") => "html",
        Some("text/xml") => "xml",
        Some("application/json") => "json",
        _ => "txt",
    };
    format!("document-{n}.{extension}")
}

/// The string field `field` of an upload's answer, or an error naming the attachment.
fn handed_back(answer: &Value, field: &str, label: &str) -> Result<String> {
    answer[field]
        .as_str()
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::provider(format!(
                "Copilot took {label} but gave no {field} for it; the web protocol may have \
                 changed: update oy3o"
            ))
        })
}

/// Posts one upload (`body` as `content_type`) and reads its JSON answer.
async fn upload(
    client: &Client,
    identity: &Identity,
    content_type: &str,
    body: Vec<u8>,
    label: &str,
) -> Result<Value> {
    let http = crate::transport::client::shared(client.proxy.as_deref(), client.timeouts.connect)?;
    let mut request = http
        .post(frames::http_url(&client.base, "/c/api/attachments"))
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .timeout(client.timeouts.first_byte.max(client.timeouts.idle))
        .body(body);
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
    Ok(serde_json::from_str(&body).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_without_a_name_gets_one_from_its_type() {
        assert_eq!(default_name(1, "application/pdf"), "document-1.pdf");
        assert_eq!(
            default_name(2, "text/plain; charset=utf-8"),
            "document-2.txt"
        );
        assert_eq!(default_name(3, "text/markdown"), "document-3.md");
    }

    #[test]
    fn an_answer_without_the_field_is_an_error_naming_the_attachment() {
        let label = "document 1 (a.pdf, application/pdf)";
        let e = handed_back(&serde_json::json!({"url": "x"}), "id", label).unwrap_err();
        assert!(
            e.message().contains(label) && e.message().contains("no id"),
            "{e}"
        );
        let ok = handed_back(&serde_json::json!({"id": "d1"}), "id", label).unwrap();
        assert_eq!(ok, "d1");
    }
}
