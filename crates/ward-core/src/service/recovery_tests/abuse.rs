//! Abuse controls (recovery spec §5.8): the daily start limit, the failure limit and its cool-off,
//! the
//! circuit breaker, and the "this wasn't me" link on a recovery notice.

use crate::model::UserId;
use chrono::TimeDelta;
use ward_store::DEFAULT_ORG;

use super::super::passkey_tests::events;
use super::*;
use crate::notify::Alert;

const WRONG_CODE: &str = "AAAA-BBBB-CCCC-DDDD";

/// The `phantom_reason` of the latest `recovery.start`.
async fn last_phantom_reason(r: &Rig) -> Value {
    let audit = r.audit().await;
    let starts = events(&audit, "recovery.start", "ok");
    starts.last().unwrap()["details"]["phantom_reason"].clone()
}

#[tokio::test]
async fn starts_over_the_daily_limit_open_phantoms_and_notify_the_user() {
    let mut r = rig(short_cooling()).await;
    let alice = r.user_with("alice", &[]).await;
    for _ in 0..3 {
        let (_, case_id) = r.start("alice").await;
        assert!(!r.is_phantom(&case_id).await);
        let cancelled = r
            .ward()
            .recovery()
            .cancel_by_user(
                default_org(),
                &UserId::new(alice.clone()),
                "portal",
                r.now(),
            )
            .await
            .unwrap();
        assert!(cancelled);
        r.advance(TimeDelta::hours(1));
    }
    assert!(r.notices(&alice, "recovery.start_again").await.is_empty());
    let (handle, case_id) = r.start("alice").await;
    assert!(r.is_phantom(&case_id).await);
    assert_eq!(last_phantom_reason(&r).await, "too many starts");
    assert_eq!(r.status(&handle).await.stage, "collecting");
    r.notice(&alice, "recovery.start_again").await;
    assert_eq!(
        r.ward()
            .recovery()
            .open_case_for(default_org(), &UserId::new(alice.clone()))
            .await
            .unwrap(),
        None
    );

    // A day after the first start, one more may open.
    r.advance(TimeDelta::hours(21));
    let (_, case_id) = r.start("alice").await;
    assert!(!r.is_phantom(&case_id).await);
}

#[tokio::test]
async fn six_wrong_codes_deny_the_case_and_block_new_starts_for_a_day() {
    let mut r = rig(short_cooling()).await;
    let alice = r.user_with("alice", &[]).await;
    let (mut handle, case_id) = r.start("alice").await;
    for _ in 0..5 {
        let submitted = r.submit_code(&mut handle, WRONG_CODE).await;
        assert_eq!(submitted, Submitted::Refused);
    }
    assert_eq!(r.status(&handle).await.stage, "collecting");
    let sixth = r.submit_email(&mut handle, "00000000").await;
    assert_eq!(sixth, Submitted::Refused);
    assert_eq!(r.status(&handle).await.stage, "closed");
    assert_eq!(r.case_events(&case_id).await.last().unwrap(), "denied");
    let until = r.now() + TimeDelta::hours(24);
    let row = r.f.row(&alice).await;
    assert_eq!(
        row.recovery_blocked_until_ms,
        Some(until.timestamp_millis())
    );
    r.notice(&alice, "recovery.denied").await;
    let audit = r.audit().await;
    assert_eq!(events(&audit, "recovery.evidence_rejected", "ok").len(), 6);
    assert_eq!(events(&audit, "recovery.denied", "ok").len(), 1);

    // Blocked: a new start is a phantom, until the cool-off ends.
    r.advance(TimeDelta::hours(23));
    let (_, blocked) = r.start("alice").await;
    assert!(r.is_phantom(&blocked).await);
    assert_eq!(last_phantom_reason(&r).await, "recovery blocked");
    r.advance(TimeDelta::hours(1));
    let (_, open) = r.start("alice").await;
    assert!(!r.is_phantom(&open).await);
}

/// Issue 11: the account's status is read as the typed status (no string compares): a
/// disabled account gets a phantom case, and a real one again once enabled.
#[tokio::test]
async fn a_disabled_account_gets_a_phantom_case() {
    let r = rig(short_cooling()).await;
    r.user_with("alice", &[]).await;
    let set_status = |status| {
        r.ward()
            .admin()
            .set_user_status(default_org(), &Actor::Cli, "alice", status, r.now())
    };
    set_status(crate::model::UserStatus::Disabled)
        .await
        .unwrap();
    let (handle, case_id) = r.start("alice").await;
    assert!(r.is_phantom(&case_id).await);
    assert_eq!(last_phantom_reason(&r).await, "disabled");
    assert_eq!(r.status(&handle).await.stage, "collecting");
    set_status(crate::model::UserStatus::Active).await.unwrap();
    let (_, case_id) = r.start("alice").await;
    assert!(!r.is_phantom(&case_id).await);
}

#[tokio::test]
async fn a_burst_of_starts_trips_the_circuit_breaker_and_raises_the_level() {
    let r = rig(RecoverySettings {
        breaker_floor: 3,
        breaker_multiple: 1,
        ..short_cooling()
    })
    .await;
    for name in ["alice", "bob", "carol"] {
        r.user_with(name, &[]).await;
    }
    let (before, _) = r.start("bob").await;
    r.start("ghost1").await;
    r.start("ghost2").await;
    assert!(r.f.alerts.taken().is_empty());
    let r1 = r.status(&before).await;
    assert_eq!(r1.missing, ["a recovery code", "one approval"]);

    // The fourth start in the hour: the breaker trips, alerts, and the case needs more.
    let (during, _) = r.start("alice").await;
    assert_eq!(
        r.f.alerts.taken(),
        [Alert::RecoveryCircuitBreaker {
            org_id: DEFAULT_ORG.into(),
            at_ms: r.now().timestamp_millis(),
        }]
    );
    let r2 = r.status(&during).await;
    assert_eq!(
        r2.missing,
        ["2 approvals", "a recovery code", "an e-mail code"]
    );
    assert!(r2.missing.len() > r1.missing.len());
    let audit = r.audit().await;
    let starts = events(&audit, "recovery.start", "ok");
    assert_eq!(starts.last().unwrap()["details"]["breaker"], true);
    // A phantom opened meanwhile asks for the same.
    let (ghost, _) = r.start("ghost3").await;
    assert_eq!(r.status(&ghost).await, r2);

    // An hour later the burst has passed.
    r.advance(TimeDelta::minutes(61));
    let (after, _) = r.start("carol").await;
    assert_eq!(r.status(&after).await.missing, r1.missing);
}

#[tokio::test]
async fn this_wasnt_me_on_a_recovery_notice_freezes_the_case() {
    let mut r = rig(short_cooling()).await;
    let alice = r.user_with("alice", &[]).await;
    let mut key = r.passkey_for(&alice).await;
    let (_, codes) = r.recovery_codes(&mut key).await;
    let (mut handle, case_id) = r.start("alice").await;
    r.submit_code(&mut handle, &codes[0]).await;
    r.ward()
        .recovery()
        .send_email(&handle, r.now())
        .await
        .unwrap();
    let mail = r.mail.at_least(1).await.pop().unwrap();
    r.submit_email(&mut handle, &code_in(&mail.body)).await;
    assert_eq!(r.status(&handle).await.stage, "cooling");
    let notice = r.notice(&alice, "recovery.cooling").await;
    let token = token_of(notice.report_url.as_deref().unwrap());
    r.f.alerts.taken();

    r.advance(TimeDelta::minutes(5));
    let disowned = r
        .ward()
        .portal()
        .report_not_me(&token, r.now())
        .await
        .unwrap();
    assert_eq!(disowned, "recovery.cooling");
    let (open, state, _) = r
        .ward()
        .recovery()
        .open_case_for(default_org(), &UserId::new(alice.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((open.as_str(), state), (case_id.as_str(), "frozen"));
    let alerts = r.f.alerts.taken();
    assert!(
        alerts.iter().any(|a| matches!(a,
            Alert::RecoveryFrozen { user_id, .. } if *user_id == alice)),
        "{alerts:?}"
    );
    let audit = r.audit().await;
    let frozen = events(&audit, "recovery.frozen", "ok");
    assert_eq!(frozen.len(), 1, "{frozen:?}");
    assert_eq!(frozen[0]["details"]["case_id"], case_id.as_str());
    assert_eq!(r.case_events(&case_id).await.last().unwrap(), "frozen");
    r.notice(&alice, "recovery.frozen").await;

    // Cooling ends, but the frozen case goes nowhere.
    r.advance(TimeDelta::hours(4));
    assert_eq!(r.status(&handle).await.stage, "closed");
    let token = r.ward().recovery().issue_token(&handle, r.now()).await;
    assert!(matches!(token, Err(CoreError::Conflict(_))), "{token:?}");
}
