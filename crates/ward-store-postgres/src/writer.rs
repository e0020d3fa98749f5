//! The writer side of the group commit: one dedicated connection per node, one transaction
//! per batch.

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, Row};
use ward_store::group_commit::{Batch, CommitBackend, PlacedAudit};
use ward_store::{ChainHeadRow, Change, GENESIS_HASH, Outcome, StoreError, StoreResult};

use crate::apply;
use crate::error::store_err;

/// Opens write transactions on the writer pool (one connection).
pub(crate) struct PgWriter {
    pub(crate) pool: PgPool,
}

#[async_trait]
impl CommitBackend for PgWriter {
    type Batch = PgBatch;

    async fn begin(&self) -> StoreResult<PgBatch> {
        let conn = self.pool.acquire().await.map_err(store_err)?;
        // Marked open before BEGIN: if BEGIN fails, the connection is probably broken (the
        // pool does not ping it first) and is closed rather than handed out again.
        let mut batch = PgBatch { conn, open: true };
        batch.exec("BEGIN").await?;
        Ok(batch)
    }
}

/// One open transaction (READ COMMITTED).
pub(crate) struct PgBatch {
    conn: PoolConnection<Postgres>,
    /// True until COMMIT or ROLLBACK succeeded.
    open: bool,
}

impl Drop for PgBatch {
    fn drop(&mut self) {
        if self.open {
            // Never hand a connection back to the pool in the middle of a transaction.
            self.conn.close_on_drop();
        }
    }
}

impl PgBatch {
    async fn locked_head(&mut self, chain_id: &str) -> StoreResult<Option<ChainHeadRow>> {
        let row = sqlx::query(
            "SELECT head_seq, head_hash FROM audit_chains WHERE chain_id = $1 FOR UPDATE",
        )
        .bind(chain_id)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(store_err)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(ChainHeadRow {
            chain_id: chain_id.to_owned(),
            head_seq: row.try_get("head_seq").map_err(store_err)?,
            head_hash: row.try_get("head_hash").map_err(store_err)?,
        }))
    }

    async fn exec(&mut self, sql: &'static str) -> StoreResult<()> {
        sqlx::raw_sql(sql)
            .execute(&mut *self.conn)
            .await
            .map(drop)
            .map_err(store_err)
    }
}

#[async_trait]
impl Batch for PgBatch {
    async fn chain_head(&mut self, chain_id: &str) -> StoreResult<ChainHeadRow> {
        // Each node appends to its own chain, so this row lock is not contended across nodes.
        if let Some(head) = self.locked_head(chain_id).await? {
            return Ok(head);
        }
        sqlx::query(
            "INSERT INTO audit_chains (chain_id, head_seq, head_hash) VALUES ($1, 0, $2) \
             ON CONFLICT (chain_id) DO NOTHING",
        )
        .bind(chain_id)
        .bind(GENESIS_HASH)
        .execute(&mut *self.conn)
        .await
        .map_err(store_err)?;
        // Whoever inserted it (this batch or a process sharing the chain id), lock it now.
        self.locked_head(chain_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("audit chain {chain_id} vanished")))
    }

    async fn set_chain_head(&mut self, head: &ChainHeadRow) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE audit_chains SET head_seq = $1, head_hash = $2 WHERE chain_id = $3",
        )
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
