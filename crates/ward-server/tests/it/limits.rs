//! Per-address limits in front of the routes: unsigned noise from an address is refused once
//! over its budget, but never a correctly signed request of a known integration.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::future::join_all;
use tower::ServiceExt;
use ward_core::clock::Clock;
use ward_server::limits::Limits;
use ward_testkit::router::from_peer as from;

use super::auth_api::api_with;

/// A request with a forged signature from the address the signed requests come from.
fn unsigned_check(ikey: &str) -> Request<Body> {
    from(
        "192.0.2.10:6000",
        Request::get("/auth/v2/check")
            .header("host", "localhost:8443")
            .header("date", "Tue, 21 Oct 2026 07:28:00 -0000")
            .header(
                "authorization",
                format!("Basic {}", base64_basic(ikey, "0000")),
            )
            .body(Body::empty())
            .unwrap(),
    )
}

fn base64_basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

async fn status(app: &axum::Router, req: Request<Body>) -> StatusCode {
    app.clone().oneshot(req).await.unwrap().status()
}

#[tokio::test]
async fn failure_block_on_shared_addresses_spares_signed_requests() {
    let api = api_with(Limits::new(10_000, 60, 10_000)).await;
    // 100 concurrent unsigned requests from the shared address: the first 60 are refused as
    // unauthenticated, the rest as over the address's budget.
    let noise = join_all((0..100).map(|_| status(&api.app, unsigned_check(&api.ikey)))).await;
    let unauthenticated = noise
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = noise
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        (60..=100).contains(&unauthenticated) && unauthenticated + limited == 100,
        "{noise:?}"
    );
    // Unsigned noise is refused now, also without any credentials.
    assert_eq!(
        status(&api.app, unsigned_check(&api.ikey)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let bare = from(
        "192.0.2.10:6001",
        Request::get("/auth/v2/ping").body(Body::empty()).unwrap(),
    );
    assert_eq!(status(&api.app, bare).await, StatusCode::TOO_MANY_REQUESTS);
    // A correctly signed request from the same address is still answered.
    let (code, body) = api
        .call(api.get("/auth/v2/check", &[], api.clock.now()))
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    // Other addresses are not affected.
    let elsewhere = from(
        "192.0.2.99:6000",
        Request::get("/auth/v2/ping").body(Body::empty()).unwrap(),
    );
    assert_eq!(status(&api.app, elsewhere).await, StatusCode::OK);
}

#[tokio::test]
async fn failure_block_counts_malformed_device_answers() {
    let api = api_with(Limits::new(10_000, 60, 10_000)).await;
    let answer = || {
        from(
            "198.51.100.4:7000",
            Request::post("/device/v1/answer")
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
    };
    let results = join_all((0..100).map(|_| status(&api.app, answer()))).await;
    let bad = results
        .iter()
        .filter(|s| s.is_client_error() && **s != StatusCode::TOO_MANY_REQUESTS)
        .count();
    let limited = results
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(bad >= 60 && bad + limited == 100, "{results:?}");
    assert_eq!(
        status(&api.app, answer()).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn failure_block_counts_unknown_paths_and_signed_requests_do_not_count() {
    let api = api_with(Limits::new(10_000, 5, 10_000)).await;
    // Signed requests with bad parameters are charged to their integration, not the address.
    for _ in 0..20 {
        let (code, _) = api
            .call(api.get("/auth/v2/auth_status", &[], api.clock.now()))
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
    }
    let ping = || {
        from(
            "192.0.2.10:6002",
            Request::get("/auth/v2/ping").body(Body::empty()).unwrap(),
        )
    };
    assert_eq!(status(&api.app, ping()).await, StatusCode::OK);
    for _ in 0..5 {
        let probe = from(
            "192.0.2.10:6003",
            Request::get("/no/such/page").body(Body::empty()).unwrap(),
        );
        assert_eq!(status(&api.app, probe).await, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        status(&api.app, ping()).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Issue 11: answers that made the server fail (5xx, here while the database is out of reach)
/// count towards the address's failure budget like malformed requests do: 3 of each use up a
/// budget of 6, and the next request from that address is refused with 429.
#[tokio::test]
async fn failure_block_counts_server_errors_and_malformed_requests() {
    let api = api_with(Limits::new(10_000, 6, 10_000)).await;
    let answer = |body: &str| {
        from(
            "198.51.100.7:7000",
            Request::post("/device/v1/answer")
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
    };
    let well_formed = r#"{"device_id":"DPXXXXXXXXXXXXXXXXXX","txid":"TXXXXXXXXXXXXXXXXXXX",
        "decision":"approve","number":null,"context_hash":"x","time":1800000000,
        "signature":"AAAA"}"#;
    api.ward.store().close().await;
    for _ in 0..3 {
        let status = status(&api.app, answer(well_formed)).await;
        assert!(status.is_server_error(), "{status}");
    }
    for _ in 0..3 {
        let status = status(&api.app, answer("{not json")).await;
        assert!(
            status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS,
            "{status}"
        );
    }
    assert_eq!(
        status(&api.app, answer(well_formed)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let ping = |addr| {
        from(
            addr,
            Request::get("/auth/v2/ping").body(Body::empty()).unwrap(),
        )
    };
    assert_eq!(
        status(&api.app, ping("198.51.100.7:7001")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status(&api.app, ping("198.51.100.8:7000")).await,
        StatusCode::OK
    );
}

/// Integration keys that are not cached cost a database read each: one address gets a burst
/// of such reads, then 429s, while a known integration's signed requests (cached) go on.
#[tokio::test]
async fn uncached_integration_keys_are_read_a_limited_number_of_times() {
    let api = api_with(Limits::new(10_000, 10_000, 10_000)).await;
    let (code, body) = api
        .call(api.get("/auth/v2/check", &[], api.clock.now()))
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let random = join_all((0..100).map(|i| {
        let ikey = format!("DIRANDOM{i:012}");
        let req = Request::get("/auth/v2/check")
            .header("host", "localhost:8443")
            .header("date", "Tue, 21 Oct 2026 07:28:00 -0000")
            .header(
                "authorization",
                format!("Basic {}", base64_basic(&ikey, &"0".repeat(128))),
            )
            .body(Body::empty())
            .unwrap();
        status(&api.app, from("192.0.2.10:6002", req))
    }))
    .await;
    let unknown = random
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = random
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        (1..=40).contains(&unknown) && unknown + limited == 100,
        "{random:?}"
    );
    let (code, body) = api
        .call(api.get("/auth/v2/check", &[], api.clock.now()))
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
}
