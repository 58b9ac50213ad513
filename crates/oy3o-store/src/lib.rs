//! Conversation store for oy3o (issue #10), foundation only.
//!
//! This first piece parses the `store` setting: `sqlite:PATH`, `postgres://…` or `none`.
//! The `Store` trait, the SQLite and PostgreSQL backends (through `sqlx` 0.9) and the background
//! writer are the next steps; the crate already links `sqlx` with the lean feature set DEPS.md names.

mod setting;

pub use setting::{SettingError, StoreSetting};
