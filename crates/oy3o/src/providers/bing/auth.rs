//! Who the session is (`shared/wire/COPILOT.md` §A.3): the browser's cookies (a cookie export,
//! or a `Cookie:` header line), updated by the cookies the service sets, and an optional MSAL
//! access token of a signed-in account.

use crate::credential::Credential;

/// The cookies sent to the service and the optional access token.
#[derive(Clone, Default, PartialEq, Eq)]
pub(super) struct Identity {
    cookies: Vec<(String, String)>,
    /// A signed-in account's access token (`accessToken=` on the socket URL).
    pub(super) token: Option<String>,
}

impl Identity {
    /// From the configured credential: a cookie export is the cookies; a key with `=` in it is
    /// a `Cookie:` header line (`a=1; b=2`); any other key is an access token.
    pub(super) fn from_credential(credential: Option<&Credential>) -> Self {
        match credential {
            Some(Credential::Cookies(c)) => Self {
                cookies: c.clone(),
                token: None,
            },
            Some(Credential::Key(k)) if k.contains('=') => Self {
                cookies: k
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                    .filter(|(n, _)| !n.is_empty())
                    .collect(),
                token: None,
            },
            Some(Credential::Key(k)) if !k.is_empty() => Self {
                cookies: Vec::new(),
                token: Some(k.clone()),
            },
            _ => Self::default(),
        }
    }

    /// Whether there is anything to authenticate with.
    pub(super) fn is_empty(&self) -> bool {
        self.cookies.is_empty() && self.token.is_none()
    }

    /// Sets (or replaces) one cookie, as a `Set-Cookie` from the service does.
    pub(super) fn set_cookie(&mut self, name: &str, value: &str) {
        match self.cookies.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value.to_owned(),
            None => self.cookies.push((name.to_owned(), value.to_owned())),
        }
    }

    /// Takes the cookies of `Set-Cookie` header values (`name=value; Path=/; ...`).
    pub(super) fn absorb<'a>(&mut self, set_cookies: impl Iterator<Item = &'a str>) {
        for line in set_cookies {
            let first = line.split(';').next().unwrap_or_default();
            if let Some((name, value)) = first.split_once('=') {
                let name = name.trim();
                if !name.is_empty() {
                    self.set_cookie(name, value.trim());
                }
            }
        }
    }

    /// The cookies this identity holds that `before` did not (or held with another value): what
    /// the service set.
    pub(super) fn set_since(&self, before: &Identity) -> Vec<(String, String)> {
        self.cookies
            .iter()
            .filter(|c| !before.cookies.contains(c))
            .cloned()
            .collect()
    }

    /// The `Cookie:` header value, if there are cookies.
    pub(super) fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Replaces every cookie value and the token in `text` with `<redacted>`.
    pub(super) fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        let secrets = self
            .cookies
            .iter()
            .map(|(_, v)| v.as_str())
            .chain(self.token.as_deref());
        for secret in secrets {
            if secret.len() >= 4 {
                out = out.replace(secret, "<redacted>");
            }
        }
        out
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.cookies.iter().map(|(n, _)| n.as_str()).collect();
        write!(
            f,
            "Identity({names:?} = <redacted>, token: {})",
            if self.token.is_some() {
                "<redacted>"
            } else {
                "none"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_header_lines_and_tokens_are_told_apart() {
        let jar = Identity::from_credential(Some(&Credential::parse(
            r#"[{"name":"MUID","value":"m1","domain":".microsoft.com"}]"#,
        )));
        assert_eq!(jar.cookie_header().as_deref(), Some("MUID=m1"));
        let line = Identity::from_credential(Some(&Credential::parse("a=1; b=2")));
        assert_eq!(line.cookie_header().as_deref(), Some("a=1; b=2"));
        let token = Identity::from_credential(Some(&Credential::parse("eyJ0eXAi.x.y")));
        assert_eq!(token.token.as_deref(), Some("eyJ0eXAi.x.y"));
        assert!(token.cookie_header().is_none());
    }

    #[test]
    fn set_cookie_lines_replace_or_add_cookies_and_nothing_secret_is_shown() {
        let mut jar = Identity::from_credential(Some(&Credential::parse(r#"{"a":"old-value"}"#)));
        jar.absorb(
            [
                "a=new-value; Path=/; Secure",
                "__Host-copilot-anon=anon-123; HttpOnly",
            ]
            .into_iter(),
        );
        assert_eq!(
            jar.cookie_header().as_deref(),
            Some("a=new-value; __Host-copilot-anon=anon-123")
        );
        let shown = format!("{jar:?}");
        assert!(
            !shown.contains("new-value") && !shown.contains("anon-123"),
            "{shown}"
        );
        assert_eq!(jar.redact("x anon-123 y"), "x <redacted> y");
    }
}
