//! Two organisations behind one Auth API: an application of one gets, for a user of the other,
//! exactly the reply it gets for a name nobody has; it cannot let them in with their own code,
//! push to their devices or read their transactions. On SQLite and PostgreSQL.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;

use crate::tenants::{Reply, Tenant, Tenants};
use ward_testkit::router::{get_as, post_as};

fn call(t: &Tenants, tenant: &Tenant, path: &str, params: &[(&str, &str)]) -> Request<Body> {
    post_as(&tenant.ikey, &tenant.skey, path, params, t.now())
}

fn preauth(t: &Tenants, tenant: &Tenant, key: &str, value: &str) -> Request<Body> {
    call(t, tenant, "/auth/v2/preauth", &[(key, value)])
}

/// An asynchronous `auth` of `username` with a code.
fn passcode(t: &Tenants, tenant: &Tenant, username: &str, code: &str) -> Request<Body> {
    let params = [
        ("username", username),
        ("factor", "passcode"),
        ("passcode", code),
        ("async", "1"),
    ];
    call(t, tenant, "/auth/v2/auth", &params)
}

/// An asynchronous push to `username`.
fn push(t: &Tenants, tenant: &Tenant, username: &str) -> Request<Body> {
    let params = [
        ("username", username),
        ("factor", "push"),
        ("device", "auto"),
        ("async", "1"),
    ];
    call(t, tenant, "/auth/v2/auth", &params)
}

/// The reply with its transaction id (random) masked.
fn without_txid(reply: Reply) -> Reply {
    match reply.json()["response"]["txid"].as_str().map(str::to_owned) {
        Some(txid) => reply.replacing(&txid, "TXID"),
        None => reply,
    }
}

/// `auth_status` of `txid`, as `tenant`'s application asks (answered at once: every
/// transaction read here is decided, or unknown to the asker).
fn status_of(t: &Tenants, tenant: &Tenant, txid: &str) -> Request<Body> {
    let params = [("txid", txid)];
    get_as(
        &tenant.ikey,
        &tenant.skey,
        "/auth/v2/auth_status",
        &params,
        t.now(),
    )
}

/// The transaction id of an asynchronous `auth`.
fn txid(reply: &Reply) -> String {
    reply.json()["response"]["txid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The capabilities of the devices `preauth` lists.
fn capabilities(reply: &Reply) -> Vec<Value> {
    let body = reply.json();
    let devices = body["response"]["devices"].as_array().unwrap();
    devices.iter().map(|d| d["capabilities"].clone()).collect()
}

async fn an_application_does_not_reach_another_organisations_users(t: Tenants) {
    let bob_phone = t.phone(&t.b.org, "bob", 2).await;
    let b_alice_phone = t.phone(&t.b.org, "alice", 3).await;

    // Preauth: B's bob, by name or by id, is nobody to A's application.
    let nobody = t.send(preauth(&t, &t.a, "username", "nobody")).await;
    assert_eq!(nobody.status, StatusCode::OK, "{nobody:?}");
    assert_eq!(t.send(preauth(&t, &t.a, "username", "bob")).await, nobody);
    let bob_id = t.user_id(&t.b.org, "bob").await;
    let by_id = t.send(preauth(&t, &t.a, "user_id", &bob_id)).await;
    let unknown_id = t
        .send(preauth(&t, &t.a, "user_id", "DUAAAAAAAAAAAAAAAAAA"))
        .await;
    assert_eq!(by_id, unknown_id);
    // Each application's alice is its own: B's has a phone, A's only an authenticator app.
    let a_alice = t.send(preauth(&t, &t.a, "username", "alice")).await;
    assert_eq!(capabilities(&a_alice), [serde_json::json!(["mobile_otp"])]);
    let b_alice = t.send(preauth(&t, &t.b, "username", "alice")).await;
    assert_eq!(capabilities(&b_alice).len(), 2, "{b_alice:?}");

    // Codes: bob's own code through A reads as one for nobody; B's alice's does not open A's.
    let code = t.code(t.b.seed);
    let bob = t.send(passcode(&t, &t.a, "bob", &code)).await;
    let nobody = t.send(passcode(&t, &t.a, "nobody", &code)).await;
    assert_eq!(without_txid(bob), without_txid(nobody));
    let alice = t.send(passcode(&t, &t.a, "alice", &code)).await;
    let denied = t.send(status_of(&t, &t.a, &txid(&alice))).await;
    assert_eq!(denied.json()["response"]["result"], "deny", "{denied:?}");
    let own = t.send(passcode(&t, &t.b, "bob", &code)).await;
    let allowed = t.send(status_of(&t, &t.b, &txid(&own))).await;
    assert_eq!(allowed.json()["response"]["result"], "allow", "{allowed:?}");

    // Pushes: nothing reaches B's phones through A.
    let bob = t.send(push(&t, &t.a, "bob")).await;
    let nobody = t.send(push(&t, &t.a, "nobody")).await;
    assert_eq!(without_txid(bob), without_txid(nobody));
    t.send(push(&t, &t.a, "alice")).await;
    assert!(t.pending(&bob_phone).await.is_empty());
    assert!(t.pending(&b_alice_phone).await.is_empty());

    // B's own application pushes to bob and his phone approves; A cannot read the result.
    let started = t.send(push(&t, &t.b, "bob")).await;
    let txid = txid(&started);
    assert_eq!(t.approve(&bob_phone, None).await, txid);
    let own = t.send(status_of(&t, &t.b, &txid)).await;
    assert_eq!(own.json()["response"]["result"], "allow", "{own:?}");
    let foreign = t.send(status_of(&t, &t.a, &txid)).await;
    let unknown = t.send(status_of(&t, &t.a, "TXunknown")).await;
    assert_eq!(foreign, unknown);
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST, "{foreign:?}");
}

on_both_backends!(an_application_does_not_reach_another_organisations_users);
