//! SQLite store tests: the conformance suite on fresh database files, and what is particular to
//! SQLite (several processes on one file, in-memory databases).

// Integration tests are always built with cfg(test); saying so lets the workspace's
// allow-unwrap-in-tests (and friends) cover the helpers below, not only #[test] functions.
#![cfg(test)]

mod conformance;
mod sharing;

use ward_store_sqlite::SqliteStore;
use ward_testkit::db::TempSqlite;

/// A migrated store on a fresh file (removed when the handle drops).
async fn fresh(chain_id: &str) -> (TempSqlite, SqliteStore) {
    let db = TempSqlite::new();
    let store = db.open(chain_id).await;
    (db, store)
}
