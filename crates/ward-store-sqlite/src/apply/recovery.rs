//! The recovery changes: cases and their events (appends conditional on the case's version),
//! roles, approver sets, the account's recovery fields, and the revocation of every factor.

use sqlx::SqliteConnection;
use ward_store::{
    ApproverRow, Change, Outcome, RecoveryCaseRow, RecoveryEventRow, RoleRow, StoreError,
    StoreResult,
};

use super::exactly_one;
use crate::error::{case_insert_err, insert_err, store_err};

/// Events per INSERT statement (4 bound values each).
const EVENTS_PER_STATEMENT: usize = 256;

/// Applies one of the recovery changes (the caller dispatches only those here).
pub(super) async fn apply(conn: &mut SqliteConnection, change: &Change) -> StoreResult<Outcome> {
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
            let done = sqlx::query(
                "UPDATE recovery_cases SET version = ?, state = ?, is_open = ?, updated_ms = ?, \
                 expires_ms = ? WHERE case_id = ? AND version = ? AND (is_open = 1 OR ? = 0)",
            )
            .bind(version)
            .bind(state)
            .bind(i64::from(*is_open))
            .bind(updated_ms)
            .bind(expires_ms)
            .bind(case_id)
            .bind(expected_version)
            .bind(i64::from(*is_open))
            .execute(&mut *conn)
            .await
            .map_err(store_err)?;
            exactly_one(done.rows_affected(), || {
                StoreError::ConditionFailed("recovery case is unknown or moved on".into())
            })?;
            insert_events(conn, events).await
        }
        _ => apply_people(conn, change).await,
    }
}

/// The recovery changes to who does what: roles, and who may approve a user's recovery.
async fn apply_people(conn: &mut SqliteConnection, change: &Change) -> StoreResult<Outcome> {
    match change {
        Change::GrantRole(row) => grant_role(conn, row).await,
        Change::RevokeRole {
            org_id,
            user_id,
            role,
        } => {
            let done =
                sqlx::query("DELETE FROM user_roles WHERE org_id = ? AND user_id = ? AND role = ?")
                    .bind(org_id)
                    .bind(user_id)
                    .bind(role)
                    .execute(conn)
                    .await
                    .map_err(store_err)?;
            exactly_one(done.rows_affected(), || StoreError::NotFound("role".into()))
        }
        Change::AddRecoveryApprover(row) => add_approver(conn, row).await,
        Change::RemoveRecoveryApprover {
            org_id,
            user_id,
            approver_id,
        } => {
            let done = sqlx::query(
                "DELETE FROM recovery_approvers \
                 WHERE org_id = ? AND user_id = ? AND approver_id = ?",
            )
            .bind(org_id)
            .bind(user_id)
            .bind(approver_id)
            .execute(conn)
            .await
            .map_err(store_err)?;
            exactly_one(done.rows_affected(), || {
                StoreError::NotFound("approver".into())
            })
        }
        _ => apply_account(conn, change).await,
    }
}

/// The recovery changes to the account itself: its recovery fields and its factors.
async fn apply_account(conn: &mut SqliteConnection, change: &Change) -> StoreResult<Outcome> {
    match change {
        Change::SetRecoveryBlock {
            org_id,
            user_id,
            until_ms,
        } => {
            let sql =
                "UPDATE users SET recovery_blocked_until_ms = ? WHERE org_id = ? AND user_id = ?";
            let done = sqlx::query(sql)
                .bind(until_ms)
                .bind(org_id)
                .bind(user_id)
                .execute(conn)
                .await
                .map_err(store_err)?;
            exactly_one(done.rows_affected(), || StoreError::NotFound("user".into()))
        }
        Change::SetRecovered {
            org_id,
            user_id,
            at_ms,
            probation_until_ms,
        } => {
            let done = sqlx::query(
                "UPDATE users SET last_recovered_ms = ?, probation_until_ms = ? \
                 WHERE org_id = ? AND user_id = ?",
            )
            .bind(at_ms)
            .bind(probation_until_ms)
            .bind(org_id)
            .bind(user_id)
            .execute(conn)
            .await
            .map_err(store_err)?;
            exactly_one(done.rows_affected(), || StoreError::NotFound("user".into()))
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
    conn: &mut SqliteConnection,
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
    sqlx::query(
        "INSERT INTO recovery_cases (case_id, org_id, user_id, handle_hash, state, is_open, \
         opened_by, opened_ms, updated_ms, expires_ms, version, opened_from, adopt_hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[RecoveryEventRow],
) -> StoreResult<Outcome> {
    for chunk in events.chunks(EVENTS_PER_STATEMENT) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO recovery_events (case_id, seq, at_ms, event) ",
        );
        insert.push_values(chunk, |mut row, event| {
            row.push_bind(&event.case_id)
                .push_bind(event.seq)
                .push_bind(event.at_ms)
                .push_bind(&event.event);
        });
        insert
            .build()
            .execute(&mut *conn)
            .await
            .map_err(|err| insert_err(err, "recovery event", "recovery case"))?;
    }
    Ok(Outcome::Done)
}

/// Grants a role to a user of that organisation (the foreign key alone would accept a user of
/// another one).
async fn grant_role(conn: &mut SqliteConnection, row: &RoleRow) -> StoreResult<Outcome> {
    let done = sqlx::query(
        "INSERT INTO user_roles (org_id, user_id, role, granted_ms, granted_by) \
         SELECT org_id, user_id, ?, ?, ? FROM users WHERE org_id = ? AND user_id = ?",
    )
    .bind(&row.role)
    .bind(row.granted_ms)
    .bind(&row.granted_by)
    .bind(&row.org_id)
    .bind(&row.user_id)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "role", "user"))?;
    exactly_one(done.rows_affected(), || StoreError::NotFound("user".into()))
}

/// Adds an approver; both users must belong to the organisation.
async fn add_approver(conn: &mut SqliteConnection, row: &ApproverRow) -> StoreResult<Outcome> {
    let done = sqlx::query(
        "INSERT INTO recovery_approvers (org_id, user_id, approver_id, added_ms) \
         SELECT u.org_id, u.user_id, a.user_id, ? FROM users u \
         JOIN users a ON a.org_id = u.org_id \
         WHERE u.org_id = ? AND u.user_id = ? AND a.user_id = ?",
    )
    .bind(row.added_ms)
    .bind(&row.org_id)
    .bind(&row.user_id)
    .bind(&row.approver_id)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "approver", "user"))?;
    exactly_one(done.rows_affected(), || StoreError::NotFound("user".into()))
}

/// Deletes every factor of a user but the passkey `keep`; returns how many rows went.
async fn revoke_factors(
    conn: &mut SqliteConnection,
    org_id: &str,
    user_id: &str,
    keep: Option<&str>,
) -> StoreResult<Outcome> {
    // `IS NOT` is NULL-safe: with no passkey to keep, every credential goes.
    let done = sqlx::query(
        "DELETE FROM webauthn_credentials WHERE org_id = ? AND user_id = ? AND cred_id IS NOT ?",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(keep)
    .execute(&mut *conn)
    .await
    .map_err(store_err)?;
    let mut rows = done.rows_affected();
    for sql in [
        "DELETE FROM totp_authenticators WHERE org_id = ? AND user_id = ?",
        "DELETE FROM devices WHERE org_id = ? AND user_id = ?",
        "DELETE FROM recovery_codes WHERE org_id = ? AND user_id = ?",
    ] {
        let done = sqlx::query(sql)
            .bind(org_id)
            .bind(user_id)
            .execute(&mut *conn)
            .await
            .map_err(store_err)?;
        rows += done.rows_affected();
    }
    Ok(Outcome::Purged { rows })
}
