//! Media types of attachments: the ones the engine knows, what kind of part each is, and the
//! type a file's first bytes show (magic numbers), so that a mislabelled file is caught before
//! a provider sees it.

/// What kind of part a media type makes, which decides its size limit and who can take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// PNG, JPEG, WebP or GIF.
    Image,
    /// A PDF.
    Pdf,
    /// Plain text, markdown, CSV, JSON...: sent as text where a provider has no document type.
    Text,
    /// WAV, MP3, and the other sounds some providers take.
    Audio,
}

impl Kind {
    /// `image`, `PDF`, `text document` or `audio`, as errors say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Pdf => "PDF",
            Self::Text => "text document",
            Self::Audio => "audio",
        }
    }
}

/// Every media type an attachment may have, with its kind.
const KNOWN: &[(&str, Kind)] = &[
    ("image/png", Kind::Image),
    ("image/jpeg", Kind::Image),
    ("image/webp", Kind::Image),
    ("image/gif", Kind::Image),
    ("application/pdf", Kind::Pdf),
    ("text/plain", Kind::Text),
    ("text/markdown", Kind::Text),
    ("text/csv", Kind::Text),
    ("text/html", Kind::Text),
    ("text/xml", Kind::Text),
    ("application/json", Kind::Text),
    ("audio/wav", Kind::Audio),
    ("audio/mpeg", Kind::Audio),
    ("audio/ogg", Kind::Audio),
    ("audio/flac", Kind::Audio),
    ("audio/aac", Kind::Audio),
    ("audio/aiff", Kind::Audio),
];

/// Other spellings of known types (`image/jpg`, `audio/x-wav`, `audio/mp3`).
const ALIASES: &[(&str, &str)] = &[
    ("image/jpg", "image/jpeg"),
    ("image/pjpeg", "image/jpeg"),
    ("audio/x-wav", "audio/wav"),
    ("audio/wave", "audio/wav"),
    ("audio/vnd.wave", "audio/wav"),
    ("audio/mp3", "audio/mpeg"),
    ("audio/x-flac", "audio/flac"),
    ("audio/x-aiff", "audio/aiff"),
    ("text/x-markdown", "text/markdown"),
];

/// The known media type `mime` stands for, lower case and without parameters
/// (`Image/JPG; q=1` is `image/jpeg`), or `None` for a type attachments cannot have.
pub fn normalize(mime: &str) -> Option<&'static str> {
    let bare = mime.split(';').next().unwrap_or_default().trim();
    let lower = bare.to_ascii_lowercase();
    let lower = ALIASES
        .iter()
        .find(|(alias, _)| *alias == lower)
        .map_or(lower.as_str(), |(_, to)| *to);
    KNOWN.iter().find(|(m, _)| *m == lower).map(|(m, _)| *m)
}

/// The kind of a known media type.
pub fn kind_of(mime: &str) -> Option<Kind> {
    let known = normalize(mime)?;
    KNOWN.iter().find(|(m, _)| *m == known).map(|(_, k)| *k)
}

/// The media type the first bytes of `bytes` show: PNG, JPEG, WebP, GIF, PDF, WAV, MP3, OGG,
/// FLAC by their magic numbers; `text/plain` for valid UTF-8 without NUL bytes; else `None`.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    let riff = |form: &[u8]| starts(b"RIFF") && bytes.get(8..12) == Some(form);
    if starts(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if starts(b"\xFF\xD8\xFF") {
        Some("image/jpeg")
    } else if riff(b"WEBP") {
        Some("image/webp")
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some("image/gif")
    } else if starts(b"%PDF-") {
        Some("application/pdf")
    } else if riff(b"WAVE") {
        Some("audio/wav")
    } else if starts(b"ID3") || (bytes.len() > 1 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0) {
        Some("audio/mpeg")
    } else if starts(b"OggS") {
        Some("audio/ogg")
    } else if starts(b"fLaC") {
        Some("audio/flac")
    } else if starts(b"FORM") && bytes.get(8..12) == Some(&b"AIFF"[..]) {
        Some("audio/aiff")
    } else if !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok() {
        Some("text/plain")
    } else {
        None
    }
}

/// The media type a file name's extension suggests (`a.PNG` is `image/png`), if known.
pub fn from_extension(name: &str) -> Option<&'static str> {
    let (_, ext) = name.rsplit_once('.')?;
    let mime = match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "pdf" => "application/pdf",
        "txt" | "text" | "log" => "text/plain",
        "md" | "markdown" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "xml" => "text/xml",
        "json" => "application/json",
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        "flac" => "audio/flac",
        "aac" => "audio/aac",
        "aif" | "aiff" => "audio/aiff",
        _ => return None,
    };
    Some(mime)
}

/// Whether bytes sniffed as `sniffed` may carry the declared type `declared` (both known):
/// the same type, any text type over bytes that are text (`text/markdown` is text), or AAC,
/// whose frames start as MPEG audio's do.
pub fn agrees(declared: &str, sniffed: &str) -> bool {
    declared == sniffed
        || (kind_of(declared) == Some(Kind::Text) && sniffed == "text/plain")
        || (declared == "audio/aac" && sniffed == "audio/mpeg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_name_their_type() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0..JFIF"), Some("image/jpeg"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), Some("audio/wav"));
        assert_eq!(sniff(b"GIF89a.."), Some("image/gif"));
        assert_eq!(sniff(b"%PDF-1.7\n"), Some("application/pdf"));
        assert_eq!(sniff(b"ID3\x04"), Some("audio/mpeg"));
        assert_eq!(sniff("héllo".as_bytes()), Some("text/plain"));
        assert_eq!(sniff(b"\x00\x01\x02binary"), None);
        assert_eq!(sniff(b"\xC3\x28 broken utf-8"), None);
    }

    #[test]
    fn spellings_normalize_and_unknown_types_do_not() {
        assert_eq!(normalize("Image/JPG; q=1"), Some("image/jpeg"));
        assert_eq!(normalize("audio/x-wav"), Some("audio/wav"));
        assert_eq!(normalize("application/x-msdownload"), None);
        assert_eq!(kind_of("text/markdown"), Some(Kind::Text));
        assert_eq!(from_extension("Report.PDF"), Some("application/pdf"));
        assert!(agrees("text/markdown", "text/plain"));
        assert!(!agrees("image/png", "image/jpeg"));
    }
}
