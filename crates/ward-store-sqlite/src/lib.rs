//! SQLite backend for Ward's store (the embedded default).
//!
//! This crate owns the SQLite schema (`migrations/`, numbered like the PostgreSQL ones) and
//! [`SqliteStore`], which implements every `ward-store` trait with sqlx runtime queries. Reads go
//! to a small pool of query-only connections; all writes go through one dedicated writer
//! connection that applies many callers' change sets in one `BEGIN IMMEDIATE` transaction
//! (group commit, see [`ward_store::group_commit`]), so concurrent requests share one fsync.
//!
//! It must not depend on `ward-core`, `ward-server` or any web framework, and no sqlx type may
//! appear in its public API: callers see only `ward-store` types.

mod apply;
mod error;
mod reads;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use ward_store::group_commit::GroupCommit;
use ward_store::{
    ChangeSet, CommitReceipt, LocalSignals, Signals, Store, StoreError, StoreResult, Writer,
};

use crate::error::{migrate_err, store_err};
use crate::writer::SqliteWriter;

static MIGRATOR: Migrator = sqlx::migrate!();

/// Query-only connections serving the read traits, unless [`SqliteStore::open_with`] says.
const READ_CONNECTIONS: u32 = 4;

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of the database file each connection maps into memory.
const MMAP_BYTES: &str = "268435456";

/// A Ward store in one SQLite database file.
///
/// # Security
/// Every commit is durable before it is reported (`journal_mode = WAL`, `synchronous = FULL`),
/// and foreign keys are enforced. Several processes (a server and the CLI) may open the same
/// file: the audit chain head is read under SQLite's write lock, so their appends never fork
/// the chain.
pub struct SqliteStore {
    reads: SqlitePool,
    writes: SqlitePool,
    writer: GroupCommit,
    chain_id: String,
    /// SQLite is one node: change notifications stay within this process.
    signals: LocalSignals,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("chain_id", &self.chain_id)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `url` and starts the writer task.
    ///
    /// `url` is a sqlx SQLite URL: `sqlite:///abs/path/ward.db`, `sqlite://relative.db`, or
    /// `sqlite::memory:` (tests; one connection, gone when the store is closed). Audit events
    /// committed through this store are appended to the chain `chain_id`.
    ///
    /// The schema is not touched; call [`SqliteStore::migrate`].
    pub async fn open(url: &str, chain_id: &str) -> Result<SqliteStore, StoreError> {
        Self::open_with(url, chain_id, READ_CONNECTIONS).await
    }

    /// Like [`SqliteStore::open`], with at most `max_connections` pooled read connections
    /// (at least one). Writes always use this node's one writer connection, in addition.
    pub async fn open_with(
        url: &str,
        chain_id: &str,
        max_connections: u32,
    ) -> Result<SqliteStore, StoreError> {
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
        let group_commit = GroupCommit::spawn(
            SqliteWriter {
                pool: writes.clone(),
            },
            chain_id.to_owned(),
        );
        tracing::debug!(chain_id, in_memory, "opened SQLite store");
        Ok(SqliteStore {
            reads,
            writes,
            writer: group_commit,
            chain_id: chain_id.to_owned(),
            signals: LocalSignals::default(),
        })
    }

    /// Applies the embedded migrations that the database has not seen yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.writes.acquire().await.map_err(store_err)?;
        MIGRATOR.run(&mut *conn).await.map_err(migrate_err)?;
        tracing::info!("SQLite schema is up to date");
        Ok(())
    }
}

#[async_trait]
impl Writer for SqliteStore {
    async fn commit(&self, set: ChangeSet) -> StoreResult<CommitReceipt> {
        self.writer.commit(set).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn chain_id(&self) -> &str {
        &self.chain_id
    }

    fn signals(&self) -> &dyn Signals {
        &self.signals
    }

    async fn close(&self) {
        self.writer.close().await;
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
        let store = SqliteStore::open(&url, "node").await.unwrap();
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
