//! Shared test fixtures: a seconds-scale policy, an account with an approver set, builders.

use super::*;

pub const CASE: &str = "RC-A";
pub const OTHER_CASE: &str = "RC-B";
pub const USER: &str = "DU-USER";
pub const AGENT: &str = "AG-1";
pub const AP1: &str = "DU-AP1";
pub const AP2: &str = "DU-AP2";
pub const SEC1: &str = "DU-SEC1";
pub const SEC2: &str = "DU-SEC2";
/// In the approver set, but recovered at `T0`.
pub const RECENT: &str = "DU-RECENT";
/// Not in the approver set.
pub const STRANGER: &str = "DU-STRANGER";
pub const T0: i64 = 1_000_000_000_000;
pub const SEC: i64 = 1000;

/// Cooling in seconds so that tests can walk a whole case.
pub fn test_policy() -> RecoveryPolicy {
    RecoveryPolicy {
        r1_cooling_ms: 10 * SEC,
        r1_cooling_without_approval_or_document_ms: 30 * SEC,
        r1_cooling_document_person_approval_ms: SEC,
        r2_cooling_ms: 30 * SEC,
        r3_cooling_ms: 10 * SEC,
        approval_ttl_ms: 20 * SEC,
        approver_quarantine_ms: 1000 * SEC,
        collect_ttl_ms: 300 * SEC,
        ready_ttl_ms: 300 * SEC,
        token_ttl_ms: 5 * SEC,
        max_token_issues: 3,
        max_rejections: 5,
    }
}

fn approver(id: &str, security_pool: bool, last_recovered_ms: Option<i64>) -> ApproverFacts {
    ApproverFacts {
        approver_id: id.into(),
        security_pool,
        last_recovered_ms,
    }
}

/// The account: its approver set deliberately lists the user and the agent too, so that the
/// user and opener rules are tested on their own, not hidden behind "not an approver".
pub fn facts(level: Level) -> AccountFacts {
    AccountFacts {
        level,
        approvers: vec![
            approver(AP1, false, None),
            approver(AP2, false, Some(T0 - 2000 * SEC)),
            approver(SEC1, true, None),
            approver(SEC2, true, None),
            approver(RECENT, false, Some(T0)),
            approver(USER, false, None),
            approver(AGENT, true, None),
        ],
    }
}

pub fn ev(category: Category, at_ms: i64) -> Evidence {
    Evidence {
        category,
        verifier: "test/v1".into(),
        verdict_digest: "digest".into(),
        attended: false,
        at_ms,
    }
}

/// An approval of `case` by `approver` at `at_ms`, valid for 20 s.
pub fn approval(case: &str, approver: &str, at_ms: i64) -> Approval {
    Approval {
        case_id: case.into(),
        approver_id: approver.into(),
        from_security_pool: false,
        cred_id: format!("cred-{approver}"),
        at_ms,
        expires_ms: at_ms + 20 * SEC,
    }
}

pub fn pool_approval(case: &str, approver: &str, at_ms: i64) -> Approval {
    Approval {
        from_security_pool: true,
        ..approval(case, approver, at_ms)
    }
}

/// The inputs of one evaluation, owned, so tests can borrow a `PolicyInput` from them.
#[derive(Debug)]
pub struct Given {
    pub level: Level,
    pub opener: Opener,
    pub evidence: Vec<Evidence>,
    pub approvals: Vec<Approval>,
    pub facts: AccountFacts,
    pub now_ms: i64,
}

impl Given {
    pub fn new(level: Level) -> Self {
        Self {
            level,
            opener: Opener::User,
            evidence: Vec::new(),
            approvals: Vec::new(),
            facts: facts(level),
            now_ms: T0 + 100 * SEC,
        }
    }

    pub fn with(mut self, category: Category) -> Self {
        self.evidence.push(ev(category, self.now_ms - SEC));
        self
    }

    pub fn approved_by(mut self, approver: &str) -> Self {
        self.approvals
            .push(approval(CASE, approver, self.now_ms - SEC));
        self
    }

    pub fn input(&self) -> PolicyInput<'_> {
        PolicyInput {
            required: self.level,
            case_id: CASE,
            user_id: USER,
            opener: &self.opener,
            evidence: &self.evidence,
            approvals: &self.approvals,
            approvers: &self.facts.approvers,
            now_ms: self.now_ms,
            approvals_at_ms: self.now_ms,
        }
    }

    pub fn decide(&self) -> Decision {
        evaluate(&test_policy(), &self.input())
    }
}
