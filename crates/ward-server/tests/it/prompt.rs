//! The hosted prompt (Duo Web SDK v4) through the router: `/oauth/v1/authorize` with a signed
//! request object, the prompt's code form and push calls, and `/oauth/v1/token`; and an
//! application of one organisation whose prompt and token endpoint reach nothing of another's
//! users.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Map, Value, json};
use ward_proto::jws;

use crate::tenants::{
    ORIGIN, REDIRECT, Reply, Tenant, Tenants, form, get, json as json_request, sqlite_tenants,
};

const STATE: &str = "state-0123456789abcdef";

/// `GET /oauth/v1/authorize` for `username`, as `tenant`'s Web SDK application signs it.
fn authorize(t: &Tenants, tenant: &Tenant, username: &str) -> Request<Body> {
    let exp = t.now().timestamp() + 300;
    let claims = json!({
        "iss": tenant.client_id, "client_id": tenant.client_id, "aud": ORIGIN,
        "response_type": "code", "scope": "openid", "exp": exp, "redirect_uri": REDIRECT,
        "state": STATE, "duo_uname": username,
    });
    let claims = claims.as_object().unwrap();
    let request = jws::sign_hs512(claims, tenant.client_secret.as_bytes()).unwrap();
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &tenant.client_id)
        .append_pair("request", &request)
        .finish();
    get(&format!("/oauth/v1/authorize?{query}"))
}

/// The sealed prompt state a prompt page carries.
fn context_of(page: &Reply) -> String {
    let text = page.text();
    let (_, rest) = text.split_once(r#"data-context=""#).unwrap();
    rest.split('"').next().unwrap().to_owned()
}

/// The code in a redirect back to the application (after checking the `state`).
fn code_of(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::FOUND, "{reply:?}");
    let location = url::Url::parse(reply.header("location").unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT), "{location}");
    let pairs: Map<String, Value> = location
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), Value::from(v.into_owned())))
        .collect();
    assert_eq!(pairs["state"], STATE);
    pairs["duo_code"].as_str().unwrap().to_owned()
}

/// `POST /prompt/passcode`.
fn passcode(context: &str, code: &str) -> Request<Body> {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("context", context)
        .append_pair("passcode", code)
        .finish();
    form("/prompt/passcode", &body)
}

/// `POST /oauth/v1/token`: `tenant`'s application trades `code`.
fn token(t: &Tenants, tenant: &Tenant, code: &str) -> Request<Body> {
    static JTI: AtomicUsize = AtomicUsize::new(0);
    let jti = format!("jti-{}", JTI.fetch_add(1, Ordering::SeqCst));
    let claims = json!({
        "iss": tenant.client_id, "sub": tenant.client_id, "jti": jti,
        "aud": format!("{ORIGIN}/oauth/v1/token"), "exp": t.now().timestamp() + 300,
    });
    let claims = claims.as_object().unwrap();
    let assertion = jws::sign_hs512(claims, tenant.client_secret.as_bytes()).unwrap();
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("client_id", &tenant.client_id)
        .append_pair(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        )
        .append_pair("client_assertion", &assertion)
        .finish();
    form("/oauth/v1/token", &body)
}

/// The claims of the `id_token` `tenant`'s application gets for `code`.
async fn result(t: &Tenants, tenant: &Tenant, code: &str) -> Map<String, Value> {
    let reply = t.send(token(t, tenant, code)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let id_token = reply.json()["id_token"].as_str().unwrap().to_owned();
    jws::verify_hs512(&id_token, tenant.client_secret.as_bytes()).unwrap()
}

#[tokio::test]
async fn a_code_in_the_prompt_signs_in_and_the_application_reads_the_result() {
    let t = sqlite_tenants().await;
    let page = t.send(authorize(&t, &t.a, "alice")).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert!(page.text().contains(r#"action="/prompt/passcode""#));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("form-action 'self' https://app.example"),
        "{csp}"
    );

    let context = context_of(&page);
    let done = t.send(passcode(&context, &t.code(t.a.seed))).await;
    let code = code_of(&done);
    let claims = result(&t, &t.a, &code).await;
    assert_eq!(claims["auth_result"]["result"], "allow", "{claims:?}");
    assert_eq!(claims["preferred_username"], "alice");
    let alice = t.user_id(&t.a.org, "alice").await;
    assert_eq!(claims["auth_context"]["user"]["key"], alice.as_str());
    assert_eq!(claims["auth_context"]["factor"], "Passcode");
}

#[tokio::test]
async fn wrong_codes_bad_request_objects_and_replayed_codes_are_refused() {
    let t = sqlite_tenants().await;
    let page = t.send(authorize(&t, &t.a, "alice")).await;
    let wrong = t.send(passcode(&context_of(&page), "000000")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.text().contains("That code did not work."),
        "{wrong:?}"
    );
    // A request object signed with another secret: an error page, never a redirect.
    let mut forged = authorize(&t, &t.a, "alice");
    let uri = forged.uri().to_string().replace(
        &format!("client_id={}", t.a.client_id),
        &format!("client_id={}", t.b.client_id),
    );
    *forged.uri_mut() = uri.parse().unwrap();
    let reply = t.send(forged).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");
    assert!(reply.header("location").is_none());
    assert!(reply.text().contains("This sign-in link is not valid"));
    // A code is traded once.
    let page = t.send(authorize(&t, &t.a, "alice")).await;
    let done = t
        .send(passcode(&context_of(&page), &t.code(t.a.seed)))
        .await;
    let code = code_of(&done);
    result(&t, &t.a, &code).await;
    let again = t.send(token(&t, &t.a, &code)).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.json()["error"], "invalid_grant");
}

/// The claims two answers must share: without the random ids, and with the name asked for
/// in place of `username`.
fn comparable(mut claims: Map<String, Value>, username: &str) -> Value {
    claims.remove("jti");
    claims["auth_context"]["txid"] = Value::Null;
    let text = Value::Object(claims)
        .to_string()
        .replace(&format!("\"{username}\""), "\"NAME\"");
    serde_json::from_str(&text).unwrap()
}

async fn a_prompt_and_its_token_endpoint_stay_in_their_organisation(t: Tenants) {
    let _b_alice_phone = t.phone(&t.b.org, "alice", 3).await;

    // A prompt of A for B's bob is sent back at once, exactly as one for a name nobody has;
    // the result A's application reads says the same, and carries no user of B.
    let bob = t.send(authorize(&t, &t.a, "bob")).await;
    let nobody = t.send(authorize(&t, &t.a, "nobody")).await;
    let (bob_code, nobody_code) = (code_of(&bob), code_of(&nobody));
    assert_eq!(
        bob.replacing(&bob_code, "CODE"),
        nobody.replacing(&nobody_code, "CODE")
    );
    let bob = result(&t, &t.a, &bob_code).await;
    let nobody = result(&t, &t.a, &nobody_code).await;
    assert_eq!(bob["auth_context"]["user"]["key"], Value::Null, "{bob:?}");
    assert_eq!(bob["auth_result"]["result"], "deny");
    assert_eq!(comparable(bob, "bob"), comparable(nobody, "nobody"));

    // A's prompt for alice is A's Alice's: no push (B's Alice has a phone), and B's Alice's
    // code is refused as any wrong code is.
    let page = t.send(authorize(&t, &t.a, "alice")).await;
    assert!(!page.text().contains("data-prompt-push"), "{page:?}");
    let theirs = t.send(authorize(&t, &t.b, "alice")).await;
    assert!(theirs.text().contains("data-prompt-push"), "{theirs:?}");
    let context = context_of(&page);
    let foreign = t.send(passcode(&context, &t.code(t.b.seed))).await;
    let wrong = t.send(passcode(&context, "000000")).await;
    assert_eq!(foreign.status, StatusCode::UNAUTHORIZED);
    let (foreign_context, wrong_context) = (context_of(&foreign), context_of(&wrong));
    assert_eq!(
        foreign.replacing(&foreign_context, "CONTEXT"),
        wrong.replacing(&wrong_context, "CONTEXT")
    );

    // B's prompt pushes to B's Alice; A's prompt cannot poll that push.
    let push = json!({ "context": context_of(&theirs) });
    let started = t.send(json_request("/prompt/api/push/start", &push)).await;
    assert_eq!(started.status, StatusCode::OK, "{started:?}");
    let txid = started.json()["txid"].as_str().unwrap().to_owned();
    let poll = |txid: &str| {
        json_request(
            "/prompt/api/push/status",
            &json!({ "context": context, "txid": txid }),
        )
    };
    let foreign = t.send(poll(&txid)).await;
    let unknown = t.send(poll("TXunknown")).await;
    assert_eq!(foreign, unknown);
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{foreign:?}");

    // A code of B's prompt is no code to A's application; B's application trades its own.
    let bobs = t.send(authorize(&t, &t.b, "bob")).await;
    let done = t
        .send(passcode(&context_of(&bobs), &t.code(t.b.seed)))
        .await;
    let code = code_of(&done);
    let foreign = t.send(token(&t, &t.a, &code)).await;
    let unknown = t.send(token(&t, &t.a, "unknown-code")).await;
    assert_eq!(foreign, unknown);
    assert_eq!(foreign.json()["error"], "invalid_grant", "{foreign:?}");
    let claims = result(&t, &t.b, &code).await;
    assert_eq!(
        claims["auth_result"]["result"], "allow",
        "A left B's code unused"
    );

    // A's Alice's own code signs her in; the result names A's Alice.
    let page = t.send(authorize(&t, &t.a, "alice")).await;
    let done = t
        .send(passcode(&context_of(&page), &t.code(t.a.seed)))
        .await;
    let claims = result(&t, &t.a, &code_of(&done)).await;
    let a_alice = t.user_id(&t.a.org, "alice").await;
    assert_eq!(claims["auth_result"]["result"], "allow");
    assert_eq!(claims["auth_context"]["user"]["key"], a_alice.as_str());
}

on_both_backends!(a_prompt_and_its_token_endpoint_stay_in_their_organisation);
