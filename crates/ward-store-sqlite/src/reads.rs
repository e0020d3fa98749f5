//! The read traits, served by the read pool. Every query is scoped by organisation.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use ward_store::{
    AuditRow, AuditStore, AuthTxRow, AuthTxStore, ChainHeadRow, FactorStore, IntegrationRow,
    IntegrationStore, MetaStore, NewAudit, StoreError, StoreResult, TotpRow, UserKey, UserRow,
    UserStore,
};

use crate::SqliteStore;
use crate::error::store_err;

mod orgs;
mod portal;
mod push;
mod recovery;

macro_rules! integration_columns {
    () => {
        "ikey, org_id, name, kind, skey_sealed, created_ms, push_mode, prompt_policy"
    };
}
macro_rules! user_columns {
    () => {
        "org_id, user_id, username, email, status, created_ms, failed_attempts, \
         locked_until_ms, last_login_ms, push_muted_until_ms, factors_frozen_ms, policy_group, \
         last_prompt_method, recovery_blocked_until_ms, probation_until_ms, last_recovered_ms"
    };
}
macro_rules! totp_columns {
    () => {
        "totp_id, org_id, user_id, name, seed_sealed, algorithm, digits, step_secs, last_step, \
         created_ms"
    };
}
macro_rules! auth_tx_columns {
    () => {
        "txid, org_id, ikey, user_id, factor, result, status, status_msg, created_ms, expires_ms"
    };
}
macro_rules! audit_columns {
    () => {
        "chain_id, seq, prev_hash, hash, org_id, ts_ms, actor, action, target, outcome, details"
    };
}

macro_rules! user_with_totps_sql {
    ($column:literal) => {
        concat!(
            "SELECT u.org_id, u.user_id, u.username, u.email, u.status, u.created_ms, \
             u.failed_attempts, u.locked_until_ms, u.last_login_ms, u.push_muted_until_ms, \
             u.factors_frozen_ms, u.policy_group, u.last_prompt_method, \
             u.recovery_blocked_until_ms, u.probation_until_ms, u.last_recovered_ms, \
             t.totp_id, t.name AS t_name, \
             t.seed_sealed, t.algorithm, t.digits, t.step_secs, t.last_step, \
             t.created_ms AS t_created_ms \
             FROM users u LEFT JOIN totp_authenticators t \
             ON t.org_id = u.org_id AND t.user_id = u.user_id \
             WHERE u.org_id = ? AND u.",
            $column,
            " = ? ORDER BY t.created_ms, t.totp_id"
        )
    };
}

fn integration(row: &SqliteRow) -> Result<IntegrationRow, sqlx::Error> {
    Ok(IntegrationRow {
        org_id: row.try_get("org_id")?,
        ikey: row.try_get("ikey")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        skey_sealed: row.try_get("skey_sealed")?,
        push_mode: row.try_get("push_mode")?,
        prompt_policy: row.try_get("prompt_policy")?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn user(row: &SqliteRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        org_id: row.try_get("org_id")?,
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        status: row.try_get("status")?,
        created_ms: row.try_get("created_ms")?,
        failed_attempts: row.try_get("failed_attempts")?,
        locked_until_ms: row.try_get("locked_until_ms")?,
        last_login_ms: row.try_get("last_login_ms")?,
        push_muted_until_ms: row.try_get("push_muted_until_ms")?,
        factors_frozen_ms: row.try_get("factors_frozen_ms")?,
        policy_group: row.try_get("policy_group")?,
        last_prompt_method: row.try_get("last_prompt_method")?,
        recovery_blocked_until_ms: row.try_get("recovery_blocked_until_ms")?,
        probation_until_ms: row.try_get("probation_until_ms")?,
        last_recovered_ms: row.try_get("last_recovered_ms")?,
    })
}

fn totp(row: &SqliteRow) -> Result<TotpRow, sqlx::Error> {
    Ok(TotpRow {
        org_id: row.try_get("org_id")?,
        totp_id: row.try_get("totp_id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        seed_sealed: row.try_get("seed_sealed")?,
        algorithm: row.try_get("algorithm")?,
        digits: row.try_get("digits")?,
        step_secs: row.try_get("step_secs")?,
        last_step: row.try_get("last_step")?,
        created_ms: row.try_get("created_ms")?,
    })
}

/// The authenticator half of a `user_with_totps` row (`None` for a user without any).
fn joined_totp(row: &SqliteRow) -> Result<Option<TotpRow>, sqlx::Error> {
    let Some(totp_id) = row.try_get::<Option<String>, _>("totp_id")? else {
        return Ok(None);
    };
    Ok(Some(TotpRow {
        org_id: row.try_get("org_id")?,
        totp_id,
        user_id: row.try_get("user_id")?,
        name: row.try_get("t_name")?,
        seed_sealed: row.try_get("seed_sealed")?,
        algorithm: row.try_get("algorithm")?,
        digits: row.try_get("digits")?,
        step_secs: row.try_get("step_secs")?,
        last_step: row.try_get("last_step")?,
        created_ms: row.try_get("t_created_ms")?,
    }))
}

fn auth_tx(row: &SqliteRow) -> Result<AuthTxRow, sqlx::Error> {
    Ok(AuthTxRow {
        org_id: row.try_get("org_id")?,
        txid: row.try_get("txid")?,
        ikey: row.try_get("ikey")?,
        user_id: row.try_get("user_id")?,
        factor: row.try_get("factor")?,
        result: row.try_get("result")?,
        status: row.try_get("status")?,
        status_msg: row.try_get("status_msg")?,
        created_ms: row.try_get("created_ms")?,
        expires_ms: row.try_get("expires_ms")?,
    })
}

fn audit(row: &SqliteRow) -> Result<AuditRow, sqlx::Error> {
    Ok(AuditRow {
        chain_id: row.try_get("chain_id")?,
        seq: row.try_get("seq")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
        event: NewAudit {
            org_id: row.try_get("org_id")?,
            ts_ms: row.try_get("ts_ms")?,
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            target: row.try_get("target")?,
            outcome: row.try_get("outcome")?,
            details: row.try_get("details")?,
        },
    })
}

fn chain_head(row: &SqliteRow) -> Result<ChainHeadRow, sqlx::Error> {
    Ok(ChainHeadRow {
        chain_id: row.try_get("chain_id")?,
        head_seq: row.try_get("head_seq")?,
        head_hash: row.try_get("head_hash")?,
    })
}

/// A flag stored as BIGINT 0/1 (portable across both backends).
fn flag(row: &SqliteRow, column: &str) -> Result<bool, sqlx::Error> {
    match row.try_get::<i64, _>(column)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(sqlx::Error::Decode(
            format!("{column} is {other}, expected 0 or 1").into(),
        )),
    }
}

/// Maps an optional row.
fn one<T>(
    row: Option<&SqliteRow>,
    map: fn(&SqliteRow) -> Result<T, sqlx::Error>,
) -> StoreResult<Option<T>> {
    row.map(map).transpose().map_err(store_err)
}

/// Maps every row.
fn all<T>(
    rows: &[SqliteRow],
    map: fn(&SqliteRow) -> Result<T, sqlx::Error>,
) -> StoreResult<Vec<T>> {
    rows.iter()
        .map(map)
        .collect::<Result<_, _>>()
        .map_err(store_err)
}

#[async_trait]
impl IntegrationStore for SqliteStore {
    async fn integration_by_ikey(&self, ikey: &str) -> StoreResult<Option<IntegrationRow>> {
        let sql = concat!(
            "SELECT ",
            integration_columns!(),
            " FROM integrations WHERE ikey = ?"
        );
        let row = sqlx::query(sql)
            .bind(ikey)
            .fetch_optional(&self.reads)
            .await;
        one(row.map_err(store_err)?.as_ref(), integration)
    }

    async fn list_integrations(&self, org_id: &str) -> StoreResult<Vec<IntegrationRow>> {
        let sql = concat!(
            "SELECT ",
            integration_columns!(),
            " FROM integrations WHERE org_id = ? ORDER BY created_ms, ikey"
        );
        let rows = sqlx::query(sql).bind(org_id).fetch_all(&self.reads).await;
        all(&rows.map_err(store_err)?, integration)
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn user_by_name(&self, org_id: &str, username: &str) -> StoreResult<Option<UserRow>> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE org_id = ? AND username = ?"
        );
        let row = sqlx::query(sql)
            .bind(org_id)
            .bind(username)
            .fetch_optional(&self.reads)
            .await;
        one(row.map_err(store_err)?.as_ref(), user)
    }

    async fn user_by_id(&self, org_id: &str, user_id: &str) -> StoreResult<Option<UserRow>> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE org_id = ? AND user_id = ?"
        );
        let row = sqlx::query(sql)
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&self.reads)
            .await;
        one(row.map_err(store_err)?.as_ref(), user)
    }

    async fn list_users(&self, org_id: &str, limit: u32, offset: u32) -> StoreResult<Vec<UserRow>> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE org_id = ? ORDER BY username LIMIT ? OFFSET ?"
        );
        let rows = sqlx::query(sql)
            .bind(org_id)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.reads)
            .await;
        all(&rows.map_err(store_err)?, user)
    }
}

#[async_trait]
impl FactorStore for SqliteStore {
    async fn totps_for_user(&self, org_id: &str, user_id: &str) -> StoreResult<Vec<TotpRow>> {
        let sql = concat!(
            "SELECT ",
            totp_columns!(),
            " FROM totp_authenticators WHERE org_id = ? AND user_id = ? \
             ORDER BY created_ms, totp_id"
        );
        let rows = sqlx::query(sql)
            .bind(org_id)
            .bind(user_id)
            .fetch_all(&self.reads)
            .await;
        all(&rows.map_err(store_err)?, totp)
    }

    async fn user_with_totps(
        &self,
        org_id: &str,
        key: UserKey<'_>,
    ) -> StoreResult<Option<(UserRow, Vec<TotpRow>)>> {
        // One round trip: the user's columns repeat on every authenticator row (LEFT JOIN keeps
        // a user without authenticators).
        let (sql, value) = match key {
            UserKey::Name(name) => (user_with_totps_sql!("username"), name),
            UserKey::Id(id) => (user_with_totps_sql!("user_id"), id),
        };
        let rows = sqlx::query(sql)
            .bind(org_id)
            .bind(value)
            .fetch_all(&self.reads)
            .await
            .map_err(store_err)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let user = user(first).map_err(store_err)?;
        let mut totps = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(totp) = joined_totp(row).map_err(store_err)? {
                totps.push(totp);
            }
        }
        Ok(Some((user, totps)))
    }
}

#[async_trait]
impl AuthTxStore for SqliteStore {
    async fn auth_tx(&self, org_id: &str, txid: &str) -> StoreResult<Option<AuthTxRow>> {
        let sql = concat!(
            "SELECT ",
            auth_tx_columns!(),
            " FROM auth_transactions WHERE org_id = ? AND txid = ?"
        );
        let row = sqlx::query(sql)
            .bind(org_id)
            .bind(txid)
            .fetch_optional(&self.reads)
            .await;
        one(row.map_err(store_err)?.as_ref(), auth_tx)
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn audit_chains(&self) -> StoreResult<Vec<ChainHeadRow>> {
        let sql = "SELECT chain_id, head_seq, head_hash FROM audit_chains ORDER BY chain_id";
        let rows = sqlx::query(sql).fetch_all(&self.reads).await;
        all(&rows.map_err(store_err)?, chain_head)
    }

    async fn audit_page(
        &self,
        chain_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditRow>> {
        let sql = concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events WHERE chain_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        );
        let rows = sqlx::query(sql)
            .bind(chain_id)
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(&self.reads)
            .await;
        all(&rows.map_err(store_err)?, audit)
    }
}

#[async_trait]
impl MetaStore for SqliteStore {
    async fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.reads)
            .await
            .map_err(store_err)
    }

    async fn meta_insert_if_absent(&self, key: &str, value: &str) -> StoreResult<String> {
        // One statement: the no-op update makes RETURNING yield the value already stored.
        // Read connections are query-only, so this rare write uses the writer's connection
        // between two batches.
        sqlx::query_scalar(
            "INSERT INTO meta (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = meta.value RETURNING value",
        )
        .bind(key)
        .bind(value)
        .fetch_optional(&self.writes)
        .await
        .map_err(store_err)?
        .ok_or_else(|| StoreError::Unavailable(format!("setting {key} was not stored")))
    }
}
