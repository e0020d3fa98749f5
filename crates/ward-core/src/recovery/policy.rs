//! The pure recovery policy: which combinations of evidence satisfy an account's recovery level
//! (recovery spec §5.3), and how long the case then cools.
//!
//! # Security
//! Three rules hold whatever [`RecoveryPolicy`] says, because no field can express them:
//! - a level is met only by ≥ 2 independent categories; [`evaluate`] checks this itself, apart
//!   from the row table, so a wrong row can never let one category through;
//! - cooling is an outcome, not evidence: nothing here lets time count towards a level;
//! - agent judgement, SMS, knowledge questions and HR data are not [`Category`] variants.
//!
//! The configuration sets durations and counts only, and deployments get
//! [`RecoveryPolicy::check_production_bounds`] to refuse weakened values at load.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::approval::{Approval, ApprovalFault, ApprovalTally, ApproverFacts, Opener};
use super::config::RecoveryPolicy;
use super::evidence::{Category, Evidence};
use Category::{Document, EmailCode, PersonVerification, RecoveryCode, SurvivingFactor};

/// An account's recovery level (recovery spec §5.3). Ordered: `R1 < R2 < R3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// Ordinary accounts (NIST AAL2 recovery).
    R1,
    /// Users with access to sensitive data.
    R2,
    /// Admins, helpdesk staff, break-glass accounts.
    R3,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::R1 => "R1",
            Self::R2 => "R2",
            Self::R3 => "R3",
        })
    }
}

/// One requirement of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// One accepted item of the category (never `Approvals`: see [`Need::Approvals`]).
    One(Category),
    /// Person verification attended by an agent from the security pool.
    AttendedVerification,
    /// `count` distinct valid approvals, all from the security pool if `security_pool`.
    Approvals { count: u8, security_pool: bool },
}

impl Need {
    /// The category this requirement draws on.
    pub const fn category(self) -> Category {
        match self {
            Self::One(c) => c,
            Self::AttendedVerification => Category::PersonVerification,
            Self::Approvals { .. } => Category::Approvals,
        }
    }
}

/// Which configured cooling period a row imposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cooling {
    /// R1 with approvals or a document.
    R1,
    /// R1 with neither approvals nor a document.
    R1WithoutApprovalOrDocument,
    /// R1 by document, person verification and an approval.
    R1DocumentPersonApproval,
    R2,
    /// Not shortenable: no row and no admin action has a shorter R3 cooling.
    R3,
}

impl Cooling {
    /// The period in milliseconds under `policy`.
    pub const fn ms(self, policy: &RecoveryPolicy) -> i64 {
        match self {
            Self::R1 => policy.r1_cooling_ms,
            Self::R1WithoutApprovalOrDocument => policy.r1_cooling_without_approval_or_document_ms,
            Self::R1DocumentPersonApproval => policy.r1_cooling_document_person_approval_ms,
            Self::R2 => policy.r2_cooling_ms,
            Self::R3 => policy.r3_cooling_ms,
        }
    }
}

/// One accepted combination of the level table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// Stable id, recorded in `CoolingStarted` and the audit log.
    pub id: &'static str,
    pub level: Level,
    pub needs: &'static [Need],
    pub cooling: Cooling,
}

const S1: Need = Need::Approvals {
    count: 1,
    security_pool: false,
};
const S2: Need = Need::Approvals {
    count: 2,
    security_pool: false,
};
const S2_POOL: Need = Need::Approvals {
    count: 2,
    security_pool: true,
};
const P_CODE: Need = Need::One(RecoveryCode);
const P_MAIL: Need = Need::One(EmailCode);
const K: Need = Need::One(SurvivingFactor);
const D: Need = Need::One(Document);
const V: Need = Need::One(PersonVerification);

/// The recovery spec §5.3 table as data. Rows needing D, V or K are kept so that enabling those
/// categories ([`Category::is_collectable`]) is adding evidence, not rewriting policy; until
/// then [`evaluate`] reports them unreachable.
pub static ROWS: &[Row] = &[
    row(
        "R1: P-code + P-mail",
        Level::R1,
        &[P_CODE, P_MAIL],
        Cooling::R1WithoutApprovalOrDocument,
    ),
    row("R1: P-code + S(1)", Level::R1, &[P_CODE, S1], Cooling::R1),
    row("R1: P-mail + S(1)", Level::R1, &[P_MAIL, S1], Cooling::R1),
    row(
        "R1: P-code + K",
        Level::R1,
        &[P_CODE, K],
        Cooling::R1WithoutApprovalOrDocument,
    ),
    row(
        "R1: P-mail + K",
        Level::R1,
        &[P_MAIL, K],
        Cooling::R1WithoutApprovalOrDocument,
    ),
    row("R1: D + V", Level::R1, &[D, V], Cooling::R1),
    row(
        "R1: D + V + S(1)",
        Level::R1,
        &[D, V, S1],
        Cooling::R1DocumentPersonApproval,
    ),
    row(
        "R2: D + V + P-code",
        Level::R2,
        &[D, V, P_CODE],
        Cooling::R2,
    ),
    row("R2: D + V + S(1)", Level::R2, &[D, V, S1], Cooling::R2),
    row(
        "R2: S(2) + P-code + P-mail",
        Level::R2,
        &[S2, P_CODE, P_MAIL],
        Cooling::R2,
    ),
    row(
        "R3: D + V(attended) + S(2, security pool)",
        Level::R3,
        &[D, Need::AttendedVerification, S2_POOL],
        Cooling::R3,
    ),
];

const fn row(id: &'static str, level: Level, needs: &'static [Need], cooling: Cooling) -> Row {
    Row {
        id,
        level,
        needs,
        cooling,
    }
}

impl Row {
    /// All its categories can be collected today.
    pub fn is_reachable(&self) -> bool {
        self.needs.iter().all(|n| n.category().is_collectable())
    }

    /// The number of distinct categories it draws on (≥ 2 for every valid row).
    pub fn independent_categories(&self) -> usize {
        self.needs
            .iter()
            .map(|n| n.category())
            .collect::<BTreeSet<_>>()
            .len()
    }

    fn missing(&self, held: &Holdings) -> Vec<Missing> {
        self.needs
            .iter()
            .filter_map(|n| held.shortfall(*n))
            .collect()
    }
}

/// Everything [`evaluate`] looks at. The service builds it with `CaseView::policy_input`.
#[derive(Clone, Copy, Debug)]
pub struct PolicyInput<'a> {
    /// The level the account requires.
    pub required: Level,
    pub case_id: &'a str,
    pub user_id: &'a str,
    pub opener: &'a Opener,
    /// Evidence the case accepted.
    pub evidence: &'a [Evidence],
    pub approvals: &'a [Approval],
    /// The account's approver set with each approver's last own recovery.
    pub approvers: &'a [ApproverFacts],
    pub now_ms: i64,
    /// When approvals' validity is judged: `now_ms` while collecting, the start of cooling after.
    pub approvals_at_ms: i64,
}

impl PolicyInput<'_> {
    /// The facts of one member of the approver set.
    pub fn approver(&self, approver_id: &str) -> Option<&ApproverFacts> {
        self.approvers.iter().find(|a| a.approver_id == approver_id)
    }
}

/// What would still satisfy a row. `Display` gives the human wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// One item of this category (not `Approvals`).
    Evidence(Category),
    /// Person verification attended by a security-pool agent.
    AttendedVerification,
    /// This many more approvals, from the security pool if `security_pool`.
    Approvals { more: u8, security_pool: bool },
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Evidence(c) => f.write_str(match c {
                RecoveryCode => "a recovery code",
                EmailCode => "an e-mail code",
                Category::Approvals => "an approval",
                Document => "an identity document",
                PersonVerification => "a person verification",
                SurvivingFactor => "a surviving factor",
            }),
            Self::AttendedVerification => f.write_str("an attended person verification"),
            Self::Approvals {
                more,
                security_pool,
            } => {
                match more {
                    1 => f.write_str("one approval")?,
                    n => write!(f, "{n} approvals")?,
                }
                if *security_pool {
                    f.write_str(" from the security pool")?;
                }
                Ok(())
            }
        }
    }
}

impl Missing {
    fn cost(self) -> u32 {
        match self {
            Self::Approvals { more, .. } => more.into(),
            Self::Evidence(_) | Self::AttendedVerification => 1,
        }
    }
}

/// The outcome of [`evaluate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub required: Level,
    /// `Some(required)` when a row of the required level is met.
    pub met: Option<Level>,
    /// The met row (shortest cooling), else `None`.
    pub row: Option<&'static str>,
    /// When not met: what would complete the cheapest reachable row (fewest items; ties go to
    /// the shorter cooling, then table order). Empty when met or unreachable.
    pub missing: Vec<Missing>,
    /// The cooling period of the met row.
    pub cooling_ms: Option<i64>,
    /// Set when no row of the level can be met with the categories Ward collects today.
    pub unreachable: Option<String>,
    /// The distinct categories that counted, in order.
    pub counted: Vec<Category>,
    /// Approvals that did not count, with why (for the audit log, never for the requester).
    pub refused_approvals: Vec<(String, ApprovalFault)>,
}

/// What the accepted evidence and the valid approvals amount to.
#[derive(Debug)]
struct Holdings {
    categories: BTreeSet<Category>,
    attended: bool,
    approvals: u8,
    pool_approvals: u8,
}

impl Holdings {
    fn of(input: &PolicyInput<'_>, tally: &ApprovalTally) -> Self {
        let usable = input.evidence.iter().filter(|e| {
            e.category.is_collectable()
                && e.category != Category::Approvals
                && e.at_ms <= input.now_ms
        });
        let mut categories = BTreeSet::new();
        let mut attended = false;
        for e in usable {
            categories.insert(e.category);
            attended |= e.category == PersonVerification && e.attended;
        }
        if tally.counted > 0 {
            categories.insert(Category::Approvals);
        }
        Self {
            categories,
            attended,
            approvals: tally.counted,
            pool_approvals: tally.counted_pool,
        }
    }

    fn shortfall(&self, need: Need) -> Option<Missing> {
        match need {
            Need::One(c) => (!self.categories.contains(&c)).then_some(Missing::Evidence(c)),
            Need::AttendedVerification => (!self.attended).then_some(Missing::AttendedVerification),
            Need::Approvals {
                count,
                security_pool,
            } => {
                let have = if security_pool {
                    self.pool_approvals
                } else {
                    self.approvals
                };
                (have < count).then(|| Missing::Approvals {
                    more: count - have,
                    security_pool,
                })
            }
        }
    }
}

/// Decides whether `input` satisfies the account's required level, and if not what is missing.
///
/// Pure and total: no clock, no store, no panics.
pub fn evaluate(policy: &RecoveryPolicy, input: &PolicyInput<'_>) -> Decision {
    evaluate_rows(policy, input, ROWS)
}

/// [`evaluate`] over a given table, so tests can show the invariants hold for any table.
pub(super) fn evaluate_rows(
    policy: &RecoveryPolicy,
    input: &PolicyInput<'_>,
    table: &'static [Row],
) -> Decision {
    let tally = ApprovalTally::of(policy, input);
    let held = Holdings::of(input, &tally);
    let rows = || table.iter().filter(|r| r.level == input.required);
    // The independence invariant, apart from the table: one category never suffices.
    let independent = held.categories.len() >= 2;
    let met = rows()
        .filter(|r| independent && r.independent_categories() >= 2)
        .filter(|r| r.is_reachable() && r.missing(&held).is_empty())
        .min_by_key(|r| r.cooling.ms(policy));
    let mut decision = Decision {
        required: input.required,
        met: None,
        row: None,
        missing: Vec::new(),
        cooling_ms: None,
        unreachable: None,
        counted: held.categories.iter().copied().collect(),
        refused_approvals: tally.refused,
    };
    if let Some(r) = met {
        decision.met = Some(input.required);
        decision.row = Some(r.id);
        decision.cooling_ms = Some(r.cooling.ms(policy));
        return decision;
    }
    let cheapest = cheapest_missing(policy, &held, rows());
    match cheapest {
        Some(missing) => decision.missing = missing,
        None => decision.unreachable = Some(unreachable_message(table, input.required)),
    }
    decision
}

/// What completes the reachable row needing the fewest items (then the shortest cooling, then
/// the first in the table); `None` if no row is reachable.
fn cheapest_missing<'a>(
    policy: &RecoveryPolicy,
    held: &Holdings,
    rows: impl Iterator<Item = &'a Row>,
) -> Option<Vec<Missing>> {
    rows.filter(|r| r.is_reachable())
        .map(|r| (r.missing(held), r.cooling.ms(policy)))
        .min_by_key(|(missing, cooling)| (missing.iter().map(|m| m.cost()).sum::<u32>(), *cooling))
        .map(|(missing, _)| missing)
}

fn unreachable_message(table: &[Row], level: Level) -> String {
    let rows: Vec<&str> = table
        .iter()
        .filter(|r| r.level == level)
        .map(|r| r.id)
        .collect();
    let absent: BTreeSet<&str> = table
        .iter()
        .filter(|r| r.level == level)
        .flat_map(|r| r.needs.iter().map(|n| n.category()))
        .filter(|c| !c.is_collectable())
        .map(Category::code)
        .collect();
    let absent: Vec<&str> = absent.into_iter().collect();
    format!(
        "level {level} is unreachable: it needs {} and Ward cannot collect {} yet \
         (only recovery codes, e-mail codes and approvals); recover this account through the \
         documented onsite process",
        rows.join(" or "),
        absent.join(", "),
    )
}
