//! Who holds a recovery case: adopting an agent-opened case with its continue link, rotating
//! the handle so that only one browser keeps the case, and the per-account notice cap. Each is
//! one conditional statement, so of concurrent requests exactly the allowed ones win.

use ward_store::{Change, Outcome, StoreError, StoreResult};

use super::exactly_one;
use crate::exec::{Conn, query};

/// Applies one of these changes (the caller dispatches only those here).
pub(super) async fn apply(conn: &mut impl Conn, change: &Change) -> StoreResult<Outcome> {
    match change {
        Change::AdoptRecoveryCase {
            case_id,
            adopt_hash,
            handle_hash,
        } => {
            let done = query(
                "UPDATE recovery_cases SET handle_hash = $1, adopt_hash = NULL \
                 WHERE case_id = $2 AND adopt_hash = $3 AND is_open = 1",
            )
            .bind(handle_hash)
            .bind(case_id)
            .bind(adopt_hash)
            .execute(conn)
            .await?;
            exactly_one(done, || {
                StoreError::ConditionFailed("continue link already used".into())
            })
        }
        Change::RotateRecoveryHandle {
            case_id,
            old_hash,
            new_hash,
        } => {
            let done = query(
                "UPDATE recovery_cases SET handle_hash = $1 WHERE case_id = $2 AND handle_hash = $3",
            )
            .bind(new_hash)
            .bind(case_id)
            .bind(old_hash)
            .execute(conn)
            .await?;
            exactly_one(done, || {
                StoreError::ConditionFailed("recovery handle already replaced".into())
            })
        }
        Change::TakeNoticeSlot {
            org_id,
            user_id,
            kind,
            now_ms,
            window_ms,
            cap,
        } => {
            // A window older than `window_ms` restarts at now with this notice; otherwise the
            // notice counts only while fewer than `cap` were sent (the update's WHERE).
            let done = query(
                "INSERT INTO notice_quota (org_id, user_id, kind, window_start_ms, sent) \
                 VALUES ($1, $2, $3, $4, 1) \
                 ON CONFLICT (org_id, user_id, kind) DO UPDATE SET \
                 sent = CASE WHEN notice_quota.window_start_ms <= $5 THEN 1 \
                        ELSE notice_quota.sent + 1 END, \
                 window_start_ms = CASE WHEN notice_quota.window_start_ms <= $5 \
                        THEN excluded.window_start_ms ELSE notice_quota.window_start_ms END \
                 WHERE notice_quota.window_start_ms <= $5 OR notice_quota.sent < $6",
            )
            .bind(org_id)
            .bind(user_id)
            .bind(kind)
            .bind(now_ms)
            .bind(now_ms.saturating_sub(*window_ms))
            .bind(cap)
            .execute(conn)
            .await?;
            exactly_one(done, || {
                StoreError::ConditionFailed("notice cap reached".into())
            })
        }
        // `apply::apply` matches every change exhaustively and sends only these here.
        _ => Err(StoreError::Unavailable(
            "not a recovery handle change; dispatched to the wrong module".into(),
        )),
    }
}
