//! Anti-enumeration (recovery spec §5.8): a start for an unknown account, or a second start while a
//! case is open, opens a phantom case that answers exactly like a real one and never succeeds.

use super::super::passkey_tests::events;
use super::*;

const WRONG_CODE: &str = "AAAA-BBBB-CCCC-DDDD";

#[tokio::test]
async fn real_and_phantom_cases_answer_alike() {
    let mut r = rig(short_cooling()).await;
    let alice = r.user_with("alice", &[]).await;
    let mut key = r.passkey_for(&alice).await;
    let (_, codes) = r.recovery_codes(&mut key).await;

    let (mut real, real_id) = r.start("alice").await;
    let (mut ghost, ghost_id) = r.start("nobody").await;
    assert_eq!(real.len(), ghost.len());
    assert_eq!(real_id.len(), ghost_id.len());
    assert!(!r.is_phantom(&real_id).await);
    assert!(r.is_phantom(&ghost_id).await);
    let fresh = r.status(&real).await;
    assert_eq!(fresh.stage, "collecting");
    assert_eq!(fresh.missing, ["a recovery code", "one approval"]);
    assert_eq!(r.status(&ghost).await, fresh);

    // A wrong code on the real case and Alice's right code on the phantom: the same refusal.
    let on_real = r.submit_code(&mut real, WRONG_CODE).await;
    let on_ghost = r.submit_code(&mut ghost, &codes[0]).await;
    assert_eq!(
        (on_real, on_ghost),
        (Submitted::Refused, Submitted::Refused)
    );
    // E-mail: both answer the same; only the real account gets mail.
    for handle in [&real, &ghost] {
        r.ward()
            .recovery()
            .send_email(handle, r.now())
            .await
            .unwrap();
    }
    assert_eq!(r.mail.at_least(1).await.len(), 1);
    for handle in [&mut real, &mut ghost] {
        let submitted = r.submit_email(handle, "12345678").await;
        assert_eq!(submitted, Submitted::Refused);
    }
    assert_eq!(r.status(&real).await, fresh);
    assert_eq!(r.status(&ghost).await, fresh);

    // A second start while Alice's case is open: a phantom, and Alice hears about it.
    let (mut again, again_id) = r.start("alice").await;
    assert!(r.is_phantom(&again_id).await);
    assert_eq!(r.status(&again).await, fresh);
    let notice = r.notice(&alice, "recovery.start_again").await;
    assert!(notice.report_url.is_some());
    // Her code on that phantom is refused and not used up: it still works on the real case.
    let on_again = r.submit_code(&mut again, &codes[1]).await;
    assert_eq!(on_again, Submitted::Refused);
    let on_real = r.submit_code(&mut real, &codes[1]).await;
    assert_eq!(on_real, Submitted::Accepted);

    let audit = r.audit().await;
    let starts: Vec<(&Value, &Value)> = events(&audit, "recovery.start", "ok")
        .iter()
        .map(|e| (&e["details"]["phantom"], &e["details"]["phantom_reason"]))
        .collect();
    assert_eq!(
        starts,
        [
            (&Value::Bool(false), &Value::Null),
            (&Value::Bool(true), &Value::from("unknown user")),
            (&Value::Bool(true), &Value::from("case already open")),
        ]
    );
    // A phantom's refusals are audited like a real case's.
    let rejected = events(&audit, "recovery.evidence_rejected", "ok");
    assert_eq!(rejected.len(), 5, "{rejected:?}");
}

/// A well-formed enrolment token that no case issued.
const NO_TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// Each call behind the case page's JSON API on one handle, as its kind and sentence.
async fn json_calls(r: &Rig, handle: &str) -> Vec<String> {
    let recovery = r.ward().recovery();
    let now = r.now();
    let empty = serde_json::json!({});
    let answer = |result: CoreResult<()>| match result {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("{}: {e}", e.code()),
    };
    vec![
        answer(recovery.issue_token(handle, now).await.map(drop)),
        answer(recovery.enrol_start(handle, NO_TOKEN, now).await.map(drop)),
        answer(
            recovery
                .enrol_finish(handle, NO_TOKEN, "c", &empty, now)
                .await,
        ),
        answer(recovery.confirm_start(handle, now).await.map(drop)),
        answer(
            recovery
                .confirm_finish(handle, "c", &empty, now)
                .await
                .map(drop),
        ),
    ]
}

/// Every JSON call refuses a real case and a phantom in the same stage with the same kind and
/// the same fixed sentence (never the case's internal state).
async fn json_calls_alike(r: &Rig, real: &str, phantom: &str, stage: &str) {
    let on_real = json_calls(r, real).await;
    assert_eq!(on_real, json_calls(r, phantom).await, "in stage {stage}");
    for answer in &on_real {
        assert!(answer.starts_with("conflict: "), "{stage}: {answer}");
        assert!(
            !answer.contains('`') && !answer.contains('{') && !answer.contains("Collecting"),
            "{stage}: {answer}"
        );
    }
}

/// Recovery enumeration through the JSON calls (issue 11), at the service: a phantom answers
/// the token, enrolment and confirmation calls exactly like a real case, while collecting
/// evidence and once closed after six wrong codes.
async fn json_calls_answer_alike(r: &Rig) {
    r.user_with("alice", &[]).await;
    let (mut real, _) = r.start("alice").await;
    let (mut phantom, _) = r.start("nobody").await;
    json_calls_alike(r, &real, &phantom, "collecting").await;
    for _ in 0..6 {
        for handle in [&mut real, &mut phantom] {
            assert_eq!(r.submit_code(handle, WRONG_CODE).await, Submitted::Refused);
        }
    }
    assert_eq!(r.status(&real).await.stage, "closed");
    assert_eq!(r.status(&phantom).await.stage, "closed");
    json_calls_alike(r, &real, &phantom, "closed").await;
}

#[tokio::test]
async fn recovery_enumeration_json_calls_answer_a_phantom_like_a_real_case() {
    json_calls_answer_alike(&rig(short_cooling()).await).await;
}

#[tokio::test]
async fn recovery_enumeration_json_calls_answer_a_phantom_like_a_real_case_on_postgres() {
    on_postgres(short_cooling(), |r| async move {
        json_calls_answer_alike(&r).await;
    })
    .await;
}

#[tokio::test]
async fn a_phantom_past_the_failure_limit_looks_like_the_denied_real_case() {
    let r = rig(short_cooling()).await;
    r.user_with("alice", &[]).await;
    let (mut real, _) = r.start("alice").await;
    let (mut ghost, _) = r.start("nobody").await;
    for _ in 0..6 {
        for handle in [&mut real, &mut ghost] {
            let submitted = r.submit_code(handle, WRONG_CODE).await;
            assert_eq!(submitted, Submitted::Refused);
        }
    }
    let denied = r.status(&real).await;
    assert_eq!(denied.stage, "closed");
    assert_eq!(r.status(&ghost).await, denied);
    for handle in [&real, &ghost] {
        let code = r
            .ward()
            .recovery()
            .submit_code(handle, WRONG_CODE, r.now())
            .await;
        assert!(matches!(code, Err(CoreError::Conflict(_))), "{code:?}");
        let mail = r.ward().recovery().send_email(handle, r.now()).await;
        assert!(matches!(mail, Err(CoreError::Conflict(_))), "{mail:?}");
    }
}

/// Memory under anonymous Argon2 work: when the Argon2 pool is full, a submission is refused
/// with `RateLimited` before any work, on a real case and on a phantom alike, and the case
/// records nothing; once there is room, the same code is checked.
#[tokio::test]
async fn a_full_argon2_pool_refuses_real_and_phantom_submissions_alike() {
    let mut r = rig(short_cooling()).await;
    let pool = crate::argon::Argon2Pool::new(1, 0);
    r.f.ward = r.f.ward.with_argon2_pool(pool.clone());
    let alice = r.user_with("alice", &[]).await;
    let mut key = r.passkey_for(&alice).await;
    let (_, codes) = r.recovery_codes(&mut key).await;
    let (real, _) = r.start("alice").await;
    let (ghost, _) = r.start("nobody").await;

    let held = pool.admit().unwrap();
    for handle in [&real, &ghost] {
        let refused = r
            .ward()
            .recovery()
            .submit_code(handle, &codes[0], r.now())
            .await;
        assert!(
            matches!(refused, Err(CoreError::RateLimited)),
            "{refused:?}"
        );
    }
    assert!(events(&r.audit().await, "recovery.evidence_rejected", "ok").is_empty());
    drop(held);

    let accepted = r
        .ward()
        .recovery()
        .submit_code(&real, &codes[0], r.now())
        .await
        .unwrap();
    assert_eq!(accepted.outcome, Submitted::Accepted);
    assert_eq!(pool.admitted(), 0);
}
