//! Deployment settings of recovery and the bounds production loading enforces.

const HOUR_MS: i64 = 60 * 60 * 1000;
const MINUTE_MS: i64 = 60 * 1000;

/// Deployment settings of recovery. Durations in milliseconds.
///
/// Tests may use any values (e.g. seconds). Production loading must call
/// [`check_production_bounds`](Self::check_production_bounds), which refuses anything weaker
/// than the defaults' floors; the "never sufficient" rules are not settings at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryPolicy {
    /// R1 with approvals or a document (default and floor 24 h).
    pub r1_cooling_ms: i64,
    /// R1 with neither approvals nor a document (default and floor 72 h).
    pub r1_cooling_without_approval_or_document_ms: i64,
    /// R1 by D + V + S (default and floor 1 h).
    pub r1_cooling_document_person_approval_ms: i64,
    /// R2 (default 72 h, floor 24 h).
    pub r2_cooling_ms: i64,
    /// R3 (default and floor 24 h; nothing shortens it).
    pub r3_cooling_ms: i64,
    /// Longest lifetime of one approval (default and ceiling 24 h).
    pub approval_ttl_ms: i64,
    /// An approver whose own account was recovered this recently does not count (default and
    /// floor 14 days).
    pub approver_quarantine_ms: i64,
    /// How long a case may collect evidence from opening (default and ceiling 72 h).
    pub collect_ttl_ms: i64,
    /// How long a case may wait for its token once cooling ends (default and ceiling 72 h).
    pub ready_ttl_ms: i64,
    /// Lifetime of an enrolment token (default and ceiling 10 min, NIST §4.1.2.2).
    pub token_ttl_ms: i64,
    /// Tokens a case may issue before it expires (default and ceiling 3).
    pub max_token_issues: u32,
    /// Rejected evidence submissions a case tolerates; one more denies it (default and ceiling 5).
    pub max_rejections: u32,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        Self {
            r1_cooling_ms: 24 * HOUR_MS,
            r1_cooling_without_approval_or_document_ms: 72 * HOUR_MS,
            r1_cooling_document_person_approval_ms: HOUR_MS,
            r2_cooling_ms: 72 * HOUR_MS,
            r3_cooling_ms: 24 * HOUR_MS,
            approval_ttl_ms: 24 * HOUR_MS,
            approver_quarantine_ms: 14 * 24 * HOUR_MS,
            collect_ttl_ms: 72 * HOUR_MS,
            ready_ttl_ms: 72 * HOUR_MS,
            token_ttl_ms: 10 * MINUTE_MS,
            max_token_issues: 3,
            max_rejections: 5,
        }
    }
}

/// A production setting outside its bound.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("recovery setting {field} is {value}, must be {bound}")]
pub struct BoundViolation {
    pub field: &'static str,
    pub value: i64,
    /// E.g. `at least 86400000`.
    pub bound: String,
}

impl RecoveryPolicy {
    /// Refuses a configuration weaker than the spec allows in production: cooling periods,
    /// quarantine below their floors; lifetimes and limits above their ceilings.
    pub fn check_production_bounds(&self) -> Result<(), BoundViolation> {
        let d = Self::default();
        let floors = [
            ("r1_cooling_ms", self.r1_cooling_ms, d.r1_cooling_ms),
            (
                "r1_cooling_without_approval_or_document_ms",
                self.r1_cooling_without_approval_or_document_ms,
                d.r1_cooling_without_approval_or_document_ms,
            ),
            (
                "r1_cooling_document_person_approval_ms",
                self.r1_cooling_document_person_approval_ms,
                d.r1_cooling_document_person_approval_ms,
            ),
            ("r2_cooling_ms", self.r2_cooling_ms, 24 * HOUR_MS),
            ("r3_cooling_ms", self.r3_cooling_ms, d.r3_cooling_ms),
            (
                "approver_quarantine_ms",
                self.approver_quarantine_ms,
                d.approver_quarantine_ms,
            ),
        ];
        let ceilings = [
            ("approval_ttl_ms", self.approval_ttl_ms, d.approval_ttl_ms),
            ("collect_ttl_ms", self.collect_ttl_ms, d.collect_ttl_ms),
            ("ready_ttl_ms", self.ready_ttl_ms, d.ready_ttl_ms),
            ("token_ttl_ms", self.token_ttl_ms, d.token_ttl_ms),
            (
                "max_token_issues",
                self.max_token_issues.into(),
                d.max_token_issues.into(),
            ),
            (
                "max_rejections",
                self.max_rejections.into(),
                d.max_rejections.into(),
            ),
        ];
        let violation = |field, value, bound| BoundViolation {
            field,
            value,
            bound,
        };
        for (field, value, min) in floors {
            if value < min {
                return Err(violation(field, value, format!("at least {min}")));
            }
        }
        for (field, value, max) in ceilings {
            if value > max || value <= 0 {
                return Err(violation(field, value, format!("between 1 and {max}")));
            }
        }
        Ok(())
    }
}
