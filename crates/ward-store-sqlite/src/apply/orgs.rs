//! Changes to organisations: create, rename, disable and enable.

use sqlx::SqliteConnection;
use ward_store::{Change, Outcome, StoreError, StoreResult};

use super::exactly_one;
use crate::error::{insert_err, store_err};

/// Applies one organisation change (the caller dispatches only those here).
pub(super) async fn apply(conn: &mut SqliteConnection, change: &Change) -> StoreResult<Outcome> {
    match change {
        Change::InsertOrg(row) => {
            let sql = "INSERT INTO orgs (org_id, name, created_ms, disabled_ms) \
                       VALUES (?, ?, ?, ?)";
            sqlx::query(sql)
                .bind(&row.org_id)
                .bind(&row.name)
                .bind(row.created_ms)
                .bind(row.disabled_ms)
                .execute(conn)
                .await
                .map_err(|e| insert_err(e, "organisation", "organisation"))?;
            Ok(Outcome::Done)
        }
        Change::RenameOrg { org_id, name } => {
            let done = sqlx::query("UPDATE orgs SET name = ? WHERE org_id = ?")
                .bind(name)
                .bind(org_id)
                .execute(conn)
                .await
                .map_err(|e| insert_err(e, "organisation name", "organisation"))?;
            exactly_one(done.rows_affected(), || {
                StoreError::NotFound("organisation".into())
            })
        }
        Change::SetOrgDisabled {
            org_id,
            disabled_ms,
        } => {
            let done = sqlx::query("UPDATE orgs SET disabled_ms = ? WHERE org_id = ?")
                .bind(disabled_ms)
                .bind(org_id)
                .execute(conn)
                .await
                .map_err(store_err)?;
            exactly_one(done.rows_affected(), || {
                StoreError::NotFound("organisation".into())
            })
        }
        _ => Err(StoreError::Unavailable("not an organisation change".into())),
    }
}
