//! Every conformance check, each in its own schema, then the whole suite in one.

use ward_store::Store;
use ward_store::conformance::{Check, Harness};

use crate::{finish, node, with_schema};

/// Fresh schemas of the database at `WARD_TEST_DATABASE_URL`.
struct Schemas;

impl Harness for Schemas {
    async fn one(check: impl AsyncFnOnce(&dyn Store) -> Check) {
        with_schema(async |url| {
            let store = node(&url, "node-1").await;
            let result = check(&store).await;
            finish(store, result).await;
        })
        .await;
    }

    async fn two(check: impl AsyncFnOnce(&dyn Store, &dyn Store) -> Check) {
        with_schema(async |url| {
            // Both nodes start (and migrate) together.
            let (a, b) = tokio::join!(node(&url, "node-a"), node(&url, "node-b"));
            let result = check(&a, &b).await;
            b.close().await;
            finish(a, result).await;
        })
        .await;
    }
}

ward_store::conformance_tests!(Schemas);
