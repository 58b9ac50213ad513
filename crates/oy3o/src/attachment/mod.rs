//! Attachments: images, PDFs, text documents and sounds sent with a prompt as message parts
//! ([`Part::Image`], [`Part::Document`], [`Part::Audio`]). One loader for every face: from a
//! file ([`from_path`]), bytes ([`from_bytes`]), or a URL ([`from_url`], kept as a URL where
//! the model fetches URLs itself; else the chat fetches it with [`fetch`] before sending).
//!
//! Every attachment is checked before a provider sees it: its media type must be one the
//! engine knows ([`mime`]), its bytes must show that type (a PNG named `photo.jpg` is refused),
//! its base64 must decode, and it must fit the size [`Limits`] (the config's `[attachments]`
//! section). Each error names the part. What each model can take is its [`Capabilities`].
//!
//! Faces turn what they receive (a path, a URL, bytes, base64, a data URL) into parts
//! through [`Input`] and [`load_all`], so every face checks and names them alike.
//!
//! Not here: storing attachments (the store addresses them by [`digest`]), and the faces'
//! own syntax for naming them.

mod capabilities;
mod input;
pub mod mime;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use sha2::{Digest, Sha256};

pub use capabilities::{Capabilities, Urls};
pub use input::{Input, Origin, load_all};
use mime::Kind;

use crate::error::{Error, ErrorCode, Result};
use crate::message::{Message, Part, Source};

const MIB: u64 = 1024 * 1024;

/// The largest attachment of each kind, in bytes (before base64). Set in the config:
///
/// ```toml
/// [attachments]
/// max_image_bytes = 10485760
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Images (default 20 MiB, OpenAI's limit per image, TOOLS.md §1.4).
    pub max_image_bytes: u64,
    /// PDFs (default 32 MiB, OpenAI's and Anthropic's limit per request, §1.4, §3.4).
    pub max_pdf_bytes: u64,
    /// Text documents, sent as text (default 2 MiB).
    pub max_text_bytes: u64,
    /// Sounds (default 25 MiB).
    pub max_audio_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_image_bytes: 20 * MIB,
            max_pdf_bytes: 32 * MIB,
            max_text_bytes: 2 * MIB,
            max_audio_bytes: 25 * MIB,
        }
    }
}

impl Limits {
    /// The limit for a kind of attachment, and the config key that sets it.
    fn of(&self, kind: Kind) -> (u64, &'static str) {
        match kind {
            Kind::Image => (self.max_image_bytes, "max_image_bytes"),
            Kind::Pdf => (self.max_pdf_bytes, "max_pdf_bytes"),
            Kind::Text => (self.max_text_bytes, "max_text_bytes"),
            Kind::Audio => (self.max_audio_bytes, "max_audio_bytes"),
        }
    }

    /// The largest of the limits: nothing bigger can be any attachment.
    fn largest(&self) -> u64 {
        self.max_image_bytes
            .max(self.max_pdf_bytes)
            .max(self.max_text_bytes)
            .max(self.max_audio_bytes)
    }
}

fn bad(message: String) -> Error {
    Error::new(ErrorCode::BadRequest, message)
}

/// `1.5 MiB`, `200 bytes`.
fn size(n: u64) -> String {
    if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else {
        format!("{n} bytes")
    }
}

fn too_big(label: &str, kind: Kind, len: u64, limits: &Limits) -> Result<()> {
    let (limit, key) = limits.of(kind);
    if len > limit {
        return Err(bad(format!(
            "{label} is {}, over the {} limit of {} for a {} attachment; send a smaller one or \
             raise attachments.{key} in the config",
            size(len),
            kind.as_str(),
            size(limit),
            kind.as_str(),
        )));
    }
    Ok(())
}

/// [`too_big`] for a kind, or over every limit when the kind is not known yet.
fn over_limit(label: &str, kind: Option<Kind>, len: u64, limits: &Limits) -> Result<()> {
    match kind {
        Some(kind) => too_big(label, kind, len, limits),
        None if len > limits.largest() => Err(bad(format!(
            "{label} is {}, larger than any attachment may be ({} at most)",
            size(len),
            size(limits.largest())
        ))),
        None => Ok(()),
    }
}

/// The known media type `declared` stands for, or an error naming `label`.
fn known(label: &str, declared: &str) -> Result<&'static str> {
    mime::normalize(declared).ok_or_else(|| {
        bad(format!(
            "{label} has the media type {declared:?}, which cannot be attached; attach PNG, \
             JPEG, WebP or GIF images, PDFs, text documents, or WAV/MP3 sounds"
        ))
    })
}

/// The media type of `bytes`: the declared one when the bytes show it, else the sniffed one.
fn settle(label: &str, bytes: &[u8], declared: Option<&str>) -> Result<&'static str> {
    let declared = declared.map(|d| known(label, d)).transpose()?;
    match (declared, mime::sniff(bytes)) {
        (Some(d), Some(s)) if mime::agrees(d, s) => Ok(d),
        (Some(d), Some(s)) => Err(bad(format!(
            "{label} is labelled {d} but its bytes are {s}; fix its name or media type"
        ))),
        (Some(d), None) => Err(bad(format!(
            "{label} is labelled {d} but its bytes are not {d}: the file is damaged or \
             mislabelled"
        ))),
        (None, Some(s)) => Ok(s),
        (None, None) => Err(bad(format!(
            "cannot tell what {label} is: its bytes are not a PNG, JPEG, WebP or GIF image, a \
             PDF, a sound, or UTF-8 text"
        ))),
    }
}

/// An attachment part from bytes: its type from `declared` (checked against the bytes) or
/// from the bytes themselves, and `name` kept for documents.
///
/// ```
/// use oy3o::attachment::{Limits, from_bytes};
/// let part = from_bytes(b"%PDF-1.7\n...", None, Some("a.pdf".into()), &Limits::default()).unwrap();
/// assert_eq!(part.kind(), "document");
/// let png_named_jpeg = from_bytes(b"\x89PNG\r\n\x1a\n....", Some("image/jpeg"), None, &Limits::default());
/// assert!(png_named_jpeg.unwrap_err().message().contains("labelled image/jpeg"));
/// ```
pub fn from_bytes(
    bytes: &[u8],
    declared: Option<&str>,
    name: Option<String>,
    limits: &Limits,
) -> Result<Part> {
    let label = match &name {
        Some(n) => format!("the attachment {n}"),
        None => "the attachment".to_owned(),
    };
    part_of(&label, bytes, declared, name, limits)
}

fn part_of(
    label: &str,
    bytes: &[u8],
    declared: Option<&str>,
    name: Option<String>,
    limits: &Limits,
) -> Result<Part> {
    if bytes.is_empty() {
        return Err(bad(format!("{label} is empty")));
    }
    let mime = settle(label, bytes, declared)?;
    let kind = mime::kind_of(mime).unwrap_or(Kind::Text);
    too_big(label, kind, bytes.len() as u64, limits)?;
    Ok(build(
        kind,
        mime,
        Source::Base64(STANDARD.encode(bytes)),
        name,
    ))
}

fn build(kind: Kind, mime: &str, source: Source, name: Option<String>) -> Part {
    let mime = mime.to_owned();
    match kind {
        Kind::Image => Part::Image { mime, source },
        Kind::Audio => Part::Audio { mime, source },
        Kind::Pdf | Kind::Text => Part::Document { mime, source, name },
    }
}

/// An attachment part from a file: its type from `declared`, else its extension, checked
/// against its bytes (or from the bytes alone). A file over every limit is refused before it
/// is read.
pub fn from_path(path: &Path, declared: Option<&str>, limits: &Limits) -> Result<Part> {
    let shown = path.display();
    let label = format!("the file {shown}");
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::new(
            ErrorCode::NotFound,
            format!("cannot attach {shown}: there is no such file"),
        ),
        _ => bad(format!("cannot attach {shown}: {e}")),
    })?;
    if !meta.is_file() {
        return Err(bad(format!("cannot attach {shown}: it is not a file")));
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let declared = declared.or_else(|| name.as_deref().and_then(mime::from_extension));
    over_limit(&label, declared.and_then(mime::kind_of), meta.len(), limits)?;
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read {shown}: {e}")))?;
    part_of(&label, &bytes, declared, name, limits)
}

/// An attachment part that stays a URL: the model fetches it, or the chat does before sending
/// when the model cannot ([`Capabilities`]). Its type is `declared` or told by the URL's
/// extension.
pub fn from_url(url: &str, declared: Option<&str>, name: Option<String>) -> Result<Part> {
    let label = format!("the attachment at {url}");
    let parsed = check_url(&label, url)?;
    let from_path = parsed
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let mime = match declared {
        Some(d) => known(&label, d)?,
        None => from_path
            .as_deref()
            .and_then(mime::from_extension)
            .ok_or_else(|| {
                bad(format!(
                    "cannot tell what {label} is from its name; give its media type \
                     (image/png, application/pdf...)"
                ))
            })?,
    };
    let kind = mime::kind_of(mime).unwrap_or(Kind::Text);
    Ok(build(
        kind,
        mime,
        Source::Url(url.to_owned()),
        name.or(from_path),
    ))
}

fn check_url(label: &str, url: &str) -> Result<reqwest::Url> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| bad(format!("{label}: not a valid URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "{label}: only http:// and https:// URLs can be attached"
        )));
    }
    Ok(parsed)
}

/// How long fetching one attachment may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Fetches `url` with `client` and makes it an inline attachment part: its type is `declared`,
/// else the answer's `Content-Type`, else the URL's extension, checked against the bytes. A
/// body over the limit is refused as soon as it is known to be (from its length, or while it
/// is read); a URL that does not answer, or answers with an error status, is an error naming it.
pub async fn fetch(
    url: &str,
    declared: Option<&str>,
    name: Option<String>,
    client: &reqwest::Client,
    limits: &Limits,
) -> Result<Part> {
    let label = format!("the attachment at {url}");
    let parsed = check_url(&label, url)?;
    let from_path = parsed
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let response = client
        .get(parsed)
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| {
            let code = if e.is_timeout() {
                ErrorCode::Timeout
            } else {
                ErrorCode::Network
            };
            Error::new(code, format!("cannot fetch {label}: {e}"))
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(bad(format!(
            "cannot fetch {label}: the server answered {status}"
        )));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(mime::normalize);
    let declared = declared
        .map(|d| known(&label, d))
        .transpose()?
        .or(content_type)
        .or_else(|| from_path.as_deref().and_then(mime::from_extension));
    let kind = declared.and_then(mime::kind_of);
    if let Some(len) = response.content_length() {
        over_limit(&label, kind, len, limits)?;
    }
    let mut bytes = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::network(format!("cannot fetch {label}: {e}")))?;
        bytes.extend_from_slice(&chunk);
        over_limit(&label, kind, bytes.len() as u64, limits)?;
    }
    part_of(&label, &bytes, declared, name.or(from_path), limits)
}

/// Replaces each URL part of `message` that `fetch_it` picks with the fetched bytes
/// ([`fetch`]). For models that cannot fetch URLs themselves.
pub(crate) async fn inline_urls(
    mut message: Message,
    fetch_it: impl Fn(&Part) -> bool,
    client: &reqwest::Client,
    limits: &Limits,
) -> Result<Message> {
    for part in &mut message.parts {
        if !fetch_it(part) {
            continue;
        }
        let (mime, url, name) = match &*part {
            Part::Image {
                mime,
                source: Source::Url(url),
            }
            | Part::Audio {
                mime,
                source: Source::Url(url),
            } => (mime, url, None),
            Part::Document {
                mime,
                source: Source::Url(url),
                name,
            } => (mime, url, name.clone()),
            _ => continue,
        };
        *part = fetch(url, Some(mime), name, client, limits).await?;
    }
    Ok(message)
}

/// Checks attachment parts built elsewhere (a face's base64 or URL, a restored message): a
/// known media type that suits the part, base64 that decodes to bytes of that type within
/// the limits, or an `http(s)` URL. Errors name the part by its place (`part 2`).
pub fn check_parts(parts: &[Part], limits: &Limits) -> Result<()> {
    for (i, part) in parts.iter().enumerate() {
        let (mime, source, name) = match part {
            Part::Image { mime, source } | Part::Audio { mime, source } => (mime, source, None),
            Part::Document { mime, source, name } => (mime, source, name.as_deref()),
            _ => continue,
        };
        let label = match name {
            Some(n) => format!("part {} ({} {n})", i + 1, part.kind()),
            None => format!("part {} ({})", i + 1, part.kind()),
        };
        let known = known(&label, mime)?;
        let kind = mime::kind_of(known).unwrap_or(Kind::Text);
        let suits = match part {
            Part::Image { .. } => kind == Kind::Image,
            Part::Audio { .. } => kind == Kind::Audio,
            _ => matches!(kind, Kind::Pdf | Kind::Text),
        };
        if !suits {
            return Err(bad(format!(
                "{label} has the media type {known}, which is not an {}; send it as a {} part",
                part.kind(),
                kind.as_str()
            )));
        }
        match source {
            Source::Url(url) => {
                check_url(&label, url)?;
            }
            Source::Base64(data) => {
                // Cheap first: the decoded size follows from the text's length.
                too_big(&label, kind, data.len() as u64 / 4 * 3, limits)?;
                let bytes = STANDARD.decode(data).map_err(|e| {
                    bad(format!(
                        "{label} is not valid base64 ({e}); send standard base64 without line \
                         breaks or a data: prefix"
                    ))
                })?;
                if bytes.is_empty() {
                    return Err(bad(format!("{label} is empty")));
                }
                settle(&label, &bytes, Some(known))?;
            }
        }
    }
    Ok(())
}

/// The SHA-256 of `bytes` in lower-case hex: the address of an attachment's content.
///
/// ```
/// assert_eq!(
///     oy3o::attachment::digest(b"abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in hash {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    hex
}

/// The bytes of a base64 source, if they decode.
pub(crate) fn decoded(data: &str) -> Option<Vec<u8>> {
    STANDARD.decode(data).ok()
}

/// `data:MIME;base64,DATA`, as OpenAI's image, file and Responses parts take inline bytes
/// (TOOLS.md §1.4, §2.4).
pub(crate) fn data_url(mime: &str, data: &str) -> String {
    format!("data:{mime};base64,{data}")
}

/// Whether `mime` is a text document's type (sent as text where a provider has no document
/// type).
pub(crate) fn is_text(mime: &str) -> bool {
    mime::kind_of(mime) == Some(Kind::Text)
}

/// A text document as text for a provider without a document type: its contents between
/// `<document name="...">` and `</document>` so the model can tell it from the prompt.
/// `None` for other parts.
pub(crate) fn document_text(part: &Part) -> Option<String> {
    let Part::Document {
        mime,
        source: Source::Base64(data),
        name,
    } = part
    else {
        return None;
    };
    if !is_text(mime) {
        return None;
    }
    let text = String::from_utf8_lossy(&decoded(data)?).into_owned();
    Some(match name {
        Some(n) => format!("<document name=\"{n}\">\n{text}\n</document>"),
        None => format!("<document>\n{text}\n</document>"),
    })
}
