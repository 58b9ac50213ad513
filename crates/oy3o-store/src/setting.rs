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

/// Where a `store` setting came from, so its error names the place to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingSource {
    /// The `--store` flag (or a face's own argument, e.g. Python's `store=`).
    Flag,
    /// The `OY3O_STORE` environment variable.
    Env,
    /// The config file's `store` key.
    Config,
}

impl fmt::Display for SettingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "--store",
            Self::Env => "OY3O_STORE",
            Self::Config => "the config's `store`",
        })
    }
}

/// A `store` setting that could not be parsed, and where it came from.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{source}: {error}")]
pub struct ChoiceError {
    /// Where the setting came from.
    pub source: SettingSource,
    /// What is wrong with it.
    #[source]
    pub error: SettingError,
}

impl StoreSetting {
    /// The setting in force, the same on every face: the flag (a face's own argument), else
    /// `OY3O_STORE`, else the config file's `store`; `Ok(None)` when none is given (the face
    /// then uses its default, e.g. [`StoreSetting::default_sqlite`]). An empty environment
    /// variable counts as unset. The first one given is parsed; the others are not looked at.
    ///
    /// ```
    /// use oy3o_store::StoreSetting;
    /// let chosen = StoreSetting::choose(None, Some("none"), Some("sqlite:/tmp/x.db"));
    /// assert_eq!(chosen, Ok(Some(StoreSetting::None)));
    /// ```
    pub fn choose(
        flag: Option<&str>,
        env: Option<&str>,
        config: Option<&str>,
    ) -> Result<Option<Self>, ChoiceError> {
        let given = [
            (SettingSource::Flag, flag),
            (SettingSource::Env, env.filter(|e| !e.trim().is_empty())),
            (SettingSource::Config, config),
        ]
        .into_iter()
        .find_map(|(source, text)| text.map(|t| (source, t)));
        match given {
            None => Ok(None),
            Some((source, text)) => Self::parse(text)
                .map(Some)
                .map_err(|error| ChoiceError { source, error }),
        }
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
    fn the_flag_wins_over_the_environment_and_the_environment_over_the_config() {
        let (flag, env, config) = (Some("none"), Some("sqlite:/e.db"), Some("sqlite:/c.db"));
        assert_eq!(
            StoreSetting::choose(flag, env, config),
            Ok(Some(StoreSetting::None))
        );
        assert_eq!(
            StoreSetting::choose(None, env, config),
            Ok(Some(StoreSetting::Sqlite("/e.db".into())))
        );
        assert_eq!(
            StoreSetting::choose(None, Some(""), config),
            Ok(Some(StoreSetting::Sqlite("/c.db".into())))
        );
        assert_eq!(StoreSetting::choose(None, None, None), Ok(None));
    }

    #[test]
    fn a_bad_setting_names_where_it_came_from() {
        let e = StoreSetting::choose(None, Some("mysql://x"), Some("none")).expect_err("bad");
        assert_eq!(e.source, SettingSource::Env);
        assert!(
            e.to_string().starts_with("OY3O_STORE: unknown store"),
            "{e}"
        );
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
