//! One statement per [`Change`]. Conditional changes are single conditional statements: under
//! READ COMMITTED a second node's UPDATE waits for the first node's row lock, then re-checks its
//! WHERE clause against the committed row, so a decision can only be won once.

use ward_store::group_commit::PlacedAudit;
use ward_store::{
    AuthTxRow, Change, IntegrationRow, Outcome, StoreError, StoreResult, TotpRow, UserRow,
};

use crate::exec::{Conn, DbError, Query, Row, built_query, insert_err, query, user_insert_err};

mod handles;
mod orgs;
mod portal;
mod push;
mod recovery;
mod users;

pub(crate) async fn apply(conn: &mut impl Conn, change: &Change) -> StoreResult<Outcome> {
    match change {
        Change::InsertIntegration(row) => insert_integration(conn, row).await,
        Change::InsertUser(row) => insert_user(conn, row).await,
        Change::SetUserStatus { .. }
        | Change::SetFactorsFrozen { .. }
        | Change::SetPolicyGroup { .. }
        | Change::SetLastPromptMethod { .. } => users::apply(conn, change).await,
        Change::InsertTotp(row) => insert_totp(conn, row).await,
        Change::UseTotpStep {
            org_id,
            totp_id,
            step,
        } => {
            let done = query(
                "UPDATE totp_authenticators SET last_step = $1 \
                 WHERE org_id = $2 AND totp_id = $3 AND (last_step IS NULL OR last_step < $1)",
            )
            .bind(step)
            .bind(org_id)
            .bind(totp_id)
            .execute(conn)
            .await?;
            exactly_one(done, || {
                StoreError::ConditionFailed("totp step already used".into())
            })
        }
        Change::RecordAuthFailure {
            org_id,
            user_id,
            threshold,
            lock_until_ms,
            now_ms,
        } => {
            let limit = FailureLimit {
                threshold: *threshold,
                lock_until_ms: *lock_until_ms,
                now_ms: *now_ms,
            };
            record_failure(conn, org_id, user_id, limit).await
        }
        Change::RecordAuthSuccess {
            org_id,
            user_id,
            at_ms,
        } => record_success(conn, org_id, user_id, *at_ms).await,
        Change::InsertAuthTx(row) => insert_auth_tx(conn, row).await,
        Change::FinishAuthTx {
            org_id,
            txid,
            result,
            status,
            status_msg,
        } => finish_auth_tx(conn, org_id, txid, result, status, status_msg).await,
        Change::InsertActivation(_)
        | Change::ConsumeActivation { .. }
        | Change::InsertDevice(_)
        | Change::InsertNonce { .. }
        | Change::ConsumeNonce { .. }
        | Change::InsertPush(_)
        | Change::CheckPushLimit { .. }
        | Change::DecidePush { .. }
        | Change::MutePush { .. } => push::apply(conn, change).await,
        Change::InsertWebauthnCredential(_)
        | Change::UseWebauthnCredential { .. }
        | Change::RenameFactor { .. }
        | Change::DeleteFactor { .. }
        | Change::InsertCeremony(_)
        | Change::ConsumeCeremony { .. }
        | Change::InsertSession(_)
        | Change::TouchSession { .. }
        | Change::DeleteSession { .. }
        | Change::DeleteUserSessions { .. }
        | Change::InsertUserToken(_)
        | Change::ConsumeUserToken { .. }
        | Change::ReplaceRecoveryCodes { .. }
        | Change::UseRecoveryCode { .. } => portal::apply(conn, change).await,
        Change::OpenRecoveryCase { .. }
        | Change::AppendRecoveryEvents { .. }
        | Change::GrantRole(_)
        | Change::RevokeRole { .. }
        | Change::AddRecoveryApprover(_)
        | Change::RemoveRecoveryApprover { .. }
        | Change::SetRecoveryBlock { .. }
        | Change::SetRecovered { .. }
        | Change::RevokeFactors { .. } => recovery::apply(conn, change).await,
        Change::AdoptRecoveryCase { .. }
        | Change::RotateRecoveryHandle { .. }
        | Change::TakeNoticeSlot { .. } => handles::apply(conn, change).await,
        Change::InsertOrg(_) | Change::RenameOrg { .. } | Change::SetOrgDisabled { .. } => {
            orgs::apply(conn, change).await
        }
        Change::PurgeExpired { before_ms } => purge_expired(conn, *before_ms).await,
        // Placed by the group commit as the set is applied, inserted once per batch.
        Change::Audit(_) => Err(StoreError::Unavailable(
            "audit events are inserted per batch, not applied one by one".into(),
        )),
    }
}

/// Deletes expired rows no decision needs any more (the audit log keeps the decisions).
async fn purge_expired(conn: &mut impl Conn, before_ms: i64) -> StoreResult<Outcome> {
    let statements = [
        "DELETE FROM auth_transactions WHERE expires_ms < $1",
        "DELETE FROM push_requests WHERE expires_ms < $1 AND state <> 'pending'",
        "DELETE FROM device_nonces WHERE expires_ms < $1",
        "DELETE FROM device_activations WHERE expires_ms < $1",
        "DELETE FROM ceremonies WHERE expires_ms < $1",
        "DELETE FROM portal_sessions WHERE expires_ms < $1",
        "DELETE FROM user_tokens WHERE expires_ms < $1",
    ];
    let mut rows = 0;
    for sql in statements {
        let done = query(sql).bind(before_ms).execute(&mut *conn).await?;
        rows += done;
    }
    Ok(Outcome::Purged { rows })
}

fn exactly_one(rows: u64, otherwise: impl FnOnce() -> StoreError) -> StoreResult<Outcome> {
    if rows == 1 {
        Ok(Outcome::Done)
    } else {
        Err(otherwise())
    }
}

async fn insert_integration(conn: &mut impl Conn, row: &IntegrationRow) -> StoreResult<Outcome> {
    query(
        "INSERT INTO integrations (ikey, org_id, name, kind, skey_sealed, created_ms, push_mode, \
         prompt_policy) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&row.ikey)
    .bind(&row.org_id)
    .bind(&row.name)
    .bind(&row.kind)
    .bind(&row.skey_sealed)
    .bind(row.created_ms)
    .bind(&row.push_mode)
    .bind(&row.prompt_policy)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "ikey", "organisation"))?;
    Ok(Outcome::Done)
}

async fn insert_user(conn: &mut impl Conn, row: &UserRow) -> StoreResult<Outcome> {
    query(
        "INSERT INTO users (org_id, user_id, username, email, status, created_ms, \
         failed_attempts, locked_until_ms, last_login_ms, push_muted_until_ms, \
         factors_frozen_ms, policy_group, last_prompt_method, recovery_blocked_until_ms, \
         probation_until_ms, last_recovered_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&row.org_id)
    .bind(&row.user_id)
    .bind(&row.username)
    .bind(&row.email)
    .bind(&row.status)
    .bind(row.created_ms)
    .bind(row.failed_attempts)
    .bind(row.locked_until_ms)
    .bind(row.last_login_ms)
    .bind(row.push_muted_until_ms)
    .bind(row.factors_frozen_ms)
    .bind(&row.policy_group)
    .bind(&row.last_prompt_method)
    .bind(row.recovery_blocked_until_ms)
    .bind(row.probation_until_ms)
    .bind(row.last_recovered_ms)
    .execute(conn)
    .await
    .map_err(user_insert_err)?;
    Ok(Outcome::Done)
}

async fn insert_totp(conn: &mut impl Conn, row: &TotpRow) -> StoreResult<Outcome> {
    query(
        "INSERT INTO totp_authenticators (totp_id, org_id, user_id, name, seed_sealed, \
         algorithm, digits, step_secs, last_step, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&row.totp_id)
    .bind(&row.org_id)
    .bind(&row.user_id)
    .bind(&row.name)
    .bind(&row.seed_sealed)
    .bind(&row.algorithm)
    .bind(row.digits)
    .bind(row.step_secs)
    .bind(row.last_step)
    .bind(row.created_ms)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "totp_id", "user"))?;
    Ok(Outcome::Done)
}

async fn insert_auth_tx(conn: &mut impl Conn, row: &AuthTxRow) -> StoreResult<Outcome> {
    query(
        "INSERT INTO auth_transactions (txid, org_id, ikey, user_id, factor, result, status, \
         status_msg, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&row.txid)
    .bind(&row.org_id)
    .bind(&row.ikey)
    .bind(&row.user_id)
    .bind(&row.factor)
    .bind(&row.result)
    .bind(&row.status)
    .bind(&row.status_msg)
    .bind(row.created_ms)
    .bind(row.expires_ms)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "txid", "integration"))?;
    Ok(Outcome::Done)
}

/// Conditional: decides a transaction only while it is `waiting`.
async fn finish_auth_tx(
    conn: &mut impl Conn,
    org_id: &str,
    txid: &str,
    result: &str,
    status: &str,
    status_msg: &str,
) -> StoreResult<Outcome> {
    let done = query(
        "UPDATE auth_transactions SET result = $1, status = $2, status_msg = $3 \
         WHERE org_id = $4 AND txid = $5 AND result = 'waiting'",
    )
    .bind(result)
    .bind(status)
    .bind(status_msg)
    .bind(org_id)
    .bind(txid)
    .execute(conn)
    .await?;
    exactly_one(done, || {
        StoreError::ConditionFailed("auth transaction is not waiting".into())
    })
}

/// The lockout rule one failure is counted under.
#[derive(Clone, Copy)]
struct FailureLimit {
    threshold: i64,
    lock_until_ms: i64,
    now_ms: i64,
}

/// Counts a failure while the account is not locked, in one conditional statement.
async fn record_failure(
    conn: &mut impl Conn,
    org_id: &str,
    user_id: &str,
    limit: FailureLimit,
) -> StoreResult<Outcome> {
    // On the right-hand side the columns hold their values before this update. A lock that
    // has run out starts the count again.
    let row = query(
        "UPDATE users SET \
         failed_attempts = CASE WHEN locked_until_ms IS NOT NULL AND locked_until_ms <= $3 \
           THEN 1 ELSE failed_attempts + 1 END, \
         locked_until_ms = CASE \
           WHEN (CASE WHEN locked_until_ms IS NOT NULL AND locked_until_ms <= $3 \
                 THEN 1 ELSE failed_attempts + 1 END) >= $1 THEN $2 \
           ELSE NULL END \
         WHERE org_id = $4 AND user_id = $5 \
           AND (locked_until_ms IS NULL OR locked_until_ms <= $3) \
         RETURNING failed_attempts, locked_until_ms",
    )
    .bind(limit.threshold)
    .bind(limit.lock_until_ms)
    .bind(limit.now_ms)
    .bind(org_id)
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(Outcome::Failures {
            count: row.get("failed_attempts")?,
            locked_until_ms: row.get("locked_until_ms")?,
        }),
        None => Err(locked_or_missing(conn, org_id, user_id).await),
    }
}

/// Clears the failure count and records the login, while the account is not locked.
async fn record_success(
    conn: &mut impl Conn,
    org_id: &str,
    user_id: &str,
    at_ms: i64,
) -> StoreResult<Outcome> {
    let done = query(
        "UPDATE users SET failed_attempts = 0, locked_until_ms = NULL, last_login_ms = $1 \
         WHERE org_id = $2 AND user_id = $3 \
           AND (locked_until_ms IS NULL OR locked_until_ms <= $1)",
    )
    .bind(at_ms)
    .bind(org_id)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    if done == 1 {
        Ok(Outcome::Done)
    } else {
        Err(locked_or_missing(conn, org_id, user_id).await)
    }
}

/// Why a conditional update of a user's lockout state matched no row.
async fn locked_or_missing(conn: &mut impl Conn, org_id: &str, user_id: &str) -> StoreError {
    let exists = query("SELECT 1 FROM users WHERE org_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(conn)
        .await;
    match exists {
        Ok(Some(_)) => StoreError::ConditionFailed("account locked".into()),
        Ok(None) => StoreError::NotFound("user".into()),
        Err(err) => err.into(),
    }
}

/// Audit rows per INSERT statement (11 bound values each).
const AUDIT_ROWS_PER_STATEMENT: usize = 256;

/// Inserts a batch's placed audit events, many rows per statement.
pub(crate) async fn insert_audits(conn: &mut impl Conn, events: &[PlacedAudit]) -> StoreResult<()> {
    for chunk in events.chunks(AUDIT_ROWS_PER_STATEMENT) {
        let mut insert = multi_row(
            "INSERT INTO audit_events (chain_id, seq, prev_hash, hash, org_id, ts_ms, actor, \
             action, target, outcome, details)",
            chunk.len(),
            11,
        );
        for PlacedAudit { placement, event } in chunk {
            insert.push_bind(&placement.chain_id);
            insert.push_bind(placement.seq);
            insert.push_bind(&placement.prev_hash);
            insert.push_bind(&placement.hash);
            insert.push_bind(&event.org_id);
            insert.push_bind(event.ts_ms);
            insert.push_bind(&event.actor);
            insert.push_bind(&event.action);
            insert.push_bind(&event.target);
            insert.push_bind(&event.outcome);
            insert.push_bind(&event.details);
        }
        insert.execute(&mut *conn).await.map_err(|err| match err {
            // The head row is behind its events: someone wrote to the chain around the store.
            DbError::Unique { .. } => StoreError::Corrupt(
                "audit chain already holds an event at a sequence number its head says is free"
                    .into(),
            ),
            other => other.into(),
        })?;
    }
    Ok(())
}

/// `head VALUES ($1, …), (…), …`: an INSERT of `rows` rows of `columns` values each, to be
/// bound row by row.
fn multi_row<'a>(head: &'static str, rows: usize, columns: usize) -> Query<'a> {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(head.len() + rows * columns * 6);
    text.push_str(head);
    text.push_str(" VALUES ");
    for row in 0..rows {
        text.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            let separator = if column == 0 { "" } else { ", " };
            // Writing to a String cannot fail.
            let _ = write!(text, "{separator}${}", row * columns + column + 1);
        }
        text.push(')');
    }
    built_query(text, rows * columns)
}
