//! Approvals by the account's approvers (category S, recovery spec §4.3) and who opened a case.

use serde::{Deserialize, Serialize};

use super::config::RecoveryPolicy;
use super::policy::PolicyInput;

/// Who opened a recovery case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Opener {
    /// The user, self-service (including phantom cases for unknown identifiers).
    User,
    /// A helpdesk agent. Agents initiate, never decide (recovery spec §5.10): the opener can never
    /// approve.
    Agent { agent_id: String },
}

impl Opener {
    /// The agent's id when an agent opened the case.
    pub fn agent_id(&self) -> Option<&str> {
        match self {
            Self::User => None,
            Self::Agent { agent_id } => Some(agent_id),
        }
    }
}

/// One approver's WebAuthn-confirmed approval of one case.
///
/// The service records it only after a user-verified assertion by `cred_id` over a challenge that
/// binds `case_id`, the target user, the action and `expires_ms` (recovery spec §4.3), so an
/// approval is
/// never transferable: [`Approval::fault`] refuses it on any other case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub case_id: String,
    pub approver_id: String,
    /// The approver acted as a member of the security pool. Counts as such only if the account
    /// facts agree ([`ApproverFacts::security_pool`]).
    pub from_security_pool: bool,
    /// The approver's credential that signed the assertion (audit).
    pub cred_id: String,
    pub at_ms: i64,
    pub expires_ms: i64,
}

/// What the service knows about one member of the account's approver set, read when the
/// policy is evaluated (the set is fixed before the need, recovery spec §4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApproverFacts {
    pub approver_id: String,
    /// Member of the security-team pool (needed for privileged accounts).
    pub security_pool: bool,
    /// When the approver's own account was last recovered, if ever.
    pub last_recovered_ms: Option<i64>,
}

/// Why an approval does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalFault {
    #[error("the approval is for another case")]
    OtherCase,
    #[error("the approval is dated after the time it is checked at")]
    NotYetValid,
    #[error("the approval has expired")]
    Expired,
    #[error("the approval's lifetime exceeds the policy's maximum")]
    LifetimeTooLong,
    #[error("the approver is the user being recovered")]
    ApproverIsUser,
    #[error("the approver is the agent who opened the case")]
    ApproverIsOpener,
    #[error("the approver is not in the account's approver set")]
    NotAnApprover,
    #[error("the approver's own account was recovered recently")]
    RecentlyRecovered,
    #[error("the approver already approved this case")]
    Duplicate,
}

impl Approval {
    /// Why this approval cannot count for `input`'s case, ignoring duplicates; `None` if it can.
    ///
    /// Expiry is judged at `input.approvals_at_ms` (when cooling started, once it has); the
    /// approver rules are judged on the current facts at `input.now_ms`, so an approver who is
    /// removed from the set or recovered during cooling stops counting.
    pub fn fault(&self, policy: &RecoveryPolicy, input: &PolicyInput<'_>) -> Option<ApprovalFault> {
        let at = input.approvals_at_ms;
        if self.case_id != input.case_id {
            return Some(ApprovalFault::OtherCase);
        }
        if self.at_ms > at {
            return Some(ApprovalFault::NotYetValid);
        }
        if self.expires_ms <= at {
            return Some(ApprovalFault::Expired);
        }
        if self.expires_ms.saturating_sub(self.at_ms) > policy.approval_ttl_ms {
            return Some(ApprovalFault::LifetimeTooLong);
        }
        self.approver_fault(policy, input)
    }

    fn approver_fault(
        &self,
        policy: &RecoveryPolicy,
        input: &PolicyInput<'_>,
    ) -> Option<ApprovalFault> {
        if self.approver_id == input.user_id {
            return Some(ApprovalFault::ApproverIsUser);
        }
        if input.opener.agent_id() == Some(self.approver_id.as_str()) {
            return Some(ApprovalFault::ApproverIsOpener);
        }
        let Some(facts) = input.approver(&self.approver_id) else {
            return Some(ApprovalFault::NotAnApprover);
        };
        let quarantine_start = input.now_ms.saturating_sub(policy.approver_quarantine_ms);
        // A recovery dated after `now` is a clock or data error: treat it as recent.
        if facts
            .last_recovered_ms
            .is_some_and(|t| t > quarantine_start)
        {
            return Some(ApprovalFault::RecentlyRecovered);
        }
        None
    }
}

/// The approvals that count for `input` (each approver once) and the refused ones with reasons.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApprovalTally {
    /// Distinct approvers whose approval counts.
    pub counted: u8,
    /// Of those, the ones that count as security-pool approvals.
    pub counted_pool: u8,
    /// `(approver_id, fault)` for every approval that does not count.
    pub refused: Vec<(String, ApprovalFault)>,
}

impl ApprovalTally {
    /// Tallies `input.approvals`: each approver counts at most once, whichever approval came first.
    pub fn of(policy: &RecoveryPolicy, input: &PolicyInput<'_>) -> Self {
        let mut tally = Self::default();
        let mut seen: Vec<&str> = Vec::new();
        for approval in input.approvals {
            let fault = approval.fault(policy, input).or_else(|| {
                seen.contains(&approval.approver_id.as_str())
                    .then_some(ApprovalFault::Duplicate)
            });
            if let Some(fault) = fault {
                tally.refused.push((approval.approver_id.clone(), fault));
                continue;
            }
            seen.push(&approval.approver_id);
            tally.counted = tally.counted.saturating_add(1);
            let pool = input
                .approver(&approval.approver_id)
                .is_some_and(|f| f.security_pool);
            if approval.from_security_pool && pool {
                tally.counted_pool = tally.counted_pool.saturating_add(1);
            }
        }
        tally
    }
}
