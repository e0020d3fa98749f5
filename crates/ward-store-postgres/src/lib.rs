//! PostgreSQL backend for Ward's store (several nodes on one database).
//!
//! This crate owns the PostgreSQL schema (`migrations/`, numbered like the SQLite ones) and
//! [`PostgresStore`], which implements every `ward-store` trait with sqlx runtime queries.
//! Reads use a connection pool; all writes of a node go through one dedicated writer
//! connection that applies many callers' change sets in one transaction (group commit, see
//! [`ward_store::group_commit`]). Decisions that must happen once are single conditional
//! statements, so two nodes can never both win; each node appends to its own audit chain, so
//! nodes never wait for each other's chain lock. Change notifications ([`Store::signals`])
//! reach every node through `LISTEN`/`NOTIFY` on the channel `ward_signals`, each node holding
//! one more connection for its listener.
//!
//! It must not depend on `ward-core`, `ward-server` or any web framework, and no sqlx type may
//! appear in its public API: callers see only `ward-store` types.

mod apply;
mod error;
mod reads;
mod signals;
mod writer;

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use ward_store::group_commit::GroupCommit;
use ward_store::{ChangeSet, CommitReceipt, Signals, Store, StoreError, StoreResult, Writer};

use crate::error::{migrate_err, store_err};
use crate::signals::PgSignals;
use crate::writer::PgWriter;

static MIGRATOR: Migrator = sqlx::migrate!();

/// Pooled connections serving the read traits (per node), unless
/// [`PostgresStore::open_with`] says.
const READ_CONNECTIONS: u32 = 8;

/// A Ward store in a PostgreSQL database, shared by any number of nodes.
///
/// # Security
/// A change set is reported committed only after PostgreSQL's COMMIT returned (durable under
/// the server's default `synchronous_commit = on`).
pub struct PostgresStore {
    reads: PgPool,
    writes: PgPool,
    writer: GroupCommit,
    chain_id: String,
    signals: PgSignals,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Connection options hold the password: never print them.
        f.debug_struct("PostgresStore")
            .field("chain_id", &self.chain_id)
            .finish_non_exhaustive()
    }
}

/// How long one connection attempt at start-up may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One connection attempt, so that an unreachable server is reported at once and by its
/// address, rather than after the pool's 30 s acquire timeout as "pool timed out".
async fn probe(options: &PgConnectOptions) -> Result<(), StoreError> {
    let at = format!("{}:{}", options.get_host(), options.get_port());
    let unreachable =
        |why: &str| StoreError::Unavailable(format!("cannot connect to PostgreSQL at {at}: {why}"));
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(Ok(conn)) => {
            if let Err(err) = conn.close().await {
                tracing::debug!(error = %err, "closing the probe connection failed");
            }
            Ok(())
        }
        Ok(Err(sqlx::Error::Io(err))) => Err(unreachable(&io_reason(&err))),
        Ok(Err(sqlx::Error::Database(db))) => Err(unreachable(db.message())),
        Ok(Err(other)) => Err(unreachable(&other.to_string())),
        Err(_) => Err(unreachable("no answer within 10 s")),
    }
}

fn io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "timed out".into(),
        std::io::ErrorKind::NotFound => "no such socket".into(),
        _ => {
            let text = err.to_string();
            text.split(" (os error ").next().unwrap_or(&text).to_owned()
        }
    }
}

impl PostgresStore {
    /// Connects to the database at `url` and starts this node's writer task.
    ///
    /// `url` is a libpq-style URL, e.g. `postgres://ward@db.internal/ward`. A schema other than
    /// `public` is chosen through sqlx's `options` parameter:
    /// `postgres://…/ward?options=-c%20search_path%3Dward` (or `options[search_path]=ward`).
    /// Audit events committed through this store are appended to the chain `chain_id`, which
    /// must be unique per node.
    ///
    /// The schema is not touched; call [`PostgresStore::migrate`].
    pub async fn open(url: &str, chain_id: &str) -> Result<PostgresStore, StoreError> {
        Self::open_with(url, chain_id, READ_CONNECTIONS).await
    }

    /// Like [`PostgresStore::open`], with at most `max_connections` pooled read connections
    /// (at least one). Writes always use this node's one writer connection, in addition.
    pub async fn open_with(
        url: &str,
        chain_id: &str,
        max_connections: u32,
    ) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|err| StoreError::Unavailable(format!("bad PostgreSQL URL: {err}")))?;
        probe(&options).await?;
        // One connection, kept open: the writer of this node. A broken connection is closed
        // after its batch fails and replaced on the next batch, so no ping before each batch.
        let writes = PgPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(store_err)?;
        let reads = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_lazy_with(options.clone());
        let signals =
            PgSignals::start(options, &format!("ward-signals {chain_id}"), reads.clone()).await?;
        let group_commit = GroupCommit::spawn(
            PgWriter {
                pool: writes.clone(),
            },
            chain_id.to_owned(),
        );
        tracing::debug!(chain_id, "opened PostgreSQL store");
        Ok(PostgresStore {
            reads,
            writes,
            writer: group_commit,
            chain_id: chain_id.to_owned(),
            signals,
        })
    }

    /// Applies the embedded migrations that the database has not seen yet.
    ///
    /// Safe when several nodes start together: sqlx's migrator holds a PostgreSQL advisory lock
    /// (keyed on the database name) while it checks and applies migrations. It runs on a
    /// dedicated connection that is closed afterwards, so that a failed migration cannot leave
    /// the session-level lock held by a pooled connection.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let options = self.reads.connect_options();
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(store_err)?;
        MIGRATOR.run(&mut conn).await.map_err(migrate_err)?;
        if let Err(err) = conn.close().await {
            tracing::debug!(error = %err, "closing the migration connection failed");
        }
        tracing::info!("PostgreSQL schema is up to date");
        Ok(())
    }
}

#[async_trait]
impl Writer for PostgresStore {
    async fn commit(&self, set: ChangeSet) -> StoreResult<CommitReceipt> {
        self.writer.commit(set).await
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn chain_id(&self) -> &str {
        &self.chain_id
    }

    fn signals(&self) -> &dyn Signals {
        &self.signals
    }

    async fn close(&self) {
        self.signals.stop().await;
        self.writer.close().await;
        self.reads.close().await;
        self.writes.close().await;
    }
}
