//! The event-sourced recovery case (recovery spec §5.4): its events, its states, and the fold that
//! rebuilds a [`CaseView`] from the stored events.
//!
//! [`fold`] also checks that the events form a legal history (every transition allowed from the
//! state it leaves, time never going backwards, nothing after a terminal state), so a corrupted
//! or forged event stream is refused rather than interpreted.

use serde::{Deserialize, Serialize};

use super::approval::{Approval, ApproverFacts, Opener};
use super::evidence::{Category, Evidence};
use super::policy::{Level, PolicyInput};

/// Who performed a cancel, freeze or review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The account's user, through a bound authenticator, an active session, or (freeze only)
    /// the unauthenticated "this wasn't me" link.
    User,
    /// A helpdesk agent: may flag fraud (freeze), never cancel, approve, review or issue.
    Agent { agent_id: String },
    /// An administrator of the security team.
    Admin { admin_id: String },
    /// Ward itself (anomaly detection, limits).
    System,
}

/// One stored event of a case. Stored as JSON with a `type` tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CaseEvent {
    Opened {
        case_id: String,
        user_id: String,
        level: Level,
        opened_by: Opener,
        /// A case for an unknown identifier: walks the same screens, can never succeed.
        phantom: bool,
        at_ms: i64,
        /// End of evidence collection (opening + `collect_ttl_ms`).
        expires_ms: i64,
    },
    EvidenceAccepted {
        category: Category,
        verifier: String,
        verdict_digest: String,
        #[serde(default)]
        attended: bool,
        at_ms: i64,
    },
    EvidenceRejected {
        category: Category,
        /// For the audit log; never shown to the requester.
        reason: String,
        at_ms: i64,
    },
    ApprovalRecorded(Approval),
    CoolingStarted {
        /// The met row's id.
        row: String,
        until_ms: i64,
        at_ms: i64,
    },
    /// Cooling ended and the policy still held: ready to issue a token.
    CoolingElapsed {
        at_ms: i64,
    },
    /// Cooling ended but the policy no longer held (e.g. an approver was recovered meanwhile):
    /// back to collecting, and a later cooling starts from scratch.
    PolicyLapsed {
        at_ms: i64,
    },
    Cancelled {
        by: Actor,
        via: String,
        at_ms: i64,
    },
    Frozen {
        by: Actor,
        reason: String,
        at_ms: i64,
    },
    /// Security review resumed the case: back to collecting, any cooling or token discarded.
    Unfrozen {
        by: Actor,
        at_ms: i64,
    },
    TokenIssued {
        /// SHA-256 of the token, hex; the token itself is never stored.
        token_hash: String,
        expires_ms: i64,
        at_ms: i64,
    },
    TokenExpired {
        at_ms: i64,
    },
    AuthenticatorBound {
        cred_id: String,
        at_ms: i64,
    },
    Completed {
        at_ms: i64,
    },
    Expired {
        at_ms: i64,
    },
    Denied {
        by: Actor,
        reason: String,
        at_ms: i64,
    },
}

impl CaseEvent {
    /// When it happened.
    pub fn at_ms(&self) -> i64 {
        match self {
            Self::ApprovalRecorded(a) => a.at_ms,
            Self::Opened { at_ms, .. }
            | Self::EvidenceAccepted { at_ms, .. }
            | Self::EvidenceRejected { at_ms, .. }
            | Self::CoolingStarted { at_ms, .. }
            | Self::CoolingElapsed { at_ms }
            | Self::PolicyLapsed { at_ms }
            | Self::Cancelled { at_ms, .. }
            | Self::Frozen { at_ms, .. }
            | Self::Unfrozen { at_ms, .. }
            | Self::TokenIssued { at_ms, .. }
            | Self::TokenExpired { at_ms }
            | Self::AuthenticatorBound { at_ms, .. }
            | Self::Completed { at_ms }
            | Self::Expired { at_ms }
            | Self::Denied { at_ms, .. } => *at_ms,
        }
    }

    /// The stored `type` tag, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Opened { .. } => "opened",
            Self::EvidenceAccepted { .. } => "evidence_accepted",
            Self::EvidenceRejected { .. } => "evidence_rejected",
            Self::ApprovalRecorded(_) => "approval_recorded",
            Self::CoolingStarted { .. } => "cooling_started",
            Self::CoolingElapsed { .. } => "cooling_elapsed",
            Self::PolicyLapsed { .. } => "policy_lapsed",
            Self::Cancelled { .. } => "cancelled",
            Self::Frozen { .. } => "frozen",
            Self::Unfrozen { .. } => "unfrozen",
            Self::TokenIssued { .. } => "token_issued",
            Self::TokenExpired { .. } => "token_expired",
            Self::AuthenticatorBound { .. } => "authenticator_bound",
            Self::Completed { .. } => "completed",
            Self::Expired { .. } => "expired",
            Self::Denied { .. } => "denied",
        }
    }
}

/// Where a case stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseState {
    Collecting,
    Cooling {
        until_ms: i64,
    },
    ReadyToIssue,
    TokenIssued {
        expires_ms: i64,
    },
    /// A new authenticator is bound; the service revokes the old ones, then completes.
    Bound,
    Completed,
    Cancelled,
    /// Held for security review.
    Frozen,
    Expired,
    Denied,
}

impl CaseState {
    /// No event may follow.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Cancelled | Self::Expired | Self::Denied
        )
    }
}

/// Why stored events do not form a legal case history.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("a case has no events")]
    Empty,
    #[error("the first event of a case must be `opened`, not `{0}`")]
    NotOpenedFirst(&'static str),
    #[error("event `{event}` cannot follow state {state:?}")]
    Illegal {
        event: &'static str,
        state: CaseState,
    },
    #[error("event `{0}` is dated before the previous event")]
    TimeWentBackwards(&'static str),
}

/// A case as its events leave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseView {
    pub case_id: String,
    pub user_id: String,
    /// The level when the case opened (the service may require a higher one since).
    pub level: Level,
    pub opened_by: Opener,
    pub phantom: bool,
    pub opened_ms: i64,
    /// End of evidence collection.
    pub expires_ms: i64,
    pub state: CaseState,
    pub evidence: Vec<Evidence>,
    pub approvals: Vec<Approval>,
    /// Rejected evidence submissions.
    pub rejections: u32,
    /// Tokens issued so far.
    pub token_issues: u32,
    pub cooling_started_ms: Option<i64>,
    pub cooling_until_ms: Option<i64>,
    /// When cooling elapsed (ready to issue).
    pub ready_ms: Option<i64>,
    /// Hash of the current token while one is outstanding.
    pub token_hash: Option<String>,
    pub bound_cred_id: Option<String>,
    /// Time of the latest event.
    pub last_ms: i64,
}

/// Facts about the account the service reads at each decision; the case stores none of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountFacts {
    /// The account's current level; the stricter of this and the case's level applies.
    pub level: Level,
    pub approvers: Vec<ApproverFacts>,
}

/// Rebuilds a case from its events, checking that they form a legal history.
pub fn fold(events: &[CaseEvent]) -> Result<CaseView, FoldError> {
    let (first, rest) = events.split_first().ok_or(FoldError::Empty)?;
    let mut view = CaseView::opened(first)?;
    for event in rest {
        view.apply(event)?;
    }
    Ok(view)
}

impl CaseView {
    fn opened(event: &CaseEvent) -> Result<Self, FoldError> {
        let CaseEvent::Opened {
            case_id,
            user_id,
            level,
            opened_by,
            phantom,
            at_ms,
            expires_ms,
        } = event
        else {
            return Err(FoldError::NotOpenedFirst(event.name()));
        };
        Ok(Self {
            case_id: case_id.clone(),
            user_id: user_id.clone(),
            level: *level,
            opened_by: opened_by.clone(),
            phantom: *phantom,
            opened_ms: *at_ms,
            expires_ms: *expires_ms,
            state: CaseState::Collecting,
            evidence: Vec::new(),
            approvals: Vec::new(),
            rejections: 0,
            token_issues: 0,
            cooling_started_ms: None,
            cooling_until_ms: None,
            ready_ms: None,
            token_hash: None,
            bound_cred_id: None,
            last_ms: *at_ms,
        })
    }

    /// Applies one event after checking it is legal in the current state.
    pub fn apply(&mut self, event: &CaseEvent) -> Result<(), FoldError> {
        let at = event.at_ms();
        if at < self.last_ms {
            return Err(FoldError::TimeWentBackwards(event.name()));
        }
        let next = self.next_state(event)?;
        self.record(event);
        self.state = next;
        self.last_ms = at;
        Ok(())
    }

    /// The state `event` leads to, or why it is illegal here.
    fn next_state(&self, event: &CaseEvent) -> Result<CaseState, FoldError> {
        use CaseState as S;
        let illegal = || FoldError::Illegal {
            event: event.name(),
            state: self.state,
        };
        let live = !self.state.is_terminal();
        let next = match (event, self.state) {
            (
                CaseEvent::EvidenceAccepted { .. }
                | CaseEvent::EvidenceRejected { .. }
                | CaseEvent::ApprovalRecorded(_),
                S::Collecting,
            )
            | (CaseEvent::PolicyLapsed { .. }, S::Cooling { .. })
            | (CaseEvent::Unfrozen { .. }, S::Frozen) => S::Collecting,
            (
                CaseEvent::CoolingStarted {
                    until_ms, at_ms, ..
                },
                S::Collecting,
            ) if !self.phantom && until_ms >= at_ms => S::Cooling {
                until_ms: *until_ms,
            },
            (CaseEvent::CoolingElapsed { at_ms }, S::Cooling { until_ms })
                if *at_ms >= until_ms =>
            {
                S::ReadyToIssue
            }
            (CaseEvent::TokenIssued { expires_ms, .. }, S::ReadyToIssue) => S::TokenIssued {
                expires_ms: *expires_ms,
            },
            (CaseEvent::TokenExpired { .. }, S::TokenIssued { .. }) => S::ReadyToIssue,
            (CaseEvent::AuthenticatorBound { .. }, S::TokenIssued { .. }) => S::Bound,
            (CaseEvent::Completed { .. }, S::Bound) => S::Completed,
            (CaseEvent::Frozen { .. }, s) if live && !matches!(s, S::Frozen | S::Bound) => {
                S::Frozen
            }
            (CaseEvent::Cancelled { .. }, s) if live && s != S::Bound => S::Cancelled,
            (CaseEvent::Expired { .. }, s) if live && s != S::Bound => S::Expired,
            (CaseEvent::Denied { .. }, s) if live && s != S::Bound => S::Denied,
            _ => return Err(illegal()),
        };
        let phantom_leaves = self.phantom && !matches!(next, S::Collecting | S::Expired);
        if phantom_leaves {
            Err(illegal())
        } else {
            Ok(next)
        }
    }

    /// Updates everything but the state.
    fn record(&mut self, event: &CaseEvent) {
        match event {
            CaseEvent::EvidenceAccepted {
                category,
                verifier,
                verdict_digest,
                attended,
                at_ms,
            } => {
                self.evidence.push(Evidence {
                    category: *category,
                    verifier: verifier.clone(),
                    verdict_digest: verdict_digest.clone(),
                    attended: *attended,
                    at_ms: *at_ms,
                });
            }
            CaseEvent::EvidenceRejected { .. } => {
                self.rejections = self.rejections.saturating_add(1);
            }
            CaseEvent::ApprovalRecorded(a) => self.approvals.push(a.clone()),
            CaseEvent::CoolingStarted {
                until_ms, at_ms, ..
            } => {
                self.cooling_started_ms = Some(*at_ms);
                self.cooling_until_ms = Some(*until_ms);
            }
            CaseEvent::CoolingElapsed { at_ms } => self.ready_ms = Some(*at_ms),
            CaseEvent::PolicyLapsed { .. } | CaseEvent::Unfrozen { .. } => {
                self.cooling_started_ms = None;
                self.cooling_until_ms = None;
                self.ready_ms = None;
                self.token_hash = None;
            }
            CaseEvent::TokenIssued { token_hash, .. } => {
                self.token_issues = self.token_issues.saturating_add(1);
                self.token_hash = Some(token_hash.clone());
            }
            CaseEvent::TokenExpired { .. } | CaseEvent::Frozen { .. } => self.token_hash = None,
            CaseEvent::AuthenticatorBound { cred_id, .. } => {
                self.token_hash = None;
                self.bound_cred_id = Some(cred_id.clone());
            }
            CaseEvent::Opened { .. }
            | CaseEvent::Cancelled { .. }
            | CaseEvent::Completed { .. }
            | CaseEvent::Expired { .. }
            | CaseEvent::Denied { .. } => {}
        }
    }

    /// The policy input for this case and the account's current facts at `now_ms`.
    ///
    /// Approvals are judged as of the start of cooling once it started (an approval valid when
    /// cooling began stays valid through a cooling longer than its lifetime); the approver rules
    /// are judged on current facts. The stricter of the case's and the account's level applies.
    pub fn policy_input<'a>(&'a self, facts: &'a AccountFacts, now_ms: i64) -> PolicyInput<'a> {
        PolicyInput {
            required: self.level.max(facts.level),
            case_id: &self.case_id,
            user_id: &self.user_id,
            opener: &self.opened_by,
            evidence: &self.evidence,
            approvals: &self.approvals,
            approvers: &facts.approvers,
            now_ms,
            approvals_at_ms: self.cooling_started_ms.unwrap_or(now_ms),
        }
    }
}
