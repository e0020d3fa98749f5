//! The portal through the router: signing in with a code, the session cookie, the refusals;
//! and a sign-in or a session of one organisation that reaches nothing of another's users.

use axum::http::StatusCode;
use ward_core::model::OrgId;
use ward_core::model::UserId;
use ward_core::recovery::Opener;

use crate::tenants::{Tenant, Tenants, form, get, sqlite_tenants, with_cookie};

const SESSION: &str = "__Host-ward_session";

/// The code sign-in form of `tenant`'s portal.
fn sign_in(tenant: &Tenant, username: &str, code: &str) -> axum::http::Request<axum::body::Body> {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("username", username)
        .append_pair("code", code)
        .finish();
    form(&format!("/portal/sign-in/totp?org={}", tenant.name), &body)
}

/// Signs `username` of `tenant` in with the current code: the session cookie's value and the
/// session's CSRF token.
async fn signed_in(t: &Tenants, tenant: &Tenant, username: &str) -> (String, String) {
    let reply = t
        .send(sign_in(tenant, username, &t.code(tenant.seed)))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{reply:?}");
    assert_eq!(reply.header("location"), Some("/portal"));
    let token = reply.cookie(SESSION).unwrap();
    let session = t
        .ward
        .portal()
        .session(&token, t.now())
        .await
        .unwrap()
        .unwrap();
    (token, session.csrf)
}

/// The id of the authenticator app of `username` in `org`.
async fn totp_id(t: &Tenants, org: &OrgId, username: &str) -> String {
    let user_id = t.user_id(org, username).await;
    let factors = t
        .ward
        .portal()
        .factors(org, &UserId::new(user_id.clone()))
        .await
        .unwrap();
    factors.totps.first().unwrap().id.clone()
}

#[tokio::test]
async fn a_code_signs_in_and_the_session_shows_the_users_factors() {
    let t = sqlite_tenants().await;
    let reply = t.send(sign_in(&t.a, "alice", &t.code(t.a.seed))).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{reply:?}");
    let cookie = reply
        .headers
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.clone())
        .unwrap();
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let token = reply.cookie(SESSION).unwrap();
    let home = t.send(with_cookie(get("/portal"), SESSION, &token)).await;
    assert_eq!(home.status, StatusCode::OK, "{home:?}");
    assert!(home.text().contains("Authenticator app"), "{home:?}");
    assert_eq!(home.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn wrong_codes_foreign_posts_and_missing_sessions_are_refused() {
    let t = sqlite_tenants().await;
    let wrong = t.send(sign_in(&t.a, "alice", "000000")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text().contains("That username and code did not work"));
    assert!(wrong.cookie(SESSION).is_none());
    // A form posted from another site is refused before the code is looked at.
    let mut cross = sign_in(&t.a, "alice", &t.code(t.a.seed));
    cross
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    let reply = t.send(cross).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{reply:?}");
    assert!(reply.cookie(SESSION).is_none());
    // With several organisations, a sign-in must name one.
    let body = format!("username=alice&code={}", t.code(t.a.seed));
    let reply = t.send(form("/portal/sign-in/totp", &body)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");
    // Without a session the portal sends the browser to sign in.
    let reply = t.send(get("/portal")).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header("location"), Some("/portal/sign-in"));
}

async fn a_sign_in_and_a_session_stay_in_their_organisation(t: Tenants) {
    // Signing in to A as B's bob, with his own current code, reads as a name nobody has; so
    // does B's Alice's code for A's Alice.
    let code = t.code(t.b.seed);
    let nobody = t.send(sign_in(&t.a, "nobody", &code)).await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED, "{nobody:?}");
    for username in ["bob", "alice"] {
        let reply = t.send(sign_in(&t.a, username, &code)).await;
        assert_eq!(reply, nobody, "{username}");
    }
    // In B, the same code signs bob in.
    let reply = t.send(sign_in(&t.b, "bob", &code)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{reply:?}");

    // A's Alice, signed in, cannot see, rename or remove B's Alice's authenticator app: each
    // reply is the one for a factor that does not exist, and nothing changes.
    let (token, csrf) = signed_in(&t, &t.a, "alice").await;
    let theirs = totp_id(&t, &t.b.org, "alice").await;
    let unknown = "TOTPunknown0000000000";
    let as_alice = |req| with_cookie(req, SESSION, &token);
    let pages = [
        (format!("/portal/factors/totp/{theirs}"), None),
        (
            format!("/portal/factors/totp/{theirs}/rename"),
            Some(format!("csrf={csrf}&name=Mine")),
        ),
        (
            format!("/portal/factors/totp/{theirs}/remove"),
            Some(format!("csrf={csrf}")),
        ),
    ];
    for (path, body) in pages {
        let request = |path: &str| match &body {
            Some(body) => as_alice(form(path, body)),
            None => as_alice(get(path)),
        };
        let foreign = t.send(request(&path)).await;
        let missing = t.send(request(&path.replace(&theirs, unknown))).await;
        assert_eq!(foreign.replacing(&theirs, unknown), missing, "{path}");
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{missing:?}");
    }
    let b_alice = t.user_id(&t.b.org, "alice").await;
    let kept = t
        .ward
        .portal()
        .factors(&t.b.org, &UserId::new(b_alice.clone()))
        .await
        .unwrap()
        .totps;
    assert_eq!(kept.len(), 1);
    assert_ne!(kept[0].name, "Mine");

    // A recovery of B's Alice shows on her portal page, not on A's Alice's.
    let now = t.now();
    t.ward
        .recovery()
        .start(&t.b.org, "alice", Opener::User, None, now)
        .await
        .unwrap();
    let home_a = t.send(as_alice(get("/portal"))).await;
    let (theirs, _) = signed_in(&t, &t.b, "alice").await;
    let home_b = t.send(with_cookie(get("/portal"), SESSION, &theirs)).await;
    let banner = "collecting proof";
    assert!(home_b.text().contains(banner), "{home_b:?}");
    assert!(!home_a.text().contains(banner), "{home_a:?}");
    assert_eq!(home_a.status, StatusCode::OK);
}

on_both_backends!(a_sign_in_and_a_session_stay_in_their_organisation);

/// The `action` of the first form on `html`.
fn form_action(html: &str) -> &str {
    let start = html.find("action=\"").unwrap() + "action=\"".len();
    let end = start + html[start..].find('"').unwrap();
    &html[start..end]
}

#[tokio::test]
async fn pages_keep_the_organisation_on_their_forms_and_links_without_javascript() {
    let t = sqlite_tenants().await;
    for (page, action, links) in [
        (
            "/portal/sign-in",
            "/portal/sign-in/totp",
            &["/recovery", "/report-contact"][..],
        ),
        (
            "/recovery",
            "/recovery/start",
            &["/portal/sign-in", "/report-contact"][..],
        ),
        ("/report-contact", "/report-contact", &[][..]),
    ] {
        let named = t
            .send(get(&format!("{page}?org={}", t.b.name)))
            .await
            .text();
        assert_eq!(form_action(&named), format!("{action}?org={}", t.b.name));
        for link in links {
            let href = format!("href=\"{link}?org={}\"", t.b.name);
            assert!(named.contains(&href), "{page} lacks {href}");
        }
        // Without a name the forms post to the plain path; a name is encoded, not pasted.
        let plain = t.send(get(page)).await.text();
        assert_eq!(form_action(&plain), action);
        let odd = t.send(get(&format!("{page}?org=a%26b%22"))).await.text();
        assert_eq!(form_action(&odd), format!("{action}?org=a%26b%22"));
    }

    // The sign-in form, posted where the page says (no script involved), signs in to B.
    let page = t
        .send(get(&format!("/portal/sign-in?org={}", t.b.name)))
        .await;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("username", "alice")
        .append_pair("code", &t.code(t.b.seed))
        .finish();
    let reply = t.send(form(form_action(&page.text()), &body)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{reply:?}");
    let token = reply.cookie(SESSION).unwrap();
    let session = t.ward.portal().session(&token, t.now()).await;
    let session = session.unwrap().unwrap();
    assert_eq!(
        session.user_id().as_str(),
        t.user_id(&t.b.org, "alice").await
    );
}
