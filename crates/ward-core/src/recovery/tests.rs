//! The level table (recovery spec §5.3) as the policy function sees it.

use super::fixtures::*;
use super::*;
use Category::{Document, EmailCode, PersonVerification, RecoveryCode, SurvivingFactor};

fn met(given: &Given) -> bool {
    given.decide().met.is_some()
}

#[test]
fn every_collectable_r1_row_is_met_at_r1() {
    let p = test_policy();
    let cases = [
        (
            Given::new(Level::R1).with(RecoveryCode).with(EmailCode),
            "R1: P-code + P-mail",
            p.r1_cooling_without_approval_or_document_ms,
        ),
        (
            Given::new(Level::R1).with(RecoveryCode).approved_by(AP1),
            "R1: P-code + S(1)",
            p.r1_cooling_ms,
        ),
        (
            Given::new(Level::R1).with(EmailCode).approved_by(SEC1),
            "R1: P-mail + S(1)",
            p.r1_cooling_ms,
        ),
    ];
    for (given, row, cooling) in cases {
        let d = given.decide();
        assert_eq!(d.met, Some(Level::R1), "{row}");
        assert_eq!(d.row, Some(row));
        assert_eq!(d.cooling_ms, Some(cooling), "{row}");
        assert!(d.missing.is_empty() && d.unreachable.is_none(), "{row}");
    }
}

#[test]
fn the_collectable_r2_row_is_met_at_r2() {
    let given = Given::new(Level::R2)
        .with(RecoveryCode)
        .with(EmailCode)
        .approved_by(AP1)
        .approved_by(SEC2);
    let d = given.decide();
    assert_eq!(d.met, Some(Level::R2));
    assert_eq!(d.row, Some("R2: S(2) + P-code + P-mail"));
    assert_eq!(d.cooling_ms, Some(test_policy().r2_cooling_ms));
    assert_eq!(
        d.counted,
        vec![RecoveryCode, EmailCode, Category::Approvals]
    );
}

#[test]
fn r1_combinations_do_not_meet_r2() {
    for given in [
        Given::new(Level::R2).with(RecoveryCode).with(EmailCode),
        Given::new(Level::R2)
            .with(RecoveryCode)
            .approved_by(AP1)
            .approved_by(AP2),
        Given::new(Level::R2)
            .with(EmailCode)
            .approved_by(AP1)
            .approved_by(SEC1),
        Given::new(Level::R2)
            .with(RecoveryCode)
            .with(EmailCode)
            .approved_by(AP1),
    ] {
        assert!(!met(&given), "{:?}", given.decide());
    }
}

#[test]
fn with_several_rows_met_the_shortest_cooling_wins() {
    let d = Given::new(Level::R1)
        .with(RecoveryCode)
        .with(EmailCode)
        .approved_by(AP1)
        .decide();
    assert_eq!(d.row, Some("R1: P-code + S(1)"));
    assert_eq!(d.cooling_ms, Some(test_policy().r1_cooling_ms));
}

#[test]
fn any_single_category_alone_is_never_sufficient() {
    for level in [Level::R1, Level::R2, Level::R3] {
        let singles = [
            Given::new(level).with(RecoveryCode),
            Given::new(level).with(EmailCode),
            Given::new(level).approved_by(AP1),
            // Many approvers are still one category.
            Given::new(level)
                .approved_by(AP1)
                .approved_by(SEC1)
                .approved_by(SEC2),
        ];
        for given in singles {
            let d = given.decide();
            assert_eq!(d.met, None, "{level}: {d:?}");
            assert!(d.counted.len() <= 1);
        }
    }
}

#[test]
fn duplicates_within_one_category_are_never_sufficient() {
    let two_codes = Given::new(Level::R1).with(RecoveryCode).with(RecoveryCode);
    let two_mails = Given::new(Level::R1).with(EmailCode).with(EmailCode);
    let same_approver_twice = Given::new(Level::R1).approved_by(AP1).approved_by(AP1);
    for given in [two_codes, two_mails, same_approver_twice] {
        assert!(!met(&given), "{:?}", given.decide());
    }
    // The same approver twice is one approval, and R2 needs two.
    let d = Given::new(Level::R2)
        .with(RecoveryCode)
        .with(EmailCode)
        .approved_by(AP1)
        .approved_by(AP1)
        .decide();
    assert_eq!(d.met, None);
    assert_eq!(
        d.refused_approvals,
        vec![(AP1.to_string(), ApprovalFault::Duplicate)]
    );
    assert_eq!(
        d.missing,
        vec![Missing::Approvals {
            more: 1,
            security_pool: false
        }]
    );
}

#[test]
fn evidence_ward_cannot_collect_never_counts() {
    // K with a code is an R1 row of the spec, but Ward holds no passwords yet.
    for other in [
        SurvivingFactor,
        Document,
        PersonVerification,
        Category::Approvals,
    ] {
        let d = Given::new(Level::R1)
            .with(RecoveryCode)
            .with(other)
            .decide();
        assert_eq!(d.met, None, "{other:?}");
        assert_eq!(d.counted, vec![RecoveryCode], "{other:?}");
    }
    let d = Given::new(Level::R1)
        .with(Document)
        .with(PersonVerification)
        .decide();
    assert_eq!(d.met, None);
    assert!(d.counted.is_empty());
}

#[test]
fn evidence_dated_in_the_future_does_not_count() {
    let mut given = Given::new(Level::R1).with(RecoveryCode).approved_by(AP1);
    given.evidence[0].at_ms = given.now_ms + 1;
    assert!(!met(&given));
}

#[test]
fn r3_reports_unreachable_whatever_is_presented() {
    let mut given = Given::new(Level::R3)
        .with(RecoveryCode)
        .with(EmailCode)
        .with(Document)
        .with(PersonVerification);
    given.evidence[3].attended = true;
    for a in [SEC1, SEC2, AP1] {
        given
            .approvals
            .push(pool_approval(CASE, a, given.now_ms - SEC));
    }
    let d = given.decide();
    assert_eq!(d.met, None);
    assert!(d.missing.is_empty());
    let message = d.unreachable.expect("R3 must say why it cannot be met");
    assert!(message.contains("R3"), "{message}");
    assert!(message.contains("D, V"), "{message}");
    assert!(Given::new(Level::R1).decide().unreachable.is_none());
    assert!(Given::new(Level::R2).decide().unreachable.is_none());
}

#[test]
fn missing_names_the_cheapest_reachable_row() {
    let one_approval = Missing::Approvals {
        more: 1,
        security_pool: false,
    };
    let r1 = |g: Given| g.decide().missing;
    // Nothing yet: P-code + S(1) (two items, the shorter cooling of the two-item rows).
    assert_eq!(
        r1(Given::new(Level::R1)),
        vec![Missing::Evidence(RecoveryCode), one_approval]
    );
    assert_eq!(
        r1(Given::new(Level::R1).with(RecoveryCode)),
        vec![one_approval]
    );
    assert_eq!(
        r1(Given::new(Level::R1).with(EmailCode)),
        vec![one_approval]
    );
    assert_eq!(
        r1(Given::new(Level::R1).approved_by(AP1)),
        vec![Missing::Evidence(RecoveryCode)]
    );
    let r2 = Given::new(Level::R2)
        .with(EmailCode)
        .approved_by(AP1)
        .decide();
    assert_eq!(
        r2.missing,
        vec![one_approval, Missing::Evidence(RecoveryCode)]
    );
    let words: Vec<String> = Given::new(Level::R2)
        .decide()
        .missing
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(words, ["2 approvals", "a recovery code", "an e-mail code"]);
    assert_eq!(Missing::Evidence(EmailCode).to_string(), "an e-mail code");
    assert_eq!(one_approval.to_string(), "one approval");
    let pool = Missing::Approvals {
        more: 2,
        security_pool: true,
    };
    assert_eq!(pool.to_string(), "2 approvals from the security pool");
}

fn refused(approval: Approval, opener: Opener) -> (bool, Vec<(String, ApprovalFault)>) {
    let mut given = Given::new(Level::R1).with(EmailCode);
    given.opener = opener;
    given.approvals.push(approval);
    let d = given.decide();
    (d.met.is_some(), d.refused_approvals)
}

#[test]
fn approvals_count_only_under_every_rule() {
    let now = Given::new(Level::R1).now_ms;
    let ok = approval(CASE, AP1, now - SEC);
    let agent = Opener::Agent {
        agent_id: AGENT.into(),
    };
    let long = Approval {
        expires_ms: ok.at_ms + 21 * SEC,
        ..ok.clone()
    };
    let cases = [
        (
            approval(OTHER_CASE, AP1, now - SEC),
            ApprovalFault::OtherCase,
            Opener::User,
        ),
        (
            approval(CASE, AP1, now - 20 * SEC),
            ApprovalFault::Expired,
            Opener::User,
        ),
        (
            approval(CASE, AP1, now + 1),
            ApprovalFault::NotYetValid,
            Opener::User,
        ),
        (long, ApprovalFault::LifetimeTooLong, Opener::User),
        (
            approval(CASE, USER, now - SEC),
            ApprovalFault::ApproverIsUser,
            Opener::User,
        ),
        (
            approval(CASE, AGENT, now - SEC),
            ApprovalFault::ApproverIsOpener,
            agent.clone(),
        ),
        (
            approval(CASE, STRANGER, now - SEC),
            ApprovalFault::NotAnApprover,
            Opener::User,
        ),
        (
            approval(CASE, RECENT, now - SEC),
            ApprovalFault::RecentlyRecovered,
            Opener::User,
        ),
    ];
    for (approval, fault, opener) in cases {
        let who = approval.approver_id.clone();
        assert_eq!(
            refused(approval, opener),
            (false, vec![(who, fault)]),
            "{fault:?}"
        );
    }
    // The controls: a valid approval counts, and the agent counts when someone else opened.
    assert_eq!(refused(ok, agent), (true, vec![]));
    assert_eq!(
        refused(approval(CASE, AGENT, now - SEC), Opener::User),
        (true, vec![])
    );
    // Recovered long enough ago is fine.
    assert_eq!(
        refused(approval(CASE, AP2, now - SEC), Opener::User),
        (true, vec![])
    );
}

#[test]
fn security_pool_counts_only_when_the_facts_agree() {
    let given = Given::new(Level::R3);
    let now = given.now_ms;
    let approvals = [
        pool_approval(CASE, AP1, now - SEC), // claims the pool, is not in it
        approval(CASE, SEC1, now - SEC),     // in the pool, did not act as such
        pool_approval(CASE, SEC2, now - SEC), // both
    ];
    let given = Given {
        approvals: approvals.to_vec(),
        ..given
    };
    let tally = ApprovalTally::of(&test_policy(), &given.input());
    assert_eq!((tally.counted, tally.counted_pool), (3, 1));
}

#[test]
fn cooling_comes_from_the_configuration() {
    let given = Given::new(Level::R1).with(RecoveryCode).approved_by(AP1);
    let policy = RecoveryPolicy {
        r1_cooling_ms: 7,
        ..test_policy()
    };
    assert_eq!(evaluate(&policy, &given.input()).cooling_ms, Some(7));
    let d = evaluate(&RecoveryPolicy::default(), &given.input());
    assert_eq!(d.cooling_ms, Some(24 * 60 * 60 * 1000));
}

#[test]
fn every_row_needs_two_independent_categories() {
    for row in ROWS {
        assert!(row.independent_categories() >= 2, "{}", row.id);
        assert!(row.id.starts_with(&row.level.to_string()), "{}", row.id);
    }
    let reachable: Vec<&str> = ROWS
        .iter()
        .filter(|r| r.is_reachable())
        .map(|r| r.id)
        .collect();
    assert_eq!(
        reachable,
        [
            "R1: P-code + P-mail",
            "R1: P-code + S(1)",
            "R1: P-mail + S(1)",
            "R2: S(2) + P-code + P-mail"
        ]
    );
}

#[test]
fn production_bounds_refuse_weakened_settings() {
    assert_eq!(RecoveryPolicy::default().check_production_bounds(), Ok(()));
    let err = test_policy().check_production_bounds().unwrap_err();
    assert_eq!(err.field, "r1_cooling_ms");
    let d = RecoveryPolicy::default();
    let weakened = [
        RecoveryPolicy {
            r3_cooling_ms: d.r3_cooling_ms - 1,
            ..d.clone()
        },
        RecoveryPolicy {
            r2_cooling_ms: 23 * 60 * 60 * 1000,
            ..d.clone()
        },
        RecoveryPolicy {
            approver_quarantine_ms: 0,
            ..d.clone()
        },
        RecoveryPolicy {
            approval_ttl_ms: d.approval_ttl_ms + 1,
            ..d.clone()
        },
        RecoveryPolicy {
            token_ttl_ms: d.token_ttl_ms + 1,
            ..d.clone()
        },
        RecoveryPolicy {
            max_rejections: 6,
            ..d.clone()
        },
        RecoveryPolicy {
            max_token_issues: 0,
            ..d.clone()
        },
    ];
    for p in weakened {
        assert!(p.check_production_bounds().is_err(), "{p:?}");
    }
    // Stricter is fine.
    let stricter = RecoveryPolicy {
        r2_cooling_ms: d.r2_cooling_ms * 2,
        max_rejections: 3,
        ..d
    };
    assert_eq!(stricter.check_production_bounds(), Ok(()));
}

/// A table with a one-category row: the invariant inside `evaluate` must still refuse it.
static BROKEN: &[Row] = &[
    Row {
        id: "R1: S(2) only",
        level: Level::R1,
        needs: &[Need::Approvals {
            count: 2,
            security_pool: false,
        }],
        cooling: Cooling::R1,
    },
    Row {
        id: "R1: P-code + P-code",
        level: Level::R1,
        needs: &[Need::One(RecoveryCode), Need::One(RecoveryCode)],
        cooling: Cooling::R1,
    },
];

#[test]
fn two_independent_categories_are_enforced_apart_from_the_table() {
    let policy = test_policy();
    let approvals_only = Given::new(Level::R1)
        .approved_by(AP1)
        .approved_by(SEC1)
        .approved_by(SEC2);
    let codes_only = Given::new(Level::R1).with(RecoveryCode).with(RecoveryCode);
    for given in [approvals_only, codes_only] {
        let d = policy::evaluate_rows(&policy, &given.input(), BROKEN);
        assert_eq!(d.met, None, "{d:?}");
    }
    // Nor does a one-category row count when other evidence happens to be present.
    let both = Given::new(Level::R1)
        .approved_by(AP1)
        .approved_by(SEC1)
        .with(EmailCode);
    let d = policy::evaluate_rows(&policy, &both.input(), BROKEN);
    assert_eq!((d.met, d.row), (None, None));
}
