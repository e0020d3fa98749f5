//! The helpdesk console through the router: an agent looks a user up and verifies a caller on
//! the user's device; who may not use it; and an agent of one organisation who finds nothing of
//! another's users (the replies are those for a name nobody has, the name aside).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ward_core::recovery::Opener;

use crate::tenants::{Reply, Tenants, form, get, sqlite_tenants, with_cookie};

const SESSION: &str = "__Host-ward_session";

/// A signed-in user of the console: the cookie value and the CSRF token.
struct Agent {
    token: String,
    csrf: String,
}

impl Agent {
    async fn of(t: &Tenants, org: &ward_core::model::OrgId, username: &str, method: &str) -> Self {
        let (token, session) = t.session(org, username, method).await;
        Self {
            token,
            csrf: session.csrf,
        }
    }

    fn get(&self, path: &str) -> Request<Body> {
        with_cookie(get(path), SESSION, &self.token)
    }

    /// A console form (`action` is `verify`, `open-case`, `fraud` or `note`) about `username`.
    fn act(&self, username: &str, action: &str) -> Request<Body> {
        let body = format!("csrf={}&reason=odd&note=called", self.csrf);
        let path = format!("/helpdesk/users/{username}/{action}");
        with_cookie(form(&path, &body), SESSION, &self.token)
    }
}

/// The text between `start` and the next `end` in `page`.
fn between<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    let from = page.find(start).unwrap() + start.len();
    let len = page[from..].find(end).unwrap();
    &page[from..from + len]
}

fn push_devices(page: &Reply) -> String {
    between(&page.text(), "<dt>Push devices</dt><dd>", "</dd>").to_owned()
}

#[tokio::test]
async fn an_agent_looks_a_user_up_and_verifies_the_caller() {
    let t = sqlite_tenants().await;
    let phone = t.phone(&t.a.org, "alice", 1).await;
    let agent = Agent::of(&t, &t.a.org, "agent", "passkey").await;
    let console = t.send(agent.get("/helpdesk")).await;
    assert_eq!(console.status, StatusCode::OK, "{console:?}");
    let lookup = t.send(agent.get("/helpdesk/lookup?username=alice")).await;
    assert_eq!(lookup.header("location"), Some("/helpdesk/users/alice"));
    let page = t.send(agent.get("/helpdesk/users/alice")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(push_devices(&page), "1");
    assert!(page.text().contains("No recovery case is open."));

    let verify = t.send(agent.act("alice", "verify")).await;
    assert_eq!(verify.status, StatusCode::OK, "{verify:?}");
    let text = verify.text();
    let number = between(&text, "data-verify-number>", "</p>");
    let txid = between(&text, r#"data-txid=""#, "\"");
    let status_path = format!("/helpdesk/api/verify/{txid}");
    let pending = t.send(agent.get(&status_path)).await;
    assert_eq!(pending.json()["status"], "pending", "{pending:?}");
    // The caller types the number on the user's device.
    assert_eq!(t.approve(&phone, Some(number)).await, txid);
    let verified = t.send(agent.get(&status_path)).await;
    assert_eq!(verified.json()["status"], "approved", "{verified:?}");
}

#[tokio::test]
async fn the_console_refuses_non_agents_code_sign_ins_and_forms_without_a_token() {
    let t = sqlite_tenants().await;
    let user = Agent::of(&t, &t.a.org, "alice", "passkey").await;
    let page = t.send(user.get("/helpdesk/users/alice")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.text().contains("data-not-agent"), "{page:?}");
    // The role is not enough: the agent must have signed in with a passkey.
    let by_code = Agent::of(&t, &t.a.org, "agent", "totp").await;
    let page = t.send(by_code.get("/helpdesk/users/alice")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let status = t.send(by_code.get("/helpdesk/api/verify/TX1")).await;
    assert_eq!(status.status, StatusCode::FORBIDDEN);
    // A form without the session's token changes nothing.
    let agent = Agent::of(&t, &t.a.org, "agent", "passkey").await;
    let path = "/helpdesk/users/alice/open-case";
    let forged = with_cookie(form(path, "csrf=nope"), SESSION, &agent.token);
    let reply = t.send(forged).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{reply:?}");
    let alice = t.user_id(&t.a.org, "alice").await;
    let case = t.store.open_recovery_case(t.a.org.as_str(), &alice).await;
    assert!(case.unwrap().is_none());
}

async fn an_agent_finds_nothing_of_another_organisations_users(t: Tenants) {
    let bob_phone = t.phone(&t.b.org, "bob", 2).await;
    let b_alice_phone = t.phone(&t.b.org, "alice", 3).await;
    let now = t.now();
    let (_, b_case) = t
        .ward
        .recovery()
        .start(&t.b.org, "alice", Opener::User, None, now)
        .await
        .unwrap();
    let agent = Agent::of(&t, &t.a.org, "agent", "passkey").await;

    // Every page and form about B's bob reads as one about a name nobody has.
    let bob_page = t.send(agent.get("/helpdesk/users/bob")).await;
    let nobody_page = t.send(agent.get("/helpdesk/users/nobody")).await;
    assert_eq!(bob_page.replacing("bob", "nobody"), nobody_page);
    assert!(
        nobody_page.text().contains("data-no-user"),
        "{nobody_page:?}"
    );
    for action in ["verify", "open-case", "fraud", "note"] {
        let bob = t.send(agent.act("bob", action)).await;
        let nobody = t.send(agent.act("nobody", action)).await;
        assert_eq!(bob.replacing("bob", "nobody"), nobody, "{action}");
    }
    assert!(t.pending(&bob_phone).await.is_empty());
    let bob = t.user_id(&t.b.org, "bob").await;
    let case = t.store.open_recovery_case(t.b.org.as_str(), &bob).await;
    assert!(case.unwrap().is_none(), "no case was opened for B's bob");

    // A's alice is A's: no push device, no case (B's alice has both); no verification reaches
    // B's alice's phone, and flagging fraud freezes nothing of B.
    // (B's alice's own recovery has told her phone already.)
    let told = t.pending(&b_alice_phone).await;
    let alice_page = t.send(agent.get("/helpdesk/users/alice")).await;
    assert_eq!(push_devices(&alice_page), "0");
    assert!(alice_page.text().contains("No recovery case is open."));
    let verify = t.send(agent.act("alice", "verify")).await;
    assert_eq!(verify.status, StatusCode::CONFLICT, "{verify:?}");
    assert_eq!(t.pending(&b_alice_phone).await, told);
    let fraud = t.send(agent.act("alice", "fraud")).await;
    assert_eq!(
        fraud.header("location"),
        Some("/helpdesk/users/alice?done=no-case")
    );
    let case = t.store.recovery_case(&b_case).await.unwrap().unwrap();
    assert_eq!(case.state, "collecting");

    // B's agent sees its own: B's alice's device and case, and can verify bob.
    let theirs = Agent::of(&t, &t.b.org, "agent", "passkey").await;
    let page = t.send(theirs.get("/helpdesk/users/alice")).await;
    assert_eq!(push_devices(&page), "1");
    assert!(page.text().contains(&b_case), "{page:?}");
    let verify = t.send(theirs.act("bob", "verify")).await;
    assert_eq!(verify.status, StatusCode::OK, "{verify:?}");
    let text = verify.text();
    let txid = between(&text, r#"data-txid=""#, "\"");
    // A's agent cannot read B's verification.
    let foreign = t
        .send(agent.get(&format!("/helpdesk/api/verify/{txid}")))
        .await;
    let unknown = t.send(agent.get("/helpdesk/api/verify/TXunknown")).await;
    assert_eq!(foreign, unknown);
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{foreign:?}");
}

on_both_backends!(an_agent_finds_nothing_of_another_organisations_users);
