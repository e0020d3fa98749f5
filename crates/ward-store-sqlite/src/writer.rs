//! The writer side of the group commit: one dedicated connection, `BEGIN IMMEDIATE` batches.

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{Row, Sqlite, SqlitePool};
use ward_store::group_commit::{Batch, CommitBackend, PlacedAudit};
use ward_store::{ChainHeadRow, Change, GENESIS_HASH, Outcome, StoreError, StoreResult};

use crate::apply;
use crate::error::store_err;

/// Opens write transactions on the writer pool (one connection).
pub(crate) struct SqliteWriter {
    pub(crate) pool: SqlitePool,
}

#[async_trait]
impl CommitBackend for SqliteWriter {
    type Batch = SqliteBatch;

    async fn begin(&self) -> StoreResult<SqliteBatch> {
        let conn = self.pool.acquire().await.map_err(store_err)?;
        let mut batch = SqliteBatch { conn, open: false };
        // IMMEDIATE takes the write lock now (waiting up to busy_timeout for another process),
        // so the chain head read below stays current until COMMIT.
        batch.exec("BEGIN IMMEDIATE").await?;
        batch.open = true;
        Ok(batch)
    }
}

/// One open `BEGIN IMMEDIATE` transaction.
pub(crate) struct SqliteBatch {
    conn: PoolConnection<Sqlite>,
    /// True until COMMIT or ROLLBACK succeeded.
    open: bool,
}

impl Drop for SqliteBatch {
    fn drop(&mut self) {
        if self.open {
            // Never hand a connection back to the pool in the middle of a transaction.
            self.conn.close_on_drop();
        }
    }
}

impl SqliteBatch {
    async fn exec(&mut self, sql: &'static str) -> StoreResult<()> {
        sqlx::raw_sql(sql)
            .execute(&mut *self.conn)
            .await
            .map(drop)
            .map_err(store_err)
    }
}

#[async_trait]
impl Batch for SqliteBatch {
    async fn chain_head(&mut self, chain_id: &str) -> StoreResult<ChainHeadRow> {
        let row = sqlx::query("SELECT head_seq, head_hash FROM audit_chains WHERE chain_id = ?")
            .bind(chain_id)
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(store_err)?;
        if let Some(row) = row {
            return Ok(ChainHeadRow {
                chain_id: chain_id.to_owned(),
                head_seq: row.try_get("head_seq").map_err(store_err)?,
                head_hash: row.try_get("head_hash").map_err(store_err)?,
            });
        }
        sqlx::query(
            "INSERT INTO audit_chains (chain_id, head_seq, head_hash) VALUES (?, 0, ?) \
             ON CONFLICT (chain_id) DO NOTHING",
        )
        .bind(chain_id)
        .bind(GENESIS_HASH)
        .execute(&mut *self.conn)
        .await
        .map_err(store_err)?;
        Ok(ChainHeadRow {
            chain_id: chain_id.to_owned(),
            head_seq: 0,
            head_hash: GENESIS_HASH.to_owned(),
        })
    }

    async fn set_chain_head(&mut self, head: &ChainHeadRow) -> StoreResult<()> {
        let done =
            sqlx::query("UPDATE audit_chains SET head_seq = ?, head_hash = ? WHERE chain_id = ?")
                .bind(head.head_seq)
                .bind(&head.head_hash)
                .bind(&head.chain_id)
                .execute(&mut *self.conn)
                .await
                .map_err(store_err)?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "audit chain {} vanished",
                head.chain_id
            )))
        }
    }

    async fn savepoint(&mut self) -> StoreResult<()> {
        self.exec("SAVEPOINT ward_set").await
    }

    async fn rollback_to_savepoint(&mut self) -> StoreResult<()> {
        self.exec("ROLLBACK TO SAVEPOINT ward_set").await
    }

    async fn release_savepoint(&mut self) -> StoreResult<()> {
        self.exec("RELEASE SAVEPOINT ward_set").await
    }

    async fn apply(&mut self, change: &Change) -> StoreResult<Outcome> {
        apply::apply(&mut self.conn, change).await
    }

    async fn insert_audits(&mut self, events: &[PlacedAudit]) -> StoreResult<()> {
        apply::insert_audits(&mut self.conn, events).await
    }

    async fn commit(&mut self) -> StoreResult<()> {
        self.exec("COMMIT").await?;
        self.open = false;
        Ok(())
    }

    async fn rollback(&mut self) -> StoreResult<()> {
        self.exec("ROLLBACK").await?;
        self.open = false;
        Ok(())
    }
}
