//! The recovery case: transitions, guards and the fold.

use super::fixtures::*;
use super::*;
use Category::{Document, EmailCode, RecoveryCode};

/// A case being driven through `decide`, keeping the events as a store would.
struct Run {
    policy: RecoveryPolicy,
    facts: AccountFacts,
    events: Vec<CaseEvent>,
    view: CaseView,
    now: i64,
}

impl Run {
    fn open(level: Level, opened_by: Opener, phantom: bool) -> Self {
        let policy = test_policy();
        let req = OpenCase {
            case_id: CASE.into(),
            user_id: USER.into(),
            level,
            opened_by,
            phantom,
        };
        let opened = open(&policy, req, T0).unwrap();
        let events = vec![opened];
        let view = fold(&events).unwrap();
        Self {
            policy,
            facts: facts(level),
            events,
            view,
            now: T0,
        }
    }

    fn r1() -> Self {
        Self::open(Level::R1, Opener::User, false)
    }

    fn wait(&mut self, ms: i64) -> &mut Self {
        self.now += ms;
        self
    }

    fn try_(&mut self, command: Command) -> Result<Vec<CaseEvent>, Refusal> {
        let events = decide(&self.view, &self.policy, &self.facts, command, self.now)?;
        for e in &events {
            self.view.apply(e).unwrap();
            self.events.push(e.clone());
        }
        assert_eq!(fold(&self.events).as_ref(), Ok(&self.view));
        Ok(events)
    }

    fn ok(&mut self, command: Command) -> Vec<CaseEvent> {
        self.try_(command).unwrap()
    }

    fn names(&mut self, command: Command) -> Vec<&'static str> {
        self.ok(command).iter().map(CaseEvent::name).collect()
    }

    fn add(&mut self, category: Category) {
        self.ok(add(category));
    }

    fn approve(&mut self, approver: &str) -> &mut Self {
        let a = approval(CASE, approver, self.now);
        self.ok(Command::Approve(a));
        self
    }

    fn issue(&mut self) -> Result<Vec<CaseEvent>, Refusal> {
        let expires_ms = self.now + 5 * SEC;
        self.try_(Command::IssueToken {
            by: Actor::User,
            token_hash: "ab12".into(),
            expires_ms,
        })
    }

    /// P-code + S(1), ticked and cooled: ready to issue.
    fn ready() -> Self {
        let mut run = Self::r1();
        run.add(RecoveryCode);
        run.approve(AP1);
        run.ok(Command::Tick);
        run.wait(10 * SEC).ok(Command::Tick);
        assert_eq!(run.view.state, CaseState::ReadyToIssue);
        run
    }
}

fn add(category: Category) -> Command {
    Command::AddEvidence {
        category,
        verifier: "test/v1".into(),
        verdict_digest: "digest".into(),
        attended: false,
    }
}

fn reject() -> Command {
    Command::RejectEvidence {
        category: RecoveryCode,
        reason: "wrong code".into(),
    }
}

fn admin(id: &str) -> Actor {
    Actor::Admin {
        admin_id: id.into(),
    }
}

fn agent() -> Actor {
    Actor::Agent {
        agent_id: AGENT.into(),
    }
}

#[test]
fn a_case_walks_from_opening_to_completion() {
    let mut run = Run::r1();
    run.add(RecoveryCode);
    assert!(
        run.ok(Command::Tick).is_empty(),
        "one category must not start cooling"
    );
    run.wait(SEC).approve(AP1);
    assert_eq!(run.names(Command::Tick), ["cooling_started"]);
    assert_eq!(
        run.view.state,
        CaseState::Cooling {
            until_ms: run.now + 10 * SEC
        }
    );
    assert_eq!(
        run.issue(),
        Err(Refusal::WrongState {
            command: "issue_token",
            state: run.view.state
        })
    );
    assert!(run.wait(10 * SEC - 1).ok(Command::Tick).is_empty());
    assert_eq!(run.wait(1).names(Command::Tick), ["cooling_elapsed"]);
    assert_eq!(run.issue().unwrap().len(), 1);
    assert_eq!(run.view.token_hash.as_deref(), Some("ab12"));
    run.wait(SEC).ok(Command::BindAuthenticator {
        cred_id: "new-passkey".into(),
    });
    assert_eq!(run.names(Command::Complete), ["completed"]);
    assert_eq!(run.view.state, CaseState::Completed);
    assert_eq!(run.view.bound_cred_id.as_deref(), Some("new-passkey"));
}

#[test]
fn an_approval_valid_when_cooling_starts_survives_a_longer_cooling() {
    // P-mail + S(1) cools 10 s; make the approval expire 1 s into cooling.
    let mut run = Run::r1();
    run.add(EmailCode);
    let mut a = approval(CASE, AP1, run.now);
    a.expires_ms = run.now + SEC;
    run.ok(Command::Approve(a));
    run.ok(Command::Tick);
    run.wait(10 * SEC);
    assert_eq!(run.names(Command::Tick), ["cooling_elapsed"]);
    assert!(run.issue().is_ok());
}

#[test]
fn an_approver_recovered_during_cooling_voids_the_cooling() {
    let mut run = Run::r1();
    run.add(RecoveryCode);
    run.approve(AP1).ok(Command::Tick);
    run.wait(5 * SEC);
    let t = run.now;
    let ap1 = run
        .facts
        .approvers
        .iter_mut()
        .find(|a| a.approver_id == AP1)
        .unwrap();
    ap1.last_recovered_ms = Some(t);
    assert_eq!(run.wait(5 * SEC).names(Command::Tick), ["policy_lapsed"]);
    assert_eq!(run.view.state, CaseState::Collecting);
    assert_eq!(run.view.cooling_until_ms, None);
    // Another approver restarts cooling from scratch.
    run.approve(AP2);
    assert_eq!(run.names(Command::Tick), ["cooling_started"]);
    assert_eq!(run.view.cooling_started_ms, Some(run.now));
}

#[test]
fn the_token_is_rechecked_against_the_policy() {
    let mut run = Run::ready();
    run.facts.approvers.retain(|a| a.approver_id != AP1);
    assert_eq!(run.issue(), Err(Refusal::PolicyNotMet));
    // A stricter level on the account applies to an open case.
    let mut run = Run::ready();
    run.facts.level = Level::R2;
    assert_eq!(run.issue(), Err(Refusal::PolicyNotMet));
}

#[test]
fn only_the_user_receives_a_token_and_only_a_short_lived_one() {
    let mut run = Run::ready();
    for by in [agent(), admin("AD-1"), Actor::System] {
        let cmd = Command::IssueToken {
            by,
            token_hash: "h".into(),
            expires_ms: run.now + SEC,
        };
        assert!(matches!(run.try_(cmd), Err(Refusal::NotPermitted { .. })));
    }
    for expires_ms in [run.now, run.now + 5 * SEC + 1] {
        let cmd = Command::IssueToken {
            by: Actor::User,
            token_hash: "h".into(),
            expires_ms,
        };
        assert_eq!(run.try_(cmd), Err(Refusal::TokenLifetime));
    }
    let cmd = Command::IssueToken {
        by: Actor::User,
        token_hash: " ".into(),
        expires_ms: run.now + 1,
    };
    assert_eq!(run.try_(cmd), Err(Refusal::Empty("token_hash")));
}

#[test]
fn an_unused_token_expires_back_to_ready_at_most_three_times() {
    let mut run = Run::ready();
    for round in 1..=3 {
        run.issue().unwrap();
        run.wait(5 * SEC);
        assert_eq!(
            run.try_(Command::BindAuthenticator {
                cred_id: "c".into()
            }),
            Err(Refusal::TokenExpired)
        );
        let names = run.names(Command::Tick);
        if round < 3 {
            assert_eq!(names, ["token_expired"]);
            assert_eq!(run.view.state, CaseState::ReadyToIssue);
        } else {
            assert_eq!(names, ["token_expired", "expired"]);
        }
    }
    assert_eq!(run.view.state, CaseState::Expired);
    assert_eq!(run.view.token_issues, 3);
}

#[test]
fn evidence_is_taken_only_while_collecting_and_once_per_category() {
    let mut run = Run::r1();
    run.add(RecoveryCode);
    assert_eq!(
        run.try_(add(RecoveryCode)),
        Err(Refusal::AlreadyAccepted(RecoveryCode))
    );
    assert_eq!(
        run.try_(add(Document)),
        Err(Refusal::NotCollectable(Document))
    );
    assert_eq!(
        run.try_(add(Category::Approvals)),
        Err(Refusal::ApprovalAsEvidence)
    );
    run.approve(AP1);
    run.ok(Command::Tick);
    let cooling = run.view.state;
    assert_eq!(
        run.try_(add(EmailCode)),
        Err(Refusal::WrongState {
            command: "add_evidence",
            state: cooling
        })
    );
    let late = approval(CASE, AP2, run.now);
    assert!(matches!(
        run.try_(Command::Approve(late)),
        Err(Refusal::WrongState { .. })
    ));
}

#[test]
fn approvals_are_refused_for_another_case_the_opener_and_twice() {
    let mut run = Run::open(
        Level::R1,
        Opener::Agent {
            agent_id: AGENT.into(),
        },
        false,
    );
    let other = approval(OTHER_CASE, AP1, run.now);
    assert_eq!(
        run.try_(Command::Approve(other)),
        Err(Refusal::Approval(ApprovalFault::OtherCase))
    );
    let opener = approval(CASE, AGENT, run.now);
    assert_eq!(
        run.try_(Command::Approve(opener)),
        Err(Refusal::Approval(ApprovalFault::ApproverIsOpener))
    );
    run.approve(AP1);
    let again = approval(CASE, AP1, run.now);
    assert_eq!(
        run.try_(Command::Approve(again)),
        Err(Refusal::Approval(ApprovalFault::Duplicate))
    );
    // Once the first approval expired, the approver may approve again.
    run.wait(20 * SEC).approve(AP1);
    assert_eq!(run.view.approvals.len(), 2);
}

#[test]
fn the_sixth_rejected_evidence_denies_the_case() {
    let mut run = Run::r1();
    for _ in 0..5 {
        assert_eq!(run.names(reject()), ["evidence_rejected"]);
    }
    assert_eq!(run.names(reject()), ["evidence_rejected", "denied"]);
    assert_eq!(
        run.try_(add(EmailCode)),
        Err(Refusal::Closed(CaseState::Denied))
    );
}

#[test]
fn agents_flag_fraud_but_cannot_cancel_or_review() {
    let mut run = Run::open(
        Level::R1,
        Opener::Agent {
            agent_id: AGENT.into(),
        },
        false,
    );
    let cancel = Command::Cancel {
        by: agent(),
        via: "console".into(),
    };
    assert!(matches!(
        run.try_(cancel),
        Err(Refusal::NotPermitted { .. })
    ));
    run.ok(Command::Freeze {
        by: agent(),
        reason: "caller pressured".into(),
    });
    assert_eq!(run.view.state, CaseState::Frozen);
    assert!(matches!(
        run.try_(Command::Unfreeze { by: agent() }),
        Err(Refusal::NotPermitted { .. })
    ));
    // The opening agent holding an admin role still cannot review their own case.
    let own = Command::Unfreeze { by: admin(AGENT) };
    assert_eq!(run.try_(own), Err(Refusal::OpenerCannotReview));
    let deny = Command::Deny {
        by: agent(),
        reason: "x".into(),
    };
    assert!(matches!(run.try_(deny), Err(Refusal::NotPermitted { .. })));
    assert_eq!(
        run.names(Command::Unfreeze { by: admin("AD-1") }),
        ["unfrozen"]
    );
    assert_eq!(run.view.state, CaseState::Collecting);
}

#[test]
fn a_freeze_discards_cooling_and_the_user_can_cancel_any_time_before_binding() {
    let mut run = Run::ready();
    run.issue().unwrap();
    run.ok(Command::Freeze {
        by: Actor::User,
        reason: "not me link".into(),
    });
    assert_eq!(run.view.token_hash, None);
    run.ok(Command::Unfreeze { by: admin("AD-1") });
    assert_eq!(run.view.cooling_until_ms, None);
    // The evidence stays; cooling starts again in full.
    run.wait(SEC).approve(AP2);
    assert_eq!(run.names(Command::Tick), ["cooling_started"]);
    let cancel = Command::Cancel {
        by: Actor::User,
        via: "old totp".into(),
    };
    assert_eq!(run.names(cancel), ["cancelled"]);
    assert_eq!(run.try_(Command::Tick), Ok(vec![]));
}

#[test]
fn phantom_cases_walk_the_screens_but_never_leave_collecting_except_by_expiry() {
    let mut run = Run::open(Level::R1, Opener::User, true);
    run.add(RecoveryCode);
    run.add(EmailCode);
    assert!(run.ok(Command::Tick).is_empty());
    assert_eq!(
        run.issue(),
        Err(Refusal::WrongState {
            command: "issue_token",
            state: CaseState::Collecting
        })
    );
    let cancel = Command::Cancel {
        by: Actor::User,
        via: "x".into(),
    };
    assert_eq!(run.try_(cancel), Err(Refusal::Phantom));
    let freeze = Command::Freeze {
        by: Actor::System,
        reason: "x".into(),
    };
    assert_eq!(run.try_(freeze), Err(Refusal::Phantom));
    for _ in 0..6 {
        assert_eq!(run.names(reject()), ["evidence_rejected"]);
    }
    assert_eq!(run.try_(reject()), Err(Refusal::FailureLimit));
    assert_eq!(run.view.state, CaseState::Collecting);
    assert_eq!(run.wait(300 * SEC).names(Command::Tick), ["expired"]);
}

#[test]
fn a_case_expires_when_collection_runs_out() {
    let mut run = Run::r1();
    run.add(RecoveryCode);
    assert!(run.wait(300 * SEC - 1).ok(Command::Tick).is_empty());
    assert_eq!(run.wait(1).names(Command::Tick), ["expired"]);
    // Terminal states absorb every command.
    for cmd in [
        add(EmailCode),
        Command::Complete,
        Command::Unfreeze { by: admin("AD-1") },
    ] {
        assert_eq!(run.try_(cmd), Err(Refusal::Closed(CaseState::Expired)));
    }
}

#[test]
fn r3_never_starts_cooling() {
    let mut run = Run::open(Level::R3, Opener::User, false);
    run.add(RecoveryCode);
    run.add(EmailCode);
    for a in [SEC1, SEC2] {
        run.ok(Command::Approve(pool_approval(CASE, a, run.now)));
    }
    assert!(run.ok(Command::Tick).is_empty());
    let d = evaluate(&run.policy, &run.view.policy_input(&run.facts, run.now));
    assert!(d.unreachable.is_some());
}

#[test]
fn time_never_goes_backwards() {
    let mut run = Run::r1();
    run.wait(SEC).add(RecoveryCode);
    run.now -= 1;
    assert_eq!(run.try_(Command::Tick), Err(Refusal::TimeWentBackwards));
}

#[test]
fn agents_cannot_open_their_own_case() {
    let req = OpenCase {
        case_id: CASE.into(),
        user_id: AGENT.into(),
        level: Level::R3,
        opened_by: Opener::Agent {
            agent_id: AGENT.into(),
        },
        phantom: false,
    };
    assert_eq!(open(&test_policy(), req, T0), Err(Refusal::OwnCase));
}

#[test]
fn fold_refuses_illegal_histories() {
    let run = Run::ready();
    let opened = run.events[0].clone();
    assert_eq!(fold(&[]), Err(FoldError::Empty));
    assert_eq!(
        fold(&run.events[1..]),
        Err(FoldError::NotOpenedFirst("evidence_accepted"))
    );
    let token = CaseEvent::TokenIssued {
        token_hash: "h".into(),
        expires_ms: T0 + 1,
        at_ms: T0,
    };
    assert_eq!(
        fold(&[opened.clone(), token]),
        Err(FoldError::Illegal {
            event: "token_issued",
            state: CaseState::Collecting
        })
    );
    let mut late = run.events.clone();
    late.push(CaseEvent::Completed { at_ms: T0 - 1 });
    assert_eq!(fold(&late), Err(FoldError::TimeWentBackwards("completed")));
    let expired = CaseEvent::Expired { at_ms: T0 };
    let after = CaseEvent::EvidenceRejected {
        category: EmailCode,
        reason: "r".into(),
        at_ms: T0,
    };
    assert!(matches!(
        fold(&[opened, expired, after]),
        Err(FoldError::Illegal { .. })
    ));
}

#[test]
fn events_are_stored_as_tagged_json_and_read_back() {
    let mut run = Run::ready();
    run.issue().unwrap();
    run.wait(SEC).ok(Command::BindAuthenticator {
        cred_id: "c".into(),
    });
    run.ok(Command::Complete);
    let json = serde_json::to_string(&run.events).unwrap();
    assert!(
        json.contains(r#"{"type":"opened","case_id":"RC-A""#),
        "{json}"
    );
    assert!(json.contains(r#""opened_by":{"kind":"user"}"#), "{json}");
    assert!(json.contains(r#""category":"recovery_code""#), "{json}");
    let back: Vec<CaseEvent> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, run.events);
    assert_eq!(fold(&back), Ok(run.view));
}

#[test]
fn one_category_and_any_amount_of_time_never_issue_a_token() {
    let singles: [&dyn Fn(&mut Run); 3] = [
        &|run| run.add(RecoveryCode),
        &|run| run.add(EmailCode),
        &|run| {
            run.approve(AP1).approve(SEC1).approve(SEC2);
        },
    ];
    for single in singles {
        let mut run = Run::r1();
        single(&mut run);
        for _ in 0..29 {
            assert!(run.wait(10 * SEC).ok(Command::Tick).is_empty());
        }
        assert_eq!(run.view.state, CaseState::Collecting);
        assert!(matches!(run.issue(), Err(Refusal::WrongState { .. })));
    }
}
