//! Security-key policy, user verification, and ceremonies across two PostgreSQL nodes.

use super::*;
use crate::model::UserId;

fn hardware_policy(ca_pem: &str, aaguid: Uuid) -> FactorPolicy {
    FactorPolicy {
        synced_passkeys: false,
        attestation_ca_pems: vec![ca_pem.to_owned()],
        aaguids: vec![aaguid],
        ..FactorPolicy::default()
    }
}

#[tokio::test]
async fn hardware_groups_accept_only_attested_keys_of_allowed_models() {
    let (mut key, ca_pem) = Authr::security_key();
    let mut s = settings();
    s.factors.groups.insert(
        "hardware".into(),
        hardware_policy(&ca_pem, softtoken::AAGUID),
    );
    let other_model = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
    s.factors
        .groups
        .insert("other-model".into(), hardware_policy(&ca_pem, other_model));
    let f = fixture(s).await;
    let now = f.now();
    for (name, group) in [
        ("alice", "hardware"),
        ("bob", "other-model"),
        ("carol", "hardware"),
        ("dave", "hardware"),
    ] {
        f.user(name).await;
        f.ward
            .portal()
            .set_policy_group(default_org(), &Actor::Cli, name, Some(group), now)
            .await
            .unwrap();
    }
    let alice = f.row_by_name("alice").await.user_id;
    assert_eq!(
        f.row(&alice).await.policy_group.as_deref(),
        Some("hardware")
    );

    // An attested key of an allowed model from a trusted vendor.
    let start = f
        .ward
        .portal()
        .passkey_register_start(default_org(), &UserId::new(alice.clone()), now)
        .await
        .unwrap();
    assert_eq!(start.options["publicKey"]["attestation"], "direct");
    let answer = key.register(&start.options).unwrap();
    let view = f
        .ward
        .portal()
        .passkey_register_finish(
            default_org(),
            &UserId::new(alice.clone()),
            &start.ceremony,
            &answer,
            "YubiKey",
            now,
        )
        .await
        .unwrap();
    assert_eq!(view.kind, "security-key");
    assert_eq!(view.aaguid, Some(softtoken::AAGUID.to_string()));
    assert!(!view.backup_eligible);
    assert_eq!(
        f.factors(&UserId::new(alice.clone())).await.passkeys,
        vec![view.clone()]
    );
    let audit = f.audit().await;
    let added = events(&audit, "passkey.add", "ok");
    assert_eq!(added[0]["details"]["kind"], "security-key");
    assert_eq!(
        added[0]["details"]["aaguid"],
        softtoken::AAGUID.to_string().as_str()
    );
    // ... and it signs in.
    let check = f.check(SIGN_IN, None, &mut key).await.unwrap();
    assert_eq!(check.user.user_id, alice);

    // The same key is not a model Bob's group allows.
    let bob = f.row_by_name("bob").await.user_id;
    let refused = attempt(&f, &UserId::new(bob.clone()), &mut key).await;
    assert!(
        matches!(&refused, Err(CoreError::InvalidInput { reason, .. }) if reason.contains("not allowed")),
        "{refused:?}"
    );

    // A passkey without attestation is refused in the hardware group.
    let carol = f.row_by_name("carol").await.user_id;
    let refused = attempt(&f, &UserId::new(carol.clone()), &mut passkey()).await;
    assert!(
        matches!(&refused, Err(CoreError::InvalidInput { reason, .. }) if reason.contains("not allowed")),
        "{refused:?}"
    );

    // So is a key of the allowed model whose attestation chains to another vendor's root.
    let dave = f.row_by_name("dave").await.user_id;
    let (mut foreign, _other_ca) = Authr::security_key();
    let refused = attempt(&f, &UserId::new(dave.clone()), &mut foreign).await;
    assert!(refused.is_err(), "{refused:?}");

    for user in [&bob, &carol, &dave] {
        assert!(
            f.factors(&UserId::new(user.clone()))
                .await
                .passkeys
                .is_empty()
        );
    }
    let audit = f.audit().await;
    assert_eq!(events(&audit, "passkey.add", "ok").len(), 1);
    let denied: Vec<_> = events(&audit, "passkey.add", "deny")
        .iter()
        .map(|e| e["target"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(denied, [bob, carol, dave]);
}

/// Registers `authr` for the user; returns what the finish said.
async fn attempt<A: AuthenticatorBackend>(
    f: &Fixture,
    user_id: &UserId,
    authr: &mut Authr<A>,
) -> CoreResult<PasskeyView> {
    let start = f
        .ward
        .portal()
        .passkey_register_start(default_org(), user_id, f.now())
        .await
        .unwrap();
    let answer = authr.register(&start.options).unwrap();
    f.ward
        .portal()
        .passkey_register_finish(
            default_org(),
            user_id,
            &start.ceremony,
            &answer,
            "Key",
            f.now(),
        )
        .await
}

#[tokio::test]
async fn an_authenticator_that_does_not_verify_the_user_is_refused() {
    let f = fixture(settings()).await;
    let alice = f.user("alice").await;

    // An authenticator that cannot verify its user does not even answer Ward's request ...
    let mut no_uv = Authr::new(SoftPasskey::new(false));
    let start = f
        .ward
        .portal()
        .passkey_register_start(default_org(), &alice, f.now())
        .await
        .unwrap();
    assert!(no_uv.register(&start.options).is_err());
    // ... and when a client lowers the requirement, its answer is refused.
    no_uv.skip_uv = true;
    let refused = attempt(&f, &alice, &mut no_uv).await;
    assert!(
        matches!(refused, Err(CoreError::InvalidInput { .. })),
        "{refused:?}"
    );
    assert!(f.factors(&alice).await.passkeys.is_empty());

    // A registered passkey whose assertion lacks user verification is refused too.
    let mut key = passkey();
    let view = f.register(&alice, &mut key, "Laptop").await;
    key.skip_uv = true;
    for (purpose, user) in [(SIGN_IN, None), (STEP_UP, Some(alice.as_str()))] {
        let refused = f.check(purpose, user, &mut key).await;
        assert!(
            matches!(refused, Err(CoreError::InvalidInput { .. })),
            "{refused:?}"
        );
    }
    assert_eq!(f.sign_count(&view.id).await, 0);
    assert_eq!(f.factors(&alice).await.passkeys[0].last_used_ms, None);
    key.skip_uv = false;
    f.check(SIGN_IN, None, &mut key).await.unwrap();

    let audit = f.audit().await;
    assert_eq!(events(&audit, "passkey.add", "deny").len(), 1);
    assert_eq!(events(&audit, "passkey.auth", "deny").len(), 2);
    assert_eq!(events(&audit, "passkey.auth", "allow").len(), 1);
}

#[tokio::test]
async fn ceremonies_started_on_one_node_finish_on_another_once() {
    on_postgres(two_nodes).await;
}

#[allow(clippy::too_many_lines)] // one scenario, step by step
async fn two_nodes(url: String) {
    let open = |chain: &'static str| ward_testkit::db::postgres(&url, chain);
    let a = fixture_on(open("node-a").await, settings()).await;
    let b = fixture_on(open("node-b").await, settings()).await;
    let now = a.now();
    let alice = a.user("alice").await;
    let mut key = passkey();

    // Registration started on A, finished on B, not again on A.
    let start = a
        .ward
        .portal()
        .passkey_register_start(default_org(), &alice, now)
        .await
        .unwrap();
    let answer = key.register(&start.options).unwrap();
    let view = b
        .ward
        .portal()
        .passkey_register_finish(
            default_org(),
            &alice,
            &start.ceremony,
            &answer,
            "Laptop",
            now,
        )
        .await
        .unwrap();
    assert_eq!(a.factors(&alice).await.passkeys, vec![view.clone()]);
    let again = a
        .ward
        .portal()
        .passkey_register_finish(
            default_org(),
            &alice,
            &start.ceremony,
            &answer,
            "Laptop",
            now,
        )
        .await;
    assert!(matches!(again, Err(CoreError::Expired(_))), "{again:?}");

    // Sign-in started on B, finished on A, not again on B.
    let start = b
        .ward
        .portal()
        .passkey_auth_start(default_org(), SIGN_IN, None, now)
        .await
        .unwrap();
    let answer = key.authenticate(&start.options).unwrap();
    let check = a
        .ward
        .portal()
        .passkey_auth_finish(default_org(), SIGN_IN, &start.ceremony, &answer, now)
        .await
        .unwrap();
    assert_eq!(check.user.user_id, alice.as_str());
    let again = b
        .ward
        .portal()
        .passkey_auth_finish(default_org(), SIGN_IN, &start.ceremony, &answer, now)
        .await;
    assert!(matches!(again, Err(CoreError::Expired(_))), "{again:?}");
    assert_eq!(b.sign_count(&view.id).await, 1);

    // Both nodes finishing the same ceremony at once: exactly one wins.
    let start = a
        .ward
        .portal()
        .passkey_auth_start(default_org(), STEP_UP, Some(alice.as_str()), now)
        .await
        .unwrap();
    let answer = key.authenticate(&start.options).unwrap();
    let (on_a, on_b) = tokio::join!(
        a.ward
            .portal()
            .passkey_auth_finish(default_org(), STEP_UP, &start.ceremony, &answer, now),
        b.ward
            .portal()
            .passkey_auth_finish(default_org(), STEP_UP, &start.ceremony, &answer, now),
    );
    assert_eq!(
        u8::from(on_a.is_ok()) + u8::from(on_b.is_ok()),
        1,
        "{on_a:?} {on_b:?}"
    );
    assert!(matches!(
        on_a.err().or(on_b.err()),
        Some(CoreError::Expired(_))
    ));
    assert_eq!(a.sign_count(&view.id).await, 2);

    // Each node wrote to its own audit chain, and both verify.
    let report = crate::audit::verify(a.store.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.chains, 2);
    let audit = audit_of(a.store.as_ref()).await;
    assert_eq!(events(&audit, "passkey.auth", "allow").len(), 2);
    a.store.close().await;
    b.store.close().await;
}
