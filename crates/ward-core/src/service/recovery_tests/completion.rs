//! A user who lost every factor recovers with a recovery code and an e-mailed code, waits out
//! the cooling, binds a new passkey and confirms it; then every old factor, session and code is
//! gone and the account is on probation. On SQLite, and on PostgreSQL when one is configured.

use crate::model::UserId;
use chrono::TimeDelta;
use ward_proto::device::Decision;

use super::super::passkey_tests::{ORIGIN, events};
use super::*;
use crate::recovery::Opener;
use crate::totp::Algorithm;

#[tokio::test]
async fn a_user_who_lost_every_factor_recovers_with_a_code_and_an_email_code() {
    let mut r = rig(short_cooling()).await;
    lost_everything(&mut r).await;
}

#[tokio::test]
async fn a_user_who_lost_every_factor_recovers_on_postgres() {
    on_postgres(short_cooling(), |mut r| async move {
        lost_everything(&mut r).await;
    })
    .await;
}

/// Alice before she lost everything: a passkey, an authenticator app, a phone and a set of
/// recovery codes.
struct Alice {
    id: String,
    old: Authr<SoftPasskey>,
    phone: Phone,
    codes: Vec<Zeroizing<String>>,
}

/// The whole of a self-service recovery, on whatever store the rig has.
async fn lost_everything(r: &mut Rig) {
    let mut alice = equipped_alice(r).await;
    // Alice lost all of that but the printed codes.
    r.advance(TimeDelta::minutes(1));
    let (mut handle, case_id) = r
        .ward()
        .recovery()
        .start(
            default_org(),
            "alice",
            Opener::User,
            Some("203.0.113.9"),
            r.now(),
        )
        .await
        .unwrap();
    let opened = r.notice(&alice.id, "recovery.opened").await;
    assert!(opened.body.contains("203.0.113.9"), "{}", opened.body);
    assert!(!opened.body.contains(handle.as_str()), "{}", opened.body);
    let pushed = r
        .recovery_push(&alice.phone, &case_id, "Account recovery started")
        .await;
    assert_eq!(pushed.application, "Account recovery");
    let status = r.status(&handle).await;
    assert_eq!(status.stage, "collecting");
    assert!(status.email_available);
    // The case page shows when and from where the case was started.
    assert_eq!(status.opened_ms, r.now().timestamp_millis());
    assert_eq!(status.opened_from.as_deref(), Some("203.0.113.9"));
    assert!(!status.by_helpdesk);

    let email_code = present_both_codes(r, &alice, &mut handle, &case_id).await;
    wait_out_cooling(r, &alice.id, &handle).await;
    let (token, mut new, new_view) = bind_new_passkey(r, &alice.id, &handle).await;
    let new_codes = confirm_new_passkey(r, &handle, &mut alice.old, &mut new).await;
    assert_eq!(
        r.ward()
            .recovery()
            .open_case_for(default_org(), &UserId::new(alice.id.clone()))
            .await
            .unwrap(),
        None
    );
    assert_old_factors_gone(r, &mut alice, &new_view, &mut new).await;
    assert_account_reset(r, &alice, &new_codes).await;

    let secrets = [
        handle.as_str(),
        token.as_str(),
        alice.codes[0].as_str(),
        email_code.as_str(),
        new_codes[1].as_str(),
    ];
    assert_recovery_audited(r, &case_id, &alice.id, &secrets).await;
    assert_recovery_notices(r, &alice.id).await;
}

async fn equipped_alice(r: &Rig) -> Alice {
    let id = r.user_with("alice", &[]).await;
    r.user_with("bob", &[Role::Approver]).await;
    let mut old = r.passkey_for(&id).await;
    r.ward()
        .admin()
        .add_totp(
            default_org(),
            &Actor::Cli,
            "alice",
            None,
            Algorithm::Sha1,
            6,
            r.now(),
        )
        .await
        .unwrap();
    let phone = r.phone("alice", 1).await;
    let (_, codes) = r.recovery_codes(&mut old).await;
    let before = r
        .ward()
        .portal()
        .factors(default_org(), &UserId::new(id.clone()))
        .await
        .unwrap();
    let counts = (
        before.passkeys.len(),
        before.totps.len(),
        before.devices.len(),
        before.recovery.remaining,
    );
    assert_eq!(counts, (1, 1, 1, RECOVERY_CODES));
    Alice {
        id,
        old,
        phone,
        codes,
    }
}

/// A recovery code, then a code sent to her verified address: cooling starts. Returns the
/// e-mailed code.
async fn present_both_codes(
    r: &mut Rig,
    alice: &Alice,
    handle: &mut Zeroizing<String>,
    case_id: &str,
) -> String {
    let code = r.submit_code(handle, &alice.codes[0]).await;
    assert_eq!(code, Submitted::Accepted);
    r.ward()
        .recovery()
        .send_email(handle, r.now())
        .await
        .unwrap();
    let mails = r.mail.at_least(1).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to, "alice@example.com");
    assert_eq!(mails[0].subject, "Your account recovery code");
    let email_code = code_in(&mails[0].body);
    let mailed = r.submit_email(handle, &email_code).await;
    assert_eq!(mailed, Submitted::Accepted);

    // P-code + P-mail: the configured cooling for R1 without approvals.
    let status = r.status(handle).await;
    assert_eq!(status.stage, "cooling");
    assert_eq!(status.accepted, ["recovery code", "e-mail code"]);
    let until = r.now().timestamp_millis() + 3 * HOUR_MS;
    assert_eq!(status.cooling_until_ms, Some(until));
    r.notice(&alice.id, "recovery.cooling").await;
    r.recovery_push(&alice.phone, case_id, "Account recovery waiting")
        .await;
    let early = r.ward().recovery().issue_token(handle, r.now()).await;
    assert!(matches!(early, Err(CoreError::Conflict(_))), "{early:?}");
    email_code
}

/// Halfway: a reminder. At the end: ready.
async fn wait_out_cooling(r: &mut Rig, alice: &str, handle: &str) {
    r.advance(TimeDelta::minutes(90));
    assert_eq!(r.status(handle).await.stage, "cooling");
    r.notice(alice, "recovery.reminder").await;
    r.advance(TimeDelta::minutes(90));
    assert_eq!(r.status(handle).await.stage, "ready");
    r.notice(alice, "recovery.ready").await;
}

/// The token binds a new passkey, once. Returns the token, the passkey and its listing.
async fn bind_new_passkey(
    r: &mut Rig,
    alice: &str,
    handle: &str,
) -> (Zeroizing<String>, Authr<SoftPasskey>, PasskeyView) {
    let token = r
        .ward()
        .recovery()
        .issue_token(handle, r.now())
        .await
        .unwrap();
    let start = r
        .ward()
        .recovery()
        .enrol_start(handle, &token, r.now())
        .await
        .unwrap();
    let mut new = super::super::passkey_tests::passkey();
    let answer = new.register(&start.options).unwrap();
    r.ward()
        .recovery()
        .enrol_finish(handle, &token, &start.ceremony, &answer, r.now())
        .await
        .unwrap();
    r.notice(alice, "recovery.bound").await;
    assert_eq!(r.status(handle).await.stage, "confirming");
    let again = r
        .ward()
        .recovery()
        .enrol_start(handle, &token, r.now())
        .await;
    assert!(matches!(again, Err(CoreError::Conflict(_))), "{again:?}");
    let view = r
        .ward()
        .portal()
        .factors(default_org(), &UserId::new(alice))
        .await
        .unwrap()
        .passkeys
        .into_iter()
        .find(|p| p.name == "Passkey (account recovery)")
        .unwrap();
    (token, new, view)
}

/// The first sign-in must be with the new passkey (an old one is refused); then the case
/// completes, hands out new recovery codes and ends every session (one still live is opened
/// with the old passkey here: the old ones timed out during cooling).
async fn confirm_new_passkey(
    r: &Rig,
    handle: &str,
    old: &mut Authr<SoftPasskey>,
    new: &mut Authr<SoftPasskey>,
) -> Vec<Zeroizing<String>> {
    let cookie = r.sign_in(old).await.token;
    assert!(
        r.ward()
            .portal()
            .session(&cookie, r.now())
            .await
            .unwrap()
            .is_some()
    );
    let start = r
        .ward()
        .recovery()
        .confirm_start(handle, r.now())
        .await
        .unwrap();
    let answer = old.authenticate(&start.options).unwrap();
    let wrong = r
        .ward()
        .recovery()
        .confirm_finish(handle, &start.ceremony, &answer, r.now())
        .await;
    assert!(matches!(wrong, Err(CoreError::Forbidden(_))), "{wrong:?}");
    assert_eq!(r.status(handle).await.stage, "confirming");
    let start = r
        .ward()
        .recovery()
        .confirm_start(handle, r.now())
        .await
        .unwrap();
    let answer = new.authenticate(&start.options).unwrap();
    let codes = r
        .ward()
        .recovery()
        .confirm_finish(handle, &start.ceremony, &answer, r.now())
        .await
        .unwrap();
    assert_eq!(codes.len(), RECOVERY_CODES);
    assert_eq!(r.status(handle).await.stage, "completed");
    assert!(
        r.ward()
            .portal()
            .session(&cookie, r.now())
            .await
            .unwrap()
            .is_none()
    );
    codes
}

/// Only the new codes work, and the account is on probation.
async fn assert_account_reset(r: &Rig, alice: &Alice, new_codes: &[Zeroizing<String>]) {
    let done_at = r.now().timestamp_millis();
    let alice_id = UserId::new(alice.id.clone());
    let old_code =
        r.ward()
            .portal()
            .use_recovery_code(default_org(), &alice_id, &alice.codes[1], r.now());
    assert!(!old_code.await.unwrap());
    let new_code =
        r.ward()
            .portal()
            .use_recovery_code(default_org(), &alice_id, &new_codes[0], r.now());
    assert!(new_code.await.unwrap());
    let row = r.f.row(&alice.id).await;
    assert_eq!(row.last_recovered_ms, Some(done_at));
    assert_eq!(
        row.probation_until_ms,
        Some(done_at + TimeDelta::days(7).num_milliseconds())
    );
    let refused = r
        .ward()
        .admin()
        .add_recovery_approver(default_org(), &Actor::Cli, "alice", "bob", r.now())
        .await;
    assert!(
        matches!(refused, Err(CoreError::Forbidden(_))),
        "{refused:?}"
    );
    // Nor new recovery codes from a session, even a fresh one.
    let user = r.f.row(&alice.id).await;
    let mut session = r
        .ward()
        .portal()
        .open_session(&user, "passkey", None, r.now())
        .await
        .unwrap()
        .session;
    session.step_up_until_ms = Some(done_at + 60_000);
    let codes = r
        .ward()
        .portal()
        .regenerate_recovery_codes(&session, r.now())
        .await;
    assert!(matches!(codes, Err(CoreError::Forbidden(_))), "{codes:?}");
}

/// Only the new passkey is left: the old one, the TOTP and the phone are revoked and useless.
async fn assert_old_factors_gone(
    r: &Rig,
    alice: &mut Alice,
    new_view: &PasskeyView,
    new: &mut Authr<SoftPasskey>,
) {
    let after = r
        .ward()
        .portal()
        .factors(default_org(), &UserId::new(alice.id.clone()))
        .await
        .unwrap();
    let ids: Vec<&str> = after.passkeys.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, [new_view.id.as_str()]);
    assert!(after.totps.is_empty(), "{:?}", after.totps);
    assert!(after.devices.is_empty(), "{:?}", after.devices);
    assert_eq!(
        (after.recovery.total, after.recovery.remaining),
        (RECOVERY_CODES, RECOVERY_CODES)
    );
    let start = r
        .ward()
        .portal()
        .passkey_auth_start(default_org(), ceremony_purpose::SIGN_IN, None, r.now())
        .await
        .unwrap();
    let answer = alice.old.authenticate(&start.options).unwrap();
    let refused = r
        .ward()
        .portal()
        .passkey_auth_finish(
            default_org(),
            ceremony_purpose::SIGN_IN,
            &start.ceremony,
            &answer,
            r.now(),
        )
        .await;
    assert!(
        matches!(&refused, Err(CoreError::InvalidInput { reason, .. }) if reason.contains("not registered")),
        "{refused:?}"
    );
    assert_eq!(r.sign_in(new).await.session.user.user_id, alice.id);
    // The phone can no longer answer anything.
    let stale = PushEvent {
        txid: "TX-none".into(),
        title: String::new(),
        application: String::new(),
        username: String::new(),
        ip: None,
        location: None,
        details: Vec::new(),
        time: 0,
        expires: 0,
        number_required: false,
        context_hash: "x".into(),
    };
    let refused = r.answer(&alice.phone, &stale, Decision::Deny).await;
    assert!(
        matches!(refused, Err(CoreError::Unauthenticated)),
        "{refused:?}"
    );
}

/// The case's events and the audit trail, which holds no secret.
async fn assert_recovery_audited(r: &Rig, case_id: &str, alice: &str, secrets: &[&str]) {
    assert_eq!(
        r.case_events(case_id).await,
        [
            "opened",
            "evidence_accepted",
            "evidence_accepted",
            "cooling_started",
            "cooling_elapsed",
            "token_issued",
            "authenticator_bound",
            "completed",
        ]
    );
    let audit = r.audit().await;
    for action in [
        "recovery.start",
        "recovery.cooling_started",
        "recovery.cooling_elapsed",
        "recovery.token_issued",
        "recovery.authenticator_bound",
        "recovery.revoke_factors",
        "recovery.completed",
    ] {
        let found = events(&audit, action, "ok");
        assert_eq!(found.len(), 1, "{action}: {found:?}");
        assert_eq!(found[0]["target"], alice, "{action}");
    }
    let accepted = events(&audit, "recovery.evidence_accepted", "ok");
    let categories: Vec<&Value> = accepted.iter().map(|e| &e["details"]["category"]).collect();
    assert_eq!(categories, ["P-code", "P-mail"]);
    let cooling = events(&audit, "recovery.cooling_started", "ok");
    assert_eq!(cooling[0]["details"]["row"], "R1: P-code + P-mail");
    assert_eq!(cooling[0]["details"]["case_id"], case_id);
    let start = events(&audit, "recovery.start", "ok");
    assert_eq!(start[0]["details"]["phantom"], false);
    let text = serde_json::to_string(&audit).unwrap();
    for secret in secrets {
        assert!(!text.contains(secret), "the audit log holds a secret");
    }
}

/// One notice per stage, each with its "this wasn't me" link.
async fn assert_recovery_notices(r: &mut Rig, alice: &str) {
    assert_eq!(
        r.recovery_notices(alice).await,
        [
            "recovery.bound",
            "recovery.completed",
            "recovery.cooling",
            "recovery.opened",
            "recovery.ready",
            "recovery.reminder",
        ]
    );
    for n in r.seen.iter().filter(|n| n.action.starts_with("recovery.")) {
        let link = n.report_url.as_deref().unwrap_or_default();
        assert!(
            link.starts_with(&format!("{ORIGIN}/portal/report/")),
            "{}: {link:?}",
            n.action
        );
        assert_eq!(n.email.as_deref(), Some("alice@example.com"));
    }
}
