//! Temporary databases: a SQLite file in a directory that lives as long as its handle, and a
//! private schema on the PostgreSQL test server, dropped when the test ends (even when it
//! fails).
//!
//! PostgreSQL tests need a server: set `WARD_TEST_DATABASE_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/test`). Without it they are skipped, after saying so,
//! unless `WARD_TEST_STRICT=1` (CI), which turns the skip into a failure.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;

use futures::FutureExt as _;
use sqlx::Connection as _;
use tempfile::TempDir;
use ward_store::Store;
use ward_store_postgres::PostgresStore;
use ward_store_sqlite::SqliteStore;

/// The variable naming the PostgreSQL test server.
pub const DATABASE_URL_VAR: &str = "WARD_TEST_DATABASE_URL";
/// The variable that, set to `1`, makes a skipped PostgreSQL test a failure.
pub const STRICT_VAR: &str = "WARD_TEST_STRICT";

/// A SQLite database file in a fresh temporary directory, removed when this handle drops.
/// Keep the handle alive as long as any store opened on it.
#[derive(Debug)]
pub struct TempSqlite {
    dir: TempDir,
}

impl Default for TempSqlite {
    fn default() -> Self {
        Self::new()
    }
}

impl TempSqlite {
    /// A new directory; the database file is created by the first [`TempSqlite::open`].
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// The database file.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("ward.db")
    }

    /// The sqlx URL of the database file.
    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path().display())
    }

    /// A store on the file for the node `chain_id`, migrated. Several stores may share a file.
    pub async fn open(&self, chain_id: &str) -> SqliteStore {
        let store = SqliteStore::open(&self.url(), chain_id)
            .await
            .expect("open the SQLite store");
        store.migrate().await.expect("migrate the SQLite store");
        store
    }

    /// Like [`TempSqlite::open`], as the shared handle services take.
    pub async fn store(&self, chain_id: &str) -> Arc<dyn Store> {
        Arc::new(self.open(chain_id).await)
    }
}

/// A migrated store on a fresh SQLite file for the node `chain_id`, and the handle that keeps
/// the file.
pub async fn sqlite(chain_id: &str) -> (TempSqlite, Arc<dyn Store>) {
    let db = TempSqlite::new();
    let store = db.store(chain_id).await;
    (db, store)
}

/// The PostgreSQL server to test against: `None` (after saying so) when the test is skipped.
///
/// # Panics
///
/// When `WARD_TEST_STRICT=1` and `WARD_TEST_DATABASE_URL` is unset or empty.
pub fn postgres_url() -> Option<String> {
    let strict = std::env::var(STRICT_VAR).is_ok_and(|v| v == "1");
    server(std::env::var(DATABASE_URL_VAR).ok(), strict)
}

/// The decision of [`postgres_url`], given the two variables.
fn server(url: Option<String>, strict: bool) -> Option<String> {
    match url {
        Some(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(!strict, "{STRICT_VAR}=1 but {DATABASE_URL_VAR} is not set");
            eprintln!(
                "SKIPPED: this PostgreSQL test needs {DATABASE_URL_VAR} \
                 (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// A private schema on the PostgreSQL test server, handed to the test by [`with_pg_schema`]
/// (which alone creates and drops schemas, so that none outlives its test).
#[derive(Clone, Debug)]
pub struct PgSchema {
    server: String,
    name: String,
}

impl PgSchema {
    /// Creates a schema with a fresh name on `server`.
    async fn create(server: String) -> Self {
        let mut admin = sqlx::PgConnection::connect(&server)
            .await
            .expect("connect to WARD_TEST_DATABASE_URL");
        let name: String = sqlx::query_scalar("SELECT 'ward_test_' || md5(random()::text)")
            .fetch_one(&mut admin)
            .await
            .expect("a schema name");
        // The name is generated above from a fixed prefix and hex digits only.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut admin)
            .await
            .expect("create the schema");
        admin.close().await.expect("close the admin connection");
        Self { server, name }
    }

    async fn drop_schema(self) {
        let mut admin = sqlx::PgConnection::connect(&self.server)
            .await
            .expect("connect to WARD_TEST_DATABASE_URL");
        let drop = format!("DROP SCHEMA {} CASCADE", self.name);
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&mut admin)
            .await
            .expect("drop the schema");
        admin.close().await.expect("close the admin connection");
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of the schema: the server's, with the schema as the search path.
    pub fn url(&self) -> String {
        self.scoped(&url::Url::parse(&self.server).expect("a URL in WARD_TEST_DATABASE_URL"))
    }

    /// The server's `host:port`, for a relay to forward to.
    pub fn server_address(&self) -> String {
        let url = url::Url::parse(&self.server).expect("a URL in WARD_TEST_DATABASE_URL");
        let host = url.host_str().expect("a host in WARD_TEST_DATABASE_URL");
        format!("{host}:{}", url.port().unwrap_or(5432))
    }

    /// The URL of the schema through `via` (`host:port`, a relay) instead of the server's own
    /// address.
    pub fn url_via(&self, via: &str) -> String {
        let mut url = url::Url::parse(&self.server).expect("a URL in WARD_TEST_DATABASE_URL");
        let (host, port) = via.split_once(':').expect("host:port");
        url.set_host(Some(host)).expect("a host");
        url.set_port(Some(port.parse().expect("a port")))
            .expect("a port");
        self.scoped(&url)
    }

    fn scoped(&self, url: &url::Url) -> String {
        let separator = if url.query().is_some() { '&' } else { '?' };
        format!("{url}{separator}options=-c%20search_path%3D{}", self.name)
    }

    /// A store on the schema for the node `chain_id`, migrated.
    pub async fn open(&self, chain_id: &str) -> PostgresStore {
        open_postgres(&self.url(), chain_id).await
    }

    /// Like [`PgSchema::open`], as the shared handle services take.
    pub async fn store(&self, chain_id: &str) -> Arc<dyn Store> {
        Arc::new(self.open(chain_id).await)
    }
}

/// A store on the PostgreSQL database at `url` for the node `chain_id`, migrated.
pub async fn open_postgres(url: &str, chain_id: &str) -> PostgresStore {
    let store = PostgresStore::open(url, chain_id)
        .await
        .expect("open the PostgreSQL store");
    store.migrate().await.expect("migrate the PostgreSQL store");
    store
}

/// Like [`open_postgres`], as the shared handle services take.
pub async fn postgres(url: &str, chain_id: &str) -> Arc<dyn Store> {
    Arc::new(open_postgres(url, chain_id).await)
}

/// Runs `test` on a fresh schema of the PostgreSQL test server, then drops the schema, even
/// when `test` panicked (the panic is passed on afterwards). Skipped (after saying so) without
/// a server; see [`postgres_url`].
pub async fn with_pg_schema<F, Fut>(test: F)
where
    F: FnOnce(PgSchema) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(server) = postgres_url() else { return };
    let schema = PgSchema::create(server).await;
    // The test's future, with the stores it opened, is dropped before the schema is.
    let outcome = AssertUnwindSafe(test(schema.clone())).catch_unwind().await;
    schema.drop_schema().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// [`with_pg_schema`] for tests that only need the schema's URL.
pub async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    with_pg_schema(|schema| test(schema.url())).await;
}

/// Closes `store`, then fails the test with a conformance check's message if it failed.
pub async fn close_then_check(store: &dyn Store, result: Result<(), String>) {
    store.close().await;
    if let Err(err) = result {
        panic!("{}: {err}", store.backend());
    }
}

/// A storage backend a test can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Both, SQLite first.
    pub const ALL: [Self; 2] = [Self::Sqlite, Self::Postgres];

    /// Runs `test` on a fresh, migrated store of this backend for the node `chain_id`, and
    /// closes the store afterwards. On PostgreSQL the test is skipped without a server (see
    /// [`postgres_url`]) and the schema dropped afterwards, even when the test fails.
    pub async fn run<F, Fut>(self, chain_id: &str, test: F)
    where
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let body = async |store: Arc<dyn Store>| {
            test(Arc::clone(&store)).await;
            store.close().await;
        };
        match self {
            Self::Sqlite => {
                let db = TempSqlite::new();
                body(db.store(chain_id).await).await;
            }
            Self::Postgres => {
                with_pg_schema(async |schema| body(schema.store(chain_id).await).await).await;
            }
        }
    }
}

/// Runs `test` once per backend ([`Backend::run`] on each of [`Backend::ALL`]).
pub async fn each_backend<F, Fut>(chain_id: &str, mut test: F)
where
    F: FnMut(Backend, Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in Backend::ALL {
        backend.run(chain_id, |store| test(backend, store)).await;
    }
}

#[cfg(test)]
mod tests;
