//! A case a helpdesk agent opens for a caller: the user hears about it on every channel and
//! alone receives the way in; a deny on their phone cancels it, "deny and report" freezes it;
//! the agent can neither approve it nor reach its token.

use crate::model::UserId;
use chrono::TimeDelta;
use ward_proto::device::Decision;
use ward_store::DEFAULT_ORG;

use super::super::passkey_tests::{ORIGIN, events};
use super::*;
use crate::notify::Alert;

const STARTED: &str = "Account recovery started";

/// The token of the continue link in an agent-opened case's notice.
pub(super) fn continue_link(body: &str) -> String {
    let prefix = format!("{ORIGIN}/recovery/continue/");
    let at = body
        .find(&prefix)
        .unwrap_or_else(|| panic!("no continue link in {body:?}"));
    body[at + prefix.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_agent_opens_a_case_the_user_alone_can_continue_and_cancel_from_a_device() {
    let mut r = rig(short_cooling()).await;
    let alice = r.user_with("alice", &[]).await;
    let phones = [r.phone("alice", 1).await, r.phone("alice", 2).await];
    // The agent is also one of Alice's approvers: only being the opener stops the approval.
    let helen = r
        .user_with("helen", &[Role::Helpdesk, Role::Approver])
        .await;
    r.ward()
        .admin()
        .add_recovery_approver(default_org(), &Actor::Cli, "alice", "helen", r.now())
        .await
        .unwrap();
    let mut helens_key = r.passkey_for(&helen).await;
    let agent = r.sign_in(&mut helens_key).await.session;
    assert_eq!(agent.auth_method, "passkey");
    refuses_non_agents(&r, &alice).await;

    let case_id = r
        .ward()
        .recovery()
        .helpdesk_open_case(&agent, "alice", r.now())
        .await
        .unwrap();
    // The agent holds a case id, which is no handle: nothing of the case opens with it.
    assert!(case_id.starts_with("RC"), "{case_id}");
    let by_id = r.ward().recovery().status(&case_id, r.now()).await;
    assert!(matches!(by_id, Err(CoreError::NotFound(_))), "{by_id:?}");
    let by_id = r.ward().recovery().issue_token(&case_id, r.now()).await;
    assert!(matches!(by_id, Err(CoreError::NotFound(_))), "{by_id:?}");

    // Alice's notice names the agent and carries the only way in: a link she adopts once.
    let opened = r.notice(&alice, "recovery.opened").await;
    assert!(opened.body.contains(&helen), "{}", opened.body);
    let link = continue_link(&opened.body);
    let refused = r.ward().recovery().status(&link, r.now()).await;
    assert!(
        matches!(refused, Err(CoreError::NotFound(_))),
        "{refused:?}"
    );
    let handle = r
        .ward()
        .recovery()
        .adopt(&link, Some("198.51.100.4"), r.now())
        .await
        .unwrap();
    let status = r.status(&handle).await;
    assert_eq!((status.stage, status.approvals), ("collecting", 0));
    assert!(
        status.by_helpdesk && status.opened_from.is_none(),
        "{status:?}"
    );
    let text = serde_json::to_string(&r.audit().await).unwrap();
    for secret in [&link, handle.as_str()] {
        assert!(!text.contains(secret), "the audit log holds a case secret");
    }
    let view = r
        .ward()
        .recovery()
        .helpdesk_lookup(&agent, "alice", r.now())
        .await
        .unwrap()
        .unwrap();
    let summary = view.case.unwrap();
    assert_eq!(summary.case_id, case_id);
    assert_eq!(summary.opened_by, format!("agent:{helen}"));
    assert_eq!(summary.state, "collecting");
    // ... and a request on each of her devices.
    for phone in &phones {
        let event = r.recovery_push(phone, &case_id, STARTED).await;
        assert_eq!(event.application, "Account recovery");
    }

    agent_cannot_approve(&r, &agent, &mut helens_key, &case_id, &handle).await;

    // Alice denies on her first phone: the case is cancelled, audited, and she is told.
    let event = r.recovery_push(&phones[0], &case_id, STARTED).await;
    let state = r.answer(&phones[0], &event, Decision::Deny).await.unwrap();
    assert_eq!(state, PushState::Denied);
    assert_eq!(
        r.ward()
            .recovery()
            .open_case_for(default_org(), &UserId::new(alice.clone()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(r.status(&handle).await.stage, "closed");
    assert_eq!(r.case_events(&case_id).await.last().unwrap(), "cancelled");
    let audit = r.audit().await;
    let cancelled = events(&audit, "recovery.cancelled", "ok");
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0]["actor"], format!("user:{alice}"));
    assert_eq!(cancelled[0]["details"]["via"], "denied on a push device");
    r.notice(&alice, "recovery.cancelled").await;
    assert!(r.f.alerts.taken().is_empty());

    r.advance(TimeDelta::minutes(2));
    deny_and_report_freezes(&mut r, &agent, &phones[1], &alice, &handle).await;
}

/// Issue 11: a caller verification reports the typed push state; a pending one whose time is
/// up is reported as timed out even though nothing has expired it in the store yet.
#[tokio::test]
async fn caller_verification_reports_its_push_state() {
    let r = rig(short_cooling()).await;
    r.user_with("alice", &[]).await;
    let phone = r.phone("alice", 1).await;
    let helen = r.user_with("helen", &[Role::Helpdesk]).await;
    let mut key = r.passkey_for(&helen).await;
    let agent = &r.sign_in(&mut key).await.session;
    let r = &r;
    let verify = || {
        r.ward()
            .recovery()
            .helpdesk_verify_caller(agent, "alice", r.now())
    };
    let status = |txid: String| async move {
        r.ward()
            .recovery()
            .helpdesk_verify_status(agent, &txid, r.now())
            .await
            .unwrap()
    };

    let first = verify().await.unwrap();
    assert_eq!(
        first.number.len(),
        3,
        "the agent reads a number to the caller"
    );
    assert_eq!(status(first.txid.clone()).await, PushState::Pending);
    let event = r.shown(&phone).await.into_iter().next().unwrap();
    assert_eq!(event.txid, first.txid);
    let answered = r.answer(&phone, &event, Decision::Deny).await.unwrap();
    assert_eq!(answered, PushState::Denied);
    assert_eq!(status(first.txid).await, PushState::Denied);

    let second = verify().await.unwrap();
    r.advance(TimeDelta::seconds(61));
    assert_eq!(status(second.txid.clone()).await, PushState::Timeout);
    let stored = r.f.store.push(DEFAULT_ORG, &second.txid).await.unwrap();
    assert_eq!(stored.unwrap().state, PushState::Pending.as_str());
}

/// The console needs the helpdesk role and a passkey sign-in.
async fn refuses_non_agents(r: &Rig, alice: &str) {
    let mallory = r.user_with("mallory", &[]).await;
    let mut key = r.passkey_for(&mallory).await;
    let not_agent = r.sign_in(&mut key).await.session;
    let victor = r.user_with("victor", &[Role::Helpdesk]).await;
    let row = r.f.row(&victor).await;
    let no_passkey = r
        .ward()
        .portal()
        .open_session(&row, "enrol-link", None, r.now())
        .await
        .unwrap()
        .session;
    for session in [&not_agent, &no_passkey] {
        let refused = r
            .ward()
            .recovery()
            .helpdesk_open_case(session, "alice", r.now())
            .await;
        assert!(
            matches!(refused, Err(CoreError::Forbidden(_))),
            "{refused:?}"
        );
    }
    assert_eq!(
        r.ward()
            .recovery()
            .open_case_for(default_org(), &UserId::new(alice))
            .await
            .unwrap(),
        None
    );
}

/// The agent cannot approve the case they opened, though an approver of the user.
async fn agent_cannot_approve(
    r: &Rig,
    agent: &Session,
    key: &mut Authr<SoftPasskey>,
    case_id: &str,
    handle: &str,
) {
    let refused = r.approve(agent, key, case_id).await;
    assert!(
        matches!(refused, Err(CoreError::InvalidInput { .. })),
        "{refused:?}"
    );
    let audit = r.audit().await;
    let refusals = events(&audit, "recovery.approval_refused", "deny");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(
        refusals[0]["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("agent who opened"),
        "{refusals:?}"
    );
    assert_eq!(r.status(handle).await.approvals, 0);
}

/// A second case: "deny and report" on a phone freezes it, alerts, and is audited.
async fn deny_and_report_freezes(
    r: &mut Rig,
    agent: &Session,
    phone: &Phone,
    alice: &str,
    first_handle: &str,
) {
    let second = r
        .ward()
        .recovery()
        .helpdesk_open_case(agent, "alice", r.now())
        .await
        .unwrap();
    let event = r.recovery_push(phone, &second, STARTED).await;
    let state = r.answer(phone, &event, Decision::Fraud).await.unwrap();
    assert_eq!(state, PushState::Fraud);
    assert_eq!(
        r.ward()
            .recovery()
            .open_case_for(default_org(), &UserId::new(alice))
            .await
            .unwrap(),
        Some((second.clone(), "frozen", None))
    );
    let alerts = r.f.alerts.taken();
    assert!(
        alerts.contains(&Alert::RecoveryFrozen {
            org_id: ward_store::DEFAULT_ORG.into(),
            user_id: alice.to_owned(),
            reason: "reported from a push device".into(),
            at_ms: r.now().timestamp_millis(),
        }),
        "{alerts:?}"
    );
    let audit = r.audit().await;
    let frozen = events(&audit, "recovery.frozen", "ok");
    assert_eq!(frozen.len(), 1, "{frozen:?}");
    assert_eq!(frozen[0]["details"]["case_id"], second.as_str());
    r.notice(alice, "recovery.frozen").await;
    let opened = r.notices(alice, "recovery.opened").await;
    let second_handle = r
        .ward()
        .recovery()
        .adopt(&continue_link(&opened[1].body), None, r.now())
        .await
        .unwrap();
    assert_ne!(second_handle.as_str(), first_handle);
    assert_eq!(r.status(&second_handle).await.stage, "closed");
}
