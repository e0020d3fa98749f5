//! The public recovery pages, the contact report and the helpdesk console's refusals, through
//! the whole router (middleware included) with a real SQLite store.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use chrono::DateTime;
use http_body_util::BodyExt;
use tower::ServiceExt;
use ward_core::argon::Argon2Pool;
use ward_core::clock::{Clock, TestClock};
use ward_core::crypto::{Keyring, MasterKey};
use ward_core::model::{Actor, Role};
use ward_core::policy::AuthPolicy;
use ward_core::service::Ward;
use ward_server::app::{AppState, router};
use ward_server::duo::signed::DuoSettings;
use ward_server::limits::Limits;
use ward_server::listener::PeerAddr;
use ward_store_sqlite::SqliteStore;

struct Site {
    _dir: tempfile::TempDir,
    app: axum::Router,
}

async fn site() -> Site {
    site_with(Argon2Pool::default()).await
}

/// A site whose Argon2 work runs on `pool`.
async fn site_with(pool: Argon2Pool) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let store = SqliteStore::open(&url, "t").await.unwrap();
    store.migrate().await.unwrap();
    let keys = Keyring::new(MasterKey::from_bytes([7; 32]), vec![]);
    let ward = Arc::new(
        Ward::new(Arc::new(store), keys, AuthPolicy::default(), "Ward")
            .await
            .unwrap()
            .with_argon2_pool(pool),
    );
    let clock = TestClock::at(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
    let now = clock.now();
    ward.create_user(&Actor::Cli, "alice", Some("alice@example.test"), now)
        .await
        .unwrap();
    ward.create_user(&Actor::Cli, "root", None, now)
        .await
        .unwrap();
    ward.grant_role(&Actor::Cli, "root", Role::Admin, now)
        .await
        .unwrap();
    let state = AppState {
        ward,
        clock: Arc::new(clock),
        settings: Arc::new(DuoSettings {
            hosts: vec!["localhost:8443".into()],
            skew_secs: 300,
            allow_v1: false,
            trust_forwarded_for: false,
            max_body_bytes: 64 * 1024,
        }),
        limits: Arc::new(Limits::new(1000, 1000, 1000)),
        wakers: Arc::default(),
        shutdown: ward_server::app::Shutdown::default(),
        web: ward_server::web::WebSettings::new(
            ward_server::config::Branding {
                organisation: "Example".into(),
                logo: None,
                accent_colour: "#2b59c3".into(),
            },
            "localhost:8443",
        ),
    };
    Site {
        _dir: dir,
        app: router(state),
    }
}

fn request(method: &str, path: &str, cookie: Option<&str>, form: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(handle) = cookie {
        builder = builder.header(header::COOKIE, format!("__Host-ward_recovery={handle}"));
    }
    let body = match form {
        Some(form) => {
            builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(form.to_owned())
        }
        None => Body::empty(),
    };
    let mut req = builder.body(body).unwrap();
    req.extensions_mut().insert(ConnectInfo(PeerAddr(
        "192.0.2.20:5000".parse::<SocketAddr>().unwrap(),
    )));
    req
}

impl Site {
    async fn send(&self, req: Request<Body>) -> Response<Body> {
        self.app.clone().oneshot(req).await.unwrap()
    }

    async fn page(&self, req: Request<Body>) -> (StatusCode, String) {
        let res = self.send(req).await;
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// Starts a recovery; returns the page and the handle from the cookie.
    async fn start(&self, username: &str) -> (String, String) {
        let res = self
            .send(request(
                "POST",
                "/recovery/start",
                None,
                Some(&format!("username={username}")),
            ))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let cookie = res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        for attribute in [
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=259200",
        ] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        let handle = cookie
            .strip_prefix("__Host-ward_recovery=")
            .and_then(|rest| rest.split(';').next())
            .unwrap()
            .to_owned();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (String::from_utf8(bytes.to_vec()).unwrap(), handle)
    }
}

#[tokio::test]
async fn the_start_answers_the_same_bytes_whoever_is_named() {
    let site = site().await;
    let (status, page) = site.page(request("GET", "/recovery", None, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"action="/recovery/start""#) && page.contains(r#"id="username""#));
    assert!(page.contains(r#"href="/report-contact""#));
    let (known, known_handle) = site.start("alice").await;
    let (unknown, unknown_handle) = site.start("nobody-here").await;
    let (privileged, privileged_handle) = site.start("root").await;
    let (again, _) = site.start("alice").await;
    assert_eq!(known, unknown);
    assert_eq!(known, privileged);
    assert_eq!(known, again);
    assert!(!known.contains("alice") && known.contains(r#"href="/recovery/case""#));
    assert_ne!(known_handle, unknown_handle);
    // The case pages of a real and a phantom case read the same too.
    let (_, real) = site
        .page(request("GET", "/recovery/case", Some(&known_handle), None))
        .await;
    let (_, phantom) = site
        .page(request(
            "GET",
            "/recovery/case",
            Some(&unknown_handle),
            None,
        ))
        .await;
    assert_eq!(real, phantom);
    // A privileged account (R3: nothing self-service reaches it) must not stand out either.
    let (_, privileged) = site
        .page(request(
            "GET",
            "/recovery/case",
            Some(&privileged_handle),
            None,
        ))
        .await;
    assert_eq!(privileged, phantom);
    assert!(real.contains(r#"data-recovery-stage="collecting""#));
    assert!(real.contains(r#"id="recovery-code""#));
}

#[tokio::test]
async fn a_wrong_code_is_refused_with_the_fixed_message() {
    let site = site().await;
    let (_, handle) = site.start("alice").await;
    let res = site
        .send(request(
            "POST",
            "/recovery/code",
            Some(&handle),
            Some("code=AAAA-BBBB-CCCC-DDDD"),
        ))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()[header::LOCATION],
        "/recovery/case?done=code-refused"
    );
    let (_, page) = site
        .page(request(
            "GET",
            "/recovery/case?done=code-refused",
            Some(&handle),
            None,
        ))
        .await;
    assert!(page.contains("That code was not accepted."), "{page}");
    // Without mail, e-mail codes are explained, not offered.
    assert!(page.contains("data-email-unavailable") && !page.contains(r#"id="email-code""#));
}

/// Memory under anonymous Argon2 work: with the Argon2 pool full, a submitted code is answered
/// 429 with a fixed sentence at once, on a real and on an unknown account's case alike.
#[tokio::test]
async fn a_code_submitted_while_argon2_is_saturated_is_answered_429() {
    let pool = Argon2Pool::new(1, 0);
    let site = site_with(pool.clone()).await;
    let (_, real) = site.start("alice").await;
    let (_, unknown) = site.start("nobody-here").await;
    let held = pool.admit().unwrap();
    let mut pages = Vec::new();
    for handle in [&real, &unknown] {
        let (status, page) = site
            .page(request(
                "POST",
                "/recovery/code",
                Some(handle),
                Some("code=AAAA-BBBB-CCCC-DDDD"),
            ))
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            page.contains("Wait a few minutes, then try again."),
            "{page}"
        );
        // The same page but for its request id.
        pages.push(page.split("Request id").next().unwrap().to_owned());
    }
    assert_eq!(pages[0], pages[1]);
    drop(held);
    let res = site
        .send(request(
            "POST",
            "/recovery/code",
            Some(&real),
            Some("code=AAAA-BBBB-CCCC-DDDD"),
        ))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn without_a_case_the_page_says_so_and_forgets_an_unknown_handle() {
    let site = site().await;
    let (status, page) = site
        .page(request("GET", "/recovery/case", None, None))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("No recovery in progress") && page.contains(r#"href="/recovery""#));
    let res = site
        .send(request(
            "GET",
            "/recovery/case",
            Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            None,
        ))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(
        res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn the_continue_link_adopts_only_a_well_formed_handle() {
    let site = site().await;
    let res = site
        .send(request(
            "GET",
            "/recovery/continue/abcdefghijklmnopqrstuvwxyz0123456789-_ABCDEF",
            None,
            None,
        ))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/recovery/case");
    assert!(res.headers().contains_key(header::SET_COOKIE));
    let res = site
        .send(request(
            "GET",
            "/recovery/continue/x%3B%20Domain%3Devil",
            None,
            None,
        ))
        .await;
    assert!(!res.headers().contains_key(header::SET_COOKIE));
}

#[tokio::test]
async fn a_post_from_another_site_is_refused() {
    let site = site().await;
    let mut req = request("POST", "/recovery/start", None, Some("username=alice"));
    req.headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    let res = site.send(req).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!res.headers().contains_key(header::SET_COOKIE));
}

#[tokio::test]
async fn anyone_can_report_a_suspicious_contact() {
    let site = site().await;
    let (status, page) = site
        .page(request("GET", "/report-contact", None, None))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"id="description""#) && !page.contains(r#"id="block""#));
    let (status, page) = site
        .page(request(
            "POST",
            "/report-contact",
            None,
            Some("kind=call&description=asked+for+a+code"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Thank you for telling us"));
    let (status, _) = site
        .page(request(
            "POST",
            "/report-contact",
            None,
            Some("kind=fax&description=x"),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_helpdesk_console_needs_a_session() {
    let site = site().await;
    let res = site.send(request("GET", "/helpdesk", None, None)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/portal/sign-in");
    let (status, body) = site
        .page(request("GET", "/helpdesk/api/verify/abc", None, None))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("error"));
}
