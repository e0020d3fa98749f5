//! The recovery changes: cases and their events (appends conditional on the case's version),
//! roles, approver sets, the account's recovery fields, and the revocation of every factor.

use ward_store::{
    ApproverRow, Change, Outcome, RecoveryCaseRow, RecoveryEventRow, RoleRow, StoreError,
    StoreResult,
};

use super::{exactly_one, multi_row};
use crate::exec::{Conn, case_insert_err, insert_err, query};

/// Events per INSERT statement (4 bound values each).
const EVENTS_PER_STATEMENT: usize = 256;

/// Applies one of the recovery changes (the caller dispatches only those here).
pub(super) async fn apply(conn: &mut impl Conn, change: &Change) -> StoreResult<Outcome> {
    match change {
        Change::OpenRecoveryCase { case, first_event } => open_case(conn, case, first_event).await,
        Change::AppendRecoveryEvents {
            case_id,
            expected_version,
            events,
            state,
            is_open,
            updated_ms,
            expires_ms,
        } => {
            let version = next_version(case_id, *expected_version, events)?;
            // One conditional statement, so only one of concurrent appends wins. A closed case
            // stays closed: its user may have opened another one since.
            let done = query(
                "UPDATE recovery_cases \
                 SET version = $1, state = $2, is_open = $3, updated_ms = $4, expires_ms = $5 \
                 WHERE case_id = $6 AND version = $7 AND (is_open = 1 OR $3 = 0)",
            )
            .bind(version)
            .bind(state)
            .bind(i64::from(*is_open))
            .bind(updated_ms)
            .bind(expires_ms)
            .bind(case_id)
            .bind(expected_version)
            .execute(&mut *conn)
            .await?;
            exactly_one(done, || {
                StoreError::ConditionFailed("recovery case is unknown or moved on".into())
            })?;
            insert_events(conn, events).await
        }
        _ => apply_people(conn, change).await,
    }
}

/// The recovery changes to who does what: roles, and who may approve a user's recovery.
async fn apply_people(conn: &mut impl Conn, change: &Change) -> StoreResult<Outcome> {
    match change {
        Change::GrantRole(row) => grant_role(conn, row).await,
        Change::RevokeRole {
            org_id,
            user_id,
            role,
        } => {
            let done =
                query("DELETE FROM user_roles WHERE org_id = $1 AND user_id = $2 AND role = $3")
                    .bind(org_id)
                    .bind(user_id)
                    .bind(role)
                    .execute(conn)
                    .await?;
            exactly_one(done, || StoreError::NotFound("role".into()))
        }
        Change::AddRecoveryApprover(row) => add_approver(conn, row).await,
        Change::RemoveRecoveryApprover {
            org_id,
            user_id,
            approver_id,
        } => {
            let done = query(
                "DELETE FROM recovery_approvers \
                 WHERE org_id = $1 AND user_id = $2 AND approver_id = $3",
            )
            .bind(org_id)
            .bind(user_id)
            .bind(approver_id)
            .execute(conn)
            .await?;
            exactly_one(done, || StoreError::NotFound("approver".into()))
        }
        _ => apply_account(conn, change).await,
    }
}

/// The recovery changes to the account itself: its recovery fields and its factors.
async fn apply_account(conn: &mut impl Conn, change: &Change) -> StoreResult<Outcome> {
    match change {
        Change::SetRecoveryBlock {
            org_id,
            user_id,
            until_ms,
        } => {
            let sql = "UPDATE users SET recovery_blocked_until_ms = $1 \
                       WHERE org_id = $2 AND user_id = $3";
            let done = query(sql)
                .bind(until_ms)
                .bind(org_id)
                .bind(user_id)
                .execute(conn)
                .await?;
            exactly_one(done, || StoreError::NotFound("user".into()))
        }
        Change::SetRecovered {
            org_id,
            user_id,
            at_ms,
            probation_until_ms,
        } => {
            let done = query(
                "UPDATE users SET last_recovered_ms = $1, probation_until_ms = $2 \
                 WHERE org_id = $3 AND user_id = $4",
            )
            .bind(at_ms)
            .bind(probation_until_ms)
            .bind(org_id)
            .bind(user_id)
            .execute(conn)
            .await?;
            exactly_one(done, || StoreError::NotFound("user".into()))
        }
        Change::RevokeFactors {
            org_id,
            user_id,
            keep_cred_id,
        } => revoke_factors(conn, org_id, user_id, keep_cred_id.as_deref()).await,
        // `apply::apply` matches every change exhaustively and sends only recovery changes here.
        _ => Err(StoreError::Unavailable(
            "not a recovery change; dispatched to the wrong module".into(),
        )),
    }
}

/// The case's version after appending `events`: they must belong to the case and be numbered
/// on from `expected_version`, and there must be at least one (a case is the fold of its
/// events, so a state change without an event would be lost on a replay).
fn next_version(
    case_id: &str,
    expected_version: i64,
    events: &[RecoveryEventRow],
) -> StoreResult<i64> {
    if events.is_empty() {
        return Err(StoreError::Corrupt(format!(
            "an append to recovery case {case_id} carries no event"
        )));
    }
    let mut version = expected_version;
    for event in events {
        version = version
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupt("recovery case version overflows".into()))?;
        if event.case_id != case_id || event.seq != version {
            // A caller's mistake rather than a state of the data (as for recovery codes).
            return Err(StoreError::Corrupt(format!(
                "event {}#{} does not follow version {expected_version} of recovery case {case_id}",
                event.case_id, event.seq
            )));
        }
    }
    Ok(version)
}

async fn open_case(
    conn: &mut impl Conn,
    case: &RecoveryCaseRow,
    first_event: &RecoveryEventRow,
) -> StoreResult<Outcome> {
    if case.version != 1 {
        return Err(StoreError::Corrupt(format!(
            "a new recovery case {} must be at version 1, not {}",
            case.case_id, case.version
        )));
    }
    next_version(&case.case_id, 0, std::slice::from_ref(first_event))?;
    query(
        "INSERT INTO recovery_cases (case_id, org_id, user_id, handle_hash, state, is_open, \
         opened_by, opened_ms, updated_ms, expires_ms, version, opened_from, adopt_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&case.case_id)
    .bind(&case.org_id)
    .bind(&case.user_id)
    .bind(&case.handle_hash)
    .bind(&case.state)
    .bind(i64::from(case.is_open))
    .bind(&case.opened_by)
    .bind(case.opened_ms)
    .bind(case.updated_ms)
    .bind(case.expires_ms)
    .bind(case.version)
    .bind(&case.opened_from)
    .bind(&case.adopt_hash)
    .execute(&mut *conn)
    .await
    .map_err(case_insert_err)?;
    insert_events(conn, std::slice::from_ref(first_event)).await
}

async fn insert_events(conn: &mut impl Conn, events: &[RecoveryEventRow]) -> StoreResult<Outcome> {
    for chunk in events.chunks(EVENTS_PER_STATEMENT) {
        let mut insert = multi_row(
            "INSERT INTO recovery_events (case_id, seq, at_ms, event)",
            chunk.len(),
            4,
        );
        for event in chunk {
            insert.push_bind(&event.case_id);
            insert.push_bind(event.seq);
            insert.push_bind(event.at_ms);
            insert.push_bind(&event.event);
        }
        insert
            .execute(&mut *conn)
            .await
            .map_err(|err| insert_err(err, "recovery event", "recovery case"))?;
    }
    Ok(Outcome::Done)
}

/// Grants a role to a user of that organisation (the foreign key alone would accept a user of
/// another one).
async fn grant_role(conn: &mut impl Conn, row: &RoleRow) -> StoreResult<Outcome> {
    let done = query(
        "INSERT INTO user_roles (org_id, user_id, role, granted_ms, granted_by) \
         SELECT org_id, user_id, $1, $2, $3 FROM users WHERE org_id = $4 AND user_id = $5",
    )
    .bind(&row.role)
    .bind(row.granted_ms)
    .bind(&row.granted_by)
    .bind(&row.org_id)
    .bind(&row.user_id)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "role", "user"))?;
    exactly_one(done, || StoreError::NotFound("user".into()))
}

/// Adds an approver; both users must belong to the organisation.
async fn add_approver(conn: &mut impl Conn, row: &ApproverRow) -> StoreResult<Outcome> {
    let done = query(
        "INSERT INTO recovery_approvers (org_id, user_id, approver_id, added_ms) \
         SELECT u.org_id, u.user_id, a.user_id, $1 FROM users u \
         JOIN users a ON a.org_id = u.org_id \
         WHERE u.org_id = $2 AND u.user_id = $3 AND a.user_id = $4",
    )
    .bind(row.added_ms)
    .bind(&row.org_id)
    .bind(&row.user_id)
    .bind(&row.approver_id)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "approver", "user"))?;
    exactly_one(done, || StoreError::NotFound("user".into()))
}

/// Deletes every factor of a user but the passkey `keep`; returns how many rows went.
async fn revoke_factors(
    conn: &mut impl Conn,
    org_id: &str,
    user_id: &str,
    keep: Option<&str>,
) -> StoreResult<Outcome> {
    // NULL-safe: with no passkey to keep, every credential goes.
    let done = query(
        "DELETE FROM webauthn_credentials \
         WHERE org_id = $1 AND user_id = $2 AND cred_id IS DISTINCT FROM $3",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(keep)
    .execute(&mut *conn)
    .await?;
    let mut rows = done;
    for sql in [
        "DELETE FROM totp_authenticators WHERE org_id = $1 AND user_id = $2",
        "DELETE FROM devices WHERE org_id = $1 AND user_id = $2",
        "DELETE FROM recovery_codes WHERE org_id = $1 AND user_id = $2",
    ] {
        let done = query(sql)
            .bind(org_id)
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
        rows += done;
    }
    Ok(Outcome::Purged { rows })
}
