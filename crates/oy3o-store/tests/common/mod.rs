//! Throwaway databases for the store tests: an SQLite file in a temp dir, or a real PostgreSQL
//! server from the test kit (`oy3o_testkit::postgres`).

#![allow(dead_code)]

use oy3o_store::StoreSetting;
pub use oy3o_testkit::postgres::{Postgres, TempDir};

/// Which backend a test runs on.
pub enum Db {
    Sqlite(TempDir),
    Postgres(Postgres),
}

impl Db {
    pub fn sqlite() -> Self {
        Self::Sqlite(TempDir::new("sqlite"))
    }

    pub fn postgres() -> Self {
        Self::Postgres(Postgres::start())
    }

    pub fn setting(&self) -> StoreSetting {
        match self {
            Self::Sqlite(dir) => StoreSetting::Sqlite(dir.0.join("oy3o.db")),
            Self::Postgres(pg) => StoreSetting::Postgres(pg.url()),
        }
    }

    /// A raw SQL connection string for checks behind the store's back.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!("sqlite:{}", dir.0.join("oy3o.db").display()),
            Self::Postgres(pg) => pg.url(),
        }
    }
}
