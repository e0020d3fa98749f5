//! The legacy BSON API of `duo_unix` 1.x (`/rest/v1/*.bson`, v1 signatures): a login with a
//! code, its refusals, and an application of one organisation that gets, for a user of
//! another, exactly what it gets for a name nobody has.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bson::Document;
use ward_proto::duo::params::Params;
use ward_proto::duo::signature::{SigDigest, SigVersion, sign_request};

use crate::tenants::{Reply, Tenant, Tenants, sqlite_tenants};

/// A v1-signed call (HMAC-SHA1, no date), as `login_duo` sends it: a form body for POST, the
/// query for GET.
fn signed(
    ikey: &str,
    skey: &str,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
) -> Request<Body> {
    let p: Params = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let auth = sign_request(
        ikey,
        skey.as_bytes(),
        SigVersion::V1,
        SigDigest::Sha1,
        "",
        method,
        "localhost",
        path,
        &p,
        b"",
    );
    let builder = Request::builder()
        .header("host", "localhost:8443")
        .header("authorization", auth);
    if method == "GET" {
        let uri = format!("{path}?{}", p.to_urlencoded());
        builder.method("GET").uri(uri).body(Body::empty()).unwrap()
    } else {
        builder
            .method("POST")
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(p.to_urlencoded()))
            .unwrap()
    }
}

/// A call by `tenant`'s Auth API application.
fn by(tenant: &Tenant, method: &str, path: &str, params: &[(&str, &str)]) -> Request<Body> {
    signed(&tenant.ikey, &tenant.skey, method, path, params)
}

fn bson(reply: &Reply) -> Document {
    Document::from_reader(reply.body.as_slice()).unwrap()
}

/// `response.result` of a reply (empty when it has none).
fn result(doc: &Document) -> String {
    doc.get_document("response")
        .and_then(|r| r.get_str("result"))
        .unwrap_or_default()
        .to_owned()
}

fn preauth(tenant: &Tenant, user: &str) -> Request<Body> {
    by(tenant, "POST", "/rest/v1/preauth.bson", &[("user", user)])
}

/// `factor=auto` with what the user typed (a code, or `push1`).
fn auth(tenant: &Tenant, user: &str, auto: &str, is_async: bool) -> Request<Body> {
    let is_async = if is_async { "1" } else { "0" };
    let params = [
        ("user", user),
        ("factor", "auto"),
        ("auto", auto),
        ("async", is_async),
        ("ipaddr", "198.51.100.7"),
    ];
    by(tenant, "POST", "/rest/v1/auth.bson", &params)
}

fn status(tenant: &Tenant, txid: &str) -> Request<Body> {
    by(tenant, "GET", "/rest/v1/status.bson", &[("txid", txid)])
}

#[tokio::test]
async fn a_code_logs_in_once() {
    let t = sqlite_tenants().await;
    let reply = t.send(preauth(&t.a, "alice")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/bson"));
    let body = bson(&reply);
    let response = body.get_document("response").unwrap();
    assert_eq!(response.get_str("result").unwrap(), "auth", "{body}");
    assert!(response.get_str("prompt").unwrap().ends_with("Passcode: "));

    let code = t.code(t.a.seed);
    let allowed = bson(&t.send(auth(&t.a, "alice", &code, false)).await);
    assert_eq!(result(&allowed), "allow", "{allowed}");
    // The same code again is refused.
    let replayed = bson(&t.send(auth(&t.a, "alice", &code, false)).await);
    assert_eq!(result(&replayed), "deny", "{replayed}");
}

#[tokio::test]
async fn a_bad_signature_or_a_missing_user_is_refused() {
    let t = sqlite_tenants().await;
    let forged = signed(
        &t.a.ikey,
        &t.b.skey,
        "POST",
        "/rest/v1/preauth.bson",
        &[("user", "alice")],
    );
    let reply = t.send(forged).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bson(&reply).get_i32("code").unwrap(), 40103);
    // After preauth a refusal is a FAIL at 200, so that the client counts a failed attempt.
    let reply = t
        .send(by(
            &t.a,
            "POST",
            "/rest/v1/auth.bson",
            &[("factor", "auto")],
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = bson(&reply);
    assert_eq!(body.get_str("stat").unwrap(), "FAIL");
    assert_eq!(body.get_i32("code").unwrap(), 40001, "{body}");
}

/// Every transaction id in `reply` replaced by one placeholder.
fn without_txid(reply: Reply) -> Reply {
    let txid = bson(&reply)
        .get_document("response")
        .ok()
        .and_then(|r| r.get_str("txid").ok())
        .map(str::to_owned);
    match txid {
        Some(txid) => reply.replacing(&txid, "TXID"),
        None => reply,
    }
}

async fn an_application_does_not_reach_another_organisations_users(t: Tenants) {
    let bob_phone = t.phone(&t.b.org, "bob", 2).await;
    let b_alice_phone = t.phone(&t.b.org, "alice", 3).await;

    // Preauth: to A's application, B's bob is nobody; its alice is A's, who has no phone.
    let bob = t.send(preauth(&t.a, "bob")).await;
    let nobody = t.send(preauth(&t.a, "nobody")).await;
    assert_eq!(bob, nobody);
    assert_ne!(result(&bson(&bob)), "auth");
    let alice = bson(&t.send(preauth(&t.a, "alice")).await);
    let prompt = alice
        .get_document("response")
        .unwrap()
        .get_str("prompt")
        .unwrap();
    assert!(!prompt.contains("Push to"), "{prompt}");
    let theirs = bson(&t.send(preauth(&t.b, "alice")).await);
    let prompt = theirs
        .get_document("response")
        .unwrap()
        .get_str("prompt")
        .unwrap();
    assert!(prompt.contains("Push to phone"), "{prompt}");

    // Codes: bob's own code through A reads as a code for nobody; B's alice's code does not
    // open A's alice.
    let code = t.code(t.b.seed);
    let bob = t.send(auth(&t.a, "bob", &code, false)).await;
    let nobody = t.send(auth(&t.a, "nobody", &code, false)).await;
    assert_eq!(bob, nobody);
    let alice = bson(&t.send(auth(&t.a, "alice", &code, false)).await);
    assert_eq!(result(&alice), "deny", "{alice}");

    // Pushes: nothing reaches B's phones through A.
    for user in ["bob", "alice"] {
        let pushed = without_txid(t.send(auth(&t.a, user, "push1", true)).await);
        let nobody = without_txid(t.send(auth(&t.a, "nobody", "push1", true)).await);
        if user == "bob" {
            assert_eq!(pushed, nobody);
        }
        assert!(t.pending(&bob_phone).await.is_empty(), "{pushed:?}");
        assert!(t.pending(&b_alice_phone).await.is_empty(), "{pushed:?}");
    }

    // B's own application pushes to bob; his phone approves; B reads the result, A cannot.
    let started = bson(&t.send(auth(&t.b, "bob", "push1", true)).await);
    let txid = started
        .get_document("response")
        .unwrap()
        .get_str("txid")
        .unwrap()
        .to_owned();
    assert_eq!(t.approve(&bob_phone, None).await, txid);
    let own = bson(&t.send(status(&t.b, &txid)).await);
    assert_eq!(result(&own), "allow", "{own}");
    let foreign = t.send(status(&t.a, &txid)).await;
    let unknown = t.send(status(&t.a, "TXunknown")).await;
    assert_eq!(foreign, unknown);
    assert_eq!(
        bson(&foreign).get_i32("code").ok(),
        Some(40002),
        "{foreign:?}"
    );
}

on_both_backends!(an_application_does_not_reach_another_organisations_users);
