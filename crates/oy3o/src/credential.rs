//! Credentials: API keys and cookie jars. Never printed: `Debug` and `Display` redact them.

use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};

/// What the original library called `cookie`: an API key for API providers, or a browser cookie
/// export for cookie-authenticated services such as `bing`.
///
/// ```
/// use oy3o::Credential;
/// let key = Credential::parse("sk-secret");
/// assert_eq!(format!("{key:?}"), "Credential::Key(<redacted>)");
/// let jar = Credential::parse(r#"[{"name":"_U","value":"abc","domain":".bing.com"}]"#);
/// assert_eq!(jar.cookie("_U"), Some("abc"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A bearer token or API key.
    Key(String),
    /// Cookies as `(name, value)` pairs, in the order given.
    Cookies(Vec<(String, String)>),
}

impl Credential {
    /// Reads a credential from text: a JSON cookie export (a list of `{name, value, ...}` or a
    /// `{name: value}` object) becomes [`Credential::Cookies`]; anything else is a key.
    pub fn parse(text: &str) -> Self {
        let trimmed = text.trim();
        if (trimmed.starts_with('[') || trimmed.starts_with('{'))
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed)
            && let Some(cookies) = cookies_from_json(&value)
        {
            return Self::Cookies(cookies);
        }
        Self::Key(trimmed.to_owned())
    }

    /// Reads a credential from a file (a cookie export or a file holding a key).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!(
                "cannot read credential file {}: {e}; pass a readable cookie export or key file",
                path.display()
            ))
        })?;
        Ok(Self::parse(&text))
    }

    /// The key, if this is a key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Key(k) => Some(k),
            Self::Cookies(_) => None,
        }
    }

    /// The value of one cookie, if this is a cookie jar holding it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        match self {
            Self::Cookies(c) => c.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()),
            Self::Key(_) => None,
        }
    }

    /// `name=value; ...`, as sent in a `Cookie` header; a key is returned as it is.
    pub fn cookie_header(&self) -> String {
        match self {
            Self::Key(k) => k.clone(),
            Self::Cookies(c) => c
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    /// Replaces every occurrence of the secret in `text` with `<redacted>`, so error messages
    /// that echo upstream bodies never leak it.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        let secrets: Vec<&str> = match self {
            Self::Key(k) => vec![k.as_str()],
            Self::Cookies(c) => c.iter().map(|(_, v)| v.as_str()).collect(),
        };
        for secret in secrets {
            if secret.len() >= 4 {
                out = out.replace(secret, "<redacted>");
            }
        }
        out
    }
}

fn cookies_from_json(value: &serde_json::Value) -> Option<Vec<(String, String)>> {
    match value {
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| {
                let name = item.get("name")?.as_str()?;
                let value = item.get("value")?.as_str()?;
                Some((name.to_owned(), value.to_owned()))
            })
            .collect(),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect(),
        _ => None,
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(_) => f.write_str("Credential::Key(<redacted>)"),
            Self::Cookies(c) => {
                let names: Vec<&str> = c.iter().map(|(n, _)| n.as_str()).collect();
                write!(f, "Credential::Cookies({names:?} = <redacted>)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_object_and_list_forms_parse_the_same() {
        let list = Credential::parse(r#"[{"name":"a","value":"1"},{"name":"b","value":"2"}]"#);
        let object = Credential::parse(r#"{"a":"1","b":"2"}"#);
        assert_eq!(list, object);
        assert_eq!(list.cookie_header(), "a=1; b=2");
    }

    #[test]
    fn debug_never_shows_secret_values() {
        let jar = Credential::parse(r#"{"_U":"topsecretvalue"}"#);
        let shown = format!("{jar:?}");
        assert!(!shown.contains("topsecretvalue"));
        assert!(shown.contains("_U"));
    }

    #[test]
    fn redact_hides_the_key_inside_messages() {
        let key = Credential::parse("sk-abcdef123");
        assert_eq!(
            key.redact("bad key sk-abcdef123 given"),
            "bad key <redacted> given"
        );
    }
}
