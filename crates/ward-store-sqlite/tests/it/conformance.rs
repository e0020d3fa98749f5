//! Every conformance check, each on its own database file, then the whole suite on one (also
//! in memory).

use ward_store::Store;
use ward_store::conformance::{self, Check, Harness};

use ward_testkit::db::close_then_check;

use crate::fresh;

/// Fresh database files in temporary directories.
struct Files;

impl Harness for Files {
    async fn one(check: impl AsyncFnOnce(&dyn Store) -> Check) {
        let (_dir, store) = fresh("node-1").await;
        let result = check(&store).await;
        close_then_check(&store, result).await;
    }

    async fn two(check: impl AsyncFnOnce(&dyn Store, &dyn Store) -> Check) {
        let (db, a) = fresh("node-a").await;
        let b = db.open("node-b").await;
        let result = check(&a, &b).await;
        b.close().await;
        close_then_check(&a, result).await;
    }
}

ward_store::conformance_tests!(Files);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_in_memory() {
    let store = ward_store_sqlite::SqliteStore::open("sqlite::memory:", "node-1")
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let result = conformance::run_all(&store).await;
    close_then_check(&store, result).await;
}
