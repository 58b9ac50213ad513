//! The `store` setting: where conversations are kept.

use std::fmt;
use std::path::PathBuf;

/// Where the store lives, parsed from the `store` setting.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSetting {
    /// No store: nothing is written.
    None,
    /// An SQLite file (WAL mode).
    Sqlite(PathBuf),
    /// A PostgreSQL server; the URL may hold a password, so it is never printed as is.
    Postgres(String),
}

/// Why a `store` setting could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingError {
    /// The setting is empty.
    #[error("the store setting is empty: use `none`, `sqlite:PATH` or `postgres://USER@HOST/DB`")]
    Empty,
    /// `sqlite:` without a path.
    #[error("`sqlite:` needs a file path, e.g. `sqlite:/var/lib/oy3o/store.db`")]
    NoPath,
    /// A scheme the store does not know.
    #[error("unknown store `{0}`: use `none`, `sqlite:PATH` or `postgres://USER@HOST/DB`")]
    Unknown(String),
}

impl StoreSetting {
    /// Parses `none`, `sqlite:PATH` (also `sqlite://PATH`) or `postgres://…` / `postgresql://…`.
    pub fn parse(text: &str) -> Result<Self, SettingError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SettingError::Empty);
        }
        if text.eq_ignore_ascii_case("none") {
            return Ok(Self::None);
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(SettingError::NoPath);
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Self::Postgres(text.to_string()));
        }
        Err(SettingError::Unknown(redact(text)))
    }
}

/// Replaces the password of a `scheme://user:password@host` URL with `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

impl fmt::Display for StoreSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for StoreSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreSetting({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(StoreSetting::parse("none"), Ok(StoreSetting::None));
        assert_eq!(
            StoreSetting::parse("sqlite:/tmp/a.db"),
            Ok(StoreSetting::Sqlite(PathBuf::from("/tmp/a.db")))
        );
        assert_eq!(
            StoreSetting::parse("postgres://u:p@h/db"),
            Ok(StoreSetting::Postgres("postgres://u:p@h/db".into()))
        );
        assert_eq!(StoreSetting::parse(" "), Err(SettingError::Empty));
        assert_eq!(StoreSetting::parse("sqlite:"), Err(SettingError::NoPath));
    }

    #[test]
    fn never_prints_a_password() {
        let s = StoreSetting::parse("postgres://alice:s3cret@db:5432/oy3o").expect("parses");
        assert_eq!(s.to_string(), "postgres://alice:***@db:5432/oy3o");
        assert!(!format!("{s:?}").contains("s3cret"));
        let e = StoreSetting::parse("mysql://bob:hunter2@x/y").expect_err("unknown");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
