//! SQLite backend for Ward's store (the embedded default).
//!
//! [`SqliteStore`] is `ward-store-sql`'s [`SqlStore`] on this crate's [`Sqlite`] backend: the
//! schema, statements and row mappings are shared with PostgreSQL; this crate only opens the
//! connections (WAL, `synchronous = FULL`, foreign keys, query-only readers), begins write
//! transactions with `BEGIN IMMEDIATE`, keeps signals within the process, and maps SQLite's
//! errors. Reads go to a small pool of query-only connections; all writes go through one
//! dedicated writer connection (group commit, see [`ward_store::group_commit`]).
//!
//! It must not depend on `ward-core`, `ward-server` or any web framework, and no sqlx type may
//! appear in its public API: callers see only `ward-store` types.

mod error;

/// The driver glue, shared with PostgreSQL in `ward-store-sql`.
mod glue {
    ward_store_sql::sqlx_glue!(
        db: sqlx::Sqlite,
        row: sqlx::sqlite::SqliteRow,
        dialect: ward_store_sql::Dialect::Sqlite,
        db_err: crate::error::db_err,
    );
}

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use ward_store::{LocalSignals, Signals, StoreError, StoreResult};
use ward_store_sql::{Backend, Conn, SqlStore};

use crate::error::store_err;
use crate::glue::{Connection, acquire, migrate_err};

static MIGRATOR: Migrator = sqlx::migrate!("../ward-store-sql/migrations");

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of the database file each connection maps into memory.
const MMAP_BYTES: &str = "268435456";

/// A Ward store in one SQLite database file.
///
/// `SqliteStore::open(url, chain_id)` takes a sqlx SQLite URL: `sqlite:///abs/path/ward.db`,
/// `sqlite://relative.db`, or `sqlite::memory:` (tests; one connection, gone when the store is
/// closed), creating the file if it is missing.
///
/// # Security
/// Every commit is durable before it is reported (`journal_mode = WAL`, `synchronous = FULL`),
/// and foreign keys are enforced. Several processes (a server and the CLI) may open the same
/// file: the audit chain head is read under SQLite's write lock, so their appends never fork
/// the chain.
pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite side of [`SqliteStore`]: its pools and its in-process signals.
pub struct Sqlite {
    reads: SqlitePool,
    writes: SqlitePool,
    /// SQLite is one node: change notifications stay within this process.
    signals: LocalSignals,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").finish_non_exhaustive()
    }
}

impl Sqlite {
    async fn connect(url: &str, max_connections: u32) -> StoreResult<Sqlite> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| StoreError::Unavailable(format!("bad SQLite URL: {err}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Readers map the file instead of copying pages through read(2) each time a write
            // invalidates their page cache.
            .pragma("mmap_size", MMAP_BYTES);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // The writer keeps its one connection for the life of the store (for an in-memory
        // database, that connection *is* the database).
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(u32::from(in_memory))
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(store_err)?;
        let reads = if in_memory {
            writes.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .test_before_acquire(false)
                .connect_lazy_with(options.pragma("query_only", "ON"))
        };
        tracing::debug!(in_memory, "opened SQLite database");
        Ok(Sqlite {
            reads,
            writes,
            signals: LocalSignals::default(),
        })
    }
}

impl Backend for Sqlite {
    const NAME: &'static str = "sqlite";
    const STORE: &'static str = "SqliteStore";
    const READ_CONNECTIONS: u32 = 4;

    type Conn = Connection;
    type Writes = SqlitePool;

    async fn open(
        url: &str,
        _chain_id: &str,
        max_connections: u32,
    ) -> StoreResult<(Sqlite, SqlitePool)> {
        let sqlite = Sqlite::connect(url, max_connections).await?;
        let writes = sqlite.writes.clone();
        Ok((sqlite, writes))
    }

    async fn begin(writes: &SqlitePool) -> StoreResult<Connection> {
        let mut conn = acquire(writes).await?;
        // IMMEDIATE takes the write lock now (waiting up to busy_timeout for another process),
        // so the chain head read inside the transaction stays current until COMMIT. If it
        // fails, no transaction is open and the connection may go back to the pool.
        conn.control("BEGIN IMMEDIATE").await?;
        Ok(conn)
    }

    async fn read(&self) -> StoreResult<Connection> {
        acquire(&self.reads).await
    }

    async fn side_write(&self) -> StoreResult<Connection> {
        // Read connections are query-only, so this rare write uses the writer's connection
        // between two batches.
        acquire(&self.writes).await
    }

    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.writes).await.map_err(migrate_err)
    }

    fn signals(&self) -> &dyn Signals {
        &self.signals
    }

    async fn close(&self) {
        self.reads.close().await;
        self.writes.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn int(pool: &SqlitePool, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
    }

    #[tokio::test]
    async fn connections_are_durable_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ward.db").display());
        let (store, _) = Sqlite::open(&url, "node", 4).await.unwrap();
        for pool in [&store.writes, &store.reads] {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            assert_eq!(int(pool, "PRAGMA synchronous").await, 2, "FULL");
            assert_eq!(int(pool, "PRAGMA foreign_keys").await, 1);
            assert_eq!(int(pool, "PRAGMA busy_timeout").await, 5000);
        }
        assert_eq!(int(&store.writes, "PRAGMA query_only").await, 0);
        assert_eq!(int(&store.reads, "PRAGMA query_only").await, 1);
        store.close().await;
    }
}
