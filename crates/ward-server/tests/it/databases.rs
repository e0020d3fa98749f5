//! The databases router tests run on: a SQLite file in a temporary directory, or a private
//! schema of the PostgreSQL test server named by `WARD_TEST_DATABASE_URL`.
//!
//! Without that variable a PostgreSQL test is skipped after saying so, unless
//! `WARD_TEST_STRICT=1` (CI), which turns the skip into a failure.

use std::sync::Arc;

use sqlx::{Connection, PgConnection};
use ward_store::Store;
use ward_store_postgres::PostgresStore;
use ward_store_sqlite::SqliteStore;

/// A migrated SQLite store in a fresh directory (kept as long as the directory is).
pub(crate) async fn sqlite(node: &str) -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let store = SqliteStore::open(&url, node).await.unwrap();
    store.migrate().await.unwrap();
    (dir, Arc::new(store))
}

/// The PostgreSQL server to test against, or `None` (after saying so) when the test is skipped.
fn postgres_url() -> Option<String> {
    match std::env::var("WARD_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let strict = std::env::var("WARD_TEST_STRICT").is_ok_and(|v| v == "1");
            assert!(
                !strict,
                "WARD_TEST_STRICT=1 but WARD_TEST_DATABASE_URL is not set"
            );
            eprintln!(
                "SKIPPED on PostgreSQL: set WARD_TEST_DATABASE_URL \
                 (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// A private schema on the test server, dropped by [`Schema::drop_schema`].
pub(crate) struct Schema {
    pub(crate) admin_url: String,
    name: String,
}

impl Schema {
    /// A fresh schema, or `None` when PostgreSQL tests are skipped.
    pub(crate) async fn create() -> Option<Self> {
        let admin_url = postgres_url()?;
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        let name: String = sqlx::query_scalar("SELECT 'ward_server_' || md5(random()::text)")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        // The name is generated above from hex digits only.
        let create = format!("CREATE SCHEMA {name}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        Some(Self { admin_url, name })
    }

    /// The URL of the schema, through `via` (`host:port`) instead of the server's address.
    pub(crate) fn url(&self, via: Option<&str>) -> String {
        let mut url = url::Url::parse(&self.admin_url).unwrap();
        if let Some(via) = via {
            let (host, port) = via.split_once(':').unwrap();
            url.set_host(Some(host)).unwrap();
            url.set_port(Some(port.parse().unwrap())).unwrap();
        }
        let separator = if url.query().is_some() { '&' } else { '?' };
        format!("{url}{separator}options=-c%20search_path%3D{}", self.name)
    }

    /// A migrated store on the schema, as node `node`.
    pub(crate) async fn store(&self, via: Option<&str>, node: &str) -> Arc<dyn Store> {
        let store = PostgresStore::open(&self.url(via), node).await.unwrap();
        store.migrate().await.unwrap();
        Arc::new(store)
    }

    pub(crate) async fn drop_schema(self) {
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        let drop = format!("DROP SCHEMA {} CASCADE", self.name);
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
    }
}

/// Runs `test` on a migrated store over a fresh schema, then drops the schema, even when the
/// test fails. Skipped as [`Schema::create`] says.
pub(crate) async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(schema) = Schema::create().await else {
        return;
    };
    let store = schema.store(None, "t").await;
    // In a task of its own, so that a failing assertion still lets the schema be dropped.
    let outcome = tokio::spawn(test(Arc::clone(&store))).await;
    store.close().await;
    schema.drop_schema().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
