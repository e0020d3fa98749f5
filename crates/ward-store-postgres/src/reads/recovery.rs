//! Reads of recovery cases and their events, roles and approver sets.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use ward_store::{ApproverRow, RecoveryCaseRow, RecoveryEventRow, RecoveryStore, StoreResult};

use super::{all, flag, one};
use crate::PostgresStore;
use crate::error::store_err;

macro_rules! case_columns {
    () => {
        "c.case_id, c.org_id, c.user_id, c.handle_hash, c.state, c.is_open, c.opened_by, \
         c.opened_ms, c.updated_ms, c.expires_ms, c.version, c.opened_from, c.adopt_hash"
    };
}

fn case(row: &PgRow) -> Result<RecoveryCaseRow, sqlx::Error> {
    Ok(RecoveryCaseRow {
        case_id: row.try_get("case_id")?,
        org_id: row.try_get("org_id")?,
        user_id: row.try_get("user_id")?,
        handle_hash: row.try_get("handle_hash")?,
        state: row.try_get("state")?,
        is_open: flag(row, "is_open")?,
        opened_by: row.try_get("opened_by")?,
        opened_ms: row.try_get("opened_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        expires_ms: row.try_get("expires_ms")?,
        version: row.try_get("version")?,
        opened_from: row.try_get("opened_from")?,
        adopt_hash: row.try_get("adopt_hash")?,
    })
}

fn event(row: &PgRow) -> Result<RecoveryEventRow, sqlx::Error> {
    Ok(RecoveryEventRow {
        case_id: row.try_get("case_id")?,
        seq: row.try_get("seq")?,
        at_ms: row.try_get("at_ms")?,
        event: row.try_get("event")?,
    })
}

fn approver(row: &PgRow) -> Result<ApproverRow, sqlx::Error> {
    Ok(ApproverRow {
        org_id: row.try_get("org_id")?,
        user_id: row.try_get("user_id")?,
        approver_id: row.try_get("approver_id")?,
        added_ms: row.try_get("added_ms")?,
    })
}

impl PostgresStore {
    /// One case, found by a unique column bound to `value`.
    async fn case_where(
        &self,
        sql: &'static str,
        value: &str,
    ) -> StoreResult<Option<RecoveryCaseRow>> {
        let row = sqlx::query(sql)
            .bind(value)
            .fetch_optional(&self.reads)
            .await;
        one(row.map_err(store_err)?.as_ref(), case)
    }

    /// A column of strings, for one organisation and one key.
    async fn strings(
        &self,
        sql: &'static str,
        org_id: &str,
        key: &str,
    ) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(sql)
            .bind(org_id)
            .bind(key)
            .fetch_all(&self.reads)
            .await
            .map_err(store_err)
    }
}

#[async_trait]
impl RecoveryStore for PostgresStore {
    async fn recovery_case(&self, case_id: &str) -> StoreResult<Option<RecoveryCaseRow>> {
        let sql = concat!(
            "SELECT ",
            case_columns!(),
            " FROM recovery_cases c WHERE c.case_id = $1"
        );
        self.case_where(sql, case_id).await
    }

    async fn recovery_case_by_handle(
        &self,
        handle_hash: &str,
    ) -> StoreResult<Option<RecoveryCaseRow>> {
        let sql = concat!(
            "SELECT ",
            case_columns!(),
            " FROM recovery_cases c WHERE c.handle_hash = $1"
        );
        self.case_where(sql, handle_hash).await
    }

    async fn recovery_case_by_adopt_hash(
        &self,
        adopt_hash: &str,
    ) -> StoreResult<Option<RecoveryCaseRow>> {
        let sql = concat!(
            "SELECT ",
            case_columns!(),
            " FROM recovery_cases c WHERE c.adopt_hash = $1"
        );
        self.case_where(sql, adopt_hash).await
    }

    async fn open_recovery_case(
        &self,
        org_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<RecoveryCaseRow>> {
        let sql = concat!(
            "SELECT ",
            case_columns!(),
            " FROM recovery_cases c WHERE c.org_id = $1 AND c.user_id = $2 AND c.is_open = 1"
        );
        let row = sqlx::query(sql)
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&self.reads)
            .await;
        one(row.map_err(store_err)?.as_ref(), case)
    }

    async fn open_recovery_cases(
        &self,
        org_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<RecoveryCaseRow>> {
        let sql = concat!(
            "SELECT ",
            case_columns!(),
            " FROM recovery_cases c WHERE c.org_id = $1 AND c.is_open = 1 \
             ORDER BY c.updated_ms LIMIT $2"
        );
        let rows = sqlx::query(sql)
            .bind(org_id)
            .bind(i64::from(limit))
            .fetch_all(&self.reads)
            .await;
        all(&rows.map_err(store_err)?, case)
    }

    async fn recovery_events(&self, case_id: &str) -> StoreResult<Vec<RecoveryEventRow>> {
        let sql = "SELECT case_id, seq, at_ms, event FROM recovery_events WHERE case_id = $1 \
                   ORDER BY seq";
        let rows = sqlx::query(sql).bind(case_id).fetch_all(&self.reads).await;
        all(&rows.map_err(store_err)?, event)
    }

    async fn recovery_cases_for_user(
        &self,
        org_id: &str,
        user_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<RecoveryCaseRow>> {
        let sql = concat!(
            "SELECT ",
            case_columns!(),
            " FROM recovery_cases c WHERE c.org_id = $1 AND c.user_id = $2 \
             ORDER BY c.opened_ms DESC, c.case_id DESC LIMIT $3"
        );
        let rows = sqlx::query(sql)
            .bind(org_id)
            .bind(user_id)
            .bind(i64::from(limit))
            .fetch_all(&self.reads)
            .await;
        all(&rows.map_err(store_err)?, case)
    }

    async fn recovery_cases_opened_since(&self, org_id: &str, since_ms: i64) -> StoreResult<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_cases WHERE org_id = $1 AND opened_ms >= $2",
        )
        .bind(org_id)
        .bind(since_ms)
        .fetch_one(&self.reads)
        .await
        .map_err(store_err)
    }

    async fn open_cases_for_approver(
        &self,
        org_id: &str,
        approver_id: &str,
    ) -> StoreResult<Vec<RecoveryCaseRow>> {
        let sql = concat!(
            "SELECT ",
            case_columns!(),
            " FROM recovery_cases c JOIN recovery_approvers a \
             ON a.org_id = c.org_id AND a.user_id = c.user_id \
             WHERE a.org_id = $1 AND a.approver_id = $2 AND c.is_open = 1 \
             ORDER BY c.opened_ms, c.case_id"
        );
        let rows = sqlx::query(sql)
            .bind(org_id)
            .bind(approver_id)
            .fetch_all(&self.reads)
            .await;
        all(&rows.map_err(store_err)?, case)
    }

    async fn roles_for_user(&self, org_id: &str, user_id: &str) -> StoreResult<Vec<String>> {
        let sql = "SELECT role FROM user_roles WHERE org_id = $1 AND user_id = $2 ORDER BY role";
        self.strings(sql, org_id, user_id).await
    }

    async fn users_with_role(&self, org_id: &str, role: &str) -> StoreResult<Vec<String>> {
        let sql = "SELECT user_id FROM user_roles WHERE org_id = $1 AND role = $2 ORDER BY user_id";
        self.strings(sql, org_id, role).await
    }

    async fn recovery_approvers(
        &self,
        org_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<ApproverRow>> {
        let sql = "SELECT org_id, user_id, approver_id, added_ms FROM recovery_approvers \
                   WHERE org_id = $1 AND user_id = $2 ORDER BY added_ms, approver_id";
        let rows = sqlx::query(sql)
            .bind(org_id)
            .bind(user_id)
            .fetch_all(&self.reads)
            .await;
        all(&rows.map_err(store_err)?, approver)
    }
}
