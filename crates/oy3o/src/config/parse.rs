//! Reading TOML or JSON files with errors that name the file, the line and the key: the one
//! parser behind config files, chain files and the server's settings.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Which syntax a file is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// TOML.
    Toml,
    /// JSON.
    Json,
}

/// Parses `text` as `T`. `what` starts every error (`config error in`, `chain file`), then the
/// path, the 1-based line and where in the document (`describe` turns the serde path, such as
/// `stages[0].tasks[1].prompt`, into words; [`key`] gives `, key `prompt``), then the reason.
///
/// ```
/// use std::path::Path;
/// use oy3o::config::{parse, Syntax, key};
/// #[derive(serde::Deserialize, Debug)]
/// #[serde(deny_unknown_fields)]
/// struct Settings { port: u16 }
/// let err = parse::<Settings>("port = 1\nprot = 2\n", Path::new("s.toml"), Syntax::Toml, "config error in", key).unwrap_err();
/// assert!(err.message().starts_with("config error in s.toml line 2"), "{}", err.message());
/// let err = parse::<Settings>("{\n \"port\": \"x\"\n}", Path::new("s.json"), Syntax::Json, "config error in", key).unwrap_err();
/// assert!(err.message().contains("line 2, key `port`"), "{}", err.message());
/// ```
pub fn parse<T: DeserializeOwned>(
    text: &str,
    path: &Path,
    syntax: Syntax,
    what: &str,
    describe: fn(&str) -> String,
) -> Result<T> {
    let fail = |line: usize, at: String, reason: &str| {
        Error::config(format!(
            "{what} {} line {line}{at}: {reason}",
            path.display()
        ))
    };
    match syntax {
        Syntax::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let at = describe(&e.path().to_string());
                let inner = e.into_inner();
                let message = inner.to_string();
                let reason = message.split(" at line ").next().unwrap_or(&message);
                fail(inner.line().max(1), at, reason)
            })
        }
        Syntax::Toml => {
            let de = toml::Deserializer::parse(text)
                .map_err(|e| fail(line_of(text, &e), String::new(), e.message().trim()))?;
            serde_path_to_error::deserialize(de).map_err(|e| {
                let at = describe(&e.path().to_string());
                fail(line_of(text, e.inner()), at, e.inner().message().trim())
            })
        }
    }
}

/// `, key `a.b`` for a serde path, nothing for the document itself (`.`, `?`, empty).
pub fn key(path: &str) -> String {
    match path {
        "" | "." | "?" => String::new(),
        key => format!(", key `{key}`"),
    }
}

/// The syntax of a file: by its extension, else by its first characters (`{` is JSON).
pub fn syntax_of(path: &Path, text: &str) -> Syntax {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => Syntax::Json,
        Some("toml") => Syntax::Toml,
        _ if text.trim_start().starts_with('{') => Syntax::Json,
        _ => Syntax::Toml,
    }
}

/// The 1-based line a TOML error points at.
fn line_of(text: &str, e: &toml::de::Error) -> usize {
    e.span().map(|s| line_of_offset(text, s.start)).unwrap_or(1)
}

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_of_offset(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
    }

    #[test]
    fn a_json_error_in_the_document_itself_names_no_key() {
        let err = parse::<Doc>(
            "42",
            Path::new("c.json"),
            Syntax::Json,
            "config error in",
            key,
        )
        .unwrap_err();
        assert!(!err.message().contains("key"), "{}", err.message());
        assert!(err.message().starts_with("config error in c.json line 1: "));
    }

    #[test]
    fn syntax_comes_from_the_extension_then_the_text() {
        assert_eq!(syntax_of(Path::new("a.json"), "x = 1"), Syntax::Json);
        assert_eq!(syntax_of(Path::new("a"), " {\"a\": 1}"), Syntax::Json);
        assert_eq!(syntax_of(Path::new("a.conf"), "a = 1"), Syntax::Toml);
    }
}
