//! The SQL both of Ward's database backends run: one schema (`migrations/`), one statement per
//! read and per [`Change`](ward_store::Change), one row mapping per `*Row`, and [`SqlStore`],
//! which implements every `ward-store` trait on top of a [`Backend`].
//!
//! A backend crate (`ward-store-sqlite`, `ward-store-postgres`) supplies only what genuinely
//! differs: how connections are opened and pooled, how a write transaction begins, signals
//! between nodes, how its driver binds a [`Value`] and reads a column, and how its errors map
//! to [`DbError`]. The few statements whose text differs by database are chosen by the
//! connection's [`Dialect`] ([`Conn::DIALECT`]) where they are used (search for `Dialect::`). See `docs/design/storage.md`.
//!
//! It must not depend on a database driver, `ward-core` or any web framework.

mod apply;
mod exec;
mod glue;
mod reads;
mod writer;

use std::fmt;

use async_trait::async_trait;
use ward_store::group_commit::GroupCommit;
use ward_store::{ChangeSet, CommitReceipt, Signals, Store, StoreError, StoreResult, Writer};

pub use exec::{Column, Conn, DbError, Query, Row, UniqueRule, Value, built_query, query};

use crate::writer::SqlWriter;

/// The database a backend speaks, for the few statements that must differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// One writer at a time (`BEGIN IMMEDIATE`): a transaction already excludes every other
    /// writer, so no row needs locking.
    Sqlite,
    /// Several nodes write at once under READ COMMITTED: a check-then-write takes a row lock
    /// (`SELECT … FOR UPDATE`) first.
    Postgres,
}

/// What a database backend provides to [`SqlStore`].
pub trait Backend: Send + Sync + Sized + 'static {
    /// `"sqlite"` or `"postgres"` ([`Store::backend`]).
    const NAME: &'static str;
    /// The store's type name, for `Debug`.
    const STORE: &'static str;
    /// Pooled read connections when [`SqlStore::open`] is used.
    const READ_CONNECTIONS: u32;

    /// A pooled connection.
    type Conn: Conn;
    /// What the writer task keeps to open write transactions (its one connection's pool).
    type Writes: Send + Sync + 'static;

    /// Connects to `url` with at most `max_connections` read connections (at least one).
    fn open(
        url: &str,
        chain_id: &str,
        max_connections: u32,
    ) -> impl Future<Output = StoreResult<(Self, Self::Writes)>> + Send;
    /// The writer's connection, with a write transaction begun on it.
    fn begin(writes: &Self::Writes) -> impl Future<Output = StoreResult<Self::Conn>> + Send;
    /// A read connection.
    fn read(&self) -> impl Future<Output = StoreResult<Self::Conn>> + Send;
    /// A connection for the rare write that does not go through the group commit
    /// ([`ward_store::MetaStore::meta_insert_if_absent`]).
    fn side_write(&self) -> impl Future<Output = StoreResult<Self::Conn>> + Send;
    /// Applies the migrations in `migrations/` that the database has not seen yet.
    fn migrate(&self) -> impl Future<Output = StoreResult<()>> + Send;
    /// Change notifications of this node (and, where the database carries them, of others).
    fn signals(&self) -> &dyn Signals;
    /// Closes the connections (the writer task has already stopped).
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// A Ward store on a SQL database: `ward_store_sqlite::SqliteStore` and
/// `ward_store_postgres::PostgresStore` are this type with their backend.
///
/// Reads go to the backend's read pool; all writes go through one dedicated writer
/// connection that applies many callers' change sets in one transaction (group commit, see
/// [`ward_store::group_commit`]), so concurrent requests share one flush to disk.
pub struct SqlStore<B: Backend> {
    backend: B,
    writer: GroupCommit,
    chain_id: String,
}

impl<B: Backend> fmt::Debug for SqlStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Connection options may hold a password: never print the backend.
        f.debug_struct(B::STORE)
            .field("chain_id", &self.chain_id)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> SqlStore<B> {
    /// Opens the database at `url` and starts this node's writer task. Audit events committed
    /// through this store are appended to the chain `chain_id` (unique per node).
    ///
    /// `url` is a sqlx URL: `sqlite:///abs/path/ward.db`, `sqlite://relative.db`,
    /// `sqlite::memory:` (tests; gone when the store is closed), or a libpq-style
    /// `postgres://ward@db.internal/ward`, where a schema other than `public` is chosen with
    /// `?options=-c%20search_path%3Dward`.
    ///
    /// The schema is not touched; call [`SqlStore::migrate`].
    pub async fn open(url: &str, chain_id: &str) -> Result<Self, StoreError> {
        Self::open_with(url, chain_id, B::READ_CONNECTIONS).await
    }

    /// Like [`SqlStore::open`], with at most `max_connections` pooled read connections
    /// (at least one). Writes always use this node's one writer connection, in addition.
    pub async fn open_with(
        url: &str,
        chain_id: &str,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let (backend, write_side) = B::open(url, chain_id, max_connections).await?;
        let writer = GroupCommit::spawn(SqlWriter::<B>::new(write_side), chain_id.to_owned());
        tracing::debug!(chain_id, backend = B::NAME, "opened store");
        Ok(SqlStore {
            backend,
            writer,
            chain_id: chain_id.to_owned(),
        })
    }

    /// Applies the embedded migrations that the database has not seen yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.backend.migrate().await?;
        tracing::info!(backend = B::NAME, "schema is up to date");
        Ok(())
    }
}

#[async_trait]
impl<B: Backend> Writer for SqlStore<B> {
    async fn commit(&self, set: ChangeSet) -> StoreResult<CommitReceipt> {
        self.writer.commit(set).await
    }
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    fn backend(&self) -> &'static str {
        B::NAME
    }

    fn chain_id(&self) -> &str {
        &self.chain_id
    }

    fn signals(&self) -> &dyn Signals {
        self.backend.signals()
    }

    async fn close(&self) {
        self.writer.close().await;
        self.backend.close().await;
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    /// Every released migration and the SHA-256 of its bytes. sqlx stores a checksum of each
    /// applied migration and refuses to open a database whose history differs, so a released
    /// file must never change; a new migration is a new file, added here.
    const RELEASED: &[(&str, &str)] = &[
        (
            "0001_initial.sql",
            "5921913b9eae87347aefa40189ab51c6d93df8745f2de5e42487a2185b8f1132",
        ),
        (
            "0002_push.sql",
            "7602d601dc977b96d22794c45dfa09c5d8c6918198ca4c67ab16b5c3e76ecebf",
        ),
        (
            "0003_integration_push_mode.sql",
            "16f51e7512ed67b55f3a4007948eb253b83db5151082649674c6cb1654045b9a",
        ),
        (
            "0004_portal.sql",
            "8e21d086190a899a436f5424d861814e1756b56e7f2a388a28007341e5371ed7",
        ),
        (
            "0005_prompt.sql",
            "341837d9233ff6fa6be2eec88e48c20c16f2b0057e9c494a7eb61af6666c8b96",
        ),
        (
            "0006_recovery.sql",
            "9ca9d655fa9cecdb8d9a93775b8f2f764ce2b140c8ffe353cf9da5773e15b7e5",
        ),
        (
            "0007_recovery_handles.sql",
            "f2da48322b644f7e67450fc56425c68f81343e8ec161d4e9d41b08888b476ff7",
        ),
        (
            "0008_orgs.sql",
            "25eb64c3edf096745bdb528571bfcb9f8e633dc0f6fc55771ff4f547fb042311",
        ),
    ];

    #[test]
    fn released_migrations_are_never_edited_or_removed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for (name, pinned) in RELEASED {
            let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|err| {
                panic!("released migration {name} is missing: {err}");
            });
            let sum = hex::encode(Sha256::digest(&bytes));
            assert_eq!(&sum, pinned, "released migration {name} was edited");
        }
        // Numbered like the released ones, so that sqlx applies them in order.
        let released: Vec<&str> = RELEASED.iter().map(|(name, _)| *name).collect();
        let first: Vec<&str> = names
            .iter()
            .take(released.len())
            .map(String::as_str)
            .collect();
        assert_eq!(
            first, released,
            "new migrations sort after the released ones"
        );
        assert!(
            names.iter().all(|n| std::path::Path::new(n)
                .extension()
                .is_some_and(|e| e == "sql")),
            "only .sql files: {names:?}"
        );
    }
}
