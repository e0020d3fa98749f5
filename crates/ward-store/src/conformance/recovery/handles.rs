//! Who holds a case: a continue link adopts an agent-opened case exactly once, a handle is
//! replaced exactly once, and the per-account notice cap holds under a burst.

use futures::future::join_all;

use super::super::{Check, Ctx, commit, user};
use super::{case_row, open};
use crate::{Change, Store, StoreError, StoreResult};

/// How many requests race in each check.
const RACERS: usize = 100;

/// The indices of the results that succeeded, and whether every other one is a refusal.
fn winners<T: std::fmt::Debug>(results: &[StoreResult<T>]) -> Result<Vec<usize>, String> {
    let won: Vec<usize> = (0..)
        .zip(results)
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::ConditionFailed(_))))
        .count();
    check_eq!(
        won.len() + refused,
        results.len(),
        "only successes and refusals: {results:?}"
    );
    Ok(won)
}

/// 100 browsers racing to adopt one agent-opened case with its continue link: exactly one
/// wins, the case then answers to the winner's handle only, and the link is used up.
pub async fn concurrent_adopt(store: &dyn Store) -> Check {
    let org = "conf-rc-adopt";
    let case = crate::RecoveryCaseRow {
        opened_by: "agent:HAU2".into(),
        opened_from: None,
        adopt_hash: Some("link-of-HA1".into()),
        handle_hash: "nobody-holds-this".into(),
        ..case_row(org, "HA1", Some("HAU1"), 1_000)
    };
    let setup = vec![Change::InsertUser(user(org, "HAU1", "alice")), open(&case)];
    commit(store, setup).await.ctx("setup")?;
    let found = store
        .recovery_case_by_adopt_hash("link-of-HA1")
        .await
        .ctx("recovery_case_by_adopt_hash")?;
    check_eq!(found, Some(case.clone()), "found by its link");
    let attempts = (0..RACERS).map(|i| {
        commit(
            store,
            vec![Change::AdoptRecoveryCase {
                case_id: "HA1".into(),
                adopt_hash: "link-of-HA1".into(),
                handle_hash: format!("browser-{i}"),
            }],
        )
    });
    let results = join_all(attempts).await;
    let won = winners(&results)?;
    check_eq!(won.len(), 1, "exactly one browser adopts: {results:?}");
    let winner = format!("browser-{}", won.first().copied().unwrap_or_default());
    let held = store
        .recovery_case_by_handle(&winner)
        .await
        .ctx("recovery_case_by_handle")?;
    let expected = crate::RecoveryCaseRow {
        handle_hash: winner,
        adopt_hash: None,
        ..case
    };
    check_eq!(held, Some(expected), "the winner holds the case");
    let link = store
        .recovery_case_by_adopt_hash("link-of-HA1")
        .await
        .ctx("recovery_case_by_adopt_hash")?;
    check_eq!(link, None, "the link is used up");
    // A self-service case has no link to adopt it with.
    let own = case_row(org, "HA2", None, 1_000);
    commit(store, vec![open(&own)]).await.ctx("open HA2")?;
    let refused = commit(
        store,
        vec![Change::AdoptRecoveryCase {
            case_id: "HA2".into(),
            adopt_hash: "handle-of-HA2".into(),
            handle_hash: "intruder".into(),
        }],
    )
    .await;
    check!(
        matches!(refused, Err(StoreError::ConditionFailed(_))),
        "a self-service case cannot be adopted: {refused:?}"
    );
    Ok(())
}

/// 100 holders of one handle replacing it at once: exactly one keeps the case; the old handle
/// finds nothing.
pub async fn concurrent_rotate(store: &dyn Store) -> Check {
    let org = "conf-rc-rotate";
    let case = case_row(org, "HR1", Some("HRU1"), 1_000);
    let setup = vec![Change::InsertUser(user(org, "HRU1", "alice")), open(&case)];
    commit(store, setup).await.ctx("setup")?;
    let attempts = (0..RACERS).map(|i| {
        commit(
            store,
            vec![Change::RotateRecoveryHandle {
                case_id: "HR1".into(),
                old_hash: "handle-of-HR1".into(),
                new_hash: format!("holder-{i}"),
            }],
        )
    });
    let results = join_all(attempts).await;
    let won = winners(&results)?;
    check_eq!(
        won.len(),
        1,
        "exactly one holder keeps the case: {results:?}"
    );
    let winner = format!("holder-{}", won.first().copied().unwrap_or_default());
    let held = store
        .recovery_case_by_handle(&winner)
        .await
        .ctx("recovery_case_by_handle")?
        .map(|c| c.case_id);
    check_eq!(
        held,
        Some("HR1".to_owned()),
        "the winner's handle finds the case"
    );
    let old = store
        .recovery_case_by_handle("handle-of-HR1")
        .await
        .ctx("recovery_case_by_handle")?;
    check_eq!(old, None, "the old handle finds nothing");
    Ok(())
}

fn slot(user_id: &str, now_ms: i64) -> Change {
    Change::TakeNoticeSlot {
        org_id: "conf-notice".into(),
        user_id: user_id.into(),
        kind: "recovery.start".into(),
        now_ms,
        window_ms: 3_600_000,
        cap: 3,
    }
}

/// 100 notices to one account at once: exactly the cap are counted; another account has its
/// own count; a new window counts again.
pub async fn concurrent_notice_slots(store: &dyn Store) -> Check {
    let attempts = (0..RACERS).map(|_| commit(store, vec![slot("NQU1", 10_000)]));
    let results = join_all(attempts).await;
    check_eq!(winners(&results)?.len(), 3, "the cap holds: {results:?}");
    commit(store, vec![slot("NQU2", 10_000)])
        .await
        .ctx("another account")?;
    let late = commit(store, vec![slot("NQU1", 10_000 + 3_599_999)]).await;
    check!(
        matches!(late, Err(StoreError::ConditionFailed(_))),
        "still the same window: {late:?}"
    );
    let attempts = (0..RACERS).map(|_| commit(store, vec![slot("NQU1", 10_000 + 3_600_000)]));
    let results = join_all(attempts).await;
    check_eq!(winners(&results)?.len(), 3, "a new window: {results:?}");
    Ok(())
}
