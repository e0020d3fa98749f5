use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, TimeDelta, Utc};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use ward_core::clock::{Clock, TestClock};
use ward_core::crypto::{Keyring, MasterKey};
use ward_core::model::{Actor, IntegrationKind};
use ward_core::policy::AuthPolicy;
use ward_core::service::Ward;
use ward_core::totp::{Algorithm, Totp, base32_decode};
use ward_proto::duo::params::Params;
use ward_proto::duo::signature::{SigDigest, SigVersion, sign_request};
use ward_server::app::router;
use ward_server::limits::Limits;
use ward_server::listener::PeerAddr;
use ward_store_sqlite::SqliteStore;

const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const HOST: &str = "localhost";

pub(super) struct Api {
    _dir: tempfile::TempDir,
    pub(super) app: axum::Router,
    pub(super) clock: TestClock,
    pub(super) ikey: String,
    pub(super) skey: String,
    pub(super) ward: Arc<Ward>,
}

pub(super) async fn api() -> Api {
    api_with(Limits::new(1000, 1000, 1000)).await
}

/// The Auth API with the given request limits.
pub(super) async fn api_with(limits: Limits) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let store = SqliteStore::open(&url, "t").await.unwrap();
    store.migrate().await.unwrap();
    let keys = Keyring::new(MasterKey::from_bytes([5; 32]), vec![]);
    let policy = AuthPolicy {
        lockout_threshold: 3,
        ..AuthPolicy::default()
    };
    let ward = Arc::new(
        Ward::new(Arc::new(store), keys, policy, "Ward")
            .await
            .unwrap(),
    );
    let clock = TestClock::at(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
    let now = clock.now();
    let (integration, skey) = ward
        .admin()
        .create_integration(
            crate::default_org(),
            &Actor::Cli,
            "app",
            IntegrationKind::AuthApi,
            None,
            now,
        )
        .await
        .unwrap();
    ward.admin()
        .create_user(crate::default_org(), &Actor::Cli, "alice", None, now)
        .await
        .unwrap();
    ward.admin()
        .add_totp(
            crate::default_org(),
            &Actor::Cli,
            "alice",
            Some(SECRET),
            Algorithm::Sha1,
            6,
            now,
        )
        .await
        .unwrap();
    let state = crate::app_state(
        Arc::clone(&ward),
        clock.clone(),
        &["localhost:8443", HOST],
        true,
        limits,
    );
    Api {
        _dir: dir,
        app: router(state),
        clock,
        ikey: integration.ikey.into_string(),
        skey: skey.to_string(),
        ward,
    }
}

fn date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S -0000").to_string()
}

fn code(t: DateTime<Utc>) -> String {
    let totp = Totp::new(base32_decode(SECRET).unwrap(), Algorithm::Sha1, 6, 30).unwrap();
    totp.code(totp.step_at(t.timestamp()) as u64).to_string()
}

/// A v5-signed JSON POST by the integration `ikey`.
pub(super) fn post_as(
    ikey: &str,
    skey: &str,
    path: &str,
    params: &[(&str, &str)],
    at: DateTime<Utc>,
) -> Request<Body> {
    let mut sorted: Vec<(&str, &str)> = params.to_vec();
    sorted.sort_unstable();
    let body = serde_json::to_string(
        &sorted
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect::<serde_json::Map<_, _>>(),
    )
    .unwrap();
    let d = date(at);
    let auth = sign_request(
        ikey,
        skey.as_bytes(),
        SigVersion::V5,
        SigDigest::Sha512,
        &d,
        "POST",
        HOST,
        path,
        &Params::new(),
        body.as_bytes(),
    );
    let mut req = Request::post(path)
        .header("host", "localhost:8443")
        .header("date", d)
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    req.extensions_mut().insert(peer());
    req
}

/// A v2-signed GET (form parameters in the query) by the integration `ikey`.
pub(super) fn get_as(
    ikey: &str,
    skey: &str,
    path: &str,
    params: &[(&str, &str)],
    at: DateTime<Utc>,
) -> Request<Body> {
    let p: Params = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let d = date(at);
    let auth = sign_request(
        ikey,
        skey.as_bytes(),
        SigVersion::V2,
        SigDigest::Sha1,
        &d,
        "GET",
        HOST,
        path,
        &p,
        b"",
    );
    let uri = if p.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", p.to_urlencoded())
    };
    let mut req = Request::get(uri)
        .header("host", "localhost:8443")
        .header("date", d)
        .header("authorization", auth)
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(peer());
    req
}

fn peer() -> ConnectInfo<PeerAddr> {
    ConnectInfo(PeerAddr("192.0.2.10:5000".parse::<SocketAddr>().unwrap()))
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
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
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
    ping.extensions_mut().insert(peer());
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
        &date(now),
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
    req.extensions_mut().insert(peer());
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
