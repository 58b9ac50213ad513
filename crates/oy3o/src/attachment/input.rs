//! What a face receives as an attachment ([`Input`]) and the one way it becomes a [`Part`]
//! ([`load`], [`load_all`]): a command line's `FILE|URL`, Python's paths, bytes and URLs, the
//! WebSocket's `{mime, data | url, name}` and the HTTP face's data URLs all go through here, so
//! every face checks and names attachments the same way.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Limits, bad, from_bytes, from_path, from_url};
use crate::error::{Error, Result};
use crate::message::Part;

/// Where an attachment's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A file on this machine.
    Path(PathBuf),
    /// An `http(s)` URL (kept as a URL; the model or the chat fetches it).
    Url(String),
    /// The bytes themselves.
    Bytes(Vec<u8>),
    /// The bytes as standard base64 (a WebSocket `data`, an HTTP data URL).
    Base64(String),
}

/// One attachment as a face receives it: its origin, and the media type and name the sender
/// gave, if any (both checked against the bytes when they are loaded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Where its bytes are.
    pub origin: Origin,
    /// The media type the sender gave (`image/png`), checked against the bytes.
    pub mime: Option<String>,
    /// The name the sender gave (a file name), kept on documents.
    pub name: Option<String>,
}

impl Input {
    /// An attachment named on a command line or in a script: an `http://` or `https://` URL,
    /// else a file path.
    ///
    /// ```
    /// use oy3o::attachment::{Input, Origin};
    /// assert!(matches!(Input::arg("https://x.test/a.png").origin, Origin::Url(_)));
    /// assert!(matches!(Input::arg("photos/a.png").origin, Origin::Path(_)));
    /// ```
    pub fn arg(text: &str) -> Self {
        let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
        let origin = if lower.starts_with("http://") || lower.starts_with("https://") {
            Origin::Url(text.to_owned())
        } else {
            Origin::Path(PathBuf::from(text))
        };
        Self {
            origin,
            mime: None,
            name: None,
        }
    }

    /// Bytes with an optional media type and name.
    pub fn bytes(bytes: Vec<u8>, mime: Option<String>, name: Option<String>) -> Self {
        Self {
            origin: Origin::Bytes(bytes),
            mime,
            name,
        }
    }

    /// A `data:MIME;base64,DATA` URL (as OpenAI's `image_url` and `file_data` carry inline
    /// bytes, <https://platform.openai.com/docs/guides/images-vision>), or `None` when `url`
    /// is not one.
    ///
    /// ```
    /// use oy3o::attachment::{Input, Origin};
    /// let input = Input::data_url("data:image/png;base64,iVBORw0KGgo=").unwrap();
    /// assert_eq!(input.mime.as_deref(), Some("image/png"));
    /// assert_eq!(input.origin, Origin::Base64("iVBORw0KGgo=".into()));
    /// assert!(Input::data_url("https://x.test/a.png").is_none());
    /// ```
    pub fn data_url(url: &str) -> Option<Self> {
        let rest = url
            .get(..5)
            .filter(|s| s.eq_ignore_ascii_case("data:"))
            .map(|_| &url[5..])?;
        let (head, data) = rest.split_once(',')?;
        let mut params = head.split(';');
        let mime = params.next().filter(|m| !m.is_empty()).map(str::to_owned);
        let base64 = params.any(|p| p.eq_ignore_ascii_case("base64"));
        let origin = if base64 {
            Origin::Base64(data.to_owned())
        } else {
            // A plain data URL carries its bytes percent-encoded.
            Origin::Bytes(percent_decode(data))
        };
        Some(Self {
            origin,
            mime,
            name: None,
        })
    }

    /// Loads this attachment as a checked part ([`from_path`], [`from_url`], [`from_bytes`]):
    /// a known media type its bytes show, within `limits`.
    pub fn load(&self, limits: &Limits) -> Result<Part> {
        let mime = self.mime.as_deref().filter(|m| !m.trim().is_empty());
        match &self.origin {
            Origin::Path(path) => {
                let mut part = from_path(path, mime, limits)?;
                if let (Some(given), Part::Document { name, .. }) = (&self.name, &mut part) {
                    *name = Some(given.clone());
                }
                Ok(part)
            }
            Origin::Url(url) => from_url(url, mime, self.name.clone()),
            Origin::Bytes(bytes) => from_bytes(bytes, mime, self.name.clone(), limits),
            Origin::Base64(data) => {
                let label = match &self.name {
                    Some(n) => format!("the attachment {n}"),
                    None => "the attachment".to_owned(),
                };
                // Cheap first: the decoded size follows from the text's length.
                let decoded_len = data.len() as u64 / 4 * 3;
                if decoded_len > limits.largest() {
                    return Err(bad(format!(
                        "{label} is {}, larger than any attachment may be ({} at most)",
                        super::size(decoded_len),
                        super::size(limits.largest())
                    )));
                }
                let bytes = STANDARD.decode(data.trim()).map_err(|e| {
                    bad(format!(
                        "{label} is not valid base64 ({e}); send standard base64 without line \
                         breaks"
                    ))
                })?;
                from_bytes(&bytes, mime, self.name.clone(), limits)
            }
        }
    }
}

/// Loads every attachment in order ([`Input::load`]); the first that fails is the error, its
/// message led by `at(index)` (`attachment 2`, `attachments[1]`) so the sender knows which.
pub fn load_all(
    inputs: &[Input],
    limits: &Limits,
    at: impl Fn(usize) -> String,
) -> Result<Vec<Part>> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            input
                .load(limits)
                .map_err(|e| Error::new(e.code(), format!("{}: {}", at(i), e.message())))
        })
        .collect()
}

/// `%41` → `A`; anything else as it is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn base64_inputs_are_checked_and_named_by_index() {
        let good = Input {
            origin: Origin::Base64(STANDARD.encode(PNG)),
            mime: Some("image/png".into()),
            name: None,
        };
        let broken = Input {
            origin: Origin::Base64("!!not base64".into()),
            mime: Some("image/png".into()),
            name: Some("a.png".into()),
        };
        let parts = load_all(std::slice::from_ref(&good), &Limits::default(), |i| {
            format!("attachment {}", i + 1)
        })
        .unwrap();
        assert_eq!(parts[0].kind(), "image");
        let err = load_all(&[good, broken], &Limits::default(), |i| {
            format!("attachments[{i}]")
        })
        .unwrap_err();
        assert!(err.message().starts_with("attachments[1]: "), "{err}");
        assert!(err.message().contains("not valid base64"), "{err}");
    }

    #[test]
    fn mislabelled_and_unknown_types_are_refused() {
        let jpeg_label = Input::bytes(PNG.to_vec(), Some("image/jpeg".into()), None);
        let err = jpeg_label.load(&Limits::default()).unwrap_err();
        assert!(err.message().contains("labelled image/jpeg"), "{err}");
        let unknown = Input::bytes(PNG.to_vec(), Some("application/x-thing".into()), None);
        let err = unknown.load(&Limits::default()).unwrap_err();
        assert!(err.message().contains("application/x-thing"), "{err}");
    }

    #[test]
    fn plain_data_urls_are_percent_decoded() {
        let input = Input::data_url("data:text/plain,hello%20world").unwrap();
        assert_eq!(input.origin, Origin::Bytes(b"hello world".to_vec()));
    }
}
