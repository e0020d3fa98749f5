//! Nothing of organisation B is visible, usable or reachable from organisation A.

use super::*;
use crate::model::DeviceId;

/// Every isolation check, on one pair.
async fn isolated(p: Pair) {
    preauth_sees_only_its_own_users(&p).await;
    passcodes_are_checked_against_its_own_users(&p).await;
    pushes_reach_only_its_own_users(&p).await;
    transactions_are_read_only_by_their_organisation(&p).await;
    portal_sign_in_stays_in_its_organisation(&p).await;
    helpdesk_sees_only_its_own_users(&p).await;
    recovery_cases_stay_in_their_organisation(&p).await;
    audit_events_carry_their_organisation(&p).await;
}

#[tokio::test]
async fn organisations_are_isolated_on_sqlite() {
    let (_dir, p) = pair().await;
    isolated(p).await;
}

#[tokio::test]
async fn organisations_are_isolated_on_postgres() {
    on_postgres(isolated).await;
}

async fn preauth_sees_only_its_own_users(p: &Pair) {
    let now = p.now();
    // Bob exists only in B: A's application is told what it is told of anyone unknown.
    let bob = UserRef::Name("bob".into());
    let from_a = p.ward().auth().preauth(&p.a.api, &bob, now).await.unwrap();
    let unknown = p
        .ward()
        .auth()
        .preauth(&p.a.api, &UserRef::Name("nobody".into()), now)
        .await
        .unwrap();
    assert_eq!(from_a, unknown, "B's bob looks unknown to A");
    assert!(matches!(
        p.ward().auth().preauth(&p.b.api, &bob, now).await.unwrap(),
        PreauthOutcome::Auth { .. }
    ));
    // Alice exists in both: each application sees its own Alice's authenticator only.
    let alice = UserRef::Name("alice".into());
    for (tenant, other) in [(&p.a, &p.b), (&p.b, &p.a)] {
        let PreauthOutcome::Auth { devices, .. } = p
            .ward()
            .auth()
            .preauth(&tenant.api, &alice, now)
            .await
            .unwrap()
        else {
            panic!("alice has a factor");
        };
        let ids: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
        let own = p.id(&tenant.org, "alice").await;
        let own_totps =
            p.f.store
                .totps_for_user(tenant.org.as_str(), own.as_str())
                .await;
        let own_ids: Vec<String> = own_totps.unwrap().into_iter().map(|t| t.totp_id).collect();
        assert_eq!(ids, own_ids);
        let theirs = p.id(&other.org, "alice").await;
        let their_totps =
            p.f.store
                .totps_for_user(other.org.as_str(), theirs.as_str())
                .await;
        assert!(
            their_totps
                .unwrap()
                .iter()
                .all(|t| !ids.contains(&t.totp_id))
        );
    }
    // A user id of B, given to A, is unknown too.
    let bob_id = UserRef::Id(p.id(&p.b.org, "bob").await.into_string());
    assert_eq!(
        p.ward()
            .auth()
            .preauth(&p.a.api, &bob_id, now)
            .await
            .unwrap(),
        unknown
    );
}

async fn passcode_allowed(p: &Pair, ctx: &AuthContext, username: &str, code: &str) -> bool {
    let user = UserRef::Name(username.into());
    p.ward()
        .auth()
        .passcode(ctx, &user, code, false, p.now())
        .await
        .unwrap()
        .allowed
}

async fn passcodes_are_checked_against_its_own_users(p: &Pair) {
    // B's Alice's code does not open A's Alice, nor does B's Bob's code open anything in A.
    assert!(!passcode_allowed(p, &p.a.api, "alice", &p.code(SEED_B)).await);
    assert!(!passcode_allowed(p, &p.a.api, "bob", &p.code(SEED_B)).await);
    assert!(!passcode_allowed(p, &p.b.api, "alice", &p.code(SEED_A)).await);
    // Each Alice's own code works through her own organisation's application.
    assert!(passcode_allowed(p, &p.a.api, "alice", &p.code(SEED_A)).await);
    assert!(passcode_allowed(p, &p.b.api, "alice", &p.code(SEED_B)).await);
    assert!(passcode_allowed(p, &p.b.api, "bob", &p.code(SEED_B)).await);
    // The portal's code sign-in is scoped the same way.
    let code = p.code(SEED_B);
    let own = p
        .ward()
        .portal()
        .totp_sign_in(&p.b.org, "bob", &code, p.now());
    assert!(own.await.is_ok());
    let signed_in = p
        .ward()
        .portal()
        .totp_sign_in(&p.a.org, "bob", &p.code(SEED_B), p.now())
        .await;
    assert!(matches!(signed_in, Err(CoreError::Unauthenticated)));
}

async fn pushes_reach_only_its_own_users(p: &Pair) {
    let phone_a = p.phone(&p.a.org, "alice", 1).await;
    let phone_b = p.phone(&p.b.org, "bob", 2).await;
    let now = p.now();
    let bob = UserRef::Name("bob".into());
    // A's application cannot push to B's Bob: nothing reaches his phone.
    let refused = p
        .ward()
        .auth()
        .start_api_push(&p.a.api, &bob, PushRequest::default(), true, now)
        .await
        .unwrap();
    assert!(matches!(refused, PushOutcome::Decided(_)), "{refused:?}");
    let pending = p
        .ward()
        .devices()
        .pending_push_events(&DeviceId::new(phone_b.id.clone()), now)
        .await;
    assert!(pending.unwrap().is_empty());
    // B's application can; A's phone cannot answer that push, B's phone can.
    let PushOutcome::Started(started) = p
        .ward()
        .auth()
        .start_api_push(&p.b.api, &bob, PushRequest::default(), true, now)
        .await
        .unwrap()
    else {
        panic!("B pushes to its own Bob");
    };
    let events = p
        .ward()
        .devices()
        .pending_push_events(&DeviceId::new(phone_b.id.clone()), now)
        .await;
    let events = events.unwrap();
    let event = events.first().unwrap();
    let number = started.number.as_deref();
    let foreign = phone_a.answer(event, Decision::Approve, number, now.timestamp());
    let answered = p.ward().devices().answer_push(&foreign, now).await;
    assert!(
        matches!(answered, Err(CoreError::NotFound(_))),
        "{answered:?}"
    );
    let status = p.ward().auth().status(&p.b.api, &started.txid, now).await;
    assert_eq!(status.unwrap().result, TxResult::Waiting);
    let own = phone_b.answer(event, Decision::Approve, number, now.timestamp());
    let state = p.ward().devices().answer_push(&own, now).await;
    assert_eq!(state.unwrap(), PushState::Approved);
    // The refused answer is in A's log (its device's organisation), not in B's.
    let audit = audit_of(p.f.store.as_ref()).await;
    let refusal = audit
        .iter()
        .find(|e| e["action"] == "auth.push.answer" && e["outcome"] == "refused")
        .unwrap();
    assert_eq!(refusal["org_id"], p.a.org.as_str());
}

async fn transactions_are_read_only_by_their_organisation(p: &Pair) {
    let alice = UserRef::Name("alice".into());
    let decided = p
        .ward()
        .auth()
        .passcode(&p.b.api, &alice, &p.code(SEED_B), true, p.now())
        .await
        .unwrap();
    let txid = decided.txid.unwrap();
    let from_a = p.ward().auth().status(&p.a.api, &txid, p.now()).await;
    assert!(matches!(from_a, Err(CoreError::NotFound(_))), "{from_a:?}");
    let from_b = p.ward().auth().status(&p.b.api, &txid, p.now()).await;
    assert_eq!(from_b.unwrap().result, TxResult::Allow);
    // Not even the store finds it under A's organisation.
    let in_a = p.f.store.auth_tx(p.a.org.as_str(), &txid).await;
    assert!(in_a.unwrap().is_none());
}

async fn portal_sign_in_stays_in_its_organisation(p: &Pair) {
    let session = p
        .ward()
        .portal()
        .totp_sign_in(&p.b.org, "alice", &p.code(SEED_B), p.now())
        .await
        .unwrap()
        .session;
    assert_eq!(session.org(), p.b.org);
    assert_eq!(session.user_id(), p.id(&p.b.org, "alice").await);
    // The session's factors are its own Alice's; A's Alice's are not reachable through it.
    let own = p
        .ward()
        .portal()
        .factors(&session.org(), &session.user_id())
        .await;
    assert_eq!(own.unwrap().totps.len(), 1);
    let a_alice = p.id(&p.a.org, "alice").await;
    let crossed = p
        .ward()
        .portal()
        .factors(&session.org(), &a_alice)
        .await
        .unwrap();
    assert!(crossed.totps.is_empty() && crossed.devices.is_empty());
}

async fn helpdesk_sees_only_its_own_users(p: &Pair) {
    let agent_a = p.session(&p.a.org, "agent").await;
    let now = p.now();
    let bob = p
        .ward()
        .recovery()
        .helpdesk_lookup(&agent_a, "bob", now)
        .await
        .unwrap();
    assert!(bob.is_none(), "A's agent does not find B's bob");
    let alice = p
        .ward()
        .recovery()
        .helpdesk_lookup(&agent_a, "alice", now)
        .await;
    assert_eq!(
        alice.unwrap().unwrap().user_id,
        p.id(&p.a.org, "alice").await
    );
    let verify = p
        .ward()
        .recovery()
        .helpdesk_verify_caller(&agent_a, "bob", now)
        .await;
    assert!(matches!(verify, Err(CoreError::NotFound(_))), "{verify:?}");
    // A role is held in one organisation: A's Alice is no agent although B has one.
    let plain = p.session(&p.a.org, "alice").await;
    assert!(!p.ward().recovery().is_agent(&plain).await.unwrap());
    assert!(p.ward().recovery().is_agent(&agent_a).await.unwrap());
}

async fn recovery_cases_stay_in_their_organisation(p: &Pair) {
    let now = p.now();
    let a_alice = p.id(&p.a.org, "alice").await;
    let b_alice = p.id(&p.b.org, "alice").await;
    let user = crate::recovery::Opener::User;
    let (_handle, case_id) = p
        .ward()
        .recovery()
        .start(&p.a.org, "alice", user, None, now)
        .await
        .unwrap();
    let case = p.f.store.recovery_case(&case_id).await.unwrap().unwrap();
    assert_eq!(case.org_id, p.a.org.as_str());
    assert_eq!(case.user_id.as_deref(), Some(a_alice.as_str()));
    let open_a = p
        .ward()
        .recovery()
        .open_case_for(&p.a.org, &a_alice)
        .await
        .unwrap();
    assert!(open_a.is_some());
    let open_b = p
        .ward()
        .recovery()
        .open_case_for(&p.b.org, &b_alice)
        .await
        .unwrap();
    assert!(open_b.is_none());
    // B's agent sees no case for B's Alice, and cannot freeze A's.
    let agent_b = p.session(&p.b.org, "agent").await;
    let view = p
        .ward()
        .recovery()
        .helpdesk_lookup(&agent_b, "alice", now)
        .await;
    assert!(view.unwrap().unwrap().case.is_none());
    let frozen = p
        .ward()
        .recovery()
        .helpdesk_flag_fraud(&agent_b, "alice", "test", now);
    assert!(
        !frozen.await.unwrap(),
        "B's agent found no open case to freeze"
    );
    let case = p.f.store.recovery_case(&case_id).await.unwrap().unwrap();
    assert_eq!(case.state, "collecting", "A's case was not frozen");
}

async fn audit_events_carry_their_organisation(p: &Pair) {
    let audit = audit_of(p.f.store.as_ref()).await;
    let a_alice = p.id(&p.a.org, "alice").await;
    let b_bob = p.id(&p.b.org, "bob").await;
    let mut seen = 0;
    // A refusal is recorded where it was asked (A's application naming B's user id is in A's
    // log); everything that happened to a user is in the user's organisation's log.
    for event in audit.iter().filter(|e| e["outcome"] != "deny") {
        if event["target"] == a_alice.as_str() {
            assert_eq!(event["org_id"], p.a.org.as_str(), "{event}");
            seen += 1;
        }
        if event["target"] == b_bob.as_str() {
            assert_eq!(event["org_id"], p.b.org.as_str(), "{event}");
            seen += 1;
        }
    }
    assert!(seen > 4, "the checks above left audit events: {seen}");
}
