use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use ward_core::clock::{Clock, TestClock};
use ward_core::policy::AuthPolicy;
use ward_core::service::Ward;
use ward_proto::duo::params::Params;
use ward_proto::duo::signature::{SigDigest, SigVersion, sign_request};
use ward_server::app::router;
use ward_server::limits::Limits;
use ward_testkit::clock::test_clock;
use ward_testkit::db::{TempSqlite, sqlite};
use ward_testkit::org::{OrgBuilder, totp_code, ward_on};
use ward_testkit::router::{
    AUTHORITY, HOST, PEER, app_state, call_json, duo_date, get_as, peer, post_as,
};

const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

pub(super) struct Api {
    _db: TempSqlite,
    pub(super) app: axum::Router,
    pub(super) clock: TestClock,
    pub(super) ikey: String,
    pub(super) skey: String,
    pub(super) ward: Arc<Ward>,
}

pub(super) async fn api() -> Api {
    api_with(Limits::new(1000, 1000, 1000)).await
}

/// The Auth API with the given request limits: an application `app` and `alice` with a TOTP
/// factor, in the default organisation.
pub(super) async fn api_with(limits: Limits) -> Api {
    let (db, store) = sqlite("t").await;
    let policy = AuthPolicy {
        lockout_threshold: 3,
        ..AuthPolicy::default()
    };
    let ward = Arc::new(ward_on(store, 5, policy).await);
    let clock = test_clock();
    let org = OrgBuilder::default_org()
        .auth_api("app")
        .user("alice")
        .totp("alice", SECRET)
        .build(&ward, clock.now())
        .await;
    let state = app_state(
        Arc::clone(&ward),
        clock.clone(),
        &[AUTHORITY, HOST],
        true,
        limits,
    );
    Api {
        _db: db,
        app: router(state),
        clock,
        ikey: org.app("app").ikey().to_owned(),
        skey: org.app("app").skey.clone(),
        ward,
    }
}

fn code(t: DateTime<Utc>) -> String {
    totp_code(SECRET, t)
}

impl Api {
    /// A v5-signed JSON POST, as `duo_client` 5 sends it.
    pub(super) fn post(
        &self,
        path: &str,
        params: &[(&str, &str)],
        skey: &str,
        at: DateTime<Utc>,
    ) -> Request<Body> {
        post_as(&self.ikey, skey, path, params, at)
    }

    /// A v2-signed GET (form parameters in the query).
    pub(super) fn get(
        &self,
        path: &str,
        params: &[(&str, &str)],
        at: DateTime<Utc>,
    ) -> Request<Body> {
        get_as(&self.ikey, &self.skey, path, params, at)
    }

    pub(super) async fn call(&self, req: Request<Body>) -> (StatusCode, Value) {
        call_json(&self.app, req).await
    }
}

#[tokio::test]
async fn check_and_ping() {
    let api = api().await;
    let now = api.clock.now();
    let (status, body) = api.call(api.get("/auth/v2/check", &[], now)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["response"]["time"], now.timestamp());
    let mut ping = Request::get("/auth/v2/ping").body(Body::empty()).unwrap();
    ping.extensions_mut().insert(peer(PEER));
    let (status, body) = api.call(ping).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["stat"], "OK");
}

#[tokio::test]
async fn passcode_allow_then_replay_deny() {
    let api = api().await;
    let now = api.clock.now();
    let c = code(now);
    let params = [
        ("username", "alice"),
        ("factor", "passcode"),
        ("passcode", c.as_str()),
        ("async", "0"),
    ];
    let (status, body) = api
        .call(api.post("/auth/v2/auth", &params, &api.skey, now))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["response"]["result"], "allow");
    let (_, body) = api
        .call(api.post("/auth/v2/auth", &params, &api.skey, now))
        .await;
    assert_eq!(body["response"]["result"], "deny");
    assert_eq!(
        body["response"]["status_msg"],
        "Incorrect passcode. Please try again."
    );
}

#[tokio::test]
async fn async_passcode_is_read_through_auth_status() {
    let api = api().await;
    let now = api.clock.now();
    let c = code(now);
    let params = [
        ("username", "alice"),
        ("factor", "passcode"),
        ("passcode", c.as_str()),
        ("async", "1"),
    ];
    let (_, body) = api
        .call(api.post("/auth/v2/auth", &params, &api.skey, now))
        .await;
    let txid = body["response"]["txid"].as_str().unwrap().to_owned();
    let (status, body) = api
        .call(api.get("/auth/v2/auth_status", &[("txid", &txid)], now))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["response"]["result"], "allow");
    let (status, body) = api
        .call(api.get("/auth/v2/auth_status", &[("txid", "nope")], now))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 40002);
}

#[tokio::test]
async fn preauth_shows_devices_and_lockout() {
    let api = api().await;
    let now = api.clock.now();
    let (_, body) = api
        .call(api.post("/auth/v2/preauth", &[("username", "alice")], &api.skey, now))
        .await;
    assert_eq!(body["response"]["result"], "auth");
    assert_eq!(
        body["response"]["devices"][0]["capabilities"][0],
        "mobile_otp"
    );
    for _ in 0..3 {
        let params = [
            ("username", "alice"),
            ("factor", "passcode"),
            ("passcode", "000000"),
            ("async", "0"),
        ];
        api.call(api.post("/auth/v2/auth", &params, &api.skey, now))
            .await;
    }
    let (_, body) = api
        .call(api.post("/auth/v2/preauth", &[("username", "alice")], &api.skey, now))
        .await;
    assert_eq!(body["response"]["result"], "deny");
    assert!(
        body["response"]["status_msg"]
            .as_str()
            .unwrap()
            .contains("locked")
    );
    let (_, body) = api
        .call(api.post(
            "/auth/v2/preauth",
            &[("username", "nobody")],
            &api.skey,
            now,
        ))
        .await;
    assert_eq!(body["response"]["result"], "deny");
}

#[tokio::test]
async fn sms_and_phone_are_refused_by_design() {
    let api = api().await;
    let now = api.clock.now();
    for factor in ["sms", "phone"] {
        let params = [
            ("username", "alice"),
            ("factor", factor),
            ("device", "auto"),
            ("async", "0"),
        ];
        let (status, body) = api
            .call(api.post("/auth/v2/auth", &params, &api.skey, now))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["stat"], "FAIL");
        assert_eq!(body["code"], 40002);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("disabled by design")
        );
    }
}

#[tokio::test]
async fn bad_credentials_get_duo_401s() {
    let api = api().await;
    let now = api.clock.now();
    let params = [("username", "alice")];
    let (status, body) = api
        .call(api.post(
            "/auth/v2/preauth",
            &params,
            "wrong-skey-wrong-skey-wrong-skey-wrongsk",
            now,
        ))
        .await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(40103))
    );
    let stale = now - TimeDelta::minutes(10);
    let (status, body) = api
        .call(api.post("/auth/v2/preauth", &params, &api.skey, stale))
        .await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(40105))
    );
    let mut req = api.post("/auth/v2/preauth", &params, &api.skey, now);
    req.headers_mut().remove("authorization");
    let (status, body) = api.call(req).await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(40101))
    );
    let mut other = api.post("/auth/v2/preauth", &params, &api.skey, now);
    let forged = sign_request(
        "DIUNKNOWN0000000000",
        api.skey.as_bytes(),
        SigVersion::V5,
        SigDigest::Sha512,
        &duo_date(now),
        "POST",
        HOST,
        "/auth/v2/preauth",
        &Params::new(),
        b"{}",
    );
    other
        .headers_mut()
        .insert("authorization", forged.parse().unwrap());
    let (status, body) = api.call(other).await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(40102))
    );
}

#[tokio::test]
async fn a_tampered_body_fails_the_signature() {
    let api = api().await;
    let now = api.clock.now();
    let req = api.post("/auth/v2/preauth", &[("username", "alice")], &api.skey, now);
    let (parts, _) = req.into_parts();
    let req = Request::from_parts(parts, Body::from(r#"{"username":"mallory"}"#));
    let (status, body) = api.call(req).await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(40103))
    );
}

#[tokio::test]
async fn unknown_paths_and_parameters_use_the_envelope() {
    let api = api().await;
    let now = api.clock.now();
    let mut req = Request::get("/nope").body(Body::empty()).unwrap();
    req.extensions_mut().insert(peer(PEER));
    let (status, body) = api.call(req).await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (StatusCode::NOT_FOUND, Some(40401))
    );
    let (status, body) = api
        .call(api.post("/auth/v2/auth", &[("username", "alice")], &api.skey, now))
        .await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(40001))
    );
    assert_eq!(body["message_detail"], "factor");
    let (status, body) = api
        .call(api.post(
            "/auth/v2/preauth",
            &[("username", "a"), ("user_id", "b")],
            &api.skey,
            now,
        ))
        .await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(40002))
    );
}

/// Regression (repeated parameters): v1/v2 signing sorts repeated values, so one signature
/// covers `username=mallory&username=alice` in both orders. A single-valued parameter given
/// twice is refused (40002, naming it) and audited, whatever the order.
#[tokio::test]
async fn repeated_single_valued_parameters_are_refused_and_audited() {
    let api = api().await;
    let now = api.clock.now();
    for users in [
        [("username", "mallory"), ("username", "alice")],
        [("username", "alice"), ("username", "mallory")],
    ] {
        let (status, body) = api.call(api.get("/auth/v2/preauth", &users, now)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["code"], 40002, "{body}");
        assert_eq!(body["message_detail"], "username", "{body}");
    }
    // The same request with the parameter once is answered.
    let (status, body) = api
        .call(api.get("/auth/v2/preauth", &[("username", "alice")], now))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut out = Vec::new();
    ward_core::audit::export(api.ward.store().as_ref(), &mut out)
        .await
        .unwrap();
    let refused = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["action"] == "auth.request_refused")
        .filter(|e| e["details"]["parameter"] == "username")
        .count();
    assert_eq!(refused, 2);
}
