//! Reads of WebAuthn credentials, portal sessions, user tokens and recovery codes.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use ward_store::{
    PortalStore, RecoveryCodeRow, SessionRow, StoreResult, UserTokenRow, WebauthnCredentialRow,
};

use super::{all, flag, one};
use crate::PostgresStore;
use crate::error::store_err;

macro_rules! credential_columns {
    () => {
        "cred_id, org_id, user_id, name, kind, credential_sealed, aaguid, backup_eligible, \
         backed_up, sign_count, created_ms, last_used_ms"
    };
}
macro_rules! session_columns {
    () => {
        "session_hash, org_id, user_id, auth_method, created_ms, last_seen_ms, expires_ms, \
         step_up_until_ms"
    };
}
macro_rules! user_token_columns {
    () => {
        "token_hash, org_id, user_id, purpose, created_ms, expires_ms, used_ms"
    };
}
macro_rules! recovery_code_columns {
    () => {
        "code_id, org_id, user_id, code_hash, created_ms, used_ms"
    };
}

fn credential(row: &PgRow) -> Result<WebauthnCredentialRow, sqlx::Error> {
    Ok(WebauthnCredentialRow {
        cred_id: row.try_get("cred_id")?,
        org_id: row.try_get("org_id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        credential_sealed: row.try_get("credential_sealed")?,
        aaguid: row.try_get("aaguid")?,
        backup_eligible: flag(row, "backup_eligible")?,
        backed_up: flag(row, "backed_up")?,
        sign_count: row.try_get("sign_count")?,
        created_ms: row.try_get("created_ms")?,
        last_used_ms: row.try_get("last_used_ms")?,
    })
}

fn session(row: &PgRow) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        session_hash: row.try_get("session_hash")?,
        org_id: row.try_get("org_id")?,
        user_id: row.try_get("user_id")?,
        auth_method: row.try_get("auth_method")?,
        created_ms: row.try_get("created_ms")?,
        last_seen_ms: row.try_get("last_seen_ms")?,
        expires_ms: row.try_get("expires_ms")?,
        step_up_until_ms: row.try_get("step_up_until_ms")?,
    })
}

fn user_token(row: &PgRow) -> Result<UserTokenRow, sqlx::Error> {
    Ok(UserTokenRow {
        token_hash: row.try_get("token_hash")?,
        org_id: row.try_get("org_id")?,
        user_id: row.try_get("user_id")?,
        purpose: row.try_get("purpose")?,
        created_ms: row.try_get("created_ms")?,
        expires_ms: row.try_get("expires_ms")?,
        used_ms: row.try_get("used_ms")?,
    })
}

fn recovery_code(row: &PgRow) -> Result<RecoveryCodeRow, sqlx::Error> {
    Ok(RecoveryCodeRow {
        code_id: row.try_get("code_id")?,
        org_id: row.try_get("org_id")?,
        user_id: row.try_get("user_id")?,
        code_hash: row.try_get("code_hash")?,
        created_ms: row.try_get("created_ms")?,
        used_ms: row.try_get("used_ms")?,
    })
}

#[async_trait]
impl PortalStore for PostgresStore {
    async fn webauthn_credentials_for_user(
        &self,
        org_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<WebauthnCredentialRow>> {
        let sql = concat!(
            "SELECT ",
            credential_columns!(),
            " FROM webauthn_credentials WHERE org_id = $1 AND user_id = $2 \
             ORDER BY created_ms, cred_id"
        );
        let rows = sqlx::query(sql)
            .bind(org_id)
            .bind(user_id)
            .fetch_all(&self.reads)
            .await;
        all(&rows.map_err(store_err)?, credential)
    }

    async fn webauthn_credential(
        &self,
        cred_id: &str,
    ) -> StoreResult<Option<WebauthnCredentialRow>> {
        let sql = concat!(
            "SELECT ",
            credential_columns!(),
            " FROM webauthn_credentials WHERE cred_id = $1"
        );
        let row = sqlx::query(sql)
            .bind(cred_id)
            .fetch_optional(&self.reads)
            .await;
        one(row.map_err(store_err)?.as_ref(), credential)
    }

    async fn session(&self, session_hash: &str) -> StoreResult<Option<SessionRow>> {
        let sql = concat!(
            "SELECT ",
            session_columns!(),
            " FROM portal_sessions WHERE session_hash = $1"
        );
        let row = sqlx::query(sql)
            .bind(session_hash)
            .fetch_optional(&self.reads)
            .await;
        one(row.map_err(store_err)?.as_ref(), session)
    }

    async fn user_token(&self, token_hash: &str) -> StoreResult<Option<UserTokenRow>> {
        let sql = concat!(
            "SELECT ",
            user_token_columns!(),
            " FROM user_tokens WHERE token_hash = $1"
        );
        let row = sqlx::query(sql)
            .bind(token_hash)
            .fetch_optional(&self.reads)
            .await;
        one(row.map_err(store_err)?.as_ref(), user_token)
    }

    async fn recovery_codes_for_user(
        &self,
        org_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<RecoveryCodeRow>> {
        let sql = concat!(
            "SELECT ",
            recovery_code_columns!(),
            " FROM recovery_codes WHERE org_id = $1 AND user_id = $2 ORDER BY created_ms, code_id"
        );
        let rows = sqlx::query(sql)
            .bind(org_id)
            .bind(user_id)
            .fetch_all(&self.reads)
            .await;
        all(&rows.map_err(store_err)?, recovery_code)
    }
}
