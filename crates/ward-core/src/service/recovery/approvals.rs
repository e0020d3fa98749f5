//! Approvals: an approver in the account's approver set confirms with their own passkey, in a
//! ceremony bound to the case (its purpose names the case, so it cannot be finished for
//! another case).

use crate::service::Recovery;
use chrono::{DateTime, Utc};

use super::{category_label, state_name};
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor as AuditActor, Role};
use crate::recovery::{Approval, ApprovalFault, CaseState, Command, Refusal};
use crate::service::{CeremonyStart, Session};

/// A case an approver may approve, as their page lists it.
#[derive(Clone, Debug)]
pub struct PendingApproval {
    pub case_id: String,
    pub username: String,
    pub opened_ms: i64,
    /// `user` or `agent:DU…`.
    pub opened_by: String,
    pub state: &'static str,
    pub accepted: Vec<&'static str>,
    pub approvals: usize,
    /// Whether this approver already approved.
    pub approved: bool,
}

fn purpose(case_id: &str) -> String {
    format!("recovery-approval:{case_id}")
}

/// What the approver reads when their approval is refused (the audit keeps the exact refusal;
/// a state's `Debug` form is no message for a person).
fn approval_refusal_message(r: &Refusal) -> String {
    let text = match r {
        Refusal::Approval(fault) => fault_message(*fault),
        Refusal::Closed(_) | Refusal::WrongState { .. } | Refusal::FailureLimit => {
            "This recovery is no longer waiting for approvals."
        }
        _ => "This approval could not be recorded.",
    };
    text.to_owned()
}

/// Why an approval cannot count, in a fixed sentence for the approver.
fn fault_message(fault: ApprovalFault) -> &'static str {
    match fault {
        ApprovalFault::OtherCase => "This approval cannot count: it is for another case.",
        ApprovalFault::NotYetValid | ApprovalFault::Expired | ApprovalFault::LifetimeTooLong => {
            "This approval cannot count: it is outside its time limits. Start it again."
        }
        ApprovalFault::ApproverIsUser => {
            "This approval cannot count: you are the user being recovered."
        }
        ApprovalFault::ApproverIsOpener => {
            "This approval cannot count: the agent who opened the case cannot approve it."
        }
        ApprovalFault::NotAnApprover => {
            "This approval cannot count: you are not one of this person's approvers."
        }
        ApprovalFault::RecentlyRecovered => {
            "This approval cannot count: your own account was recovered recently."
        }
        ApprovalFault::Duplicate => "This approval cannot count: you already approved this case.",
    }
}

impl Recovery<'_> {
    /// The open cases the signed-in approver may approve (collecting proof), and the open ones
    /// they approved. A case past collecting takes no approvals, so it is not offered.
    pub async fn pending_approvals(self, session: &Session) -> CoreResult<Vec<PendingApproval>> {
        let org = &session.org();
        let me = &session.user.user_id;
        let mut out = Vec::new();
        for row in self.store.open_cases_for_approver(org.as_str(), me).await? {
            let Some(user_id) = row.user_id.clone() else {
                continue;
            };
            let Some(user) = self.store.user_by_id(org.as_str(), &user_id).await? else {
                continue;
            };
            let loaded = self.load_case(row).await?;
            let approved = loaded.view.approvals.iter().any(|a| &a.approver_id == me);
            if loaded.view.state != CaseState::Collecting && !approved {
                continue;
            }
            out.push(PendingApproval {
                case_id: loaded.row.case_id.clone(),
                username: user.username,
                opened_ms: loaded.row.opened_ms,
                opened_by: loaded.row.opened_by.clone(),
                state: state_name(loaded.view.state),
                accepted: loaded
                    .view
                    .evidence
                    .iter()
                    .map(|e| category_label(e.category))
                    .collect(),
                approvals: loaded.view.approvals.len(),
                approved,
            });
        }
        Ok(out)
    }

    /// Starts an approval: a passkey check of the approver bound to this case.
    pub async fn approval_start(
        self,
        session: &Session,
        case_id: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<CeremonyStart> {
        let org = &session.org();
        if case_id.len() > 64 {
            return Err(CoreError::NotFound("recovery case".into()));
        }
        self.portal()
            .passkey_auth_start(org, &purpose(case_id), Some(&session.user.user_id), now)
            .await
    }

    /// Finishes an approval and records it on the case (the case decides whether it counts:
    /// the approver must be in the set, not the user, not the agent who opened it).
    pub async fn approval_finish(
        self,
        session: &Session,
        case_id: &str,
        ceremony: &str,
        response: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let org = &session.org();
        let check = self
            .portal()
            .passkey_auth_finish(org, &purpose(case_id), ceremony, response, now)
            .await?;
        if check.user.user_id != session.user.user_id {
            return Err(CoreError::Forbidden(
                "this passkey belongs to another account".into(),
            ));
        }
        let row = self
            .store
            .recovery_case(case_id)
            .await?
            .filter(|r| r.is_open && r.org_id == org.as_str())
            .ok_or_else(|| CoreError::NotFound("open recovery case".into()))?;
        let loaded = self.load_case(row).await?;
        let approval = Approval {
            case_id: case_id.into(),
            approver_id: session.user.user_id.clone(),
            from_security_pool: self
                .admin()
                .has_role(org, &session.user_id(), Role::Security)
                .await?,
            cred_id: check.cred_id,
            at_ms: now.timestamp_millis(),
            expires_ms: now.timestamp_millis() + self.recovery.policy.approval_ttl_ms,
        };
        let actor = AuditActor::User(session.user.user_id.clone());
        match self
            .run_case(loaded, Command::Approve(approval), &actor, now)
            .await?
        {
            Ok(_) => Ok(()),
            Err(r) => {
                let event = crate::audit::Event::new(
                    org.as_str(),
                    now,
                    &actor,
                    crate::audit::Action::RecoveryApprovalRefused,
                    case_id,
                    "deny",
                )
                .detail("reason", r.to_string());
                Err(self
                    .audited_refusal(event, "approval", &approval_refusal_message(&r))
                    .await)
            }
        }
    }
}
