//! The transitions of a recovery case: a pure `decide` from the folded case, the policy, the
//! account's facts, a command and the time to the events to append, or a typed refusal.
//!
//! The service folds the stored events, calls [`decide`], appends the events with a conditional
//! insert (the case's event count as the expected version), then calls it again with
//! [`Command::Tick`] so that a satisfied policy starts cooling at once.

use super::approval::{Approval, ApprovalFault, Opener};
use super::case::{AccountFacts, Actor, CaseEvent, CaseState, CaseView, FoldError};
use super::config::RecoveryPolicy;
use super::evidence::Category;
use super::policy::{Level, evaluate};

/// What the service asks of a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// The server verified an item of evidence.
    AddEvidence {
        category: Category,
        verifier: String,
        verdict_digest: String,
        attended: bool,
    },
    /// The server refused an item of evidence (`reason` goes to the audit log only).
    RejectEvidence { category: Category, reason: String },
    /// An approver's WebAuthn-confirmed approval.
    Approve(Approval),
    /// The user (any bound authenticator or active session, named by `via`) or an admin.
    Cancel { by: Actor, via: String },
    /// A "not me" link, an agent's fraud flag, an admin or an anomaly.
    Freeze { by: Actor, reason: String },
    /// Security review resumes a frozen case (admin only).
    Unfreeze { by: Actor },
    /// Security review denies the case (admin only).
    Deny { by: Actor, reason: String },
    /// Time passes: start cooling when the policy is met, end cooling, expire a token or the case.
    Tick,
    /// Issue the enrolment token to the user's case session. Only the user.
    IssueToken {
        by: Actor,
        token_hash: String,
        expires_ms: i64,
    },
    /// The token was redeemed by a WebAuthn registration of `cred_id`.
    BindAuthenticator { cred_id: String },
    /// Old authenticators revoked, sessions killed, codes rotated: done.
    Complete,
}

/// Why a command was refused; nothing was recorded.
///
/// # Security
/// For audit and for authenticated staff only. The requester of a case always sees the same
/// generic answer, whatever the refusal (recovery spec §5.8): in particular a phantom case's
/// `FailureLimit` must look exactly like a real case's `Denied`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the case is closed ({0:?})")]
    Closed(CaseState),
    #[error("`{command}` is not possible while the case is {state:?}")]
    WrongState {
        command: &'static str,
        state: CaseState,
    },
    #[error("the time is before the case's latest event")]
    TimeWentBackwards,
    #[error("the case is a phantom")]
    Phantom,
    #[error("Ward cannot collect {0:?} evidence yet")]
    NotCollectable(Category),
    #[error("approvals are recorded as approvals, not as evidence")]
    ApprovalAsEvidence,
    #[error("{0:?} evidence was already accepted on this case")]
    AlreadyAccepted(Category),
    #[error("approval refused: {0}")]
    Approval(#[from] ApprovalFault),
    #[error("{actor} may not {action}")]
    NotPermitted {
        actor: &'static str,
        action: &'static str,
    },
    #[error("the agent who opened the case cannot review it")]
    OpenerCannotReview,
    #[error("an agent cannot open a recovery case for their own account")]
    OwnCase,
    #[error("the case has issued all the tokens it may")]
    TokenLimit,
    #[error("the token's expiry is not within the allowed lifetime")]
    TokenLifetime,
    #[error("the policy is no longer met")]
    PolicyNotMet,
    #[error("the token has expired")]
    TokenExpired,
    #[error("too many rejected evidence submissions")]
    FailureLimit,
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("inconsistent case: {0}")]
    Inconsistent(#[from] FoldError),
}

impl Refusal {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Closed(_) => "closed",
            Self::WrongState { .. } => "wrong_state",
            Self::TimeWentBackwards => "time_went_backwards",
            Self::Phantom => "phantom",
            Self::NotCollectable(_) => "not_collectable",
            Self::ApprovalAsEvidence => "approval_as_evidence",
            Self::AlreadyAccepted(_) => "already_accepted",
            Self::Approval(_) => "approval_refused",
            Self::NotPermitted { .. } => "not_permitted",
            Self::OpenerCannotReview => "opener_cannot_review",
            Self::OwnCase => "own_case",
            Self::TokenLimit => "token_limit",
            Self::TokenLifetime => "token_lifetime",
            Self::PolicyNotMet => "policy_not_met",
            Self::TokenExpired => "token_expired",
            Self::FailureLimit => "failure_limit",
            Self::Empty(_) => "empty",
            Self::Inconsistent(_) => "inconsistent",
        }
    }
}

/// What opening a case needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenCase {
    pub case_id: String,
    pub user_id: String,
    pub level: Level,
    pub opened_by: Opener,
    pub phantom: bool,
}

/// The first event of a new case.
pub fn open(policy: &RecoveryPolicy, req: OpenCase, now_ms: i64) -> Result<CaseEvent, Refusal> {
    non_empty("case_id", &req.case_id)?;
    non_empty("user_id", &req.user_id)?;
    if req.opened_by.agent_id() == Some(req.user_id.as_str()) {
        return Err(Refusal::OwnCase);
    }
    Ok(CaseEvent::Opened {
        case_id: req.case_id,
        user_id: req.user_id,
        level: req.level,
        opened_by: req.opened_by,
        phantom: req.phantom,
        at_ms: now_ms,
        expires_ms: now_ms.saturating_add(policy.collect_ttl_ms),
    })
}

/// The events `command` appends to the case at `now_ms`, or why it is refused.
pub fn decide(
    view: &CaseView,
    policy: &RecoveryPolicy,
    facts: &AccountFacts,
    command: Command,
    now_ms: i64,
) -> Result<Vec<CaseEvent>, Refusal> {
    if now_ms < view.last_ms {
        return Err(Refusal::TimeWentBackwards);
    }
    if view.state.is_terminal() {
        return match command {
            Command::Tick => Ok(Vec::new()),
            _ => Err(Refusal::Closed(view.state)),
        };
    }
    let cx = Cx {
        view,
        policy,
        facts,
        now: now_ms,
    };
    match command {
        Command::AddEvidence {
            category,
            verifier,
            verdict_digest,
            attended,
        } => cx.add_evidence(category, verifier, verdict_digest, attended),
        Command::RejectEvidence { category, reason } => cx.reject_evidence(category, reason),
        Command::Approve(approval) => cx.approve(approval),
        Command::Cancel { by, via } => cx.cancel(by, via),
        Command::Freeze { by, reason } => cx.freeze(by, reason),
        Command::Unfreeze { by } => cx.unfreeze(by),
        Command::Deny { by, reason } => cx.deny(by, reason),
        Command::Tick => cx.tick(),
        Command::IssueToken {
            by,
            token_hash,
            expires_ms,
        } => cx.issue_token(&by, token_hash, expires_ms),
        Command::BindAuthenticator { cred_id } => cx.bind(cred_id),
        Command::Complete => cx.complete(),
    }
}

/// One decision's inputs.
struct Cx<'a> {
    view: &'a CaseView,
    policy: &'a RecoveryPolicy,
    facts: &'a AccountFacts,
    now: i64,
}

type Events = Result<Vec<CaseEvent>, Refusal>;

impl Cx<'_> {
    fn require(&self, command: &'static str, ok: bool) -> Result<(), Refusal> {
        if ok {
            Ok(())
        } else {
            Err(Refusal::WrongState {
                command,
                state: self.view.state,
            })
        }
    }

    fn collecting(&self, command: &'static str) -> Result<(), Refusal> {
        self.require(command, self.view.state == CaseState::Collecting)?;
        // Real cases are denied past the limit; a phantom stays collecting but refuses the same.
        if self.view.rejections >= self.policy.max_rejections.saturating_add(1) {
            return Err(Refusal::FailureLimit);
        }
        Ok(())
    }

    fn not_phantom(&self) -> Result<(), Refusal> {
        if self.view.phantom {
            Err(Refusal::Phantom)
        } else {
            Ok(())
        }
    }

    fn add_evidence(
        &self,
        category: Category,
        verifier: String,
        digest: String,
        attended: bool,
    ) -> Events {
        self.collecting("add_evidence")?;
        if category == Category::Approvals {
            return Err(Refusal::ApprovalAsEvidence);
        }
        if !category.is_collectable() {
            return Err(Refusal::NotCollectable(category));
        }
        non_empty("verifier", &verifier)?;
        // One item per category; for recovery codes this is the spec's "one code per case".
        if self.view.evidence.iter().any(|e| e.category == category) {
            return Err(Refusal::AlreadyAccepted(category));
        }
        Ok(vec![CaseEvent::EvidenceAccepted {
            category,
            verifier,
            verdict_digest: digest,
            attended: attended && category == Category::PersonVerification,
            at_ms: self.now,
        }])
    }

    fn reject_evidence(&self, category: Category, reason: String) -> Events {
        self.collecting("reject_evidence")?;
        let mut events = vec![CaseEvent::EvidenceRejected {
            category,
            reason,
            at_ms: self.now,
        }];
        if !self.view.phantom && self.view.rejections >= self.policy.max_rejections {
            events.push(CaseEvent::Denied {
                by: Actor::System,
                reason: "too many rejected evidence submissions".into(),
                at_ms: self.now,
            });
        }
        Ok(events)
    }

    fn approve(&self, approval: Approval) -> Events {
        self.collecting("approve")?;
        if approval.at_ms < self.view.last_ms {
            return Err(Refusal::TimeWentBackwards);
        }
        let input = self.view.policy_input(self.facts, self.now);
        if let Some(fault) = approval.fault(self.policy, &input) {
            return Err(fault.into());
        }
        let counted_already = self.view.approvals.iter().any(|a| {
            a.approver_id == approval.approver_id && a.fault(self.policy, &input).is_none()
        });
        if counted_already {
            return Err(ApprovalFault::Duplicate.into());
        }
        Ok(vec![CaseEvent::ApprovalRecorded(approval)])
    }

    fn cancel(&self, by: Actor, via: String) -> Events {
        self.not_phantom()?;
        self.require("cancel", self.view.state != CaseState::Bound)?;
        match by {
            Actor::User | Actor::Admin { .. } => {}
            Actor::Agent { .. } => return Err(not_permitted("an agent", "cancel a case")),
            Actor::System => return Err(not_permitted("the system", "cancel a case")),
        }
        non_empty("via", &via)?;
        Ok(vec![CaseEvent::Cancelled {
            by,
            via,
            at_ms: self.now,
        }])
    }

    fn freeze(&self, by: Actor, reason: String) -> Events {
        self.not_phantom()?;
        let s = self.view.state;
        self.require("freeze", !matches!(s, CaseState::Frozen | CaseState::Bound))?;
        Ok(vec![CaseEvent::Frozen {
            by,
            reason,
            at_ms: self.now,
        }])
    }

    fn reviewer(&self, by: &Actor, action: &'static str) -> Result<(), Refusal> {
        let Actor::Admin { admin_id } = by else {
            return Err(not_permitted("only an admin", action));
        };
        if self.view.opened_by.agent_id() == Some(admin_id.as_str()) {
            return Err(Refusal::OpenerCannotReview);
        }
        Ok(())
    }

    fn unfreeze(&self, by: Actor) -> Events {
        self.require("unfreeze", self.view.state == CaseState::Frozen)?;
        self.reviewer(&by, "unfreeze a case")?;
        Ok(vec![CaseEvent::Unfrozen {
            by,
            at_ms: self.now,
        }])
    }

    fn deny(&self, by: Actor, reason: String) -> Events {
        self.not_phantom()?;
        self.require("deny", self.view.state != CaseState::Bound)?;
        self.reviewer(&by, "deny a case")?;
        Ok(vec![CaseEvent::Denied {
            by,
            reason,
            at_ms: self.now,
        }])
    }

    fn issue_token(&self, by: &Actor, token_hash: String, expires_ms: i64) -> Events {
        if *by != Actor::User {
            return Err(not_permitted("only the user", "receive an enrolment token"));
        }
        self.require("issue_token", self.view.state == CaseState::ReadyToIssue)?;
        self.not_phantom()?;
        if self.view.token_issues >= self.policy.max_token_issues {
            return Err(Refusal::TokenLimit);
        }
        non_empty("token_hash", &token_hash)?;
        let lifetime = expires_ms.saturating_sub(self.now);
        if lifetime <= 0 || lifetime > self.policy.token_ttl_ms {
            return Err(Refusal::TokenLifetime);
        }
        let cooled = self.view.cooling_until_ms.is_some_and(|u| u <= self.now);
        self.require("issue_token", cooled)?;
        let input = self.view.policy_input(self.facts, self.now);
        if evaluate(self.policy, &input).met.is_none() {
            return Err(Refusal::PolicyNotMet);
        }
        Ok(vec![CaseEvent::TokenIssued {
            token_hash,
            expires_ms,
            at_ms: self.now,
        }])
    }

    fn bind(&self, cred_id: String) -> Events {
        let CaseState::TokenIssued { expires_ms } = self.view.state else {
            return Err(Refusal::WrongState {
                command: "bind",
                state: self.view.state,
            });
        };
        if self.now >= expires_ms {
            return Err(Refusal::TokenExpired);
        }
        non_empty("cred_id", &cred_id)?;
        Ok(vec![CaseEvent::AuthenticatorBound {
            cred_id,
            at_ms: self.now,
        }])
    }

    fn complete(&self) -> Events {
        self.require("complete", self.view.state == CaseState::Bound)?;
        Ok(vec![CaseEvent::Completed { at_ms: self.now }])
    }

    /// Brings the case up to `now`: each step is one transition, applied before the next.
    fn tick(&self) -> Events {
        let mut view = self.view.clone();
        let mut events = Vec::new();
        // A chain is at most: cooling started, elapsed, expired.
        for _ in 0..4 {
            let Some(event) = self.tick_step(&view) else {
                break;
            };
            view.apply(&event)?;
            events.push(event);
        }
        Ok(events)
    }

    fn tick_step(&self, view: &CaseView) -> Option<CaseEvent> {
        let now = self.now;
        if view.state.is_terminal() {
            return None;
        }
        if deadline(view, self.policy).is_some_and(|d| now >= d) {
            return Some(CaseEvent::Expired { at_ms: now });
        }
        let met = || evaluate(self.policy, &view.policy_input(self.facts, now));
        match view.state {
            CaseState::Collecting if !view.phantom => {
                let d = met();
                let (Some(row), Some(cooling)) = (d.row, d.cooling_ms) else {
                    return None;
                };
                let until_ms = now.saturating_add(cooling.max(0));
                Some(CaseEvent::CoolingStarted {
                    row: row.into(),
                    until_ms,
                    at_ms: now,
                })
            }
            CaseState::Cooling { until_ms } if now >= until_ms => Some(if met().met.is_some() {
                CaseEvent::CoolingElapsed { at_ms: now }
            } else {
                CaseEvent::PolicyLapsed { at_ms: now }
            }),
            CaseState::TokenIssued { expires_ms } if now >= expires_ms => {
                Some(CaseEvent::TokenExpired { at_ms: now })
            }
            CaseState::ReadyToIssue if view.token_issues >= self.policy.max_token_issues => {
                Some(CaseEvent::Expired { at_ms: now })
            }
            _ => None,
        }
    }
}

/// When a case in its current state expires: collection (and a freeze) ends `collect_ttl_ms`
/// after opening; issuing ends `ready_ttl_ms` after cooling; cooling and a bound case have none
/// (cooling ends by itself; a bound case is completed by the service in the same request).
pub fn deadline(view: &CaseView, policy: &RecoveryPolicy) -> Option<i64> {
    match view.state {
        CaseState::Collecting | CaseState::Frozen => Some(view.expires_ms),
        CaseState::ReadyToIssue | CaseState::TokenIssued { .. } => {
            view.ready_ms.map(|r| r.saturating_add(policy.ready_ttl_ms))
        }
        CaseState::Cooling { .. }
        | CaseState::Bound
        | CaseState::Completed
        | CaseState::Cancelled
        | CaseState::Expired
        | CaseState::Denied => None,
    }
}

fn non_empty(field: &'static str, value: &str) -> Result<(), Refusal> {
    if value.trim().is_empty() {
        Err(Refusal::Empty(field))
    } else {
        Ok(())
    }
}

fn not_permitted(actor: &'static str, action: &'static str) -> Refusal {
    Refusal::NotPermitted { actor, action }
}
