//! The push-authenticator changes: activation codes, devices, stream nonces, push requests.

use ward_store::{ActivationRow, Change, DeviceRow, Outcome, PushRow, StoreError, StoreResult};

use super::exactly_one;
use crate::Dialect;
use crate::exec::{Conn, Row, insert_err, query};

/// Applies one of the push changes (the caller dispatches only those here).
pub(super) async fn apply(conn: &mut impl Conn, change: &Change) -> StoreResult<Outcome> {
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
            let done = query(
                "UPDATE push_requests SET state = $1, decided_ms = $2 \
                 WHERE org_id = $3 AND txid = $4 AND state = 'pending'",
            )
            .bind(state)
            .bind(decided_ms)
            .bind(org_id)
            .bind(txid)
            .execute(conn)
            .await?;
            exactly_one(done, || {
                StoreError::ConditionFailed("push already decided".into())
            })
        }
        Change::MutePush {
            org_id,
            user_id,
            until_ms,
        } => {
            let done = query(
                "UPDATE users SET push_muted_until_ms = $1 WHERE org_id = $2 AND user_id = $3",
            )
            .bind(until_ms)
            .bind(org_id)
            .bind(user_id)
            .execute(conn)
            .await?;
            exactly_one(done, || StoreError::NotFound("user".into()))
        }
        // `apply::apply` matches every change exhaustively and sends only the ones above here.
        _ => Err(StoreError::Unavailable(
            "not a push change; dispatched to the wrong module".into(),
        )),
    }
}

async fn insert_activation(conn: &mut impl Conn, row: &ActivationRow) -> StoreResult<Outcome> {
    query(
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
    conn: &mut impl Conn,
    code_hash: &str,
    now_ms: i64,
) -> StoreResult<Outcome> {
    let row = query(
        "UPDATE device_activations SET used_ms = $1 \
         WHERE code_hash = $2 AND used_ms IS NULL AND expires_ms > $3 RETURNING org_id, user_id",
    )
    .bind(now_ms)
    .bind(code_hash)
    .bind(now_ms)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| {
        StoreError::ConditionFailed("activation code is unknown, used or expired".into())
    })?;
    Ok(Outcome::Activated {
        org_id: row.get("org_id")?,
        user_id: row.get("user_id")?,
    })
}

async fn insert_device(conn: &mut impl Conn, row: &DeviceRow) -> StoreResult<Outcome> {
    query(
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
    conn: &mut impl Conn,
    nonce_hash: &str,
    device_id: &str,
    expires_ms: i64,
) -> StoreResult<Outcome> {
    query("INSERT INTO device_nonces (nonce_hash, device_id, expires_ms) VALUES ($1, $2, $3)")
        .bind(nonce_hash)
        .bind(device_id)
        .bind(expires_ms)
        .execute(conn)
        .await
        .map_err(|err| insert_err(err, "nonce_hash", "device"))?;
    Ok(Outcome::Done)
}

async fn consume_nonce(
    conn: &mut impl Conn,
    nonce_hash: &str,
    device_id: &str,
    now_ms: i64,
) -> StoreResult<Outcome> {
    let done = query(
        "DELETE FROM device_nonces WHERE nonce_hash = $1 AND device_id = $2 AND expires_ms > $3",
    )
    .bind(nonce_hash)
    .bind(device_id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    if done != 1 {
        return Err(StoreError::ConditionFailed(
            "nonce is unknown, used or expired".into(),
        ));
    }
    // Nonces a device fetched but never used would otherwise stay forever.
    query("DELETE FROM device_nonces WHERE device_id = $1 AND expires_ms <= $2")
        .bind(device_id)
        .bind(now_ms)
        .execute(conn)
        .await?;
    Ok(Outcome::Done)
}

async fn insert_push(conn: &mut impl Conn, row: &PushRow) -> StoreResult<Outcome> {
    query(
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
async fn check_push_limit<C: Conn>(
    conn: &mut C,
    org_id: &str,
    user_id: &str,
    since_ms: i64,
    limit: i64,
) -> StoreResult<Outcome> {
    let lock = match C::DIALECT {
        // The transaction (BEGIN IMMEDIATE) already excludes every other writer until it
        // ends, so the count below cannot go stale before the push is inserted.
        Dialect::Sqlite => "SELECT 1 AS n FROM users WHERE org_id = $1 AND user_id = $2",
        // The row lock makes a second node's check wait until this transaction ends; the
        // count below then runs on a new snapshot (READ COMMITTED) that sees the pushes it
        // committed.
        Dialect::Postgres => {
            "SELECT 1 AS n FROM users WHERE org_id = $1 AND user_id = $2 FOR UPDATE"
        }
    };
    let user = query(lock)
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    if user.is_none() {
        return Err(StoreError::NotFound("user".into()));
    }
    let sent = query(
        "SELECT COUNT(*) AS n FROM push_requests \
         WHERE org_id = $1 AND user_id = $2 AND created_ms >= $3",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(since_ms)
    .fetch_optional(&mut *conn)
    .await?
    .map_or(Ok(0), |row| row.int("n"))?;
    if sent < limit {
        Ok(Outcome::Done)
    } else {
        Err(StoreError::ConditionFailed("push limit reached".into()))
    }
}
