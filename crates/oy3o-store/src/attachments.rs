//! Attachments stored once, by content: a turn's `parts` column keeps each inline image,
//! document or sound as a reference (`"source": {"sha256": DIGEST}` with its `size`), and the
//! bytes live once in the `attachments` table under their SHA-256 (the engine's
//! [`oy3o::attachment::digest`]), however many turns (or chats) send them. Reading a turn puts
//! the bytes back, so a resumed conversation sends them again as they were.

use std::collections::{BTreeMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// One attachment's content, to be written once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Blob {
    /// The SHA-256 of `data`, lower-case hex.
    pub digest: String,
    /// Its media type.
    pub mime: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// Whether a part (JSON) is an attachment with bytes inside.
fn inline_data(part: &Value) -> Option<&str> {
    matches!(part["type"].as_str(), Some("image" | "document" | "audio"))
        .then(|| part["source"]["base64"].as_str())
        .flatten()
}

/// `parts` with each inline attachment replaced by a reference to its digest, and the
/// attachments to write (each once). Base64 that does not decode is kept inline as it is.
pub(crate) fn extract(parts: &Value) -> (Value, Vec<Blob>) {
    let mut blobs: Vec<Blob> = Vec::new();
    let mut out = parts.clone();
    walk(&mut out, &mut |part| {
        let Some(data) = inline_data(part) else {
            return;
        };
        let Ok(bytes) = STANDARD.decode(data) else {
            return;
        };
        let digest = oy3o::attachment::digest(&bytes);
        let mime = part["mime"].as_str().unwrap_or_default().to_owned();
        part["source"] = json!({ "sha256": digest });
        part["size"] = json!(bytes.len());
        if !blobs.iter().any(|b| b.digest == digest) {
            blobs.push(Blob {
                digest,
                mime,
                data: bytes,
            });
        }
    });
    (out, blobs)
}

/// The digests `parts` refers to.
pub(crate) fn digests(parts: &Value) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut parts = parts.clone();
    walk(&mut parts, &mut |part| {
        if let Some(d) = part["source"]["sha256"].as_str() {
            out.insert(d.to_owned());
        }
    });
    out
}

/// Puts the bytes back into `parts` in place of their references (and drops the `size` the
/// reference carried); a reference whose bytes are missing stays as it is.
pub(crate) fn restore(parts: &mut Value, blobs: &BTreeMap<String, Vec<u8>>) {
    walk(parts, &mut |part| {
        let Some(bytes) = part["source"]["sha256"].as_str().and_then(|d| blobs.get(d)) else {
            return;
        };
        part["source"] = json!({ "base64": STANDARD.encode(bytes) });
        if let Some(map) = part.as_object_mut() {
            map.remove("size");
        }
    });
}

/// Calls `f` on every JSON object under `value` that has a `source` (a part).
fn walk(value: &mut Value, f: &mut impl FnMut(&mut Value)) {
    match value {
        Value::Object(map) => {
            if map.contains_key("source") {
                f(value);
                return;
            }
            for v in map.values_mut() {
                walk(v, f);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| walk(v, f)),
        _ => {}
    }
}

/// What the log shows of an attachment part (JSON, as stored or restored): `name, MIME, size,
/// digest` (the digest's first 12 characters), or `None` for other parts.
///
/// ```
/// let part = serde_json::json!({"type": "image", "mime": "image/png", "source": {"base64": "YWJj"}});
/// assert_eq!(oy3o_store::attachment_line(&part).unwrap(), "image, image/png, 3 bytes, sha256:ba7816bf8f01");
/// ```
pub fn attachment_line(part: &Value) -> Option<String> {
    let kind = part["type"].as_str()?;
    if !matches!(kind, "image" | "document" | "audio") {
        return None;
    }
    let mime = part["mime"].as_str().unwrap_or("?");
    let name = part["name"].as_str().unwrap_or(kind);
    let source = &part["source"];
    let (size, digest) = match (source["base64"].as_str(), source["url"].as_str()) {
        (Some(data), _) => {
            let bytes = STANDARD.decode(data).unwrap_or_default();
            (bytes.len() as u64, oy3o::attachment::digest(&bytes))
        }
        (None, Some(url)) => return Some(format!("{name}, {mime}, {url}")),
        (None, None) => (
            part["size"].as_u64().unwrap_or(0),
            source["sha256"].as_str().unwrap_or_default().to_owned(),
        ),
    };
    let size = if size >= 1024 * 1024 {
        format!("{:.1} MiB", size as f64 / (1024.0 * 1024.0))
    } else if size >= 1024 {
        format!("{:.1} KiB", size as f64 / 1024.0)
    } else {
        format!("{size} bytes")
    };
    Some(format!(
        "{name}, {mime}, {size}, sha256:{}",
        digest.get(..12).unwrap_or(&digest)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_are_one_blob_and_come_back_as_they_were() {
        let parts = json!({"prompt": [
            {"type": "text", "text": "two of the same"},
            {"type": "image", "mime": "image/png", "source": {"base64": "YWJj"}},
            {"type": "document", "mime": "text/plain", "name": "a.txt", "source": {"base64": "YWJj"}},
            {"type": "image", "mime": "image/png", "source": {"url": "https://x.test/a.png"}},
        ]});
        let (stored, blobs) = extract(&parts);
        assert_eq!(blobs.len(), 1);
        assert_eq!(blobs[0].data, b"abc");
        let digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(blobs[0].digest, digest);
        assert_eq!(stored["prompt"][1]["source"], json!({"sha256": digest}));
        assert_eq!(stored["prompt"][1]["size"], 3);
        assert!(!stored.to_string().contains("YWJj"));
        assert_eq!(digests(&stored), HashSet::from([digest.to_owned()]));
        let mut back = stored.clone();
        restore(
            &mut back,
            &BTreeMap::from([(digest.to_owned(), b"abc".to_vec())]),
        );
        assert_eq!(back, parts);
        // Bytes that went missing leave the reference, never a wrong part.
        let mut missing = stored.clone();
        restore(&mut missing, &BTreeMap::new());
        assert_eq!(missing, stored);
    }
}
