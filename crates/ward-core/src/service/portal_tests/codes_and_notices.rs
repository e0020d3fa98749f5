//! Recovery codes, notices for every change, and the "this wasn't me" freeze.

use super::*;

/// Recovery codes look like `ABCD-EFGH-IJKL-MNOP`: 16 Base32 characters, 80 bits.
fn well_formed(code: &str) -> bool {
    let groups: Vec<&str> = code.split('-').collect();
    groups.len() == 4
        && groups.iter().all(|g| {
            g.len() == 4
                && g.bytes()
                    .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        })
}

#[tokio::test]
async fn recovery_codes_work_once_and_a_new_set_replaces_the_old() {
    let f = fixture(settings()).await;
    let alice = f.user("alice").await;
    let bob = f.user("bob").await;
    let session = f.session_for(alice.as_str()).await.session;
    let codes = f
        .ward
        .portal()
        .regenerate_recovery_codes(&session, f.now())
        .await
        .unwrap();
    assert_eq!(codes.len(), RECOVERY_CODES);
    assert_eq!(RECOVERY_CODES, 10);
    for code in &codes {
        assert!(well_formed(code), "{}", code.as_str());
    }
    let distinct: std::collections::BTreeSet<&str> = codes.iter().map(|c| c.as_str()).collect();
    assert_eq!(distinct.len(), 10);
    assert_eq!(
        f.factors(&alice).await.recovery,
        RecoveryView {
            total: 10,
            remaining: 10,
            created_ms: Some(f.now().timestamp_millis())
        }
    );
    // Only Argon2id hashes are stored.
    let stored = f
        .store
        .recovery_codes_for_user(DEFAULT_ORG, alice.as_str())
        .await
        .unwrap();
    assert_eq!(stored.len(), 10);
    for row in &stored {
        assert!(row.code_hash.starts_with("$argon2id$"), "{}", row.code_hash);
        assert!(
            codes
                .iter()
                .all(|c| !row.code_hash.contains(&c.replace('-', "")))
        );
    }

    // Each code works once, typed with or without dashes, in either case.
    assert!(
        f.ward
            .portal()
            .use_recovery_code(default_org(), &alice, &codes[0], f.now())
            .await
            .unwrap()
    );
    assert!(
        !f.ward
            .portal()
            .use_recovery_code(default_org(), &alice, &codes[0], f.now())
            .await
            .unwrap()
    );
    let typed = codes[1].replace('-', " ").to_lowercase();
    assert!(
        f.ward
            .portal()
            .use_recovery_code(default_org(), &alice, &typed, f.now())
            .await
            .unwrap()
    );
    // (A used code is already a well-formed wrong one: each miss costs an Argon2 check per
    // unused code, so malformed ones are refused before any.)
    for wrong in ["", "short", &"A".repeat(500)] {
        assert!(
            !f.ward
                .portal()
                .use_recovery_code(default_org(), &alice, wrong, f.now())
                .await
                .unwrap()
        );
    }
    // Another user's code is not Bob's.
    assert!(
        !f.ward
            .portal()
            .use_recovery_code(default_org(), &bob, &codes[2], f.now())
            .await
            .unwrap()
    );
    assert_eq!(f.factors(&alice).await.recovery.remaining, 8);
}

#[tokio::test]
async fn a_new_set_of_recovery_codes_replaces_the_old_one() {
    let f = fixture(settings()).await;
    let alice = f.user("alice").await;
    let session = f.session_for(alice.as_str()).await.session;
    let codes = f
        .ward
        .portal()
        .regenerate_recovery_codes(&session, f.now())
        .await
        .unwrap();
    assert!(
        f.ward
            .portal()
            .use_recovery_code(default_org(), &alice, &codes[0], f.now())
            .await
            .unwrap()
    );
    f.clock.advance(TimeDelta::minutes(1));
    let fresh = f
        .ward
        .portal()
        .regenerate_recovery_codes(&session, f.now())
        .await
        .unwrap();
    assert!(
        fresh
            .iter()
            .all(|c| codes.iter().all(|o| o.as_str() != c.as_str()))
    );
    assert!(
        !f.ward
            .portal()
            .use_recovery_code(default_org(), &alice, &codes[2], f.now())
            .await
            .unwrap()
    );
    assert!(
        f.ward
            .portal()
            .use_recovery_code(default_org(), &alice, &fresh[0], f.now())
            .await
            .unwrap()
    );
    assert_eq!(
        f.factors(&alice).await.recovery,
        RecoveryView {
            total: 10,
            remaining: 9,
            created_ms: Some(f.now().timestamp_millis())
        }
    );
    let audit = f.audit().await;
    assert_eq!(events(&audit, "recovery_codes.generate", "ok").len(), 2);
    let exported = audit.iter().map(ToString::to_string).collect::<String>();
    assert!(
        codes
            .iter()
            .chain(&fresh)
            .all(|c| !exported.contains(c.as_str()))
    );
}

#[tokio::test]
async fn every_factor_change_is_notified_with_a_report_link() {
    let mut f = fixture(settings()).await;
    let alice = f.user("alice").await;
    let cookie = f.session_for(alice.as_str()).await.token;
    let session = f.live(&cookie).await;

    let mut laptop = passkey();
    f.register(&alice, &mut laptop, "Laptop").await;
    let added = f.notice().await;
    assert_eq!(added.action, "passkey.add");
    assert_eq!(added.user_id, alice.as_str());
    assert_eq!(added.username, "alice");
    assert_eq!(added.email.as_deref(), Some("alice@example.com"));
    assert_eq!(added.organisation, "Example Org");
    assert!(added.subject.contains("passkey"), "{}", added.subject);
    assert!(added.body.contains("Laptop"), "{}", added.body);
    let report_url = added.report_url.clone().unwrap();
    assert!(
        report_url.starts_with("https://localhost:8443/portal/report/"),
        "{report_url}"
    );

    // With a passkey on the account, adding a factor needs a fresh check.
    assert!(matches!(
        f.ward.portal().totp_setup_start(&session, f.now()).await,
        Err(CoreError::Forbidden(_))
    ));
    let stepped = f.step_up(&cookie, &mut laptop).await;
    let (app, _, _) = add_app(&f, &stepped, "App").await;
    let totp_added = f.notice().await;
    assert_eq!(totp_added.action, "factor.totp.add");
    assert!(totp_added.body.contains("App"), "{}", totp_added.body);

    f.ward
        .portal()
        .remove_factor(&stepped, FactorKind::Totp, &app.id, f.now())
        .await
        .unwrap();
    let removed = f.notice().await;
    assert_eq!(removed.action, "factor.remove");
    assert!(removed.report_url.is_some());
    assert_ne!(removed.report_url, added.report_url);

    f.ward
        .portal()
        .regenerate_recovery_codes(&stepped, f.now())
        .await
        .unwrap();
    assert_eq!(f.notice().await.action, "recovery_codes.generate");
}

#[allow(clippy::too_many_lines)] // one scenario, step by step
#[tokio::test]
async fn this_wasnt_me_freezes_factor_changes_until_an_administrator_unfreezes() {
    let mut f = fixture(settings()).await;
    let alice = f.user("alice").await;
    let cookie = f.session_for(alice.as_str()).await.token;
    let mut laptop = passkey();
    let first = f.register(&alice, &mut laptop, "Laptop").await;
    let report_url = f.notice().await.report_url.unwrap();
    let stepped = f.step_up(&cookie, &mut laptop).await;

    // Following the notice's link freezes the account.
    let token = token_of(&report_url);
    assert!(matches!(
        f.ward
            .portal()
            .report_link_state(&token, f.now())
            .await
            .unwrap(),
        LinkState::Valid { .. }
    ));
    // An enrolment link is not a report link.
    let day = TimeDelta::days(1);
    let enrol =
        f.ward
            .portal()
            .create_enrol_link(default_org(), &Actor::Cli, "alice", day, f.now());
    let enrol = enrol.await.unwrap();
    let refused = f
        .ward
        .portal()
        .report_not_me(&token_of(&enrol.url), f.now())
        .await;
    assert!(
        matches!(refused, Err(CoreError::NotFound(_))),
        "{refused:?}"
    );
    assert!(f.alerts.taken().is_empty());

    f.clock.advance(TimeDelta::minutes(3));
    let disowned = f
        .ward
        .portal()
        .report_not_me(&token, f.now())
        .await
        .unwrap();
    assert_eq!(disowned, "passkey.add");
    assert!(!f.is_live(&cookie).await);
    assert_eq!(
        f.row(alice.as_str()).await.factors_frozen_ms,
        Some(f.now().timestamp_millis())
    );
    assert_eq!(
        f.alerts.taken(),
        vec![Alert::AccountFrozen {
            org_id: DEFAULT_ORG.into(),
            user_id: alice.to_string(),
            disowned: "passkey.add".into(),
            at_ms: f.now().timestamp_millis(),
        }]
    );
    let audit = f.audit().await;
    let frozen = events(&audit, "account.freeze", "ok");
    assert_eq!(frozen.len(), 1);
    assert_eq!(frozen[0]["target"], alice.as_str());
    assert_eq!(frozen[0]["details"]["disowned"], "passkey.add");

    // The link works once.
    assert_eq!(
        f.ward
            .portal()
            .report_link_state(&token, f.now())
            .await
            .unwrap(),
        LinkState::Used
    );
    let again = f.ward.portal().report_not_me(&token, f.now()).await;
    assert!(matches!(again, Err(CoreError::Conflict(_))), "{again:?}");
    assert!(f.alerts.taken().is_empty());

    // Every factor change is refused while frozen, even from a session opened afterwards.
    let fresh = f.session_for(alice.as_str()).await;
    let mut fresh_session = fresh.session.clone();
    fresh_session.step_up_until_ms = Some((f.now() + TimeDelta::minutes(5)).timestamp_millis());
    for s in [&stepped, &fresh_session] {
        let now = f.now();
        let frozen = [
            f.ward
                .portal()
                .passkey_register_start(default_org(), &alice, now)
                .await
                .err(),
            f.ward.portal().totp_setup_start(s, now).await.err(),
            f.ward
                .portal()
                .rename_factor(s, FactorKind::Passkey, &first.id, "Mine", now)
                .await
                .err(),
            f.ward
                .portal()
                .remove_factor(s, FactorKind::Passkey, &first.id, now)
                .await
                .err(),
            f.ward
                .portal()
                .regenerate_recovery_codes(s, now)
                .await
                .err(),
        ];
        for refused in frozen {
            assert!(
                matches!(refused, Some(CoreError::Forbidden(_))),
                "{refused:?}"
            );
        }
    }
    let listed = f.factors(&alice).await.passkeys;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].name.as_str()),
        (first.id.as_str(), "Laptop")
    );

    // An administrator unfreezes.
    f.ward
        .portal()
        .unfreeze_user(default_org(), &Actor::Cli, "alice", f.now())
        .await
        .unwrap();
    assert_eq!(f.row(alice.as_str()).await.factors_frozen_ms, None);
    let mut phone = passkey();
    f.register(&alice, &mut phone, "Phone").await;
    assert_eq!(f.notice().await.action, "passkey.add");
    let stepped = f.step_up(&fresh.token, &mut phone).await;
    f.ward
        .portal()
        .totp_setup_start(&stepped, f.now())
        .await
        .unwrap();
    assert_eq!(events(&f.audit().await, "account.unfreeze", "ok").len(), 1);
}
