//! Anonymous floods: recovery starts for one account notify its owner at most
//! `start_notices_per_hour` times an hour (more starts are recorded, not announced), even when
//! 100 of them arrive at once; and an anonymous report keeps only the start of its text.

use crate::model::UserId;
use chrono::TimeDelta;
use futures::future::join_all;

use super::super::passkey_tests::events;
use super::*;
use crate::recovery::Opener;

/// The notices about starts `user_id` received.
async fn start_notices(r: &mut Rig, user_id: &str) -> usize {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let opened = r.notices(user_id, "recovery.opened").await.len();
    opened + r.notices(user_id, "recovery.start_again").await.len()
}

#[tokio::test]
async fn anonymous_floods_twenty_starts_notify_the_owner_at_most_the_cap() {
    let mut r = rig(short_cooling()).await;
    let alice = r.user_with("alice", &[]).await;
    for _ in 0..20 {
        r.start("alice").await;
    }
    assert_eq!(start_notices(&mut r, &alice).await, 3);
    let audit = r.audit().await;
    let starts = events(&audit, "recovery.start", "ok");
    assert_eq!(starts.len(), 20, "every start is recorded");
    let told = starts
        .iter()
        .filter(|e| e["details"]["user_told"] == true)
        .count();
    assert_eq!(told, 3);
    // An hour later she hears again.
    r.advance(TimeDelta::hours(1));
    r.start("alice").await;
    assert_eq!(start_notices(&mut r, &alice).await, 4);
}

#[tokio::test]
async fn anonymous_floods_hundred_concurrent_starts() {
    let mut r = rig(short_cooling()).await;
    concurrent_starts(&mut r).await;
}

#[tokio::test]
async fn anonymous_floods_hundred_concurrent_starts_on_postgres() {
    on_postgres(short_cooling(), |mut r| async move {
        concurrent_starts(&mut r).await;
    })
    .await;
}

/// 100 starts for Alice at once: every one is answered, one real case opens, and Alice gets
/// at most the cap of notices.
async fn concurrent_starts(r: &mut Rig) {
    let alice = r.user_with("alice", &[]).await;
    let now = r.now();
    let ward = r.ward();
    let starts = (0..100).map(|_| {
        ward.recovery()
            .start(default_org(), "alice", Opener::User, None, now)
    });
    let results = join_all(starts).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let open = r
        .ward()
        .recovery()
        .open_case_for(default_org(), &UserId::new(alice.clone()))
        .await
        .unwrap();
    assert!(open.is_some());
    let notices = start_notices(r, &alice).await;
    assert!((1..=3).contains(&notices), "{notices} notices");
    let audit = r.audit().await;
    assert_eq!(events(&audit, "recovery.start", "ok").len(), 100);
}

#[tokio::test]
async fn anonymous_floods_an_anonymous_report_keeps_only_the_start_of_its_text() {
    let r = rig(short_cooling()).await;
    let long = "x".repeat(2000);
    r.ward()
        .recovery()
        .report_contact(
            default_org(),
            None,
            "call",
            &long,
            None,
            Some("192.0.2.7"),
            r.now(),
        )
        .await
        .unwrap();
    let alice = r.user_with("alice", &[]).await;
    r.ward()
        .recovery()
        .report_contact(
            default_org(),
            Some(&alice),
            "call",
            &long,
            None,
            None,
            r.now(),
        )
        .await
        .unwrap();
    let audit = r.audit().await;
    let reports = events(&audit, "security.contact_report", "ok");
    let kept: Vec<usize> = reports
        .iter()
        .map(|e| {
            e["details"]["description"]
                .as_str()
                .unwrap()
                .chars()
                .count()
        })
        .collect();
    assert_eq!(kept, [280 + " [cut]".len(), 2000]);
    assert_eq!(reports[0]["details"]["description_chars"], 2000);
}
