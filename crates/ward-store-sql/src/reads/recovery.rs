//! Reads of recovery cases and their events, roles and approver sets.

use async_trait::async_trait;
use ward_store::{ApproverRow, RecoveryCaseRow, RecoveryEventRow, RecoveryStore, StoreResult};

use crate::exec::{Row, query};
use crate::{Backend, SqlStore};

macro_rules! case_columns {
    () => {
        "c.case_id, c.org_id, c.user_id, c.handle_hash, c.state, c.is_open, c.opened_by, \
         c.opened_ms, c.updated_ms, c.expires_ms, c.version, c.opened_from, c.adopt_hash"
    };
}

fn case(row: &impl Row) -> StoreResult<RecoveryCaseRow> {
    Ok(RecoveryCaseRow {
        case_id: row.get("case_id")?,
        org_id: row.get("org_id")?,
        user_id: row.get("user_id")?,
        handle_hash: row.get("handle_hash")?,
        state: row.get("state")?,
        is_open: row.flag("is_open")?,
        opened_by: row.get("opened_by")?,
        opened_ms: row.get("opened_ms")?,
        updated_ms: row.get("updated_ms")?,
        expires_ms: row.get("expires_ms")?,
        version: row.get("version")?,
        opened_from: row.get("opened_from")?,
        adopt_hash: row.get("adopt_hash")?,
    })
}

fn event(row: &impl Row) -> StoreResult<RecoveryEventRow> {
    Ok(RecoveryEventRow {
        case_id: row.get("case_id")?,
        seq: row.get("seq")?,
        at_ms: row.get("at_ms")?,
        event: row.get("event")?,
    })
}

fn approver(row: &impl Row) -> StoreResult<ApproverRow> {
    Ok(ApproverRow {
        org_id: row.get("org_id")?,
        user_id: row.get("user_id")?,
        approver_id: row.get("approver_id")?,
        added_ms: row.get("added_ms")?,
    })
}

impl<B: Backend> SqlStore<B> {
    /// One case, found by a unique column bound to `value`.
    async fn case_where(
        &self,
        sql: &'static str,
        value: &str,
    ) -> StoreResult<Option<RecoveryCaseRow>> {
        self.one(query(sql).bind(value), case).await
    }
}

#[async_trait]
impl<B: Backend> RecoveryStore for SqlStore<B> {
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
        self.one(query(sql).bind(org_id).bind(user_id), case).await
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
        self.all(query(sql).bind(org_id).bind(i64::from(limit)), case)
            .await
    }

    async fn recovery_events(&self, case_id: &str) -> StoreResult<Vec<RecoveryEventRow>> {
        let sql = "SELECT case_id, seq, at_ms, event FROM recovery_events WHERE case_id = $1 \
                   ORDER BY seq";
        self.all(query(sql).bind(case_id), event).await
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
        self.all(
            query(sql).bind(org_id).bind(user_id).bind(i64::from(limit)),
            case,
        )
        .await
    }

    async fn recovery_cases_opened_since(&self, org_id: &str, since_ms: i64) -> StoreResult<i64> {
        let sql = "SELECT COUNT(*) AS n FROM recovery_cases WHERE org_id = $1 AND opened_ms >= $2";
        self.count(query(sql).bind(org_id).bind(since_ms)).await
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
        self.all(query(sql).bind(org_id).bind(approver_id), case)
            .await
    }

    async fn roles_for_user(&self, org_id: &str, user_id: &str) -> StoreResult<Vec<String>> {
        let sql =
            "SELECT role AS value FROM user_roles WHERE org_id = $1 AND user_id = $2 ORDER BY role";
        self.strings(query(sql).bind(org_id).bind(user_id)).await
    }

    async fn users_with_role(&self, org_id: &str, role: &str) -> StoreResult<Vec<String>> {
        let sql = "SELECT user_id AS value FROM user_roles WHERE org_id = $1 AND role = $2 ORDER BY user_id";
        self.strings(query(sql).bind(org_id).bind(role)).await
    }

    async fn recovery_approvers(
        &self,
        org_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<ApproverRow>> {
        let sql = "SELECT org_id, user_id, approver_id, added_ms FROM recovery_approvers \
                   WHERE org_id = $1 AND user_id = $2 ORDER BY added_ms, approver_id";
        self.all(query(sql).bind(org_id).bind(user_id), approver)
            .await
    }
}
