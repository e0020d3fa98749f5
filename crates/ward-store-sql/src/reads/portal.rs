//! Reads of WebAuthn credentials, portal sessions, user tokens and recovery codes.

use async_trait::async_trait;
use ward_store::{
    PortalStore, RecoveryCodeRow, SessionRow, StoreResult, UserTokenRow, WebauthnCredentialRow,
};

use crate::exec::{Row, query};
use crate::{Backend, SqlStore};

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

fn credential(row: &impl Row) -> StoreResult<WebauthnCredentialRow> {
    Ok(WebauthnCredentialRow {
        cred_id: row.get("cred_id")?,
        org_id: row.get("org_id")?,
        user_id: row.get("user_id")?,
        name: row.get("name")?,
        kind: row.get("kind")?,
        credential_sealed: row.get("credential_sealed")?,
        aaguid: row.get("aaguid")?,
        backup_eligible: row.flag("backup_eligible")?,
        backed_up: row.flag("backed_up")?,
        sign_count: row.get("sign_count")?,
        created_ms: row.get("created_ms")?,
        last_used_ms: row.get("last_used_ms")?,
    })
}

fn session(row: &impl Row) -> StoreResult<SessionRow> {
    Ok(SessionRow {
        session_hash: row.get("session_hash")?,
        org_id: row.get("org_id")?,
        user_id: row.get("user_id")?,
        auth_method: row.get("auth_method")?,
        created_ms: row.get("created_ms")?,
        last_seen_ms: row.get("last_seen_ms")?,
        expires_ms: row.get("expires_ms")?,
        step_up_until_ms: row.get("step_up_until_ms")?,
    })
}

fn user_token(row: &impl Row) -> StoreResult<UserTokenRow> {
    Ok(UserTokenRow {
        token_hash: row.get("token_hash")?,
        org_id: row.get("org_id")?,
        user_id: row.get("user_id")?,
        purpose: row.get("purpose")?,
        created_ms: row.get("created_ms")?,
        expires_ms: row.get("expires_ms")?,
        used_ms: row.get("used_ms")?,
    })
}

fn recovery_code(row: &impl Row) -> StoreResult<RecoveryCodeRow> {
    Ok(RecoveryCodeRow {
        code_id: row.get("code_id")?,
        org_id: row.get("org_id")?,
        user_id: row.get("user_id")?,
        code_hash: row.get("code_hash")?,
        created_ms: row.get("created_ms")?,
        used_ms: row.get("used_ms")?,
    })
}

#[async_trait]
impl<B: Backend> PortalStore for SqlStore<B> {
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
        self.all(query(sql).bind(org_id).bind(user_id), credential)
            .await
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
        self.one(query(sql).bind(cred_id), credential).await
    }

    async fn session(&self, session_hash: &str) -> StoreResult<Option<SessionRow>> {
        let sql = concat!(
            "SELECT ",
            session_columns!(),
            " FROM portal_sessions WHERE session_hash = $1"
        );
        self.one(query(sql).bind(session_hash), session).await
    }

    async fn user_token(&self, token_hash: &str) -> StoreResult<Option<UserTokenRow>> {
        let sql = concat!(
            "SELECT ",
            user_token_columns!(),
            " FROM user_tokens WHERE token_hash = $1"
        );
        self.one(query(sql).bind(token_hash), user_token).await
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
        self.all(query(sql).bind(org_id).bind(user_id), recovery_code)
            .await
    }
}
