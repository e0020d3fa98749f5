//! Changes to a user's settings: status, factor freeze, policy group, last prompt method.

use ward_store::{Change, Outcome, StoreError, StoreResult};

use super::exactly_one;
use crate::exec::{Conn, query};

/// Applies one user-setting change (the caller dispatches only those here).
pub(super) async fn apply(conn: &mut impl Conn, change: &Change) -> StoreResult<Outcome> {
    match change {
        Change::SetUserStatus {
            org_id,
            user_id,
            status,
        } => {
            let done = query("UPDATE users SET status = $1 WHERE org_id = $2 AND user_id = $3")
                .bind(status)
                .bind(org_id)
                .bind(user_id)
                .execute(conn)
                .await?;
            exactly_one(done, || StoreError::NotFound("user".into()))
        }
        Change::SetFactorsFrozen {
            org_id,
            user_id,
            frozen_ms,
        } => {
            let sql = "UPDATE users SET factors_frozen_ms = $1 WHERE org_id = $2 AND user_id = $3";
            let done = query(sql)
                .bind(frozen_ms)
                .bind(org_id)
                .bind(user_id)
                .execute(conn)
                .await?;
            exactly_one(done, || StoreError::NotFound("user".into()))
        }
        Change::SetPolicyGroup {
            org_id,
            user_id,
            group,
        } => {
            let sql = "UPDATE users SET policy_group = $1 WHERE org_id = $2 AND user_id = $3";
            let done = query(sql)
                .bind(group)
                .bind(org_id)
                .bind(user_id)
                .execute(conn)
                .await?;
            exactly_one(done, || StoreError::NotFound("user".into()))
        }
        Change::SetLastPromptMethod {
            org_id,
            user_id,
            method,
        } => {
            let sql = "UPDATE users SET last_prompt_method = $1 WHERE org_id = $2 AND user_id = $3";
            let done = query(sql)
                .bind(method)
                .bind(org_id)
                .bind(user_id)
                .execute(conn)
                .await?;
            exactly_one(done, || StoreError::NotFound("user".into()))
        }
        _ => Err(StoreError::Unavailable("not a user-setting change".into())),
    }
}
