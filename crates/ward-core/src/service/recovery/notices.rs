//! Notices about a recovery case on every channel the user has: e-mail (or the log), each push
//! device (a request whose "deny" cancels the case), and the portal banner (read from the
//! case itself). Every notice carries a "this wasn't me" link that freezes the case.

use chrono::{DateTime, TimeDelta, Utc};
use ward_store::{CeremonyRow, Change, ChangeSet, UserRow};

use super::{Loaded, Ward};
use crate::crypto::token_hash;
use crate::model::{OrgId, UserRef};
use crate::recovery::{CaseEvent, CaseState, CaseView, Opener};
use crate::service::auth::push::PushDoor;
use crate::service::{AuthContext, PushRequest};

/// The pseudo-application recovery pushes come from; a deny on one cancels the case.
pub(crate) const RECOVERY_IKEY: &str = "ward-recovery";

fn when(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(
        || "-".into(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

const HOW_TO_CANCEL: &str = "If you did not ask for this, cancel it now: sign in to the portal \
    with any sign-in method you still have and choose Cancel, or deny the request in the Ward app. \
    The link below freezes the recovery and alerts your administrators.";

impl Ward {
    /// Tells the user, on every channel, that a case was opened for their account.
    pub(super) async fn case_opened_notices(
        &self,
        loaded: &Loaded,
        user: &UserRow,
        opener: &Opener,
        ip: Option<&str>,
        link: Option<&str>,
        now: DateTime<Utc>,
    ) {
        let who = match opener {
            Opener::User => "someone using the recovery page".to_owned(),
            Opener::Agent { agent_id } => {
                format!("a helpdesk agent ({agent_id}) at a caller's request")
            }
        };
        let mut body = format!(
            "A recovery of your account's sign-in methods was started by {who}{}. {HOW_TO_CANCEL}",
            ip.map_or_else(String::new, |ip| format!(" from {ip}"))
        );
        if let Some(link) = link
            && let Ok(url) = self.portal_url(&format!("/recovery/continue/{link}"))
        {
            body.push_str(
                "\n\nIf it was you who called, continue here (the link works once, in one \
                 browser; the helpdesk never asks for it): ",
            );
            body.push_str(&url);
        }
        self.notify_user(
            user,
            "recovery.opened",
            "A recovery of your account was started",
            &body,
            now,
        )
        .await;
        self.recovery_push(user, &loaded.row.case_id, "Account recovery started", now)
            .await;
        self.notify_approvers(user, now).await;
    }

    /// Tells the user's approvers that a case may need them (no link: they review it signed in).
    async fn notify_approvers(&self, user: &UserRow, now: DateTime<Utc>) {
        let Ok(settings) = self.passkeys() else {
            return;
        };
        let Ok(approvers) = self
            .store
            .recovery_approvers(&user.org_id, &user.user_id)
            .await
        else {
            return;
        };
        for a in approvers {
            let Ok(Some(approver)) = self.store.user_by_id(&user.org_id, &a.approver_id).await
            else {
                continue;
            };
            let notice = crate::notify::UserNotice {
                org_id: approver.org_id.clone(),
                user_id: approver.user_id.clone(),
                username: approver.username.clone(),
                email: approver.email.clone(),
                action: "recovery.approval_requested".into(),
                subject: format!(
                    "{} may need your approval to recover their account",
                    user.username
                ),
                body: format!(
                    "A recovery of {}'s account was started at {}. If it needs approvals, you will \
                     find it under Approvals when you sign in to the portal. Approve only after \
                     confirming with {} yourself, in person or through a channel you already \
                     trust; never because someone asked you to by phone or message.",
                    user.username,
                    now.format("%Y-%m-%d %H:%M UTC"),
                    user.username
                ),
                report_url: None,
                organisation: settings.settings.organisation.clone(),
            };
            for notifier in &self.notifiers {
                let notifier = std::sync::Arc::clone(notifier);
                let notice = notice.clone();
                tokio::spawn(async move { notifier.notify(&notice).await });
            }
        }
    }

    /// Notices for the events a command produced.
    pub(super) async fn case_notices(
        &self,
        loaded: &Loaded,
        user: Option<&UserRow>,
        events: &[CaseEvent],
        now: DateTime<Utc>,
    ) {
        let Some(user) = user else {
            return;
        };
        for e in events {
            let (action, subject, body) = match e {
                CaseEvent::CoolingStarted { until_ms, .. } => (
                    "recovery.cooling",
                    "Your account recovery is waiting",
                    format!(
                        "The recovery of your account will be ready at {}. {HOW_TO_CANCEL}",
                        when(*until_ms)
                    ),
                ),
                CaseEvent::CoolingElapsed { .. } => (
                    "recovery.ready",
                    "Your account recovery is ready",
                    format!(
                        "The recovery of your account can now be finished by setting up a new passkey. {HOW_TO_CANCEL}"
                    ),
                ),
                CaseEvent::Cancelled { via, .. } => (
                    "recovery.cancelled",
                    "The recovery of your account was cancelled",
                    format!("The recovery of your account was cancelled ({via}). Nothing changed."),
                ),
                CaseEvent::Frozen { .. } => (
                    "recovery.frozen",
                    "The recovery of your account is on hold",
                    "The recovery of your account is held for review by your security team."
                        .to_owned(),
                ),
                CaseEvent::Denied { .. } => (
                    "recovery.denied",
                    "The recovery of your account was refused",
                    "The recovery of your account was refused. Nothing changed.".to_owned(),
                ),
                CaseEvent::AuthenticatorBound { .. } => (
                    "recovery.bound",
                    "A new passkey was set up by account recovery",
                    format!(
                        "A new passkey was added to your account to finish a recovery. {HOW_TO_CANCEL}"
                    ),
                ),
                CaseEvent::Completed { .. } => (
                    "recovery.completed",
                    "Your account was recovered",
                    "Your account was recovered: your old sign-in methods were removed and every \
                     session was signed out."
                        .to_owned(),
                ),
                _ => continue,
            };
            self.notify_user(user, action, subject, &body, now).await;
            if matches!(e, CaseEvent::CoolingStarted { .. }) {
                self.recovery_push(user, &loaded.row.case_id, "Account recovery waiting", now)
                    .await;
            }
        }
    }

    /// Halfway through cooling, once per case, a reminder on every channel.
    pub(super) async fn midpoint_notice(
        &self,
        loaded: &Loaded,
        view: &CaseView,
        now: DateTime<Utc>,
    ) {
        let (CaseState::Cooling { until_ms }, Some(start)) = (view.state, view.cooling_started_ms)
        else {
            return;
        };
        if now.timestamp_millis() < start + (until_ms - start) / 2 {
            return;
        }
        let marker = CeremonyRow {
            ceremony_hash: token_hash(&format!("recovery-midpoint:{}", loaded.row.case_id)),
            org_id: loaded.row.org_id.clone(),
            user_id: loaded.row.user_id.clone(),
            purpose: "recovery-midpoint".into(),
            state_sealed: String::new(),
            created_ms: now.timestamp_millis(),
            expires_ms: until_ms + TimeDelta::days(1).num_milliseconds(),
        };
        if self
            .store
            .commit(ChangeSet::new().with(Change::InsertCeremony(marker)))
            .await
            .is_err()
        {
            return; // already reminded (or the store is down: the next read tries again)
        }
        let Ok(Some(user)) = self.case_user(loaded).await else {
            return;
        };
        self.notify_user(
            &user,
            "recovery.reminder",
            "Reminder: your account recovery is waiting",
            &format!(
                "The recovery of your account will be ready at {}. {HOW_TO_CANCEL}",
                when(until_ms)
            ),
            now,
        )
        .await;
        self.recovery_push(&user, &loaded.row.case_id, "Account recovery waiting", now)
            .await;
    }

    /// A request to each of the user's push devices: "deny" cancels the case.
    async fn recovery_push(&self, user: &UserRow, case_id: &str, title: &str, now: DateTime<Utc>) {
        let Ok(devices) = self
            .store
            .devices_for_user(&user.org_id, &user.user_id)
            .await
        else {
            return;
        };
        let ctx = AuthContext::internal(
            &OrgId::new(user.org_id.clone()),
            RECOVERY_IKEY,
            "Account recovery",
        );
        for device in devices {
            let req = PushRequest {
                title: Some(title.into()),
                display_username: Some(user.username.clone()),
                details: vec![
                    ("Case".into(), case_id.into()),
                    ("Deny".into(), "cancels the recovery".into()),
                ],
                device: Some(device.device_id.clone()),
                device_index: None,
                hostname: None,
                number_required: false,
                want_txid: true,
            };
            if let Err(e) = self
                .auth()
                .start_push(
                    &ctx,
                    &PushDoor::WARD,
                    &UserRef::Id(user.user_id.clone()),
                    &req,
                    now,
                )
                .await
            {
                tracing::warn!(user_id = %user.user_id, error = %e, "recovery push failed");
            }
        }
    }
}
