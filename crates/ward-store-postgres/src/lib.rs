//! PostgreSQL backend for Ward's store (several nodes on one database).
//!
//! [`PostgresStore`] is `ward-store-sql`'s [`SqlStore`] on this crate's [`Postgres`] backend:
//! the schema, statements and row mappings are shared with SQLite; this crate only opens the
//! connections (a read pool and one writer connection per node), begins write transactions
//! (READ COMMITTED), carries change notifications ([`Store::signals`](ward_store::Store)) to
//! every node through `LISTEN`/`NOTIFY` on the channel `ward_signals` (one more connection per
//! node), and maps PostgreSQL's errors. Decisions that must happen once are single conditional
//! statements, so two nodes can never both win; each node appends to its own audit chain, so
//! nodes never wait for each other's chain lock.
//!
//! It must not depend on `ward-core`, `ward-server` or any web framework, and no sqlx type may
//! appear in its public API: callers see only `ward-store` types.

mod error;
mod signals;

/// The driver glue, shared with SQLite in `ward-store-sql`.
mod glue {
    ward_store_sql::sqlx_glue!(
        db: sqlx::Postgres,
        row: sqlx::postgres::PgRow,
        dialect: ward_store_sql::Dialect::Postgres,
        db_err: crate::error::db_err,
    );
}

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool};
use ward_store::{Signals, StoreError, StoreResult};
use ward_store_sql::{Backend, Conn, SqlStore};

use crate::error::store_err;
use crate::glue::{Connection, acquire, migrate_err};
use crate::signals::PgSignals;

static MIGRATOR: Migrator = sqlx::migrate!("../ward-store-sql/migrations");

/// A Ward store in a PostgreSQL database, shared by any number of nodes.
///
/// `PostgresStore::open(url, chain_id)` takes a libpq-style URL, e.g.
/// `postgres://ward@db.internal/ward`. A schema other than `public` is chosen through sqlx's
/// `options` parameter: `postgres://…/ward?options=-c%20search_path%3Dward` (or
/// `options[search_path]=ward`). `chain_id` must be unique per node.
///
/// # Security
/// A change set is reported committed only after PostgreSQL's COMMIT returned (durable under
/// the server's default `synchronous_commit = on`).
pub type PostgresStore = SqlStore<Postgres>;

/// The PostgreSQL side of [`PostgresStore`]: its pools and its `LISTEN`/`NOTIFY` signals.
pub struct Postgres {
    reads: PgPool,
    writes: PgPool,
    signals: PgSignals,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Connection options hold the password: never print them.
        f.debug_struct("Postgres").finish_non_exhaustive()
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

impl Backend for Postgres {
    const NAME: &'static str = "postgres";
    const STORE: &'static str = "PostgresStore";
    const READ_CONNECTIONS: u32 = 8;

    type Conn = Connection;
    type Writes = PgPool;

    async fn open(
        url: &str,
        chain_id: &str,
        max_connections: u32,
    ) -> StoreResult<(Postgres, PgPool)> {
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
        let postgres = Postgres {
            reads,
            writes: writes.clone(),
            signals,
        };
        Ok((postgres, writes))
    }

    async fn begin(writes: &PgPool) -> StoreResult<Connection> {
        let mut conn = acquire(writes).await?;
        if let Err(err) = conn.control("BEGIN").await {
            // The connection is probably broken (the pool does not ping it first): close it
            // rather than hand it out again.
            conn.close_on_drop();
            return Err(err.into());
        }
        Ok(conn)
    }

    async fn read(&self) -> StoreResult<Connection> {
        acquire(&self.reads).await
    }

    async fn side_write(&self) -> StoreResult<Connection> {
        acquire(&self.reads).await
    }

    /// Safe when several nodes start together: sqlx's migrator holds a PostgreSQL advisory lock
    /// (keyed on the database name) while it checks and applies migrations. It runs on a
    /// dedicated connection that is closed afterwards, so that a failed migration cannot leave
    /// the session-level lock held by a pooled connection.
    async fn migrate(&self) -> StoreResult<()> {
        // A pool of one, closed below: its connection is the dedicated one.
        let dedicated = PgPoolOptions::new()
            .max_connections(1)
            .connect_with((*self.reads.connect_options()).clone())
            .await
            .map_err(store_err)?;
        let migrated = MIGRATOR.run(&dedicated).await.map_err(migrate_err);
        dedicated.close().await;
        migrated
    }

    fn signals(&self) -> &dyn Signals {
        &self.signals
    }

    async fn close(&self) {
        self.signals.stop().await;
        self.reads.close().await;
        self.writes.close().await;
    }
}
