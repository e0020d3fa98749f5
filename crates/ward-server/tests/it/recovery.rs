//! The public recovery pages, the contact report and the helpdesk console's refusals, through
//! the whole router (middleware included) with a real SQLite store.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use ward_core::argon::Argon2Pool;
use ward_core::clock::Clock;
use ward_core::model::{Actor, Role};
use ward_core::policy::AuthPolicy;
use ward_core::service::Ward;
use ward_server::alerts::CommandAlerts;
use ward_server::app::router;
use ward_server::limits::Limits;
use ward_store::Store;
use ward_testkit::clock::test_clock;
use ward_testkit::db::{TempSqlite, sqlite};
use ward_testkit::org::{OrgBuilder, ward_on};
use ward_testkit::router::{AUTHORITY, app_state, from_peer};

struct Site {
    db: TempSqlite,
    app: axum::Router,
    store: Arc<dyn Store>,
    ward: Arc<Ward>,
    now: chrono::DateTime<chrono::Utc>,
}

async fn site() -> Site {
    site_with(Argon2Pool::default(), None).await
}

/// A site whose Argon2 work runs on `pool` and whose alerts go to `hook` (a command) as well
/// as to the log.
async fn site_with(pool: Argon2Pool, hook: Option<Vec<String>>) -> Site {
    let (db, store) = sqlite("t").await;
    let mut ward = ward_on(Arc::clone(&store), 7, AuthPolicy::default())
        .await
        .with_argon2_pool(pool);
    if let Some(hook) = hook {
        ward = ward.with_alerts(Arc::new(CommandAlerts::new(&hook).unwrap()));
    }
    let ward = Arc::new(ward);
    let clock = test_clock();
    let now = clock.now();
    OrgBuilder::default_org()
        .user_with_email("alice", "alice@example.test")
        .user("root")
        .role("root", Role::Admin)
        .build(&ward, now)
        .await;
    let state = app_state(
        Arc::clone(&ward),
        clock,
        &[AUTHORITY],
        false,
        Limits::new(1000, 1000, 1000),
    );
    Site {
        db,
        app: router(state),
        store,
        ward,
        now,
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
    from_peer("192.0.2.20:5000", builder.body(body).unwrap())
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
    let (location, handle) =
        submit(&site, "/recovery/code", &handle, "code=AAAA-BBBB-CCCC-DDDD").await;
    assert_eq!(location, "/recovery/case?done=code-refused");
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
    let site = site_with(pool.clone(), None).await;
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
async fn case_handle_fixation_a_self_service_handle_is_no_continue_link() {
    let site = site().await;
    let (_, attackers) = site.start("alice").await;
    // The link shows a page with a button; following it changes nothing.
    let path = format!("/recovery/continue/{attackers}");
    let res = site.send(request("GET", &path, None, None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key(header::SET_COOKIE));
    // The button: a self-service handle adopts nothing, and the victim's cookie is left alone.
    for path in [path.as_str(), "/recovery/continue/x%3B%20Domain%3Devil"] {
        let res = site
            .send(request("POST", path, Some("victims"), None))
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert!(!res.headers().contains_key(header::SET_COOKIE));
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let page = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(page.contains("This link cannot be used"), "{page}");
    }
    // The case page says when and from where the case was started.
    let (_, page) = site
        .page(request("GET", "/recovery/case", Some(&attackers), None))
        .await;
    assert!(
        page.contains("was started on 15 Jan 2027, 08:00 UTC from the address 192.0.2.20"),
        "{page}"
    );
}

/// Posts a form to the case; returns the `Location` and the handle the browser now holds.
async fn submit(site: &Site, path: &str, handle: &str, form: &str) -> (String, String) {
    let res = site
        .send(request("POST", path, Some(handle), Some(form)))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let handle = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.strip_prefix("__Host-ward_recovery="))
        .and_then(|rest| rest.split(';').next())
        .map_or_else(|| handle.to_owned(), str::to_owned);
    (location, handle)
}

#[tokio::test]
async fn case_handle_fixation_a_submission_moves_the_case_to_the_submitting_browser() {
    let site = site().await;
    let (_, shared) = site.start("alice").await;
    let (location, kept) =
        submit(&site, "/recovery/code", &shared, "code=AAAA-BBBB-CCCC-DDDD").await;
    assert_eq!(location, "/recovery/case?done=code-refused");
    assert_ne!(kept, shared);
    let (status, _) = site
        .page(request("GET", "/recovery/case", Some(&kept), None))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = site
        .page(request("GET", "/recovery/case", Some(&shared), None))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("No recovery in progress"), "{page}");
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

/// A JSON call of the case page's script.
fn json_call(path: &str, handle: &str, body: &str) -> Request<Body> {
    let mut req = request("POST", path, Some(handle), None);
    req.headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    *req.body_mut() = Body::from(body.to_owned());
    req
}

/// Every JSON call of the case page, with a body it accepts.
const JSON_CALLS: [(&str, &str); 5] = [
    ("/recovery/api/token", ""),
    (
        "/recovery/api/enrol/start",
        r#"{"token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
    ),
    (
        "/recovery/api/enrol/finish",
        r#"{"token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ceremony":"c","credential":{}}"#,
    ),
    ("/recovery/api/confirm/start", ""),
    (
        "/recovery/api/confirm/finish",
        r#"{"ceremony":"c","credential":{}}"#,
    ),
];

/// Each JSON call on a real and a phantom case: byte-identical status and body.
async fn json_calls_alike(site: &Site, real: &str, phantom: &str, stage: &str) {
    for (path, body) in JSON_CALLS {
        let on_real = site.page(json_call(path, real, body)).await;
        let on_phantom = site.page(json_call(path, phantom, body)).await;
        assert_eq!(on_real, on_phantom, "{path} in stage {stage}");
        assert_eq!(on_real.0, StatusCode::CONFLICT, "{path}: {on_real:?}");
        assert!(
            !on_real.1.contains("Collecting") && !on_real.1.contains('`'),
            "{on_real:?}"
        );
    }
}

#[tokio::test]
async fn recovery_enumeration_json_calls_answer_a_phantom_like_a_real_case() {
    let site = site().await;
    let (_, mut real) = site.start("alice").await;
    let (_, mut phantom) = site.start("nobody-here").await;
    json_calls_alike(&site, &real, &phantom, "collecting").await;
    // Six wrong codes: the real case is denied, the phantom looks the same ("closed").
    for _ in 0..6 {
        for handle in [&mut real, &mut phantom] {
            let form = "code=AAAA-BBBB-CCCC-DDDD";
            (_, *handle) = submit(&site, "/recovery/code", handle, form).await;
        }
    }
    for handle in [&real, &phantom] {
        let (_, page) = site
            .page(request("GET", "/recovery/case", Some(handle), None))
            .await;
        assert!(page.contains(r#"data-recovery-stage="closed""#), "{page}");
    }
    json_calls_alike(&site, &real, &phantom, "closed").await;
}

/// A contact report from `ip`.
fn report_from(ip: &str, description: &str) -> Request<Body> {
    let form = format!("kind=call&description={description}");
    let req = request("POST", "/report-contact", None, Some(&form));
    from_peer(&format!("{ip}:5000"), req)
}

#[tokio::test]
async fn anonymous_floods_contact_reports_are_limited_and_run_the_hook_once() {
    let hook_dir = tempfile::tempdir().unwrap();
    let log = hook_dir.path().join("hook.log");
    let script = format!("cat >> {}", log.display());
    let site = site_with(
        Argon2Pool::default(),
        Some(vec!["sh".into(), "-c".into(), script]),
    )
    .await;
    let text = "x".repeat(2000);
    // 100 at once from one address: a few are taken, the rest refused with a fixed sentence.
    let same = (0..100).map(|_| site.page(report_from("192.0.2.30", &text)));
    let answers = futures::future::join_all(same).await;
    let taken = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(taken, 3, "per address");
    for (status, page) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            page.contains("Too many reports were sent just now."),
            "{page}"
        );
    }
    // 100 at once from 100 addresses: the ceiling for everyone.
    let spread = (0..100).map(|i| site.page(report_from(&format!("198.51.100.{i}"), &text)));
    let answers = futures::future::join_all(spread).await;
    let taken = taken + answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(taken, 20, "for everyone");

    let mut audit = Vec::new();
    ward_core::audit::export(site.store.as_ref(), &mut audit)
        .await
        .unwrap();
    let reports: Vec<serde_json::Value> = String::from_utf8(audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["action"] == "security.contact_report")
        .collect();
    assert_eq!(reports.len(), 20);
    for r in &reports {
        let kept = r["details"]["description"]
            .as_str()
            .unwrap()
            .chars()
            .count();
        assert!(kept <= 300, "{kept} characters kept");
    }
    // The alert hook ran once: the other reports of its window are held for one summary.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let ran = std::fs::read_to_string(&log).unwrap();
    assert_eq!(ran.lines().count(), 1, "{ran}");
    assert!(ran.contains(r#""alert":"suspicious_contact""#), "{ran}");
    drop(site.db);
}

#[tokio::test]
async fn with_several_organisations_a_start_names_its_organisation() {
    let site = site().await;
    let acme = site
        .ward
        .admin()
        .create_org(&Actor::Cli, "Acme", site.now)
        .await
        .unwrap()
        .id;
    let dave = site
        .ward
        .admin()
        .create_user(&acme, &Actor::Cli, "dave", None, site.now)
        .await
        .unwrap();
    // Which organisation's "dave"? The page must say; nothing is opened until it does.
    let form = Some("username=dave");
    let res = site
        .send(request("POST", "/recovery/start", None, form))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(!res.headers().contains_key(header::SET_COOKIE));
    let named = request("POST", "/recovery/start?org=Acme", None, form);
    assert_eq!(site.send(named).await.status(), StatusCode::OK);
    let case = site
        .store
        .open_recovery_case(acme.as_str(), dave.id.as_str())
        .await;
    assert!(case.unwrap().is_some(), "dave's case is in Acme");
}
