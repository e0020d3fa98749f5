//! Reads of organisations.

use async_trait::async_trait;
use ward_store::{OrgRow, OrgStore, StoreResult};

use crate::exec::{Row, query};
use crate::{Backend, SqlStore};

fn org(row: &impl Row) -> StoreResult<OrgRow> {
    Ok(OrgRow {
        org_id: row.get("org_id")?,
        name: row.get("name")?,
        created_ms: row.get("created_ms")?,
        disabled_ms: row.get("disabled_ms")?,
    })
}

#[async_trait]
impl<B: Backend> OrgStore for SqlStore<B> {
    async fn org(&self, org_id: &str) -> StoreResult<Option<OrgRow>> {
        let sql = "SELECT org_id, name, created_ms, disabled_ms FROM orgs WHERE org_id = $1";
        self.one(query(sql).bind(org_id), org).await
    }

    async fn org_by_name(&self, name: &str) -> StoreResult<Option<OrgRow>> {
        let sql = "SELECT org_id, name, created_ms, disabled_ms FROM orgs WHERE name = $1";
        self.one(query(sql).bind(name), org).await
    }

    async fn list_orgs(&self) -> StoreResult<Vec<OrgRow>> {
        let sql = "SELECT org_id, name, created_ms, disabled_ms FROM orgs \
                   ORDER BY created_ms, org_id";
        self.all(query(sql), org).await
    }
}
