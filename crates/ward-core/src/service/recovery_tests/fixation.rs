//! Recovery case-handle fixation: a handle from a self-service start can never be adopted by
//! another browser; a continue link (agent-opened cases only) works once, whoever races for
//! it; and each submitted piece of evidence replaces the handle, so the browser that submitted
//! keeps the case and every other holder of the old handle loses it.

use futures::future::join_all;

use super::super::passkey_tests::events;
use super::helpdesk::continue_link;
use super::*;
use crate::recovery::Opener;

/// How many browsers race for one link.
const RACERS: usize = 100;

#[tokio::test]
async fn case_handle_fixation_a_self_service_handle_is_no_continue_link() {
    no_continue_link(&rig(short_cooling()).await).await;
}

#[tokio::test]
async fn case_handle_fixation_a_self_service_handle_is_no_continue_link_on_postgres() {
    on_postgres(short_cooling(), |r| async move {
        no_continue_link(&r).await;
    })
    .await;
}

/// The handle of a self-service start (or of a phantom) adopted as a continue link.
async fn no_continue_link(r: &Rig) {
    r.user_with("alice", &[]).await;
    // The attacker starts a case for Alice and tries to hand its handle to her as a link.
    let (attackers, _) = r.start("alice").await;
    let adopted = r.ward().recovery().adopt(&attackers, None, r.now()).await;
    assert!(
        matches!(adopted, Err(CoreError::NotFound(_))),
        "{adopted:?}"
    );
    // A phantom's handle is no link either, and the attacker's own case is unchanged.
    let (ghost, _) = r.start("nobody").await;
    let adopted = r.ward().recovery().adopt(&ghost, None, r.now()).await;
    assert!(
        matches!(adopted, Err(CoreError::NotFound(_))),
        "{adopted:?}"
    );
    assert_eq!(r.status(&attackers).await.stage, "collecting");
}

#[tokio::test]
async fn case_handle_fixation_evidence_rotates_the_handle() {
    evidence_rotates(&rig(short_cooling()).await).await;
}

#[tokio::test]
async fn case_handle_fixation_evidence_rotates_the_handle_on_postgres() {
    on_postgres(short_cooling(), |r| async move {
        evidence_rotates(&r).await;
    })
    .await;
}

/// Two browsers hold one handle; evidence submitted from one replaces it, on a real case and
/// a phantom alike.
async fn evidence_rotates(r: &Rig) {
    let alice = r.user_with("alice", &[]).await;
    let mut key = r.passkey_for(&alice).await;
    let (_, codes) = r.recovery_codes(&mut key).await;
    // Two browsers hold the same handle (however the second got it).
    let (attackers, case_id) = r.start("alice").await;
    let mut victims = attackers.clone();
    let accepted = r.submit_code(&mut victims, &codes[0]).await;
    assert_eq!(accepted, Submitted::Accepted);
    assert_ne!(victims, attackers);
    // The browser that submitted keeps the case; the old handle opens nothing any more.
    assert_eq!(r.status(&victims).await.accepted, ["recovery code"]);
    let lost = r.ward().recovery().status(&attackers, r.now()).await;
    assert!(matches!(lost, Err(CoreError::NotFound(_))), "{lost:?}");
    let lost = r.ward().recovery().issue_token(&attackers, r.now()).await;
    assert!(matches!(lost, Err(CoreError::NotFound(_))), "{lost:?}");
    let lost = r
        .ward()
        .recovery()
        .submit_code(&attackers, &codes[1], r.now())
        .await;
    assert!(matches!(lost, Err(CoreError::NotFound(_))), "{lost:?}");
    // Phantom cases rotate too, so that nothing tells them apart.
    let (ghost, _) = r.start("nobody").await;
    let mut kept = ghost.clone();
    assert_eq!(
        r.submit_code(&mut kept, &codes[1]).await,
        Submitted::Refused
    );
    assert_ne!(kept, ghost);
    let lost = r.ward().recovery().status(&ghost, r.now()).await;
    assert!(matches!(lost, Err(CoreError::NotFound(_))), "{lost:?}");
    let audit = r.audit().await;
    let rotated = events(&audit, "recovery.handle_rotated", "ok");
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    assert_eq!(rotated[0]["details"]["case_id"], case_id.as_str());
}

#[tokio::test]
async fn case_handle_fixation_a_continue_link_is_adopted_once() {
    let mut r = rig(short_cooling()).await;
    adopted_once(&mut r).await;
}

#[tokio::test]
async fn case_handle_fixation_a_continue_link_is_adopted_once_on_postgres() {
    on_postgres(short_cooling(), |mut r| async move {
        adopted_once(&mut r).await;
    })
    .await;
}

/// An agent opens a case; 100 browsers race with its link: exactly one gets the case.
async fn adopted_once(r: &mut Rig) {
    let alice = r.user_with("alice", &[]).await;
    let helen = r.user_with("helen", &[Role::Helpdesk]).await;
    let mut key = r.passkey_for(&helen).await;
    let agent = r.sign_in(&mut key).await.session;
    let case_id = r
        .ward()
        .recovery()
        .helpdesk_open_case(&agent, "alice", r.now())
        .await
        .unwrap();
    let link = continue_link(&r.notice(&alice, "recovery.opened").await.body);
    let now = r.now();
    let ward = r.ward();
    let results = join_all((0..RACERS).map(|_| ward.recovery().adopt(&link, None, now))).await;
    let won: Vec<&Zeroizing<String>> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, CoreError::NotFound(_))),
        "{results:?}"
    );
    let status = r.status(won[0]).await;
    assert!(
        status.by_helpdesk && status.stage == "collecting",
        "{status:?}"
    );
    let again = r.ward().recovery().adopt(&link, None, r.now()).await;
    assert!(matches!(again, Err(CoreError::NotFound(_))), "{again:?}");
    let audit = r.audit().await;
    let adopted = events(&audit, "recovery.adopted", "ok");
    assert_eq!(adopted.len(), 1, "{adopted:?}");
    assert_eq!(adopted[0]["details"]["case_id"], case_id.as_str());
}

#[tokio::test]
async fn case_handle_fixation_agent_opened_cases_hand_out_no_handle() {
    let r = rig(short_cooling()).await;
    r.user_with("alice", &[]).await;
    let helen = r.user_with("helen", &[Role::Helpdesk]).await;
    let opener = Opener::Agent { agent_id: helen };
    let (handle, case_id) = r
        .ward()
        .recovery()
        .start(default_org(), "alice", opener, None, r.now())
        .await
        .unwrap();
    assert!(handle.is_empty());
    assert!(!r.is_phantom(&case_id).await);
    let row = r.f.store.recovery_case(&case_id).await.unwrap().unwrap();
    assert!(
        row.adopt_hash.is_some() && row.opened_from.is_none(),
        "{row:?}"
    );
}
