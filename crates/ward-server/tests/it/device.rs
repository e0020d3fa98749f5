//! The device channel (`/device/v1/*`): activation, the signed event stream and signed answers;
//! and a device of one organisation that is sent nothing of another's users and whose answer
//! to another organisation's push reads as an answer to a push that does not exist.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use ward_core::model::Actor;
use ward_core::service::TxResult;
use ward_proto::device::{Decision, PushEvent};

use crate::tenants::{
    DeviceKey, Phone, Tenant, Tenants, form, json as json_request, sqlite_tenants,
};
use ward_testkit::router::post_as;

/// An asynchronous push to `username` by `tenant`'s Auth API application: its txid.
async fn push(t: &Tenants, tenant: &Tenant, username: &str) -> String {
    let params = [
        ("username", username),
        ("factor", "push"),
        ("device", "auto"),
        ("async", "1"),
    ];
    let req = post_as(
        &tenant.ikey,
        &tenant.skey,
        "/auth/v2/auth",
        &params,
        t.now(),
    );
    let reply = t.send(req).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.json()["response"]["txid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `auth_status` of `txid` as `tenant`'s application reads it.
async fn result_of(t: &Tenants, tenant: &Tenant, txid: &str) -> Value {
    let req = ward_testkit::router::get_as(
        &tenant.ikey,
        &tenant.skey,
        "/auth/v2/auth_status",
        &[("txid", txid)],
        t.now(),
    );
    t.send(req).await.json()
}

/// The events `phone`'s stream delivers at once (within half a second of connecting).
async fn streamed(t: &Tenants, phone: &Phone) -> Vec<PushEvent> {
    let challenge = t
        .send(json_request(
            "/device/v1/challenge",
            &json!({ "device_id": phone.id }),
        ))
        .await;
    assert_eq!(challenge.status, StatusCode::OK, "{challenge:?}");
    let nonce = challenge.json()["nonce"].as_str().unwrap().to_owned();
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("device_id", &phone.id)
        .append_pair("nonce", &nonce)
        .append_pair("signature", &phone.stream_signature(&nonce))
        .finish();
    let res = t
        .open(crate::tenants::get(&format!("/device/v1/stream?{query}")))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let mut text = String::new();
    let until = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, body.frame()).await {
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| serde_json::from_str(data.trim()).unwrap())
        .collect()
}

/// `POST /device/v1/answer`.
fn answer(body: &ward_proto::device::AnswerRequest) -> Request<Body> {
    json_request("/device/v1/answer", &serde_json::to_value(body).unwrap())
}

#[tokio::test]
async fn a_device_is_activated_streams_a_push_and_approves_it() {
    let t = sqlite_tenants().await;
    let code = t
        .ward
        .devices()
        .activation_code(&t.a.org, &Actor::Cli, "alice", t.now())
        .await
        .unwrap()
        .code
        .to_string();
    let key = DeviceKey::from_seed(1);
    let activate = serde_json::to_value(key.activate_request(&code, "phone", "linux")).unwrap();
    let reply = t.send(json_request("/device/v1/activate", &activate)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json()["username"], "alice");
    let phone = key.activated(reply.json()["device_id"].as_str().unwrap().to_owned());
    // The code works once.
    let again = t.send(json_request("/device/v1/activate", &activate)).await;
    assert_eq!(again.status, StatusCode::GONE, "{again:?}");

    let txid = push(&t, &t.a, "alice").await;
    let events = streamed(&t, &phone).await;
    let event = events.first().unwrap();
    assert_eq!(event.txid, txid);
    assert_eq!(event.username, "alice");
    let signed = phone.answer_to(
        &txid,
        &event.context_hash,
        Decision::Approve,
        None,
        event.time,
    );
    let reply = t.send(answer(&signed)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json()["result"], "approved");
    assert_eq!(
        result_of(&t, &t.a, &txid).await["response"]["result"],
        "allow"
    );
}

#[tokio::test]
async fn unsigned_or_malformed_device_calls_are_refused() {
    let t = sqlite_tenants().await;
    let phone = t.phone(&t.a.org, "alice", 1).await;
    let txid = push(&t, &t.a, "alice").await;
    let event = t.pending(&phone).await.pop().unwrap();
    // Signed by another key: refused, and the push still waits.
    let impostor = DeviceKey::from_seed(9).activated(phone.id.clone());
    let forged = impostor.answer_to(
        &txid,
        &event.context_hash,
        Decision::Approve,
        None,
        event.time,
    );
    let reply = t.send(answer(&forged)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    assert_eq!(reply.json()["error"], "unauthenticated");
    assert_eq!(t.tx_result(&t.a, &txid).await, TxResult::Waiting);
    // A stream opened without a valid signature is refused.
    let query = format!(
        "/device/v1/stream?device_id={}&nonce=AAAA&signature=AAAA",
        phone.id
    );
    let reply = t.send(crate::tenants::get(&query)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    // A form body is not the device channel's JSON.
    let reply = t.send(form("/device/v1/answer", "txid=x")).await;
    assert_eq!(
        reply.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{reply:?}"
    );
}

async fn a_device_is_sent_and_answers_only_its_own_organisations_pushes(t: Tenants) {
    let a_alice = t.phone(&t.a.org, "alice", 1).await;
    let b_bob = t.phone(&t.b.org, "bob", 2).await;
    let b_alice = t.phone(&t.b.org, "alice", 3).await;
    // B's pushes first: a stream that leaked them would deliver them before A's own.
    let bobs = push(&t, &t.b, "bob").await;
    let b_alices = push(&t, &t.b, "alice").await;
    let a_alices = push(&t, &t.a, "alice").await;

    let seen: Vec<String> = streamed(&t, &a_alice)
        .await
        .into_iter()
        .map(|e| e.txid)
        .collect();
    assert_eq!(seen, std::slice::from_ref(&a_alices));
    let seen: Vec<String> = streamed(&t, &b_alice)
        .await
        .into_iter()
        .map(|e| e.txid)
        .collect();
    assert_eq!(seen, std::slice::from_ref(&b_alices));

    // A's Alice's device answers B's pushes, with everything right but the organisation: the
    // reply is the one for a transaction that does not exist, and nothing is decided.
    let bob_event = t.pending(&b_bob).await.pop().unwrap();
    let b_alice_event = t.pending(&b_alice).await.pop().unwrap();
    for event in [&bob_event, &b_alice_event] {
        let time = event.time;
        let foreign = a_alice.answer_to(
            &event.txid,
            &event.context_hash,
            Decision::Approve,
            None,
            time,
        );
        let unknown = a_alice.answer_to(
            "TXunknown",
            &event.context_hash,
            Decision::Approve,
            None,
            time,
        );
        let foreign = t.send(answer(&foreign)).await;
        let unknown = t.send(answer(&unknown)).await;
        assert_eq!(foreign, unknown);
        assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{foreign:?}");
    }
    for txid in [&bobs, &b_alices] {
        assert_eq!(t.tx_result(&t.b, txid).await, TxResult::Waiting);
    }
    // A's application cannot read B's transaction either.
    let foreign = result_of(&t, &t.a, &bobs).await;
    assert_eq!(foreign, result_of(&t, &t.a, "TXunknown").await);

    // Bob's own device decides his push.
    let own = b_bob.answer_to(
        &bobs,
        &bob_event.context_hash,
        Decision::Approve,
        None,
        bob_event.time,
    );
    let reply = t.send(answer(&own)).await;
    assert_eq!(reply.json()["result"], "approved", "{reply:?}");
    assert_eq!(
        result_of(&t, &t.b, &bobs).await["response"]["result"],
        "allow"
    );
}

on_both_backends!(a_device_is_sent_and_answers_only_its_own_organisations_pushes);
