//! The portal changes: WebAuthn credentials, factor names, ceremonies, sessions, user tokens,
//! recovery codes, and the account settings the portal reads (frozen factors, policy group).

use ward_store::{
    CeremonyRow, Change, Outcome, RecoveryCodeRow, SessionRow, StoreError, StoreResult,
    UserTokenRow, WebauthnCredentialRow,
};

use super::{exactly_one, multi_row};
use crate::exec::{Conn, Row, insert_err, query};

/// Recovery codes per INSERT statement (6 bound values each).
const CODES_PER_STATEMENT: usize = 256;

/// Applies one of the portal changes (the caller dispatches only those here).
pub(super) async fn apply(conn: &mut impl Conn, change: &Change) -> StoreResult<Outcome> {
    match change {
        Change::InsertWebauthnCredential(row) => insert_credential(conn, row).await,
        Change::UseWebauthnCredential {
            cred_id,
            expected_sign_count,
            credential_sealed,
            sign_count,
            backed_up,
            used_ms,
        } => {
            let done = query(
                "UPDATE webauthn_credentials \
                 SET credential_sealed = $1, sign_count = $2, backed_up = $3, last_used_ms = $4 \
                 WHERE cred_id = $5 AND sign_count = $6",
            )
            .bind(credential_sealed)
            .bind(sign_count)
            .bind(i64::from(*backed_up))
            .bind(used_ms)
            .bind(cred_id)
            .bind(expected_sign_count)
            .execute(conn)
            .await?;
            exactly_one(done, || {
                StoreError::ConditionFailed("credential is unknown or its counter moved".into())
            })
        }
        Change::RenameFactor {
            org_id,
            user_id,
            kind,
            id,
            name,
        } => {
            let done = query(factor_sql(kind)?.rename)
                .bind(name)
                .bind(org_id)
                .bind(user_id)
                .bind(id)
                .execute(conn)
                .await?;
            exactly_one(done, || StoreError::NotFound("factor".into()))
        }
        Change::DeleteFactor {
            org_id,
            user_id,
            kind,
            id,
        } => {
            let done = query(factor_sql(kind)?.delete)
                .bind(org_id)
                .bind(user_id)
                .bind(id)
                .execute(conn)
                .await?;
            exactly_one(done, || StoreError::NotFound("factor".into()))
        }
        _ => apply_single_use(conn, change).await,
    }
}

/// The changes to what is handed out once: ceremonies, sessions, user tokens, recovery codes.
async fn apply_single_use(conn: &mut impl Conn, change: &Change) -> StoreResult<Outcome> {
    match change {
        Change::InsertCeremony(row) => insert_ceremony(conn, row).await,
        Change::ConsumeCeremony {
            ceremony_hash,
            purpose,
            now_ms,
        } => consume_ceremony(conn, ceremony_hash, purpose, *now_ms).await,
        Change::InsertSession(row) => insert_session(conn, row).await,
        Change::TouchSession {
            session_hash,
            last_seen_ms,
            step_up_until_ms,
        } => {
            // A step-up is only ever granted here, never withdrawn: `None` keeps the stored one.
            let done = query(
                "UPDATE portal_sessions SET last_seen_ms = $1, \
                 step_up_until_ms = COALESCE($2, step_up_until_ms) WHERE session_hash = $3",
            )
            .bind(last_seen_ms)
            .bind(step_up_until_ms)
            .bind(session_hash)
            .execute(conn)
            .await?;
            exactly_one(done, || StoreError::NotFound("session".into()))
        }
        Change::DeleteSession { session_hash } => {
            query("DELETE FROM portal_sessions WHERE session_hash = $1")
                .bind(session_hash)
                .execute(conn)
                .await?;
            Ok(Outcome::Done)
        }
        Change::DeleteUserSessions { org_id, user_id } => {
            let done = query("DELETE FROM portal_sessions WHERE org_id = $1 AND user_id = $2")
                .bind(org_id)
                .bind(user_id)
                .execute(conn)
                .await?;
            Ok(Outcome::Purged { rows: done })
        }
        Change::InsertUserToken(row) => insert_user_token(conn, row).await,
        Change::ConsumeUserToken {
            token_hash,
            purpose,
            now_ms,
        } => consume_user_token(conn, token_hash, purpose, *now_ms).await,
        Change::ReplaceRecoveryCodes {
            org_id,
            user_id,
            codes,
        } => replace_recovery_codes(conn, org_id, user_id, codes).await,
        Change::UseRecoveryCode {
            org_id,
            user_id,
            code_id,
            used_ms,
        } => {
            let done = query(
                "UPDATE recovery_codes SET used_ms = $1 \
                 WHERE org_id = $2 AND user_id = $3 AND code_id = $4 AND used_ms IS NULL",
            )
            .bind(used_ms)
            .bind(org_id)
            .bind(user_id)
            .bind(code_id)
            .execute(conn)
            .await?;
            exactly_one(done, || {
                StoreError::ConditionFailed("recovery code is unknown or used".into())
            })
        }
        // `apply::apply` matches every change exhaustively and sends only portal changes here.
        _ => Err(StoreError::Unavailable(
            "not a portal change; dispatched to the wrong module".into(),
        )),
    }
}

/// The statements that rename and delete one kind of factor, always scoped by organisation
/// and user, so that nobody renames or deletes another user's factor by naming its id.
struct FactorSql {
    /// Binds: `name`, `org_id`, `user_id`, `id`.
    rename: &'static str,
    /// Binds: `org_id`, `user_id`, `id`.
    delete: &'static str,
}

macro_rules! factor_sql {
    ($table:literal, $id:literal) => {
        FactorSql {
            rename: concat!(
                "UPDATE ",
                $table,
                " SET name = $1 WHERE org_id = $2 AND user_id = $3 AND ",
                $id,
                " = $4"
            ),
            delete: concat!(
                "DELETE FROM ",
                $table,
                " WHERE org_id = $1 AND user_id = $2 AND ",
                $id,
                " = $3"
            ),
        }
    };
}

fn factor_sql(kind: &str) -> StoreResult<FactorSql> {
    match kind {
        "webauthn" => Ok(factor_sql!("webauthn_credentials", "cred_id")),
        "totp" => Ok(factor_sql!("totp_authenticators", "totp_id")),
        "device" => Ok(factor_sql!("devices", "device_id")),
        _ => Err(StoreError::NotFound("factor kind".into())),
    }
}

async fn insert_credential(
    conn: &mut impl Conn,
    row: &WebauthnCredentialRow,
) -> StoreResult<Outcome> {
    query(
        "INSERT INTO webauthn_credentials (cred_id, org_id, user_id, name, kind, \
         credential_sealed, aaguid, backup_eligible, backed_up, sign_count, created_ms, \
         last_used_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&row.cred_id)
    .bind(&row.org_id)
    .bind(&row.user_id)
    .bind(&row.name)
    .bind(&row.kind)
    .bind(&row.credential_sealed)
    .bind(&row.aaguid)
    .bind(i64::from(row.backup_eligible))
    .bind(i64::from(row.backed_up))
    .bind(row.sign_count)
    .bind(row.created_ms)
    .bind(row.last_used_ms)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "cred_id", "user"))?;
    Ok(Outcome::Done)
}

async fn insert_ceremony(conn: &mut impl Conn, row: &CeremonyRow) -> StoreResult<Outcome> {
    query(
        "INSERT INTO ceremonies (ceremony_hash, org_id, user_id, purpose, state_sealed, \
         created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&row.ceremony_hash)
    .bind(&row.org_id)
    .bind(&row.user_id)
    .bind(&row.purpose)
    .bind(&row.state_sealed)
    .bind(row.created_ms)
    .bind(row.expires_ms)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "ceremony_hash", "user"))?;
    Ok(Outcome::Done)
}

async fn consume_ceremony(
    conn: &mut impl Conn,
    ceremony_hash: &str,
    purpose: &str,
    now_ms: i64,
) -> StoreResult<Outcome> {
    let row = query(
        "DELETE FROM ceremonies WHERE ceremony_hash = $1 AND purpose = $2 AND expires_ms > $3 \
         RETURNING ceremony_hash, org_id, user_id, purpose, state_sealed, created_ms, expires_ms",
    )
    .bind(ceremony_hash)
    .bind(purpose)
    .bind(now_ms)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| {
        StoreError::ConditionFailed(
            "ceremony is unknown, used, expired or of another purpose".into(),
        )
    })?;
    Ok(Outcome::Ceremony(ceremony(&row)?))
}

fn ceremony(row: &impl Row) -> StoreResult<CeremonyRow> {
    Ok(CeremonyRow {
        ceremony_hash: row.get("ceremony_hash")?,
        org_id: row.get("org_id")?,
        user_id: row.get("user_id")?,
        purpose: row.get("purpose")?,
        state_sealed: row.get("state_sealed")?,
        created_ms: row.get("created_ms")?,
        expires_ms: row.get("expires_ms")?,
    })
}

async fn insert_session(conn: &mut impl Conn, row: &SessionRow) -> StoreResult<Outcome> {
    query(
        "INSERT INTO portal_sessions (session_hash, org_id, user_id, auth_method, created_ms, \
         last_seen_ms, expires_ms, step_up_until_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&row.session_hash)
    .bind(&row.org_id)
    .bind(&row.user_id)
    .bind(&row.auth_method)
    .bind(row.created_ms)
    .bind(row.last_seen_ms)
    .bind(row.expires_ms)
    .bind(row.step_up_until_ms)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "session_hash", "user"))?;
    Ok(Outcome::Done)
}

async fn insert_user_token(conn: &mut impl Conn, row: &UserTokenRow) -> StoreResult<Outcome> {
    query(
        "INSERT INTO user_tokens (token_hash, org_id, user_id, purpose, created_ms, expires_ms, \
         used_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&row.token_hash)
    .bind(&row.org_id)
    .bind(&row.user_id)
    .bind(&row.purpose)
    .bind(row.created_ms)
    .bind(row.expires_ms)
    .bind(row.used_ms)
    .execute(conn)
    .await
    .map_err(|err| insert_err(err, "token_hash", "user"))?;
    Ok(Outcome::Done)
}

async fn consume_user_token(
    conn: &mut impl Conn,
    token_hash: &str,
    purpose: &str,
    now_ms: i64,
) -> StoreResult<Outcome> {
    let row = query(
        "UPDATE user_tokens SET used_ms = $1 \
         WHERE token_hash = $2 AND purpose = $3 AND used_ms IS NULL AND expires_ms > $4 \
         RETURNING org_id, user_id",
    )
    .bind(now_ms)
    .bind(token_hash)
    .bind(purpose)
    .bind(now_ms)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| {
        StoreError::ConditionFailed("token is unknown, used, expired or of another purpose".into())
    })?;
    Ok(Outcome::TokenUsed {
        org_id: row.get("org_id")?,
        user_id: row.get("user_id")?,
    })
}

async fn replace_recovery_codes(
    conn: &mut impl Conn,
    org_id: &str,
    user_id: &str,
    codes: &[RecoveryCodeRow],
) -> StoreResult<Outcome> {
    if let Some(code) = codes
        .iter()
        .find(|code| code.org_id != org_id || code.user_id != user_id)
    {
        // A caller's mistake rather than a state of the data: no error kind fits, and `Corrupt`
        // at least makes it an internal error instead of a conflict the caller might retry.
        return Err(StoreError::Corrupt(format!(
            "recovery code {} does not belong to the user whose codes it would replace",
            code.code_id
        )));
    }
    query("DELETE FROM recovery_codes WHERE org_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    for chunk in codes.chunks(CODES_PER_STATEMENT) {
        let mut insert = multi_row(
            "INSERT INTO recovery_codes (code_id, org_id, user_id, code_hash, created_ms, \
             used_ms)",
            chunk.len(),
            6,
        );
        for code in chunk {
            insert.push_bind(&code.code_id);
            insert.push_bind(&code.org_id);
            insert.push_bind(&code.user_id);
            insert.push_bind(&code.code_hash);
            insert.push_bind(code.created_ms);
            insert.push_bind(code.used_ms);
        }
        insert
            .execute(&mut *conn)
            .await
            .map_err(|err| insert_err(err, "code_id", "user"))?;
    }
    Ok(Outcome::Done)
}
