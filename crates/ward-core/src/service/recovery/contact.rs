//! "Someone claiming to be IT contacted me": a report to the security contacts, signed in or
//! not.
//!
//! # Security
//! Anyone can send a report, so what one report costs is bounded: an anonymous description
//! is kept in the audit log only up to [`ANONYMOUS_AUDIT_CHARS`] characters (its full length
//! is recorded), and the alert it raises is coalesced with others of its kind by the alert
//! sinks. The server limits how often reports are accepted.

use crate::service::Recovery;
use chrono::{DateTime, TimeDelta, Utc};
use ward_store::{Change, ChangeSet};

use crate::audit::{Action, Event};
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor as AuditActor, OrgId};

/// The most of an anonymous report's description the audit log keeps.
pub const ANONYMOUS_AUDIT_CHARS: usize = 280;

/// The description as the audit log keeps it: whole from a signed-in user, the start of it
/// from an anonymous one.
fn audit_text(description: &str, signed_in: bool) -> String {
    if signed_in {
        return description.to_owned();
    }
    let mut kept: String = description.chars().take(ANONYMOUS_AUDIT_CHARS).collect();
    if kept.len() < description.len() {
        kept.push_str(" [cut]");
    }
    kept
}

impl Recovery<'_> {
    /// "Someone claiming to be IT contacted me": alerts the security contacts and audits; a
    /// signed-in user may also block recovery of their account for `block_days`.
    #[allow(clippy::too_many_arguments)] // the organisation, the reporter and the form's fields
    pub async fn report_contact(
        self,
        org: &OrgId,
        user_id: Option<&str>,
        kind: &str,
        description: &str,
        block_days: Option<u32>,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let kind = match kind {
            "call" | "message" | "visit" | "other" => kind,
            _ => {
                return Err(CoreError::invalid(
                    "kind",
                    "must be call, message, visit or other",
                ));
            }
        };
        let description = description.trim();
        if description.chars().count() > 2000 {
            return Err(CoreError::invalid(
                "description",
                "must be at most 2000 characters",
            ));
        }
        let actor = user_id.map_or(AuditActor::Anonymous, |u| AuditActor::User(u.into()));
        let mut set = ChangeSet::new();
        let block = match (user_id, block_days) {
            (Some(user_id), Some(days)) if (1..=30).contains(&days) => {
                let until = (now + TimeDelta::days(i64::from(days))).timestamp_millis();
                set.push(Change::SetRecoveryBlock {
                    org_id: org.to_string(),
                    user_id: user_id.into(),
                    until_ms: Some(until),
                });
                Some(until)
            }
            _ => None,
        };
        set.push(
            Event::new(
                org.as_str(),
                now,
                &actor,
                Action::SecurityContactReport,
                user_id.unwrap_or("-"),
                "ok",
            )
            .detail("kind", kind)
            .detail("description", audit_text(description, user_id.is_some()))
            .detail("description_chars", description.chars().count())
            .detail_opt("recovery_blocked_until_ms", block)
            .detail_opt("ip", ip.map(str::to_owned))
            .into_change(),
        );
        self.store.commit(set).await?;
        self.raise(crate::notify::Alert::SuspiciousContact {
            org_id: org.to_string(),
            user_id: user_id.map(str::to_owned),
            kind: kind.into(),
            at_ms: now.timestamp_millis(),
        })
        .await;
        Ok(())
    }
}
