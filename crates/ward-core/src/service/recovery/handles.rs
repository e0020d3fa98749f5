//! Who holds a case. A self-service case belongs to the browser that started it. A case a
//! helpdesk agent opened belongs to nobody until the user adopts it with the continue link
//! e-mailed to them; the link works once. Every evidence submission replaces the handle, so
//! the browser that submitted keeps the case and any other holder of the old handle loses it.
//!
//! # Security
//! Adoption and rotation are single conditional statements: of browsers racing with the same
//! link or handle, exactly one wins. A handle from a self-service start can never be adopted
//! by another browser, so an attacker cannot fix their own case on a victim's browser.

use crate::service::Recovery;
use chrono::{DateTime, Utc};
use ward_store::{Change, ChangeSet, StoreError};
use zeroize::Zeroizing;

use super::{Loaded, Submitted, Ward};
use crate::audit::{Action, Event};
use crate::crypto::{new_token, token_hash};
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor as AuditActor, OrgId, UserId};

/// What a submission of evidence answers: the outcome, and the case's new handle (the old
/// one no longer opens the case).
#[derive(Debug)]
pub struct Submission {
    pub outcome: Submitted,
    pub handle: Zeroizing<String>,
}

/// What a continue link that cannot be used answers, whatever the reason.
fn link_unusable() -> CoreError {
    CoreError::NotFound("continue link".into())
}

impl Ward {
    /// Replaces the case's handle, which the caller presented, with a new one; audited. A
    /// caller whose handle was replaced first finds no case, like any unknown handle.
    pub(super) async fn rotate_handle(
        &self,
        loaded: &Loaded,
        handle: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Zeroizing<String>> {
        let new = Zeroizing::new(new_token());
        let audit = Event::new(
            &loaded.row.org_id,
            now,
            &AuditActor::Anonymous,
            Action::RecoveryHandleRotated,
            loaded.row.user_id.as_deref().unwrap_or("-"),
            "ok",
        )
        .detail("case_id", loaded.row.case_id.as_str());
        let set = ChangeSet::new()
            .with(Change::RotateRecoveryHandle {
                case_id: loaded.row.case_id.clone(),
                old_hash: token_hash(handle),
                new_hash: token_hash(&new),
            })
            .with(audit.into_change());
        match self.store.commit(set).await {
            Ok(_) => Ok(new),
            Err(StoreError::ConditionFailed(_)) => Err(super::case_missing()),
            Err(e) => Err(e.into()),
        }
    }

    /// Counts a notice of `kind` to the user against the hourly cap; `false` when the cap is
    /// reached (the notice is then left out). A store failure lets the notice go.
    pub(super) async fn take_notice_slot(
        &self,
        org: &OrgId,
        user_id: &UserId,
        kind: &str,
        now: DateTime<Utc>,
    ) -> bool {
        let slot = Change::TakeNoticeSlot {
            org_id: org.to_string(),
            user_id: user_id.to_string(),
            kind: kind.into(),
            now_ms: now.timestamp_millis(),
            window_ms: chrono::TimeDelta::hours(1).num_milliseconds(),
            cap: self.recovery.start_notices_per_hour,
        };
        match self.store.commit(ChangeSet::new().with(slot)).await {
            Ok(_) => true,
            Err(StoreError::ConditionFailed(_)) => false,
            Err(e) => {
                tracing::warn!(%user_id, error = %e, "notice cap not checked");
                true
            }
        }
    }
}

impl Recovery<'_> {
    /// Adopts a case a helpdesk agent opened, with the token of the continue link e-mailed to
    /// the user; returns the handle for this browser. The link is used up.
    ///
    /// # Errors
    /// `NotFound` when the link is unknown, already used, or its case has ended.
    pub async fn adopt(
        self,
        link: &str,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> CoreResult<Zeroizing<String>> {
        if link.is_empty() || link.len() > 128 {
            return Err(link_unusable());
        }
        let adopt_hash = token_hash(link);
        let row = self
            .store
            .recovery_case_by_adopt_hash(&adopt_hash)
            .await?
            .filter(|r| r.is_open)
            .ok_or_else(link_unusable)?;
        let handle = Zeroizing::new(new_token());
        let audit = Event::new(
            &row.org_id,
            now,
            &AuditActor::Anonymous,
            Action::RecoveryAdopted,
            row.user_id.as_deref().unwrap_or("-"),
            "ok",
        )
        .detail("case_id", row.case_id.as_str())
        .detail_opt("ip", ip.map(str::to_owned));
        let set = ChangeSet::new()
            .with(Change::AdoptRecoveryCase {
                case_id: row.case_id.clone(),
                adopt_hash,
                handle_hash: token_hash(&handle),
            })
            .with(audit.into_change());
        match self.store.commit(set).await {
            Ok(_) => Ok(handle),
            Err(StoreError::ConditionFailed(_)) => Err(link_unusable()),
            Err(e) => Err(e.into()),
        }
    }
}
