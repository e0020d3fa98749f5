use proptest::prelude::*;

use super::*;

const NOW: i64 = 1_000_000;

fn active() -> Subject {
    Subject {
        status: UserStatus::Active,
        locked_until_ms: None,
        push_muted_until_ms: None,
        factors_frozen: false,
        probation_until_ms: None,
    }
}

/// The order in which [`admit`] refuses, found by clearing one cause at a time from a request
/// that has every cause at once.
fn refusal_order() -> Vec<Refusal> {
    let mut org = OrgState::Disabled;
    let mut subject: Option<Subject> = None;
    let mut allowed = Allowed {
        passkey: false,
        push: false,
        passcode: false,
    };
    let mut order = Vec::new();
    while let Err(refusal) = admit(org, subject.as_ref(), Method::Push, allowed, NOW) {
        assert!(!order.contains(&refusal), "{refusal:?} twice: {order:?}");
        order.push(refusal);
        let mut clear = |f: fn(&mut Subject)| f(subject.as_mut().unwrap());
        match refusal {
            Refusal::OrgDisabled => org = OrgState::Enabled,
            Refusal::UnknownUser => {
                subject = Some(Subject {
                    status: UserStatus::Disabled,
                    locked_until_ms: Some(NOW + 1),
                    push_muted_until_ms: Some(NOW + 1),
                    ..active()
                });
            }
            Refusal::Disabled => clear(|s| s.status = UserStatus::Active),
            Refusal::LockedOut => clear(|s| s.locked_until_ms = None),
            Refusal::NotAllowed => allowed = Allowed::ALL,
            Refusal::PushMuted => clear(|s| s.push_muted_until_ms = None),
            Refusal::PushStorm => panic!("the store decides the storm limit, not admit"),
        }
    }
    order
}

/// The part of docs/security.md under `heading`, up to the next heading of its level.
fn security_page_section(heading: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/security.md");
    let page = std::fs::read_to_string(path).unwrap();
    let start = page
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    let rest = &page[start + heading.len()..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_owned()
}

/// Issue 11: docs/security.md lists the gate's checks in the order the code makes them (the
/// disabled organisation first), and its audited reasons include every reason the gate and
/// the store give.
#[test]
fn security_page_states_the_gates_order_and_every_reason() {
    let order: Vec<&str> = refusal_order().into_iter().map(Refusal::as_str).collect();
    assert_eq!(order.len(), Refusal::ALL.len() - 1, "{order:?}");
    let expected: Vec<&str> = Refusal::ALL[..order.len()]
        .iter()
        .map(|r| r.as_str())
        .collect();
    assert_eq!(order, expected, "Refusal::ALL is not in the order of admit");
    let gate = security_page_section("## The decision gate");
    let listed: Vec<&str> = gate
        .lines()
        .filter_map(|line| {
            let (number, rest) = line.split_once(". `")?;
            number.parse::<u32>().ok()?;
            rest.split('`').next()
        })
        .collect();
    assert_eq!(listed, order, "docs/security.md, the gate's order");
    let audit = security_page_section("## What the audit log records");
    for refusal in Refusal::ALL {
        let code = format!("`{}`", refusal.as_str());
        assert!(
            audit.contains(&code),
            "docs/security.md does not list {code}"
        );
    }
}

#[test]
fn frozen_accounts_change_nothing_and_probation_holds_recovery_methods() {
    let frozen = Subject {
        factors_frozen: true,
        ..active()
    };
    for what in [Alteration::Factors, Alteration::RecoveryMethods] {
        assert_eq!(
            may_alter(&frozen, what, NOW),
            Err(AlterationRefusal::Frozen)
        );
        assert_eq!(may_alter(&active(), what, NOW), Ok(()));
    }
    let recovered = Subject {
        probation_until_ms: Some(NOW + 1),
        ..active()
    };
    assert_eq!(may_alter(&recovered, Alteration::Factors, NOW), Ok(()));
    assert_eq!(
        may_alter(&recovered, Alteration::RecoveryMethods, NOW),
        Err(AlterationRefusal::Probation)
    );
    assert_eq!(
        may_alter(&recovered, Alteration::RecoveryMethods, NOW + 1),
        Ok(())
    );
}

#[test]
fn checks_come_in_a_fixed_order() {
    let mut s = active();
    for subject in [None, Some(&s)] {
        assert_eq!(
            admit(
                OrgState::Disabled,
                subject,
                Method::Passkey,
                Allowed::ALL,
                NOW
            ),
            Err(Refusal::OrgDisabled),
            "the organisation comes first"
        );
    }
    assert_eq!(
        admit(OrgState::Enabled, None, Method::Passkey, Allowed::ALL, NOW),
        Err(Refusal::UnknownUser)
    );
    s.push_muted_until_ms = Some(NOW + 1);
    assert_eq!(
        admit(OrgState::Enabled, Some(&s), Method::Push, Allowed::ALL, NOW),
        Err(Refusal::PushMuted)
    );
    assert_eq!(
        admit(
            OrgState::Enabled,
            Some(&s),
            Method::Passcode,
            Allowed::ALL,
            NOW
        ),
        Ok(())
    );
    s.locked_until_ms = Some(NOW + 1);
    for m in Method::ALL {
        assert_eq!(
            admit(OrgState::Enabled, Some(&s), m, Allowed::ALL, NOW),
            Err(Refusal::LockedOut)
        );
    }
    s.status = UserStatus::Disabled;
    for m in Method::ALL {
        assert_eq!(
            admit(OrgState::Enabled, Some(&s), m, Allowed::ALL, NOW),
            Err(Refusal::Disabled)
        );
    }
}

#[test]
fn a_lock_or_mute_that_ran_out_has_no_effect() {
    let s = Subject {
        locked_until_ms: Some(NOW),
        push_muted_until_ms: Some(NOW - 5),
        ..active()
    };
    for m in Method::ALL {
        assert_eq!(
            admit(OrgState::Enabled, Some(&s), m, Allowed::ALL, NOW),
            Ok(())
        );
    }
}

#[test]
fn policy_refuses_methods_it_does_not_allow() {
    let only_passkeys = Allowed {
        passkey: true,
        push: false,
        passcode: false,
    };
    let s = active();
    assert_eq!(
        admit(
            OrgState::Enabled,
            Some(&s),
            Method::Passkey,
            only_passkeys,
            NOW
        ),
        Ok(())
    );
    assert_eq!(
        admit(
            OrgState::Enabled,
            Some(&s),
            Method::Push,
            only_passkeys,
            NOW
        ),
        Err(Refusal::NotAllowed)
    );
    let all = Enrolled {
        passkey: true,
        push: true,
        passcode: true,
    };
    assert_eq!(
        offer(OrgState::Enabled, Some(&s), all, only_passkeys, NOW),
        Offer::Methods {
            methods: vec![Method::Passkey],
            push_muted: false
        }
    );
}

#[test]
fn muted_push_is_not_offered_but_passcodes_are() {
    let s = Subject {
        push_muted_until_ms: Some(NOW + 60_000),
        ..active()
    };
    let push_and_codes = Enrolled {
        passkey: false,
        push: true,
        passcode: true,
    };
    assert_eq!(
        offer(
            OrgState::Enabled,
            Some(&s),
            push_and_codes,
            Allowed::ALL,
            NOW
        ),
        Offer::Methods {
            methods: vec![Method::Passcode],
            push_muted: true
        }
    );
    let only_push = Enrolled {
        push: true,
        ..Enrolled::default()
    };
    assert_eq!(
        offer(OrgState::Enabled, Some(&s), only_push, Allowed::ALL, NOW),
        Offer::Refused(Refusal::PushMuted)
    );
}

#[test]
fn nothing_enrolled_is_its_own_answer_only_for_admissible_accounts() {
    assert_eq!(
        offer(
            OrgState::Enabled,
            Some(&active()),
            Enrolled::default(),
            Allowed::ALL,
            NOW
        ),
        Offer::NothingEnrolled
    );
    let disabled = Subject {
        status: UserStatus::Disabled,
        ..active()
    };
    assert_eq!(
        offer(
            OrgState::Enabled,
            Some(&disabled),
            Enrolled::default(),
            Allowed::ALL,
            NOW
        ),
        Offer::Refused(Refusal::Disabled)
    );
    assert_eq!(
        offer(
            OrgState::Enabled,
            None,
            Enrolled::default(),
            Allowed::ALL,
            NOW
        ),
        Offer::Refused(Refusal::UnknownUser)
    );
}

fn subject() -> impl Strategy<Value = Option<Subject>> {
    let time = prop_oneof![Just(None), (NOW - 10..NOW + 10).prop_map(Some)];
    let status = prop_oneof![Just(UserStatus::Active), Just(UserStatus::Disabled)];
    prop::option::weighted(
        0.9,
        (status, time.clone(), time).prop_map(|(status, locked, muted)| Subject {
            status,
            locked_until_ms: locked,
            push_muted_until_ms: muted,
            factors_frozen: false,
            probation_until_ms: None,
        }),
    )
}

fn allowed() -> impl Strategy<Value = Allowed> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(passkey, push, passcode)| Allowed {
        passkey,
        push,
        passcode,
    })
}

fn enrolled() -> impl Strategy<Value = Enrolled> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(passkey, push, passcode)| Enrolled {
        passkey,
        push,
        passcode,
    })
}

fn org_state() -> impl Strategy<Value = OrgState> {
    prop::sample::select(vec![OrgState::Enabled, OrgState::Disabled])
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(Method::ALL.to_vec())
}

proptest! {
    /// What is offered is exactly what would be admitted, among the enrolled methods.
    #[test]
    fn offer_agrees_with_admit(o in org_state(), s in subject(), e in enrolled(), a in allowed(), now in NOW - 20..NOW + 20) {
        match offer(o, s.as_ref(), e, a, now) {
            Offer::Methods { methods, .. } => {
                for m in Method::ALL {
                    let offered = methods.contains(&m);
                    let admitted = e.has(m) && admit(o, s.as_ref(), m, a, now).is_ok();
                    prop_assert_eq!(offered, admitted, "{:?}", m);
                }
            }
            Offer::NothingEnrolled => {
                prop_assert!(!e.any());
                prop_assert!(s.is_some());
                prop_assert_eq!(o, OrgState::Enabled);
            }
            Offer::Refused(refusal) => {
                for m in Method::ALL.into_iter().filter(|m| e.has(*m)) {
                    prop_assert!(admit(o, s.as_ref(), m, a, now).is_err());
                }
                if matches!(refusal, Refusal::OrgDisabled | Refusal::UnknownUser | Refusal::Disabled | Refusal::LockedOut) {
                    for m in Method::ALL {
                        prop_assert_eq!(admit(o, s.as_ref(), m, a, now), Err(refusal));
                    }
                }
            }
        }
    }

    /// Allowing more never refuses what was admitted; a refusal for the account itself
    /// (unknown, disabled, locked) does not depend on the method or the policy.
    #[test]
    fn admit_is_monotone_in_policy(o in org_state(), s in subject(), m in method(), a in allowed(), b in allowed()) {
        let wider = Allowed {
            passkey: a.passkey || b.passkey,
            push: a.push || b.push,
            passcode: a.passcode || b.passcode,
        };
        if admit(o, s.as_ref(), m, a, NOW).is_ok() {
            prop_assert_eq!(admit(o, s.as_ref(), m, wider, NOW), Ok(()));
        }
        if let Err(r @ (Refusal::OrgDisabled | Refusal::UnknownUser | Refusal::Disabled | Refusal::LockedOut)) =
            admit(o, s.as_ref(), m, a, NOW)
        {
            for other in Method::ALL {
                prop_assert_eq!(admit(o, s.as_ref(), other, b, NOW), Err(r));
            }
        }
    }

    /// Nobody disabled, locked or unknown is ever admitted; a muted account never gets a push.
    #[test]
    fn refused_states_are_never_admitted(o in org_state(), s in subject(), m in method(), a in allowed(), now in NOW - 20..NOW + 20) {
        if admit(o, s.as_ref(), m, a, now).is_ok() {
            prop_assert_eq!(o, OrgState::Enabled);
            let s = s.unwrap();
            prop_assert_eq!(s.status, UserStatus::Active);
            prop_assert!(!s.locked(now));
            prop_assert!(a.allows(m));
            prop_assert!(!(m == Method::Push && s.push_muted(now)));
        }
    }

    /// A disabled organisation refuses everyone in it — unknown, active, locked — with every
    /// method and policy, and offers nothing; enabled again, it decides as before.
    #[test]
    fn a_disabled_organisation_admits_nobody(s in subject(), e in enrolled(), m in method(), a in allowed(), now in NOW - 20..NOW + 20) {
        prop_assert_eq!(admit(OrgState::Disabled, s.as_ref(), m, a, now), Err(Refusal::OrgDisabled));
        prop_assert_eq!(offer(OrgState::Disabled, s.as_ref(), e, a, now), Offer::Refused(Refusal::OrgDisabled));
        prop_assert_ne!(admit(OrgState::Enabled, s.as_ref(), m, a, now), Err(Refusal::OrgDisabled));
    }
}
