//! Property tests: the policy is monotone and ignores other cases' approvals; no sequence of
//! commands issues a token without two independent categories and a full cooling.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{TestCaseError, TestRunner};

use super::fixtures::*;
use super::*;

const APPROVERS: [&str; 8] = [AP1, AP2, SEC1, SEC2, RECENT, USER, AGENT, STRANGER];
const ADMIN: &str = "AD-1";

fn arb_level() -> impl Strategy<Value = Level> {
    prop_oneof![3 => Just(Level::R1), 2 => Just(Level::R2), 1 => Just(Level::R3)]
}

fn arb_category() -> impl Strategy<Value = Category> {
    prop_oneof![
        3 => Just(Category::RecoveryCode),
        3 => Just(Category::EmailCode),
        1 => prop::sample::select(Category::ALL.to_vec()),
    ]
}

fn arb_opener() -> impl Strategy<Value = Opener> {
    prop_oneof![
        Just(Opener::User),
        Just(Opener::Agent {
            agent_id: AGENT.into()
        })
    ]
}

/// An approval relative to `now`: which case, who, pool claim, age and lifetime.
#[derive(Clone, Copy, Debug)]
struct ApprovalSpec {
    other_case: bool,
    approver: &'static str,
    pool: bool,
    age_ms: i64,
    ttl_ms: i64,
}

fn arb_approval() -> impl Strategy<Value = ApprovalSpec> {
    (
        prop::bool::weighted(0.2),
        prop::sample::select(APPROVERS.to_vec()),
        any::<bool>(),
        prop_oneof![3 => Just(0i64), 1 => 0..25_000i64],
        prop_oneof![3 => Just(20_000i64), 1 => 0..25_000i64],
    )
        .prop_map(
            |(other_case, approver, pool, age_ms, ttl_ms)| ApprovalSpec {
                other_case,
                approver,
                pool,
                age_ms,
                ttl_ms,
            },
        )
}

impl ApprovalSpec {
    fn at(self, now: i64) -> Approval {
        let case = if self.other_case { OTHER_CASE } else { CASE };
        let at_ms = now - self.age_ms;
        Approval {
            from_security_pool: self.pool,
            expires_ms: at_ms + self.ttl_ms,
            ..approval(case, self.approver, at_ms)
        }
    }
}

/// Evidence, approvals and an opener for one evaluation.
fn arb_given() -> impl Strategy<Value = Given> {
    (
        arb_level(),
        arb_opener(),
        prop::collection::vec((arb_category(), any::<bool>(), 0..30_000i64), 0..4),
        prop::collection::vec(arb_approval(), 0..4),
    )
        .prop_map(|(level, opener, evidence, approvals)| {
            let mut given = Given::new(level);
            given.opener = opener;
            let now = given.now_ms;
            given.evidence = evidence
                .into_iter()
                .map(|(c, attended, age)| Evidence {
                    attended,
                    ..ev(c, now - age)
                })
                .collect();
            given.approvals = approvals.into_iter().map(|a| a.at(now)).collect();
            given
        })
}

/// An upper bound on the categories that can count, computed without the policy's code:
/// the categories that exist today, and S if any approval is for this case.
fn possible_categories(given: &Given) -> usize {
    let mut set: BTreeSet<Category> = given
        .evidence
        .iter()
        .map(|e| e.category)
        .filter(|c| matches!(c, Category::RecoveryCode | Category::EmailCode))
        .collect();
    if given.approvals.iter().any(|a| a.case_id == CASE) {
        set.insert(Category::Approvals);
    }
    set.len()
}

proptest! {
    #[test]
    fn adding_evidence_or_approvals_never_lowers_the_level(
        base in arb_given(),
        more in arb_given(),
    ) {
        let before = base.decide();
        let mut grown = base;
        grown.evidence.extend(more.evidence);
        grown.approvals.extend(more.approvals);
        let after = grown.decide();
        prop_assert!(after.met >= before.met, "{before:?} -> {after:?}");
    }

    #[test]
    fn a_met_level_always_rests_on_two_categories(given in arb_given()) {
        let d = given.decide();
        if d.met.is_some() {
            prop_assert!(possible_categories(&given) >= 2, "{d:?}");
            prop_assert!(d.counted.len() >= 2);
            prop_assert!(d.counted.iter().all(|c| c.is_collectable()));
            prop_assert_ne!(d.met, Some(Level::R3));
            prop_assert!(d.missing.is_empty() && d.cooling_ms.is_some());
        } else {
            prop_assert!(d.missing.is_empty() != d.unreachable.is_none(), "{d:?}");
        }
    }

    #[test]
    fn approvals_for_another_case_never_count(given in arb_given()) {
        let with = given.decide();
        let mut without = given;
        without.approvals.retain(|a| a.case_id == CASE);
        let without = without.decide();
        prop_assert_eq!(
            (with.met, with.row, &with.missing, with.cooling_ms, &with.counted),
            (without.met, without.row, &without.missing, without.cooling_ms, &without.counted)
        );
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn no_command_sequence_issues_a_token_without_the_policy(
        setup in arb_setup(),
        ops in arb_steps(),
    ) {
        run(&setup, &ops)?;
    }
}

/// A command with its parameters relative to the time it is given.
#[derive(Clone, Copy, Debug)]
enum Op {
    Add(Category, bool),
    Reject(Category),
    Approve(ApprovalSpec),
    Cancel(Who, bool),
    Freeze(Who),
    Unfreeze(Who),
    Deny(Who),
    Tick,
    Issue(Who, i64),
    Bind,
    Complete,
    /// Not a command: the approver's own account is recovered now (the facts change).
    ApproverRecovered(&'static str),
}

#[derive(Clone, Copy, Debug)]
enum Who {
    User,
    Agent,
    /// An admin who is also the agent who opened the case.
    OpenerAdmin,
    Admin,
    System,
}

impl Who {
    fn actor(self) -> Actor {
        match self {
            Self::User => Actor::User,
            Self::Agent => Actor::Agent {
                agent_id: AGENT.into(),
            },
            Self::OpenerAdmin => Actor::Admin {
                admin_id: AGENT.into(),
            },
            Self::Admin => Actor::Admin {
                admin_id: ADMIN.into(),
            },
            Self::System => Actor::System,
        }
    }
}

fn arb_who() -> impl Strategy<Value = Who> {
    prop_oneof![
        3 => Just(Who::User),
        1 => Just(Who::Agent),
        1 => Just(Who::OpenerAdmin),
        1 => Just(Who::Admin),
        1 => Just(Who::System),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Tick),
        4 => (arb_category(), any::<bool>()).prop_map(|(c, a)| Op::Add(c, a)),
        4 => arb_approval().prop_map(Op::Approve),
        1 => arb_category().prop_map(Op::Reject),
        1 => (arb_who(), any::<bool>()).prop_map(|(w, e)| Op::Cancel(w, e)),
        1 => arb_who().prop_map(Op::Freeze),
        1 => arb_who().prop_map(Op::Unfreeze),
        1 => arb_who().prop_map(Op::Deny),
        3 => (arb_who(), -1000..7000i64).prop_map(|(w, l)| Op::Issue(w, l)),
        2 => Just(Op::Bind),
        2 => Just(Op::Complete),
        1 => prop::sample::select(APPROVERS.to_vec()).prop_map(Op::ApproverRecovered),
    ]
}

/// What a cooperative user, approvers and the service would do: the runs that do get to a
/// token, with the hostile commands mixed in among them.
fn arb_benign_op() -> impl Strategy<Value = Op> {
    let approver = prop::sample::select(vec![AP1, AP2, SEC1, SEC2]);
    let recovered = approver.clone().prop_map(Op::ApproverRecovered);
    let approve = (approver, any::<bool>()).prop_map(|(approver, pool)| {
        Op::Approve(ApprovalSpec {
            other_case: false,
            approver,
            pool,
            age_ms: 0,
            ttl_ms: 20_000,
        })
    });
    let code = prop::sample::select(vec![Category::RecoveryCode, Category::EmailCode]);
    prop_oneof![
        6 => Just(Op::Tick),
        3 => code.prop_map(|c| Op::Add(c, false)),
        3 => approve,
        3 => (1..5_000i64).prop_map(|l| Op::Issue(Who::User, l)),
        3 => Just(Op::Bind),
        3 => Just(Op::Complete),
        1 => Just(Op::Unfreeze(Who::Admin)),
        1 => recovered,
    ]
}

/// A time step (mostly forward, sometimes backwards).
fn arb_dt() -> impl Strategy<Value = i64> {
    prop_oneof![6 => 0..2_000i64, 3 => 0..40_000i64, 1 => -3_000..0i64]
}

/// A run's commands: either anything at all, or mostly cooperative with some hostile ones.
fn arb_steps() -> impl Strategy<Value = Vec<(i64, Op)>> {
    let any_step = (arb_dt(), arb_op());
    let mostly_benign = (arb_dt(), prop_oneof![9 => arb_benign_op(), 1 => arb_op()]);
    prop_oneof![
        prop::collection::vec(any_step, 0..60),
        prop::collection::vec(mostly_benign, 0..60),
    ]
}

impl Op {
    /// The command, or `None` for a change of facts.
    fn command(self, now: i64) -> Option<Command> {
        Some(match self {
            Self::Add(category, attended) => Command::AddEvidence {
                category,
                verifier: "v".into(),
                verdict_digest: "d".into(),
                attended,
            },
            Self::Reject(category) => Command::RejectEvidence {
                category,
                reason: "r".into(),
            },
            Self::Approve(spec) => Command::Approve(spec.at(now)),
            Self::Cancel(w, empty) => Command::Cancel {
                by: w.actor(),
                via: if empty {
                    String::new()
                } else {
                    "passkey".into()
                },
            },
            Self::Freeze(w) => Command::Freeze {
                by: w.actor(),
                reason: "r".into(),
            },
            Self::Unfreeze(w) => Command::Unfreeze { by: w.actor() },
            Self::Deny(w) => Command::Deny {
                by: w.actor(),
                reason: "r".into(),
            },
            Self::Tick => Command::Tick,
            Self::Issue(w, lifetime) => Command::IssueToken {
                by: w.actor(),
                token_hash: "h".into(),
                expires_ms: now + lifetime,
            },
            Self::Bind => Command::BindAuthenticator {
                cred_id: "c".into(),
            },
            Self::Complete => Command::Complete,
            Self::ApproverRecovered(_) => return None,
        })
    }
}

#[derive(Clone, Debug)]
struct Setup {
    level: Level,
    account_level: Level,
    opener: Opener,
    phantom: bool,
}

fn arb_setup() -> impl Strategy<Value = Setup> {
    (
        arb_level(),
        arb_level(),
        arb_opener(),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(level, account_level, opener, phantom)| Setup {
            level,
            account_level,
            opener,
            phantom,
        })
}

/// What a run went through, to show the properties are not vacuous.
#[derive(Debug, Default)]
struct Seen {
    tokens: usize,
    completed: usize,
    lapsed: usize,
    unfrozen: usize,
}

/// Drives one case through `ops`, checking every event against the history before it.
fn run(setup: &Setup, ops: &[(i64, Op)]) -> Result<Seen, TestCaseError> {
    let policy = test_policy();
    let mut facts = AccountFacts {
        level: setup.account_level,
        ..facts(setup.level)
    };
    let req = OpenCase {
        case_id: CASE.into(),
        user_id: USER.into(),
        level: setup.level,
        opened_by: setup.opener.clone(),
        phantom: setup.phantom,
    };
    let mut events = vec![open(&policy, req, T0).map_err(fail)?];
    let mut view = fold(&events).map_err(fail)?;
    let mut now = T0;
    let mut seen = Seen::default();
    for &(dt, op) in ops {
        now += dt;
        let was_terminal = view.state.is_terminal();
        let Some(command) = op.command(now) else {
            recovered(&mut facts, op, now);
            continue;
        };
        match decide(&view, &policy, &facts, command, now) {
            Ok(new) => {
                prop_assert!(
                    !was_terminal || new.is_empty(),
                    "terminal state left: {new:?}"
                );
                for event in new {
                    check_event(&view, &events, &facts, &event, &mut seen)?;
                    view.apply(&event).map_err(fail)?;
                    events.push(event);
                    if view.phantom {
                        let s = view.state;
                        prop_assert!(matches!(s, CaseState::Collecting | CaseState::Expired));
                    }
                }
            }
            Err(Refusal::Inconsistent(e)) => return Err(fail(e)),
            Err(refusal) => prop_assert!(
                !was_terminal || matches!(refusal, Refusal::Closed(_) | Refusal::TimeWentBackwards),
                "{refusal:?}"
            ),
        }
    }
    let refolded = fold(&events);
    prop_assert_eq!(refolded.as_ref(), Ok(&view));
    let json = serde_json::to_string(&events).map_err(fail)?;
    let back: Vec<CaseEvent> = serde_json::from_str(&json).map_err(fail)?;
    prop_assert_eq!(back, events);
    Ok(seen)
}

fn recovered(facts: &mut AccountFacts, op: Op, now: i64) {
    if let Op::ApproverRecovered(who) = op {
        for f in facts.approvers.iter_mut().filter(|f| f.approver_id == who) {
            f.last_recovered_ms = Some(now);
        }
    }
}

fn fail(e: impl std::fmt::Debug) -> TestCaseError {
    TestCaseError::fail(format!("{e:?}"))
}

fn check_event(
    view: &CaseView,
    history: &[CaseEvent],
    facts: &AccountFacts,
    event: &CaseEvent,
    seen: &mut Seen,
) -> Result<(), TestCaseError> {
    let opener_agent = view.opened_by.agent_id();
    let reviewer_ok = |by: &Actor| matches!(by, Actor::Admin { admin_id } if Some(admin_id.as_str()) != opener_agent);
    match event {
        CaseEvent::ApprovalRecorded(a) => {
            prop_assert_eq!(&a.case_id, &view.case_id);
            prop_assert!(
                a.approver_id != view.user_id && Some(a.approver_id.as_str()) != opener_agent
            );
            prop_assert!(
                facts
                    .approvers
                    .iter()
                    .any(|f| f.approver_id == a.approver_id)
            );
        }
        CaseEvent::Cancelled { by, .. } => {
            prop_assert!(matches!(by, Actor::User | Actor::Admin { .. }), "{by:?}");
        }
        CaseEvent::Unfrozen { by, .. } => {
            prop_assert!(reviewer_ok(by), "{by:?}");
            seen.unfrozen += 1;
        }
        CaseEvent::Denied { by, .. } => prop_assert!(reviewer_ok(by) || *by == Actor::System),
        CaseEvent::CoolingStarted { at_ms, .. } => {
            prop_assert!(!view.phantom);
            prop_assert!(independent_categories(view, facts, *at_ms) >= 2);
        }
        CaseEvent::PolicyLapsed { .. } => seen.lapsed += 1,
        CaseEvent::TokenIssued { at_ms, .. } => {
            check_token(view, history, facts, *at_ms)?;
            seen.tokens += 1;
        }
        CaseEvent::Completed { .. } => seen.completed += 1,
        _ => {}
    }
    Ok(())
}

/// The token property, from the history alone.
fn check_token(
    view: &CaseView,
    history: &[CaseEvent],
    facts: &AccountFacts,
    at_ms: i64,
) -> Result<(), TestCaseError> {
    prop_assert!(!view.phantom, "a phantom case issued a token");
    prop_assert_eq!(view.state, CaseState::ReadyToIssue);
    let cooling = history
        .iter()
        .rposition(|e| matches!(e, CaseEvent::CoolingStarted { .. }));
    let Some(i) = cooling else {
        return Err(fail("a token without cooling"));
    };
    let resets = history[i..].iter().any(|e| {
        matches!(
            e,
            CaseEvent::PolicyLapsed { .. } | CaseEvent::Unfrozen { .. }
        )
    });
    prop_assert!(!resets, "a token after cooling was voided");
    let CaseEvent::CoolingStarted {
        until_ms,
        at_ms: started,
        ..
    } = &history[i]
    else {
        return Err(fail("unreachable"));
    };
    prop_assert!(
        *until_ms <= at_ms,
        "cooling not over at {at_ms}: {until_ms}"
    );
    prop_assert!(
        until_ms - started >= test_policy().r1_cooling_ms,
        "cooling too short"
    );
    let categories = independent_categories(view, facts, *started);
    prop_assert!(categories >= 2, "a token on {categories} categories");
    let level = view.level.max(facts.level);
    prop_assert_ne!(level, Level::R3);
    if level == Level::R2 {
        prop_assert_eq!(categories, 3);
    }
    Ok(())
}

/// Categories a case holds at `at_ms`, judged without the policy's code: codes by their
/// category, S if some approval is for this case, by a member of the set who is neither the
/// user nor the opener, and not expired at `at_ms`.
fn independent_categories(view: &CaseView, facts: &AccountFacts, at_ms: i64) -> usize {
    let mut set: BTreeSet<Category> = view
        .evidence
        .iter()
        .map(|e| e.category)
        .filter(|c| matches!(c, Category::RecoveryCode | Category::EmailCode))
        .collect();
    let valid = view.approvals.iter().any(|a| {
        a.case_id == view.case_id
            && a.approver_id != view.user_id
            && Some(a.approver_id.as_str()) != view.opened_by.agent_id()
            && facts
                .approvers
                .iter()
                .any(|f| f.approver_id == a.approver_id)
            && a.at_ms <= at_ms
            && a.expires_ms > at_ms
    });
    if valid {
        set.insert(Category::Approvals);
    }
    set.len()
}

/// The generators do reach tokens, completions, lapses and reviews, so the properties above
/// are exercised rather than vacuously true.
#[test]
fn random_runs_reach_the_interesting_states() {
    let mut runner = TestRunner::deterministic();
    let strategy = (arb_setup(), arb_steps());
    let mut total = Seen::default();
    for _ in 0..800 {
        let (setup, ops) = strategy.new_tree(&mut runner).unwrap().current();
        let seen = run(&setup, &ops).unwrap();
        total.tokens += seen.tokens;
        total.completed += seen.completed;
        total.lapsed += seen.lapsed;
        total.unfrozen += seen.unfrozen;
    }
    assert!(total.tokens > 0 && total.completed > 0, "{total:?}");
    assert!(total.lapsed > 0 && total.unfrozen > 0, "{total:?}");
}
