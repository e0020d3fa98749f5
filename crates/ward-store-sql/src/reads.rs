//! The read traits, served by the read pool. Every query is scoped by organisation.

use async_trait::async_trait;
use ward_store::{
    AuditRow, AuditStore, AuthTxRow, AuthTxStore, ChainHeadRow, FactorStore, IntegrationRow,
    IntegrationStore, MetaStore, NewAudit, StoreError, StoreResult, TotpRow, UserKey, UserRow,
    UserStore,
};

use crate::exec::{Conn, Query, Row, query};
use crate::{Backend, SqlStore};

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
             WHERE u.org_id = $1 AND u.",
            $column,
            " = $2 ORDER BY t.created_ms, t.totp_id"
        )
    };
}

fn integration(row: &impl Row) -> StoreResult<IntegrationRow> {
    Ok(IntegrationRow {
        org_id: row.get("org_id")?,
        ikey: row.get("ikey")?,
        name: row.get("name")?,
        kind: row.get("kind")?,
        skey_sealed: row.get("skey_sealed")?,
        push_mode: row.get("push_mode")?,
        prompt_policy: row.get("prompt_policy")?,
        created_ms: row.get("created_ms")?,
    })
}

fn user(row: &impl Row) -> StoreResult<UserRow> {
    Ok(UserRow {
        org_id: row.get("org_id")?,
        user_id: row.get("user_id")?,
        username: row.get("username")?,
        email: row.get("email")?,
        status: row.get("status")?,
        created_ms: row.get("created_ms")?,
        failed_attempts: row.get("failed_attempts")?,
        locked_until_ms: row.get("locked_until_ms")?,
        last_login_ms: row.get("last_login_ms")?,
        push_muted_until_ms: row.get("push_muted_until_ms")?,
        factors_frozen_ms: row.get("factors_frozen_ms")?,
        policy_group: row.get("policy_group")?,
        last_prompt_method: row.get("last_prompt_method")?,
        recovery_blocked_until_ms: row.get("recovery_blocked_until_ms")?,
        probation_until_ms: row.get("probation_until_ms")?,
        last_recovered_ms: row.get("last_recovered_ms")?,
    })
}

fn totp(row: &impl Row) -> StoreResult<TotpRow> {
    Ok(TotpRow {
        org_id: row.get("org_id")?,
        totp_id: row.get("totp_id")?,
        user_id: row.get("user_id")?,
        name: row.get("name")?,
        seed_sealed: row.get("seed_sealed")?,
        algorithm: row.get("algorithm")?,
        digits: row.get("digits")?,
        step_secs: row.get("step_secs")?,
        last_step: row.get("last_step")?,
        created_ms: row.get("created_ms")?,
    })
}

/// The authenticator half of a `user_with_totps` row (`None` for a user without any).
fn joined_totp(row: &impl Row) -> StoreResult<Option<TotpRow>> {
    let Some(totp_id) = row.opt_text("totp_id")? else {
        return Ok(None);
    };
    Ok(Some(TotpRow {
        org_id: row.get("org_id")?,
        totp_id,
        user_id: row.get("user_id")?,
        name: row.get("t_name")?,
        seed_sealed: row.get("seed_sealed")?,
        algorithm: row.get("algorithm")?,
        digits: row.get("digits")?,
        step_secs: row.get("step_secs")?,
        last_step: row.get("last_step")?,
        created_ms: row.get("t_created_ms")?,
    }))
}

fn auth_tx(row: &impl Row) -> StoreResult<AuthTxRow> {
    Ok(AuthTxRow {
        org_id: row.get("org_id")?,
        txid: row.get("txid")?,
        ikey: row.get("ikey")?,
        user_id: row.get("user_id")?,
        factor: row.get("factor")?,
        result: row.get("result")?,
        status: row.get("status")?,
        status_msg: row.get("status_msg")?,
        created_ms: row.get("created_ms")?,
        expires_ms: row.get("expires_ms")?,
    })
}

fn audit(row: &impl Row) -> StoreResult<AuditRow> {
    Ok(AuditRow {
        chain_id: row.get("chain_id")?,
        seq: row.get("seq")?,
        prev_hash: row.get("prev_hash")?,
        hash: row.get("hash")?,
        event: NewAudit {
            org_id: row.get("org_id")?,
            ts_ms: row.get("ts_ms")?,
            actor: row.get("actor")?,
            action: row.get("action")?,
            target: row.get("target")?,
            outcome: row.get("outcome")?,
            details: row.get("details")?,
        },
    })
}

fn chain_head(row: &impl Row) -> StoreResult<ChainHeadRow> {
    Ok(ChainHeadRow {
        chain_id: row.get("chain_id")?,
        head_seq: row.get("head_seq")?,
        head_hash: row.get("head_hash")?,
    })
}

impl<B: Backend> SqlStore<B> {
    /// Runs a read; maps its first row, if any.
    async fn one<T>(
        &self,
        query: Query<'_>,
        map: fn(&<B::Conn as Conn>::Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let mut conn = self.backend.read().await?;
        let row = query.fetch_optional(&mut conn).await?;
        row.as_ref().map(map).transpose()
    }

    /// Runs a read; maps every row.
    async fn all<T>(
        &self,
        query: Query<'_>,
        map: fn(&<B::Conn as Conn>::Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let mut conn = self.backend.read().await?;
        let rows = query.fetch_all(&mut conn).await?;
        rows.iter().map(map).collect()
    }

    /// Runs a read of one `BIGINT` column `n` (a count).
    async fn count(&self, query: Query<'_>) -> StoreResult<i64> {
        let counted = self.one(query, |row| row.int("n")).await?;
        counted.ok_or_else(|| StoreError::Corrupt("a count returned no row".into()))
    }

    /// Runs a read of one `TEXT` column `value`.
    async fn strings(&self, query: Query<'_>) -> StoreResult<Vec<String>> {
        self.all(query, |row| row.text("value")).await
    }
}

#[async_trait]
impl<B: Backend> IntegrationStore for SqlStore<B> {
    async fn integration_by_ikey(&self, ikey: &str) -> StoreResult<Option<IntegrationRow>> {
        let sql = concat!(
            "SELECT ",
            integration_columns!(),
            " FROM integrations WHERE ikey = $1"
        );
        self.one(query(sql).bind(ikey), integration).await
    }

    async fn list_integrations(&self, org_id: &str) -> StoreResult<Vec<IntegrationRow>> {
        let sql = concat!(
            "SELECT ",
            integration_columns!(),
            " FROM integrations WHERE org_id = $1 ORDER BY created_ms, ikey"
        );
        self.all(query(sql).bind(org_id), integration).await
    }
}

#[async_trait]
impl<B: Backend> UserStore for SqlStore<B> {
    async fn user_by_name(&self, org_id: &str, username: &str) -> StoreResult<Option<UserRow>> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE org_id = $1 AND username = $2"
        );
        self.one(query(sql).bind(org_id).bind(username), user).await
    }

    async fn user_by_id(&self, org_id: &str, user_id: &str) -> StoreResult<Option<UserRow>> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE org_id = $1 AND user_id = $2"
        );
        self.one(query(sql).bind(org_id).bind(user_id), user).await
    }

    async fn list_users(&self, org_id: &str, limit: u32, offset: u32) -> StoreResult<Vec<UserRow>> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE org_id = $1 ORDER BY username LIMIT $2 OFFSET $3"
        );
        self.all(
            query(sql)
                .bind(org_id)
                .bind(i64::from(limit))
                .bind(i64::from(offset)),
            user,
        )
        .await
    }
}

#[async_trait]
impl<B: Backend> FactorStore for SqlStore<B> {
    async fn totps_for_user(&self, org_id: &str, user_id: &str) -> StoreResult<Vec<TotpRow>> {
        let sql = concat!(
            "SELECT ",
            totp_columns!(),
            " FROM totp_authenticators WHERE org_id = $1 AND user_id = $2 \
             ORDER BY created_ms, totp_id"
        );
        self.all(query(sql).bind(org_id).bind(user_id), totp).await
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
        let mut conn = self.backend.read().await?;
        let rows = query(sql)
            .bind(org_id)
            .bind(value)
            .fetch_all(&mut conn)
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let user = user(first)?;
        let mut totps = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(totp) = joined_totp(row)? {
                totps.push(totp);
            }
        }
        Ok(Some((user, totps)))
    }
}

#[async_trait]
impl<B: Backend> AuthTxStore for SqlStore<B> {
    async fn auth_tx(&self, org_id: &str, txid: &str) -> StoreResult<Option<AuthTxRow>> {
        let sql = concat!(
            "SELECT ",
            auth_tx_columns!(),
            " FROM auth_transactions WHERE org_id = $1 AND txid = $2"
        );
        self.one(query(sql).bind(org_id).bind(txid), auth_tx).await
    }
}

#[async_trait]
impl<B: Backend> AuditStore for SqlStore<B> {
    async fn audit_chains(&self) -> StoreResult<Vec<ChainHeadRow>> {
        let sql = "SELECT chain_id, head_seq, head_hash FROM audit_chains ORDER BY chain_id";
        self.all(query(sql), chain_head).await
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
            " FROM audit_events WHERE chain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        self.all(
            query(sql)
                .bind(chain_id)
                .bind(after_seq)
                .bind(i64::from(limit)),
            audit,
        )
        .await
    }
}

#[async_trait]
impl<B: Backend> MetaStore for SqlStore<B> {
    async fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        self.one(
            query("SELECT value FROM meta WHERE key = $1").bind(key),
            |row| row.text("value"),
        )
        .await
    }

    async fn meta_insert_if_absent(&self, key: &str, value: &str) -> StoreResult<String> {
        // One statement: the no-op update makes RETURNING yield the value already stored.
        let mut conn = self.backend.side_write().await?;
        let row = query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = meta.value RETURNING value",
        )
        .bind(key)
        .bind(value)
        .fetch_optional(&mut conn)
        .await?;
        match row {
            Some(row) => row.text("value"),
            None => Err(StoreError::Unavailable(format!(
                "setting {key} was not stored"
            ))),
        }
    }
}
