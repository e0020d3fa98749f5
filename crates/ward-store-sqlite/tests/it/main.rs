//! SQLite store tests: the conformance suite on fresh database files, and what is particular to
//! SQLite (several processes on one file, in-memory databases).

// Integration tests are always built with cfg(test); saying so lets the workspace's
// allow-unwrap-in-tests (and friends) cover the helpers below, not only #[test] functions.
#![cfg(test)]

mod conformance;
mod sharing;

use tempfile::TempDir;
use ward_store::Store;
use ward_store_sqlite::SqliteStore;

/// A migrated store in a fresh temporary directory (removed when the `TempDir` drops).
async fn fresh(chain_id: &str) -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_in(&dir, chain_id).await;
    (dir, store)
}

async fn open_in(dir: &TempDir, chain_id: &str) -> SqliteStore {
    let url = format!("sqlite://{}", dir.path().join("ward.db").display());
    let store = SqliteStore::open(&url, chain_id).await.expect("open");
    store.migrate().await.expect("migrate");
    store
}

/// Closes the store, then fails the test with the check's message if it failed.
async fn finish(store: SqliteStore, result: Result<(), String>) {
    store.close().await;
    if let Err(err) = result {
        panic!("{}: {err}", store.backend());
    }
}
