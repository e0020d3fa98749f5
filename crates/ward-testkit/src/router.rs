//! The router for `tower::ServiceExt::oneshot` tests: the server state around a `Ward`, requests
//! signed as Duo clients sign them, the peer address the listener would attach, and reading a
//! JSON answer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;
use ward_core::clock::TestClock;
use ward_core::service::Ward;
use ward_proto::duo::params::Params;
use ward_proto::duo::signature::{SigDigest, SigVersion, sign_request};
use ward_server::app::{AppState, Shutdown};
use ward_server::config::Branding;
use ward_server::duo::signed::DuoSettings;
use ward_server::limits::Limits;
use ward_server::listener::PeerAddr;
use ward_server::web::WebSettings;

/// The host requests are signed for.
pub const HOST: &str = "localhost";
/// The `Host` header requests carry (the signed host with the listener's port).
pub const AUTHORITY: &str = "localhost:8443";
/// The address requests come from unless a test says otherwise.
pub const PEER: &str = "192.0.2.10:5000";

/// The server state a router test builds: `ward` on `clock`, the Duo APIs answering for
/// `hosts` (v1 signatures too when `allow_v1`), with `limits`.
pub fn app_state(
    ward: Arc<Ward>,
    clock: TestClock,
    hosts: &[&str],
    allow_v1: bool,
    limits: Limits,
) -> AppState {
    AppState {
        ward,
        clock: Arc::new(clock),
        settings: Arc::new(DuoSettings {
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            skew_secs: 300,
            allow_v1,
            trust_forwarded_for: false,
            max_body_bytes: 64 * 1024,
        }),
        limits: Arc::new(limits),
        wakers: Arc::default(),
        shutdown: Shutdown::default(),
        web: WebSettings::new(
            Branding {
                organisation: "Example".into(),
                logo: None,
                accent_colour: "#2b59c3".into(),
            },
            AUTHORITY,
        ),
    }
}

/// The connection info the listener attaches, for a peer at `addr` (`ip:port`).
pub fn peer(addr: &str) -> ConnectInfo<PeerAddr> {
    ConnectInfo(PeerAddr(addr.parse::<SocketAddr>().expect("ip:port")))
}

/// `req` as if it came from `addr` (`ip:port`).
pub fn from_peer(addr: &str, mut req: Request<Body>) -> Request<Body> {
    req.extensions_mut().insert(peer(addr));
    req
}

/// A time as the `Date` header of a signed request carries it.
pub fn duo_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S -0000").to_string()
}

/// A request builder for `method` on `path` with the `Host`, `Date` and `Authorization` headers
/// of a Duo signature: v5 (SHA-512, over the body) for POST, else v2 (SHA-1, over the query
/// parameters, which go into the URI).
fn signed(
    ikey: &str,
    skey: &str,
    method: &str,
    path: &str,
    params: &Params,
    body: &[u8],
    at: DateTime<Utc>,
) -> axum::http::request::Builder {
    let (version, digest) = if method == "POST" {
        (SigVersion::V5, SigDigest::Sha512)
    } else {
        (SigVersion::V2, SigDigest::Sha1)
    };
    let date = duo_date(at);
    let auth = sign_request(
        ikey,
        skey.as_bytes(),
        version,
        digest,
        &date,
        method,
        HOST,
        path,
        params,
        body,
    );
    let uri = if params.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", params.to_urlencoded())
    };
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", AUTHORITY)
        .header("date", date)
        .header("authorization", auth)
}

/// A v5-signed JSON POST of `body` by the integration `ikey`, as `duo_client` 5 sends it, from
/// [`PEER`].
pub fn post_json_as(
    ikey: &str,
    skey: &str,
    path: &str,
    body: &Value,
    at: DateTime<Utc>,
) -> Request<Body> {
    let body = body.to_string();
    let req = signed(
        ikey,
        skey,
        "POST",
        path,
        &Params::new(),
        body.as_bytes(),
        at,
    )
    .header("content-type", "application/json")
    .body(Body::from(body))
    .expect("a request");
    from_peer(PEER, req)
}

/// A v5-signed JSON POST of string parameters by the integration `ikey`.
pub fn post_as(
    ikey: &str,
    skey: &str,
    path: &str,
    params: &[(&str, &str)],
    at: DateTime<Utc>,
) -> Request<Body> {
    // Sorted first, so that of a repeated name the greatest value is the one sent.
    let mut sorted = params.to_vec();
    sorted.sort_unstable();
    let body: serde_json::Map<String, Value> = sorted
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    post_json_as(ikey, skey, path, &Value::Object(body), at)
}

/// A v2-signed GET (form parameters in the query) by the integration `ikey`, from [`PEER`].
pub fn get_as(
    ikey: &str,
    skey: &str,
    path: &str,
    params: &[(&str, &str)],
    at: DateTime<Utc>,
) -> Request<Body> {
    let params: Params = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let req = signed(ikey, skey, "GET", path, &params, b"", at)
        .body(Body::empty())
        .expect("a request");
    from_peer(PEER, req)
}

/// Sends `req` through `app`; the status and the body, which must be JSON.
pub async fn call_json(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = app.clone().oneshot(req).await.expect("the router answers");
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).expect("a JSON body"))
}
