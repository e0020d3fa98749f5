//! The writer side of the group commit: one dedicated connection per store, one transaction
//! per batch. How the transaction begins is the backend's ([`Backend::begin`]); everything
//! inside it is shared.

use async_trait::async_trait;
use ward_store::group_commit::{Batch, CommitBackend, PlacedAudit};
use ward_store::{ChainHeadRow, Change, GENESIS_HASH, Outcome, StoreError, StoreResult};

use crate::exec::{Conn, Row, query};
use crate::{Backend, Dialect, apply};

/// Opens write transactions on the writer's connection.
pub(crate) struct SqlWriter<B: Backend> {
    writes: B::Writes,
}

impl<B: Backend> SqlWriter<B> {
    pub(crate) fn new(writes: B::Writes) -> Self {
        Self { writes }
    }
}

#[async_trait]
impl<B: Backend> CommitBackend for SqlWriter<B> {
    type Batch = SqlBatch<B>;

    async fn begin(&self) -> StoreResult<SqlBatch<B>> {
        let conn = B::begin(&self.writes).await?;
        Ok(SqlBatch { conn, open: true })
    }
}

/// One open write transaction.
pub(crate) struct SqlBatch<B: Backend> {
    conn: B::Conn,
    /// True until COMMIT or ROLLBACK succeeded.
    open: bool,
}

impl<B: Backend> Drop for SqlBatch<B> {
    fn drop(&mut self) {
        if self.open {
            // Never hand a connection back to the pool in the middle of a transaction.
            self.conn.close_on_drop();
        }
    }
}

impl<B: Backend> SqlBatch<B> {
    async fn control(&mut self, sql: &'static str) -> StoreResult<()> {
        Ok(self.conn.control(sql).await?)
    }

    /// The chain's head, locked until the end of the transaction.
    async fn locked_head(&mut self, chain_id: &str) -> StoreResult<Option<ChainHeadRow>> {
        let sql = match <B::Conn as Conn>::DIALECT {
            // The write lock of BEGIN IMMEDIATE already covers the row.
            Dialect::Sqlite => "SELECT head_seq, head_hash FROM audit_chains WHERE chain_id = $1",
            // Each node appends to its own chain, so this row lock is not contended across
            // nodes.
            Dialect::Postgres => {
                "SELECT head_seq, head_hash FROM audit_chains WHERE chain_id = $1 FOR UPDATE"
            }
        };
        let row = query(sql)
            .bind(chain_id)
            .fetch_optional(&mut self.conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(ChainHeadRow {
            chain_id: chain_id.to_owned(),
            head_seq: row.get("head_seq")?,
            head_hash: row.get("head_hash")?,
        }))
    }
}

#[async_trait]
impl<B: Backend> Batch for SqlBatch<B> {
    async fn chain_head(&mut self, chain_id: &str) -> StoreResult<ChainHeadRow> {
        if let Some(head) = self.locked_head(chain_id).await? {
            return Ok(head);
        }
        query(
            "INSERT INTO audit_chains (chain_id, head_seq, head_hash) VALUES ($1, 0, $2) \
             ON CONFLICT (chain_id) DO NOTHING",
        )
        .bind(chain_id)
        .bind(GENESIS_HASH)
        .execute(&mut self.conn)
        .await?;
        // Whoever inserted it (this batch or a process sharing the chain id), lock it now.
        self.locked_head(chain_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("audit chain {chain_id} vanished")))
    }

    async fn set_chain_head(&mut self, head: &ChainHeadRow) -> StoreResult<()> {
        let done =
            query("UPDATE audit_chains SET head_seq = $1, head_hash = $2 WHERE chain_id = $3")
                .bind(head.head_seq)
                .bind(&head.head_hash)
                .bind(&head.chain_id)
                .execute(&mut self.conn)
                .await?;
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "audit chain {} vanished",
                head.chain_id
            )))
        }
    }

    async fn savepoint(&mut self) -> StoreResult<()> {
        self.control("SAVEPOINT ward_set").await
    }

    async fn rollback_to_savepoint(&mut self) -> StoreResult<()> {
        self.control("ROLLBACK TO SAVEPOINT ward_set").await
    }

    async fn release_savepoint(&mut self) -> StoreResult<()> {
        self.control("RELEASE SAVEPOINT ward_set").await
    }

    async fn apply(&mut self, change: &Change) -> StoreResult<Outcome> {
        apply::apply(&mut self.conn, change).await
    }

    async fn insert_audits(&mut self, events: &[PlacedAudit]) -> StoreResult<()> {
        apply::insert_audits(&mut self.conn, events).await
    }

    async fn commit(&mut self) -> StoreResult<()> {
        self.control("COMMIT").await?;
        self.open = false;
        Ok(())
    }

    async fn rollback(&mut self) -> StoreResult<()> {
        self.control("ROLLBACK").await?;
        self.open = false;
        Ok(())
    }
}
