//! The recovery pages with two organisations: a recovery started in A for B's bob is the
//! phantom case of a name nobody has, and a case in A takes no proof of B's same-named user.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::tenants::{Reply, Tenant, Tenants, form, get, with_cookie};

const CASE: &str = "__Host-ward_recovery";

/// `POST /recovery/start?org=…` for `username`: the reply and the case handle it hands out.
async fn start(t: &Tenants, tenant: &Tenant, username: &str) -> (Reply, String) {
    let path = format!("/recovery/start?org={}", tenant.name);
    let reply = t.send(form(&path, &format!("username={username}"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let handle = reply.cookie(CASE).unwrap();
    (reply.replacing(&handle, "HANDLE"), handle)
}

fn on_case(req: Request<Body>, handle: &str) -> Request<Body> {
    with_cookie(req, CASE, handle)
}

/// Submits a saved recovery code to the case: the reply (its new handle masked) and the
/// handle the browser now holds.
async fn submit_code(t: &Tenants, handle: &str, code: &str) -> (Reply, String) {
    let reply = t
        .send(on_case(
            form("/recovery/code", &format!("code={code}")),
            handle,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{reply:?}");
    let new = reply.cookie(CASE).unwrap();
    (reply.replacing(&new, "HANDLE"), new)
}

async fn a_recovery_stays_in_its_organisation(t: Tenants) {
    // Started in A, B's bob is a name nobody has: the same page, and a phantom case whose
    // page reads the same; B's bob has no case, in either organisation, and is told nothing.
    let bob_phone = t.phone(&t.b.org, "bob", 2).await;
    let (bob, bob_handle) = start(&t, &t.a, "bob").await;
    let (nobody, nobody_handle) = start(&t, &t.a, "nobody").await;
    assert_eq!(bob, nobody);
    let bob_case = t.send(on_case(get("/recovery/case"), &bob_handle)).await;
    let nobody_case = t.send(on_case(get("/recovery/case"), &nobody_handle)).await;
    assert_eq!(bob_case, nobody_case);
    assert!(
        bob_case
            .text()
            .contains(r#"data-recovery-stage="collecting""#)
    );
    let b_bob = t.user_id(&t.b.org, "bob").await;
    for org in [&t.a.org, &t.b.org] {
        let case = t.store.open_recovery_case(org.as_str(), &b_bob).await;
        assert!(case.unwrap().is_none(), "B's bob has no case");
    }
    assert!(
        t.pending(&bob_phone).await.is_empty(),
        "no notice reached bob"
    );

    // B's alice's saved recovery codes prove nothing about A's alice: her code is refused
    // by A's alice's case exactly as a made-up code is.
    let (_, b_session) = t.session(&t.b.org, "alice", "totp").await;
    let codes = t
        .ward
        .portal()
        .regenerate_recovery_codes(&b_session, t.now())
        .await
        .unwrap();
    let b_code = codes.first().unwrap().to_string();
    let (_, handle) = start(&t, &t.a, "alice").await;
    let a_alice = t.user_id(&t.a.org, "alice").await;
    let case = t.store.open_recovery_case(t.a.org.as_str(), &a_alice).await;
    assert!(case.unwrap().is_some(), "A's alice's case is in A");
    let (foreign, handle) = submit_code(&t, &handle, &b_code).await;
    let (made_up, _) = submit_code(&t, &handle, "AAAA-BBBB-CCCC-DDDD").await;
    assert_eq!(foreign, made_up);
    assert_eq!(
        foreign.header("location"),
        Some("/recovery/case?done=code-refused")
    );

    // In B, the same code is accepted for B's alice.
    let (_, handle) = start(&t, &t.b, "alice").await;
    let (accepted, _) = submit_code(&t, &handle, &b_code).await;
    assert_eq!(
        accepted.header("location"),
        Some("/recovery/case?done=code-accepted")
    );
}

on_both_backends!(a_recovery_stays_in_its_organisation);
