//! What the client sends (`shared/wire/COPILOT.md` §A.4–§A.6): the `/c/api/start` body, the
//! chat socket's URL, and the `setOptions`, `reportLocalConsents`, `send` and
//! `challengeResponse` frames.

use reqwest::Url;
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// The body of `POST /c/api/start` as the web client sends it (§A.4).
pub(super) fn start_body() -> Value {
    json!({
        "timeZone": "UTC",
        "startNewConversation": true,
        "teenSupportEnabled": true,
        "correctPersonalizationSetting": true,
        "performUserMerge": true,
        "deferredDataUseCapable": true,
    })
}

/// `ws(s)://HOST/c/api/chat?api-version=2&clientSessionId=...[&accessToken=...]`, in the
/// order the web client uses (§A.5); with a page context, the Edge sidebar's feature flags.
pub(super) fn socket_url(
    base: &str,
    session_id: &str,
    token: Option<&str>,
    page_context: bool,
) -> Result<String> {
    let mut url = Url::parse(base).map_err(|e| {
        Error::config(format!(
            "invalid bing base URL {base}: {e}; it looks like https://copilot.microsoft.com"
        ))
    })?;
    let scheme = match url.scheme() {
        "https" | "wss" => "wss",
        "http" | "ws" => "ws",
        other => {
            return Err(Error::config(format!(
                "the bing base URL must be http(s)://, not {other}://"
            )));
        }
    };
    let path = format!("{}/c/api/chat", url.path().trim_end_matches('/'));
    url.set_path(&path);
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        query.append_pair("api-version", "2");
        query.append_pair("clientSessionId", session_id);
        if let Some(token) = token {
            query.append_pair("accessToken", token);
        }
        if page_context {
            query.append_pair("features", "-,ncedge,edgepagecontext");
            query.append_pair("setflight", "-,ncedge,edgepagecontext");
            query.append_pair("ncedge", "1");
        }
    }
    let text = url.to_string();
    // `Url::set_scheme` refuses http -> ws; the rest of the URL is the same.
    Ok(format!("{scheme}{}", &text[url.scheme().len()..]))
}

/// An `http(s)://HOST` route under the base URL.
pub(super) fn http_url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// The capabilities frame (§A.6.1, the 2026 form).
pub(super) fn set_options() -> Value {
    json!({
        "event": "setOptions",
        "supportedFeatures": ["partial-generated-images"],
        "supportedCards": ["weather", "local", "image", "sports", "video", "ads", "finance"],
        "supportedUIComponents": {"Text": "1.2", "Markdown": "1.2"},
        "ads": {"supportedTypes": ["text", "product", "multimedia", "tourActivity", "propertyPromotion"]},
        "supportedActions": [],
    })
}

/// The consents frame the 2026 server requires before `send` (§A.6.2).
pub(super) fn report_local_consents() -> Value {
    json!({"event": "reportLocalConsents", "grantedConsents": []})
}

/// The `content` item of an uploaded image: the URL its upload answered (§A.6.3).
pub(super) fn image_item(url: &str) -> Value {
    json!({"type": "image", "url": url})
}

/// The `content` item of an uploaded document: the id its upload answered. COPILOT.md §A.6.3
/// gives the shape `{"type": "document", "attachmentId": …}` from its one source (gpt4free's
/// Copilot provider since g4f@03eef2a2, 2025-09-05; §A.1), which sends it for a document
/// uploaded as a multipart `file` (§A.2). This is the only place that shape is written.
pub(super) fn document_item(id: &str) -> Value {
    json!({"type": "document", "attachmentId": id})
}

/// The user turn (§A.6.3): the uploaded attachments (their `content` items) first,
/// the text last, the mode from the model name, and the page context when there is one to
/// deliver.
pub(super) fn send(
    conversation: &str,
    attachments: &[Value],
    prompt: &str,
    mode: &str,
    context: Option<&str>,
) -> Value {
    let context = match context {
        Some(page) => json!({"edge": {"pageTitle": "context", "pageContent": page, "pageUrl": ""}}),
        None => json!({}),
    };
    let mut content = attachments.to_vec();
    content.push(json!({"type": "text", "text": prompt}));
    json!({
        "event": "send",
        "conversationId": conversation,
        "content": content,
        "mode": mode,
        "context": context,
    })
}

/// The answer to a challenge, echoing its method and id (§A.6.4).
pub(super) fn challenge_response(token: &str, method: &str, id: Option<&str>) -> Value {
    let mut frame = json!({"event": "challengeResponse", "token": token, "method": method});
    if let Some(id) = id {
        frame["id"] = json!(id);
    }
    frame
}

/// A fresh `clientSessionId`: a random version-4 UUID.
pub(super) fn session_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: still unique enough for a session label, which is not a secret.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b = nanos.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_url_keeps_the_web_clients_parameter_order_and_escapes_the_token() {
        let url = socket_url("https://copilot.microsoft.com", "abc", Some("t+/="), false).unwrap();
        assert_eq!(
            url,
            "wss://copilot.microsoft.com/c/api/chat?api-version=2&clientSessionId=abc&accessToken=t%2B%2F%3D"
        );
        let local = socket_url("http://127.0.0.1:9/", "s", None, true).unwrap();
        assert!(
            local.starts_with(
                "ws://127.0.0.1:9/c/api/chat?api-version=2&clientSessionId=s&features="
            )
        );
    }

    #[test]
    fn session_ids_are_version_4_uuids() {
        let id = session_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, session_id());
    }

    #[test]
    fn the_context_rides_as_the_edge_page_context() {
        let image = image_item("https://x/a");
        let document = document_item("d1");
        let frame = send(
            "c1",
            &[image.clone(), document.clone()],
            "hi",
            "chat",
            Some("page text"),
        );
        assert_eq!(frame["content"][0], image, "attachments first");
        assert_eq!(frame["content"][1], document);
        assert_eq!(document, json!({"type": "document", "attachmentId": "d1"}));
        assert_eq!(frame["context"]["edge"]["pageContent"], "page text");
        assert_eq!(send("c1", &[], "hi", "chat", None)["context"], json!({}));
        assert_eq!(frame["content"][2], json!({"type": "text", "text": "hi"}));
    }
}
