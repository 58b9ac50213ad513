//! # oy3o-store
//!
//! The conversation store of oy3o (issue #10): chats, their turns and task-chain runs, kept in
//! **SQLite** (the embedded default, one file in the data dir) or **PostgreSQL** (shared by
//! several `oy3o serve` instances), behind one object-safe [`Store`] trait.
//!
//! - [`StoreSetting`] parses the `store` setting (`none`, `sqlite:PATH`, `postgres://…`).
//! - [`open`] opens a backend, runs its versioned migrations, registers this process as an
//!   instance and marks the turns of dead instances `interrupted`.
//! - [`Recorder`] records answers as they stream without ever waiting for the database: faces
//!   call its synchronous [`TurnRecorder`] methods; a background writer batches the writes.
//!
//! Not here: what a face shows or how it names things (the CLI, server and Python faces do that).

mod attachments;
mod conversation;
mod error;
mod key;
mod pg_text;
mod postgres;
mod record;
mod recorder;
mod rows;
mod setting;
mod shared;
mod sqlite;
mod store;

pub use attachments::attachment_line;
pub use conversation::{RecordedConversations, conversation_record};
pub use error::{Result, StoreError};
pub use key::{Budget, KeyRecord, Period, UsageRow};
pub use postgres::PostgresStore;
pub use record::{
    ChainRunRecord, ChatRecord, ChatSummary, LoggedTurn, Pruned, TITLE_CHARS, TurnRecord,
    TurnState, history, new_id, now_ms, prompt_parts,
};
pub use recorder::{Health, PENDING_TURN_OVERHEAD, Recorder, RecorderOptions, TurnRecorder};
pub use setting::{ChoiceError, SettingError, SettingSource, StoreSetting};
pub use sqlite::SqliteStore;
pub use store::{
    HEARTBEAT_EVERY, OpenOptions, SHORT_LIVED_WAL_PAGES, Store, default_sqlite_path, open,
    open_with,
};
