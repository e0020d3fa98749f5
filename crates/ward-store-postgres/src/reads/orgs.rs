//! Reads of organisations.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use ward_store::{OrgRow, OrgStore, StoreResult};

use super::{all, one};
use crate::PostgresStore;
use crate::error::store_err;

fn org(row: &PgRow) -> Result<OrgRow, sqlx::Error> {
    Ok(OrgRow {
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        created_ms: row.try_get("created_ms")?,
        disabled_ms: row.try_get("disabled_ms")?,
    })
}

#[async_trait]
impl OrgStore for PostgresStore {
    async fn org(&self, org_id: &str) -> StoreResult<Option<OrgRow>> {
        let sql = "SELECT org_id, name, created_ms, disabled_ms FROM orgs WHERE org_id = $1";
        let row = sqlx::query(sql)
            .bind(org_id)
            .fetch_optional(&self.reads)
            .await;
        one(row.map_err(store_err)?.as_ref(), org)
    }

    async fn org_by_name(&self, name: &str) -> StoreResult<Option<OrgRow>> {
        let sql = "SELECT org_id, name, created_ms, disabled_ms FROM orgs WHERE name = $1";
        let row = sqlx::query(sql)
            .bind(name)
            .fetch_optional(&self.reads)
            .await;
        one(row.map_err(store_err)?.as_ref(), org)
    }

    async fn list_orgs(&self) -> StoreResult<Vec<OrgRow>> {
        let sql = "SELECT org_id, name, created_ms, disabled_ms FROM orgs \
                   ORDER BY created_ms, org_id";
        let rows = sqlx::query(sql).fetch_all(&self.reads).await;
        all(&rows.map_err(store_err)?, org)
    }
}
