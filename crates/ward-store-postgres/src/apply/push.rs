//! The push-authenticator changes: activation codes, devices, stream nonces, push requests.

use sqlx::{PgConnection, Row};
use ward_store::{ActivationRow, Change, DeviceRow, Outcome, PushRow, StoreError, StoreResult};

use super::exactly_one;
use crate::error::{insert_err, store_err};

/// Applies one of the push changes (the caller dispatches only those here).
pub(super) async fn apply(conn: &mut PgConnection, change: &Change) -> StoreResult<Outcome> {
    match change {
        Change::InsertActivation(row) => insert_activation(conn, row).await,
        Change::ConsumeActivation { code_hash, now_ms } => {
            consume_activation(conn, code_hash, *now_ms).await
        }
        Change::InsertDevice(row) => insert_device(conn, row).await,
        Change::InsertNonce {
            nonce_hash,
            device_id,
            expires_ms,
        } => insert_nonce(conn, nonce_hash, device_id, *expires_ms).await,
        Change::ConsumeNonce {
            nonce_hash,
            device_id,
            now_ms,
        } => consume_nonce(conn, nonce_hash, device_id, *now_ms).await,
        Change::InsertPush(row) => insert_push(conn, row).await,
        Change::CheckPushLimit {
            org_id,
            user_id,
            since_ms,
            limit,
        } => check_push_limit(conn, org_id, user_id, *since_ms, *limit).await,
        Change::DecidePush {
            org_id,
            txid,
            state,
            decided_ms,
        } => {
            let done = sqlx::query(
                "UPDATE push_requests SET state = $1, decided_ms = $2 \
                 WHERE org_id = $3 AND txid = $4 AND state = 'pending'",
            )
            .bind(state)
            .bind(decided_ms)
            .bind(org_id)
            .bind(txid)
            .execute(conn)
            .await
            .map_err(store_err)?;
            exactly_one(done.rows_affected(), || {
                StoreError::ConditionFailed("push already decided".into())
            })
        }
        Change::MutePush {
            org_id,
            user_id,
            until_ms,
        } => {
            let done = sqlx::query(
                "UPDATE users SET push_muted_until_ms = $1 WHERE org_id = $2 AND user_id = $3",
            )
            .bind(until_ms)
            .bind(org_id)
            .bind(user_id)
            .execute(conn)
            .await
            .map_err(store_err)?;
            exactly_one(done.rows_affected(), || StoreError::NotFound("user".into()))
        }
        // `apply::apply` matches every change exhaustively and sends only the ones above here.
        _ => Err(StoreError::Unavailable(
            "not a push change; dispatched to the wrong module".into(),
        )),
    }
}

async fn insert_activation(conn: &mut PgConnection, row: &ActivationRow) -> StoreResult<Outcome> {
    sqlx::query(
        "INSERT INTO device_activations (code_hash, org_id, user_id, created_ms, expires_ms, \
         used_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&row.code_hash)
    .bind(&row.org_id)
    .bind(&row.user_id)
    .bind(row.created_ms)
    .bind(row.expires_ms)
    .bind(row.used_ms)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "code_hash", "user"))?;
    Ok(Outcome::Done)
}

async fn consume_activation(
    conn: &mut PgConnection,
    code_hash: &str,
    now_ms: i64,
) -> StoreResult<Outcome> {
    let row = sqlx::query(
        "UPDATE device_activations SET used_ms = $1 \
         WHERE code_hash = $2 AND used_ms IS NULL AND expires_ms > $3 RETURNING org_id, user_id",
    )
    .bind(now_ms)
    .bind(code_hash)
    .bind(now_ms)
    .fetch_optional(conn)
    .await
    .map_err(store_err)?
    .ok_or_else(|| {
        StoreError::ConditionFailed("activation code is unknown, used or expired".into())
    })?;
    Ok(Outcome::Activated {
        org_id: row.try_get("org_id").map_err(store_err)?,
        user_id: row.try_get("user_id").map_err(store_err)?,
    })
}

async fn insert_device(conn: &mut PgConnection, row: &DeviceRow) -> StoreResult<Outcome> {
    sqlx::query(
        "INSERT INTO devices (device_id, org_id, user_id, name, platform, key_alg, public_key, \
         created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&row.device_id)
    .bind(&row.org_id)
    .bind(&row.user_id)
    .bind(&row.name)
    .bind(&row.platform)
    .bind(&row.key_alg)
    .bind(&row.public_key)
    .bind(row.created_ms)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "device_id", "user"))?;
    Ok(Outcome::Done)
}

async fn insert_nonce(
    conn: &mut PgConnection,
    nonce_hash: &str,
    device_id: &str,
    expires_ms: i64,
) -> StoreResult<Outcome> {
    sqlx::query(
        "INSERT INTO device_nonces (nonce_hash, device_id, expires_ms) VALUES ($1, $2, $3)",
    )
    .bind(nonce_hash)
    .bind(device_id)
    .bind(expires_ms)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "nonce_hash", "device"))?;
    Ok(Outcome::Done)
}

async fn consume_nonce(
    conn: &mut PgConnection,
    nonce_hash: &str,
    device_id: &str,
    now_ms: i64,
) -> StoreResult<Outcome> {
    let done = sqlx::query(
        "DELETE FROM device_nonces WHERE nonce_hash = $1 AND device_id = $2 AND expires_ms > $3",
    )
    .bind(nonce_hash)
    .bind(device_id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await
    .map_err(store_err)?;
    if done.rows_affected() != 1 {
        return Err(StoreError::ConditionFailed(
            "nonce is unknown, used or expired".into(),
        ));
    }
    // Nonces a device fetched but never used would otherwise stay forever.
    sqlx::query("DELETE FROM device_nonces WHERE device_id = $1 AND expires_ms <= $2")
        .bind(device_id)
        .bind(now_ms)
        .execute(conn)
        .await
        .map_err(store_err)?;
    Ok(Outcome::Done)
}

async fn insert_push(conn: &mut PgConnection, row: &PushRow) -> StoreResult<Outcome> {
    sqlx::query(
        "INSERT INTO push_requests (txid, org_id, ikey, user_id, device_id, state, number, \
         context, context_hash, created_ms, expires_ms, decided_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&row.txid)
    .bind(&row.org_id)
    .bind(&row.ikey)
    .bind(&row.user_id)
    .bind(&row.device_id)
    .bind(&row.state)
    .bind(&row.number)
    .bind(&row.context)
    .bind(&row.context_hash)
    .bind(row.created_ms)
    .bind(row.expires_ms)
    .bind(row.decided_ms)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "txid", "device"))?;
    Ok(Outcome::Done)
}

/// Fails with `ConditionFailed` when `limit` or more pushes were made to the user since
/// `since_ms`; holds the user's row until the transaction ends.
async fn check_push_limit(
    conn: &mut PgConnection,
    org_id: &str,
    user_id: &str,
    since_ms: i64,
    limit: i64,
) -> StoreResult<Outcome> {
    // The row lock makes a second node's check wait until this transaction ends; the count
    // below then runs on a new snapshot (READ COMMITTED) that sees the pushes it committed.
    let user = sqlx::query("SELECT 1 FROM users WHERE org_id = $1 AND user_id = $2 FOR UPDATE")
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_err)?;
    if user.is_none() {
        return Err(StoreError::NotFound("user".into()));
    }
    let sent: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM push_requests \
         WHERE org_id = $1 AND user_id = $2 AND created_ms >= $3",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(since_ms)
    .fetch_one(&mut *conn)
    .await
    .map_err(store_err)?;
    if sent < limit {
        Ok(Outcome::Done)
    } else {
        Err(StoreError::ConditionFailed("push limit reached".into()))
    }
}
