//! M-of-N approvals: approvers in the user's set confirm with their own passkeys in a ceremony
//! bound to one case; the user, outsiders and repeat approvals do not count; the policy decides
//! when approvals and evidence together start cooling.

use chrono::TimeDelta;

use super::super::passkey_tests::events;
use super::*;

/// The reasons of the audited approval refusals, in order.
fn refusal_reasons(audit: &[Value]) -> Vec<String> {
    events(audit, "recovery.approval_refused", "deny")
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap().to_owned())
        .collect()
}

#[allow(clippy::too_many_lines)] // one scenario, step by step
#[tokio::test]
async fn two_approvers_and_a_recovery_code_start_the_shorter_cooling() {
    let mut r = rig(short_cooling()).await;
    let alice = r.user_with("alice", &[]).await;
    let mut alices_key = r.passkey_for(&alice).await;
    let (cookie, codes) = r.recovery_codes(&mut alices_key).await;
    let alices_session = r
        .ward()
        .portal()
        .session(&cookie, r.now())
        .await
        .unwrap()
        .unwrap();
    r.user_with("dave", &[]).await;
    let mut bob = r.approver("bob").await;
    let mut carol = r.approver("carol").await;
    let mut erin = r.approver("erin").await;
    r.add_approver("alice", "bob").await;
    r.add_approver("alice", "carol").await;
    r.add_approver("dave", "bob").await;

    let (mut alices_handle, case_a) = r.start("alice").await;
    r.advance(TimeDelta::minutes(1));
    let (daves_handle, case_b) = r.start("dave").await;
    assert_approvers_asked(&mut r, &bob.id, &erin.id).await;
    let pending = r
        .ward()
        .recovery()
        .pending_approvals(&bob.session)
        .await
        .unwrap();
    let listed: Vec<(&str, &str, bool)> = pending
        .iter()
        .map(|p| (p.case_id.as_str(), p.username.as_str(), p.approved))
        .collect();
    assert_eq!(
        listed,
        [
            (case_a.as_str(), "alice", false),
            (case_b.as_str(), "dave", false)
        ]
    );
    assert!(
        r.ward()
            .recovery()
            .pending_approvals(&erin.session)
            .await
            .unwrap()
            .is_empty()
    );

    // Alice cannot approve her own recovery; Erin is not in her set.
    let own = r.approve(&alices_session, &mut alices_key, &case_a).await;
    assert!(
        matches!(own, Err(CoreError::InvalidInput { .. })),
        "{own:?}"
    );
    let outsider = r.approve(&erin.session, &mut erin.key, &case_a).await;
    assert!(
        matches!(outsider, Err(CoreError::InvalidInput { .. })),
        "{outsider:?}"
    );
    assert_eq!(r.status(&alices_handle).await.approvals, 0);

    // Bob's ceremony for Alice's case cannot be finished for Dave's; it is still good for
    // Alice's afterwards.
    let start = r
        .ward()
        .recovery()
        .approval_start(&bob.session, &case_a, r.now())
        .await
        .unwrap();
    let answer = bob.key.authenticate(&start.options).unwrap();
    let crossed = r
        .ward()
        .recovery()
        .approval_finish(&bob.session, &case_b, &start.ceremony, &answer, r.now())
        .await;
    assert!(matches!(crossed, Err(CoreError::Expired(_))), "{crossed:?}");
    assert_eq!(r.status(&daves_handle).await.approvals, 0);
    assert_eq!(r.case_events(&case_b).await, ["opened"]);
    r.ward()
        .recovery()
        .approval_finish(&bob.session, &case_a, &start.ceremony, &answer, r.now())
        .await
        .unwrap();
    // Once per approver.
    let twice = r.approve(&bob.session, &mut bob.key, &case_a).await;
    assert!(
        matches!(twice, Err(CoreError::InvalidInput { .. })),
        "{twice:?}"
    );
    r.approve(&carol.session, &mut carol.key, &case_a)
        .await
        .unwrap();

    // Approvals are one category: still collecting, and a recovery code completes P-code + S(1).
    let status = r.status(&alices_handle).await;
    assert_eq!((status.stage, status.approvals), ("collecting", 2));
    assert_eq!(status.missing, ["a recovery code"]);
    let pending = r
        .ward()
        .recovery()
        .pending_approvals(&bob.session)
        .await
        .unwrap();
    assert!(pending[0].approved && !pending[1].approved, "{pending:?}");
    let submitted = r.submit_code(&mut alices_handle, &codes[0]).await;
    assert_eq!(submitted, Submitted::Accepted);
    let status = r.status(&alices_handle).await;
    assert_eq!(status.stage, "cooling");
    assert_eq!(
        status.cooling_until_ms,
        Some(r.now().timestamp_millis() + HOUR_MS)
    );
    r.notice(&alice, "recovery.cooling").await;

    assert_approvals_audited(&r, &[&bob.id, &carol.id]).await;
}

#[tokio::test]
async fn with_the_circuit_breaker_tripped_a_case_needs_two_approvals_and_both_codes() {
    let mut r = rig(RecoverySettings {
        breaker_floor: 3,
        breaker_multiple: 1,
        ..short_cooling()
    })
    .await;
    let alice = r.user_with("alice", &[]).await;
    let mut alices_key = r.passkey_for(&alice).await;
    let (_, codes) = r.recovery_codes(&mut alices_key).await;
    let mut bob = r.approver("bob").await;
    let mut carol = r.approver("carol").await;
    r.add_approver("alice", "bob").await;
    r.add_approver("alice", "carol").await;
    for ghost in ["ghost1", "ghost2", "ghost3"] {
        r.start(ghost).await;
    }

    let (mut handle, case_id) = r.start("alice").await;
    let status = r.status(&handle).await;
    assert_eq!(
        status.missing,
        ["2 approvals", "a recovery code", "an e-mail code"]
    );
    r.approve(&bob.session, &mut bob.key, &case_id)
        .await
        .unwrap();
    let code = r.submit_code(&mut handle, &codes[0]).await;
    assert_eq!(code, Submitted::Accepted);
    // P-code + S(1) would do at R1, not here.
    let status = r.status(&handle).await;
    assert_eq!(status.stage, "collecting");
    assert_eq!(status.missing, ["one approval", "an e-mail code"]);
    r.approve(&carol.session, &mut carol.key, &case_id)
        .await
        .unwrap();
    r.ward()
        .recovery()
        .send_email(&handle, r.now())
        .await
        .unwrap();
    let mail = r.mail.at_least(1).await.pop().unwrap();
    let mailed = r.submit_email(&mut handle, &code_in(&mail.body)).await;
    assert_eq!(mailed, Submitted::Accepted);
    let status = r.status(&handle).await;
    assert_eq!((status.stage, status.approvals), ("cooling", 2));
    assert_eq!(
        status.cooling_until_ms,
        Some(r.now().timestamp_millis() + 6 * HOUR_MS)
    );
    let audit = r.audit().await;
    let cooling = events(&audit, "recovery.cooling_started", "ok");
    assert_eq!(cooling[0]["details"]["row"], "R2: S(2) + P-code + P-mail");
    r.notice(&alice, "recovery.cooling").await;
}

/// The recorded approvals, the three refusals (the user, an outsider, a repeat) and the row.
/// Each approver hears of the cases that may need them (bob for alice's and dave's), without a
/// link; someone in nobody's set hears nothing.
async fn assert_approvers_asked(r: &mut Rig, bob: &str, erin: &str) {
    let asked = r.notices(bob, "recovery.approval_requested").await;
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(asked.iter().all(|n| n.report_url.is_none()));
    assert!(
        asked.iter().any(|n| n.subject.starts_with("alice ")),
        "{asked:?}"
    );
    assert!(
        r.notices(erin, "recovery.approval_requested")
            .await
            .is_empty()
    );
}

async fn assert_approvals_audited(r: &Rig, approvers: &[&str]) {
    let audit = r.audit().await;
    let recorded: Vec<&Value> = events(&audit, "recovery.approval_recorded", "ok")
        .iter()
        .map(|e| &e["details"]["approver_id"])
        .collect();
    assert_eq!(recorded, approvers);
    let reasons = refusal_reasons(&audit);
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].contains("the user being recovered"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("not in the account's approver set"),
        "{reasons:?}"
    );
    assert!(reasons[2].contains("already approved"), "{reasons:?}");
    let cooling = events(&audit, "recovery.cooling_started", "ok");
    assert_eq!(cooling[0]["details"]["row"], "R1: P-code + S(1)");
}
