//! Changes to organisations: create, rename, disable and enable.

use ward_store::{Change, Outcome, StoreError, StoreResult};

use super::exactly_one;
use crate::exec::{Conn, insert_err, query};

/// Applies one organisation change (the caller dispatches only those here).
pub(super) async fn apply(conn: &mut impl Conn, change: &Change) -> StoreResult<Outcome> {
    match change {
        Change::InsertOrg(row) => {
            let sql = "INSERT INTO orgs (org_id, name, created_ms, disabled_ms) \
                       VALUES ($1, $2, $3, $4)";
            query(sql)
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
            let done = query("UPDATE orgs SET name = $1 WHERE org_id = $2")
                .bind(name)
                .bind(org_id)
                .execute(conn)
                .await
                .map_err(|e| insert_err(e, "organisation name", "organisation"))?;
            exactly_one(done, || StoreError::NotFound("organisation".into()))
        }
        Change::SetOrgDisabled {
            org_id,
            disabled_ms,
        } => {
            let done = query("UPDATE orgs SET disabled_ms = $1 WHERE org_id = $2")
                .bind(disabled_ms)
                .bind(org_id)
                .execute(conn)
                .await?;
            exactly_one(done, || StoreError::NotFound("organisation".into()))
        }
        _ => Err(StoreError::Unavailable("not an organisation change".into())),
    }
}
