//! Every conformance check, each in its own schema, then the whole suite in one.

use ward_store::Store;
use ward_store::conformance::{Check, Harness};

use ward_testkit::db::{close_then_check, on_postgres, open_postgres};

/// Fresh schemas of the database at `WARD_TEST_DATABASE_URL`.
struct Schemas;

impl Harness for Schemas {
    async fn one(check: impl AsyncFnOnce(&dyn Store) -> Check) {
        on_postgres(async |url| {
            let store = open_postgres(&url, "node-1").await;
            let result = check(&store).await;
            close_then_check(&store, result).await;
        })
        .await;
    }

    async fn two(check: impl AsyncFnOnce(&dyn Store, &dyn Store) -> Check) {
        on_postgres(async |url| {
            // Both nodes start (and migrate) together.
            let (a, b) = tokio::join!(open_postgres(&url, "node-a"), open_postgres(&url, "node-b"));
            let result = check(&a, &b).await;
            b.close().await;
            close_then_check(&a, result).await;
        })
        .await;
    }
}

ward_store::conformance_tests!(Schemas);
