//! Managing organisations: unique names, which one a request names, and disabling one.

use super::*;

#[tokio::test]
async fn names_are_unique_and_either_name_or_id_finds_an_organisation() {
    let (_dir, p) = pair().await;
    let now = p.now();
    let ward = p.ward();
    let taken = ward.admin().create_org(&Actor::Cli, "Org A", now).await;
    assert!(matches!(taken, Err(CoreError::Conflict(_))), "{taken:?}");
    for bad in ["", " padded ", "a\u{7}b", &"x".repeat(101)] {
        let refused = ward.admin().create_org(&Actor::Cli, bad, now).await;
        assert!(
            matches!(refused, Err(CoreError::InvalidInput { .. })),
            "{bad:?}: {refused:?}"
        );
    }
    assert_eq!(ward.admin().org_named("Org A").await.unwrap().id, p.a.org);
    assert_eq!(
        ward.admin().org_named(p.a.org.as_str()).await.unwrap().id,
        p.a.org
    );
    assert_eq!(
        ward.admin().org_named("default").await.unwrap().name,
        "Default"
    );
    let renamed = ward
        .admin()
        .rename_org(&Actor::Cli, "Org A", "Acme", now)
        .await;
    assert_eq!(renamed.unwrap().id, p.a.org);
    assert_eq!(
        ward.admin().resolve_org(Some("Acme")).await.unwrap(),
        p.a.org
    );
    let clash = ward
        .admin()
        .rename_org(&Actor::Cli, "Acme", "Org B", now)
        .await;
    assert!(matches!(clash, Err(CoreError::Conflict(_))), "{clash:?}");
    // Three organisations now: a request must name one.
    let unnamed = ward.admin().resolve_org(None).await;
    assert!(
        matches!(unnamed, Err(CoreError::InvalidInput { .. })),
        "{unnamed:?}"
    );
    let listed: Vec<String> = ward
        .admin()
        .list_orgs()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(listed, ["Default", "Acme", "Org B"]);
    // Every change is in the organisation's own log.
    let audit = audit_of(p.f.store.as_ref()).await;
    for action in ["org.create", "org.rename"] {
        assert!(
            audit
                .iter()
                .any(|e| e["action"] == action && e["org_id"] == p.a.org.as_str()),
            "{action}"
        );
    }
}

#[tokio::test]
async fn the_only_organisation_needs_no_name() {
    let db = TempSqlite::new();
    let f = fixture_on(db.store("node-1").await, settings()).await;
    let only = f.ward.admin().resolve_org(None).await.unwrap();
    assert_eq!(only.as_str(), ward_store::DEFAULT_ORG);
}

/// Disabling B refuses every login in B at every door, leaves A alone, keeps B's data and
/// ends B's sessions; enabling B lets its users in again.
async fn disabling(p: Pair) {
    let now = p.now();
    let b_alice = p.f.store.user_by_name(p.b.org.as_str(), "alice").await;
    let b_alice = b_alice.unwrap().unwrap();
    let opened = p
        .ward()
        .portal()
        .open_session(&b_alice, "passkey", None, now);
    let token = opened.await.unwrap().token;
    assert!(
        p.ward()
            .portal()
            .session(&token, now)
            .await
            .unwrap()
            .is_some()
    );
    let b_bob = p.id(&p.b.org, "bob").await;
    p.ward()
        .admin()
        .set_org_disabled(&Actor::Cli, "Org B", true, now)
        .await
        .unwrap();
    let alice = UserRef::Name("alice".into());
    let code = p.code(SEED_B);
    let passcode = p
        .ward()
        .auth()
        .passcode(&p.b.api, &alice, &code, false, p.now());
    assert!(!passcode.await.unwrap().allowed);
    let preauth = p
        .ward()
        .auth()
        .preauth(&p.b.api, &alice, p.now())
        .await
        .unwrap();
    assert!(
        matches!(preauth, PreauthOutcome::Deny { .. }),
        "{preauth:?}"
    );
    let push = p
        .ward()
        .auth()
        .start_api_push(&p.b.api, &alice, PushRequest::default(), true, p.now())
        .await;
    assert!(matches!(push.unwrap(), PushOutcome::Decided(_)));
    let portal = p
        .ward()
        .portal()
        .totp_sign_in(&p.b.org, "alice", &p.code(SEED_B), p.now())
        .await;
    assert!(matches!(portal, Err(CoreError::Unauthenticated)));
    let ended = p.ward().portal().session(&token, p.now()).await.unwrap();
    assert!(ended.is_none(), "B's sessions end");
    // A is untouched; B's data is kept.
    assert!(passcode_of(&p, &p.a.api, SEED_A).await);
    assert_eq!(p.id(&p.b.org, "bob").await, b_bob);
    let audit = audit_of(p.f.store.as_ref()).await;
    let refusals = audit
        .iter()
        .filter(|e| e["org_id"] == p.b.org.as_str() && e["details"]["reason"] == "org_disabled")
        .count();
    assert!(
        refusals >= 3,
        "each refusal audited as org_disabled: {refusals}"
    );
    assert!(audit.iter().any(|e| e["action"] == "org.disable"));
    p.ward()
        .admin()
        .set_org_disabled(&Actor::Cli, "Org B", false, p.now())
        .await
        .unwrap();
    assert!(passcode_of(&p, &p.b.api, SEED_B).await);
}

async fn passcode_of(p: &Pair, ctx: &AuthContext, seed: &str) -> bool {
    let alice = UserRef::Name("alice".into());
    let code = p.code(seed);
    let decided = p.ward().auth().passcode(ctx, &alice, &code, false, p.now());
    decided.await.unwrap().allowed
}

#[tokio::test]
async fn a_disabled_organisation_refuses_every_login_on_sqlite() {
    let (_dir, p) = pair().await;
    disabling(p).await;
}

#[tokio::test]
async fn a_disabled_organisation_refuses_every_login_on_postgres() {
    on_postgres(disabling).await;
}
