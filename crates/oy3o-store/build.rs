//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds `migrations/` at
//! compile time, and Cargo only reruns a macro when a file it knows changes, so a new migration
//! file alone would leave the old list in the binary. This is the build script the `migrate!`
//! documentation recommends ("Triggering Recompilation on Migration Changes",
//! https://docs.rs/sqlx/latest/sqlx/macro.migrate.html).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
