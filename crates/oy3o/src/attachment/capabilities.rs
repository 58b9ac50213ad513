//! What a model can take besides text: [`Capabilities`], given by each provider per target
//! ([`crate::Provider::capabilities`]) and checked by [`crate::message::require_supported`]
//! before anything is sent.

use super::mime::{self, Kind};
use crate::message::{Part, Source};

/// Which attachment URLs a model fetches itself; the others are fetched by the engine and
/// sent as bytes (see [`super::inline_urls`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Urls {
    /// None: every attachment goes as bytes.
    None,
    /// Any `http(s)` URL.
    Any,
    /// Only URLs under this prefix (Gemini's File API, TOOLS.md §4.4).
    Under(&'static str),
}

impl Urls {
    fn allows(self, url: &str) -> bool {
        match self {
            Self::None => false,
            Self::Any => true,
            Self::Under(prefix) => url.starts_with(prefix),
        }
    }
}

/// What a model can take besides text.
///
/// ```
/// use oy3o::{Capabilities, Part, Source};
/// let image = Part::Image { mime: "image/png".into(), source: Source::Url("https://x/y.png".into()) };
/// let vision = Capabilities { images: true, image_urls: oy3o::attachment::Urls::Any, ..Capabilities::TEXT };
/// assert!(vision.takes(&image).is_ok());
/// assert!(Capabilities::TEXT.takes(&image).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Tools, tool calls and tool results ([`crate::Provider::takes_tools`]).
    pub tools: bool,
    /// Images (PNG, JPEG, WebP, GIF) as bytes.
    pub images: bool,
    /// Which image URLs it fetches itself.
    pub image_urls: Urls,
    /// PDFs as bytes.
    pub pdfs: bool,
    /// Text documents (`text/plain`, `text/markdown`...), as a document or as text.
    pub text_documents: bool,
    /// Which PDF and audio URLs it fetches itself.
    pub file_urls: Urls,
    /// The audio media types it takes (`audio/wav`...); none when empty.
    pub audio: &'static [&'static str],
}

impl Capabilities {
    /// Text only: no tools, no attachments.
    pub const TEXT: Self = Self {
        tools: false,
        images: false,
        image_urls: Urls::None,
        pdfs: false,
        text_documents: false,
        file_urls: Urls::None,
        audio: &[],
    };

    /// Whether it can take the attachment `part` as it is; if not, the reason, in words that
    /// follow "cannot take" (`image parts`, `PDF parts by URL`). Text, tool and reasoning parts
    /// are the roles' business ([`crate::message::require_supported`]) and pass here.
    pub fn takes(&self, part: &Part) -> Result<(), String> {
        let (mime, source) = match part {
            Part::Image { mime, source }
            | Part::Document { mime, source, .. }
            | Part::Audio { mime, source } => (mime, source),
            _ => return Ok(()),
        };
        let Some(kind) = mime::kind_of(mime) else {
            return Err(format!("{} parts of type {mime:?}", part.kind()));
        };
        let (takes_kind, urls) = match kind {
            Kind::Image => (self.images, self.image_urls),
            Kind::Pdf => (self.pdfs, self.file_urls),
            // No model fetches a text URL (the engine does).
            Kind::Text => (self.text_documents, Urls::None),
            Kind::Audio => (
                mime::normalize(mime).is_some_and(|m| self.audio.contains(&m)),
                self.file_urls,
            ),
        };
        if !takes_kind {
            let what = if kind == Kind::Audio {
                format!("audio of type {mime}")
            } else {
                format!("{} parts", kind.as_str())
            };
            return Err(what);
        }
        match source {
            Source::Url(url) if !urls.allows(url) => {
                Err(format!("{} parts by URL ({url})", kind.as_str()))
            }
            _ => Ok(()),
        }
    }

    /// Whether it takes parts of this kind at all (as bytes, whatever their source).
    pub(crate) fn takes_kind(&self, mime: &str) -> bool {
        match mime::kind_of(mime) {
            Some(Kind::Image) => self.images,
            Some(Kind::Pdf) => self.pdfs,
            Some(Kind::Text) => self.text_documents,
            Some(Kind::Audio) => mime::normalize(mime).is_some_and(|m| self.audio.contains(&m)),
            None => false,
        }
    }
}
