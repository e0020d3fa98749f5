//! PostgreSQL store tests. They need a server: set `WARD_TEST_DATABASE_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/test`). Each test works in a fresh schema of that
//! database and drops it afterwards. Without the variable the tests are skipped, unless
//! `WARD_TEST_STRICT=1` (CI), which turns the skip into a failure.

// Integration tests are always built with cfg(test); saying so lets the workspace's
// allow-unwrap-in-tests (and friends) cover the helpers below, not only #[test] functions.
#![cfg(test)]

mod conformance;
mod signals;

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use sqlx::{Connection, PgConnection};
use ward_store::Store;
use ward_store_postgres::PostgresStore;

/// The server to test against, or `None` (after saying so) when the tests are skipped.
fn database_url() -> Option<String> {
    match std::env::var("WARD_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let strict = std::env::var("WARD_TEST_STRICT").is_ok_and(|v| v == "1");
            assert!(
                !strict,
                "WARD_TEST_STRICT=1 but WARD_TEST_DATABASE_URL is not set"
            );
            eprintln!(
                "SKIPPED: PostgreSQL store tests need WARD_TEST_DATABASE_URL \
                 (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// Runs `test` with the URL of a fresh schema, then drops the schema, even if `test` panicked.
async fn with_schema<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(url) = database_url() else { return };
    let mut admin = PgConnection::connect(&url)
        .await
        .expect("connect to WARD_TEST_DATABASE_URL");
    let schema: String = sqlx::query_scalar("SELECT 'ward_test_' || md5(random()::text)")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    // The name is generated above from hex digits only.
    let create = format!("CREATE SCHEMA {schema}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut admin)
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");

    let outcome = AssertUnwindSafe(test(scoped)).catch_unwind().await;

    let drop = format!("DROP SCHEMA {schema} CASCADE");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Opens a node on `url` and migrates.
async fn node(url: &str, chain_id: &str) -> PostgresStore {
    let store = PostgresStore::open(url, chain_id).await.expect("open");
    store.migrate().await.expect("migrate");
    store
}

/// Closes the store, then fails the test with the check's message if it failed.
async fn finish(store: PostgresStore, result: Result<(), String>) {
    store.close().await;
    if let Err(err) = result {
        panic!("{}: {err}", store.backend());
    }
}
