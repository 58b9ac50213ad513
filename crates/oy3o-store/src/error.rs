//! Why a store operation failed.

/// A store failure: the database could not be opened, migrated, read or written.
///
/// Messages never hold a password: URLs are shown through [`crate::StoreSetting`]'s redaction.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened (bad path, server down, wrong credentials).
    #[error("cannot open the store {target}: {source}; check the `store` setting (or OY3O_STORE)")]
    Open {
        /// The store, password redacted.
        target: String,
        /// What the driver said.
        #[source]
        source: sqlx::Error,
    },
    /// A versioned migration failed.
    #[error("cannot migrate the store {target}: {source}")]
    Migrate {
        /// The store, password redacted.
        target: String,
        /// What the migrator said.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed (the database went away, a constraint, a full disk).
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored value could not be read back (corrupt JSON, unknown state).
    #[error("store holds an unreadable value: {0}")]
    Corrupt(String),
    /// The store setting is `none`: there is nowhere to write.
    #[error("no store is configured (store = \"none\")")]
    Disabled,
    /// No data directory is known for the default SQLite file.
    #[error("no data directory on this system: set `store = \"sqlite:PATH\"` or OY3O_STORE")]
    NoDataDir,
    /// The recorder could not write (the database is down or slow); it keeps the turns in memory
    /// and retries.
    #[error("the store is unavailable ({0}); turns are kept in memory and written when it returns")]
    Unavailable(String),
    /// A key of that name exists already (revoked ones keep their name).
    #[error("a key named {0:?} exists already; pick another name (revoked keys keep theirs)")]
    KeyExists(String),
    /// A local file or directory could not be created.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
}

impl From<StoreError> for oy3o::Error {
    fn from(e: StoreError) -> Self {
        oy3o::Error::new(e.code(), e.to_string())
    }
}

/// The result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Whether the database refused these rows (a unique, foreign-key, not-null or check
    /// constraint): writing them again cannot succeed, unlike a database that is down.
    pub fn is_constraint(&self) -> bool {
        match self {
            Self::Query(sqlx::Error::Database(e)) => {
                !matches!(e.kind(), sqlx::error::ErrorKind::Other)
            }
            _ => false,
        }
    }

    /// The engine's error code for this failure, so every face reports it alike: a database
    /// that cannot be reached (refused, reset, timed out, down) is a `network` error (exit 5);
    /// a setting, path, migration or stored value that is wrong is a `config` error (exit 3).
    pub fn code(&self) -> oy3o::ErrorCode {
        use oy3o::ErrorCode;
        let driver = match self {
            Self::Open { source, .. } | Self::Query(source) => Some(source),
            _ => None,
        };
        match driver {
            Some(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_),
            ) => ErrorCode::Network,
            _ => match self {
                Self::Unavailable(_) => ErrorCode::Network,
                _ => ErrorCode::Config,
            },
        }
    }

    /// A short form for a one-line warning.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }
}
