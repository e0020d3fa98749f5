//! Push requests (decided once), muting, the storm count, and change signals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{Check, Ctx, commit, device_row, push_row, user};
use crate::{Change, Outcome, PushRow, Signal, Store, StoreError, UserKey};

/// How long a published signal may take to reach a subscriber (on PostgreSQL it may travel
/// through the database).
const SIGNAL_WAIT: Duration = Duration::from_secs(5);

fn decide(org_id: &str, txid: &str, state: &str, decided_ms: i64) -> Change {
    Change::DecidePush {
        org_id: org_id.into(),
        txid: txid.into(),
        state: state.into(),
        decided_ms,
    }
}

fn mute(org_id: &str, user_id: &str, until_ms: i64) -> Change {
    Change::MutePush {
        org_id: org_id.into(),
        user_id: user_id.into(),
        until_ms,
    }
}

fn inserts(rows: &[&PushRow]) -> Vec<Change> {
    rows.iter()
        .map(|row| Change::InsertPush((*row).clone()))
        .collect()
}

/// Push requests are read back as inserted; a device's pending list holds its unexpired,
/// undecided requests, oldest first.
pub async fn push_requests(store: &dyn Store) -> Check {
    let org = "conf-push";
    let p1 = push_row(org, "CPX1", "CPU1", "CPD1", 1_000);
    let mut p2 = push_row(org, "CPX2", "CPU1", "CPD1", 2_000);
    p2.expires_ms = 3_000;
    let mut p3 = push_row(org, "CPX3", "CPU1", "CPD1", 500);
    p3.number = Some("42".into());
    let p4 = push_row(org, "CPX4", "CPU1", "CPD2", 700);
    let mut p5 = push_row(org, "CPX5", "CPU1", "CPD1", 600);
    p5.state = "denied".into();
    p5.decided_ms = Some(800);
    let receipt = commit(store, inserts(&[&p1, &p2, &p3, &p4, &p5]))
        .await
        .ctx("insert pushes")?;
    check_eq!(
        receipt.outcomes,
        vec![Outcome::Done; 5],
        "outcomes of InsertPush"
    );
    for row in [&p3, &p5] {
        let read = store.push(org, &row.txid).await.ctx("push")?;
        check_eq!(read.as_ref(), Some(row), "every field round-trips");
    }
    check_eq!(store.push(org, "CPX9").await.ctx("push")?, None, "unknown");
    let foreign = store.push("conf-other", "CPX1").await.ctx("push")?;
    check_eq!(foreign, None, "scoped by organisation");

    let pending = |now_ms: i64| store.pending_pushes("CPD1", now_ms);
    let listed = pending(2_500).await.ctx("pending_pushes")?;
    check_eq!(
        listed,
        [p3.clone(), p1.clone(), p2],
        "pending and unexpired, oldest first; decided and other devices' not listed"
    );
    let listed = pending(3_000).await.ctx("pending_pushes")?;
    check_eq!(
        listed,
        [p3.clone(), p1.clone()],
        "a request is expired at its expiry time"
    );
    let listed = store
        .pending_pushes("CPD2", 3_000)
        .await
        .ctx("pending_pushes")?;
    check_eq!(listed, [p4], "the other device's");
    commit(store, vec![decide(org, "CPX1", "approved", 2_800)])
        .await
        .ctx("decide")?;
    let listed = pending(2_900).await.ctx("pending_pushes")?;
    let txids: Vec<_> = listed.iter().map(|p| p.txid.as_str()).collect();
    check_eq!(txids, ["CPX3", "CPX2"], "a decided request leaves the list");

    let again = commit(store, vec![Change::InsertPush(p1)]).await;
    check!(
        matches!(again, Err(StoreError::Duplicate(_))),
        "duplicate txid: got {again:?}"
    );
    Ok(())
}

/// A push is decided once; later decisions are refused and change nothing.
pub async fn decide_push_once(store: &dyn Store) -> Check {
    let org = "conf-decide";
    let (first, second) = (
        push_row(org, "CDX1", "CDU1", "CDD1", 1_000),
        push_row(org, "CDX2", "CDU1", "CDD1", 1_000),
    );
    commit(store, inserts(&[&first, &second]))
        .await
        .ctx("insert")?;
    let receipt = commit(store, vec![decide(org, "CDX1", "approved", 7_000)])
        .await
        .ctx("decide")?;
    check_eq!(receipt.outcomes, [Outcome::Done], "outcome of DecidePush");
    let decided = |row: Option<PushRow>| row.map(|p| (p.state, p.decided_ms));
    let approved = Some(("approved".to_owned(), Some(7_000)));
    let read = store.push(org, "CDX1").await.ctx("push")?;
    check_eq!(decided(read), approved, "decision stored");

    let later = commit(store, vec![decide(org, "CDX1", "denied", 8_000)]).await;
    check!(
        matches!(later, Err(StoreError::ConditionFailed(_))),
        "second decision: got {later:?}"
    );
    let read = store.push(org, "CDX1").await.ctx("push")?;
    check_eq!(decided(read), approved, "unchanged");
    let unknown = commit(store, vec![decide(org, "CDX9", "denied", 8_000)]).await;
    check!(
        matches!(unknown, Err(StoreError::ConditionFailed(_))),
        "unknown txid: got {unknown:?}"
    );
    let foreign = commit(store, vec![decide("conf-other", "CDX2", "denied", 8_000)]).await;
    check!(
        matches!(foreign, Err(StoreError::ConditionFailed(_))),
        "another organisation's push: got {foreign:?}"
    );
    let read = store.push(org, "CDX2").await.ctx("push")?;
    check_eq!(read, Some(second), "still pending");
    Ok(())
}

/// Twenty concurrent decisions of one push: exactly one wins, and it is the one stored.
pub async fn concurrent_decide_push(store: &dyn Store) -> Check {
    let org = "conf-decide-race";
    commit(
        store,
        vec![Change::InsertPush(push_row(org, "CRX1", "CRU1", "CRD1", 1))],
    )
    .await
    .ctx("insert")?;
    let state = |i: i64| if i % 2 == 0 { "approved" } else { "denied" };
    let attempts = (0..20).map(|i| commit(store, vec![decide(org, "CRX1", state(i), 100 + i)]));
    let results = join_all(attempts).await;
    let won: Vec<i64> = (0..)
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    check_eq!(won.len(), 1, "exactly one concurrent decision succeeds");
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::ConditionFailed(_))))
        .count();
    check_eq!(
        refused,
        19,
        "every other decision is refused as ConditionFailed: {results:?}"
    );
    let stored = store.push(org, "CRX1").await.ctx("push")?;
    let expected = won.first().map(|&i| (state(i).to_owned(), Some(100 + i)));
    check_eq!(
        stored.map(|p| (p.state, p.decided_ms)),
        expected,
        "the winner's decision is stored"
    );
    Ok(())
}

/// Muting is stored on the user and read with it everywhere users are read.
pub async fn mute_push(store: &dyn Store) -> Check {
    let org = "conf-mute";
    let setup = vec![
        Change::InsertUser(user(org, "CMU1", "alice")),
        Change::InsertUser(user(org, "CMU2", "bob")),
    ];
    commit(store, setup).await.ctx("setup")?;
    for until_ms in [9_000, 12_000] {
        let receipt = commit(store, vec![mute(org, "CMU1", until_ms)])
            .await
            .ctx("mute")?;
        check_eq!(receipt.outcomes, [Outcome::Done], "outcome of MutePush");
        let mut alice = user(org, "CMU1", "alice");
        alice.push_muted_until_ms = Some(until_ms);
        let by_name = store.user_by_name(org, "alice").await.ctx("user_by_name")?;
        check_eq!(by_name.as_ref(), Some(&alice), "user_by_name");
        let by_id = store.user_by_id(org, "CMU1").await.ctx("user_by_id")?;
        check_eq!(by_id.as_ref(), Some(&alice), "user_by_id");
        for key in [UserKey::Name("alice"), UserKey::Id("CMU1")] {
            let joined = store
                .user_with_totps(org, key)
                .await
                .ctx("user_with_totps")?;
            check_eq!(
                joined.map(|(u, _)| u),
                Some(alice.clone()),
                "user_with_totps by {key:?}"
            );
        }
    }
    let bob = store.user_by_id(org, "CMU2").await.ctx("user_by_id")?;
    check_eq!(bob, Some(user(org, "CMU2", "bob")), "only alice is muted");
    let unknown = commit(store, vec![mute(org, "CMU9", 1)]).await;
    check!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "unknown user: got {unknown:?}"
    );
    let foreign = commit(store, vec![mute("conf-other", "CMU1", 1)]).await;
    check!(
        matches!(foreign, Err(StoreError::NotFound(_))),
        "another organisation's user: got {foreign:?}"
    );
    Ok(())
}

/// The storm count: requests made to one user at or after a time, decided or not.
pub async fn pushes_since(store: &dyn Store) -> Check {
    let org = "conf-storm";
    let rows = [
        push_row(org, "CSX1", "CSU1", "CSD1", 1_000),
        push_row(org, "CSX2", "CSU1", "CSD1", 2_000),
        push_row(org, "CSX3", "CSU1", "CSD2", 3_000),
        push_row(org, "CSX4", "CSU2", "CSD3", 2_500),
        push_row("conf-storm-other", "CSX5", "CSU1", "CSD1", 2_000),
    ];
    commit(store, inserts(&rows.iter().collect::<Vec<_>>()))
        .await
        .ctx("insert")?;
    commit(store, vec![decide(org, "CSX2", "denied", 2_100)])
        .await
        .ctx("decide")?;
    let expected = [
        ("CSU1", 0, 3),
        ("CSU1", 2_000, 2),
        ("CSU1", 3_000, 1),
        ("CSU1", 3_001, 0),
        ("CSU2", 0, 1),
        ("CSU9", 0, 0),
    ];
    for (user_id, since_ms, count) in expected {
        let counted = store
            .pushes_since(org, user_id, since_ms)
            .await
            .ctx("pushes_since")?;
        check_eq!(counted, count, "{user_id} since {since_ms}");
    }
    Ok(())
}

/// Ids no other check, test process or node uses, so that a signal received is this one.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Waits until `rx` yields `want`, skipping other signals (other nodes, or other stores on the
/// same database, may be publishing too).
async fn receive(rx: &mut broadcast::Receiver<Signal>, want: &Signal) -> Check {
    let arrival = async {
        loop {
            match rx.recv().await {
                Ok(got) if &got == want => return Ok(()),
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Err(format!("channel closed before {want:?}")),
            }
        }
    };
    tokio::time::timeout(SIGNAL_WAIT, arrival)
        .await
        .map_err(|_| format!("{want:?} not received within {SIGNAL_WAIT:?}"))?
}

/// Every subscriber receives every signal published after it subscribed.
pub async fn signals(store: &dyn Store) -> Check {
    let signals = store.signals();
    let (mut first, mut second) = (signals.subscribe(), signals.subscribe());
    let device = Signal::Device(unique("CSGD"));
    let tx = Signal::Tx(unique("csgt"));
    signals.publish(device.clone()).await;
    signals.publish(tx.clone()).await;
    for rx in [&mut first, &mut second] {
        receive(rx, &device).await?;
        receive(rx, &tx).await?;
    }
    Ok(())
}

/// `PurgeExpired` deletes expired transactions, decided pushes, nonces and activation codes,
/// and keeps everything still useful: unexpired rows and pending pushes.
pub async fn purge_expired(store: &dyn Store) -> Check {
    let org = "conf-purge";
    let before = 1_000_000_000;
    let fresh_ms = 9_000_000_000;
    let mut old_tx = super::auth_tx_row(org, "CGT1", "CGU1");
    old_tx.expires_ms = 5_000;
    let mut new_tx = super::auth_tx_row(org, "CGT2", "CGU1");
    new_tx.expires_ms = fresh_ms;
    let mut decided = push_row(org, "CGX1", "CGU1", "CGD1", 1_000);
    decided.state = "approved".into();
    let pending = push_row(org, "CGX2", "CGU1", "CGD1", 1_000);
    let mut live = push_row(org, "CGX3", "CGU1", "CGD1", 1_000);
    live.state = "denied".into();
    live.expires_ms = fresh_ms;
    let setup = vec![
        Change::InsertUser(user(org, "CGU1", "purge-user")),
        Change::InsertDevice(super::device_row(org, "CGD1", "CGU1", 1_000)),
        Change::InsertAuthTx(old_tx),
        Change::InsertAuthTx(new_tx),
        Change::InsertPush(decided),
        Change::InsertPush(pending),
        Change::InsertPush(live),
        Change::InsertNonce {
            nonce_hash: "CGN-old".into(),
            device_id: "CGD1".into(),
            expires_ms: 5_000,
        },
        Change::InsertNonce {
            nonce_hash: "CGN-new".into(),
            device_id: "CGD1".into(),
            expires_ms: fresh_ms,
        },
    ];
    commit(store, setup).await.ctx("insert")?;
    let receipt = commit(store, vec![Change::PurgeExpired { before_ms: before }])
        .await
        .ctx("purge")?;
    check!(
        matches!(receipt.outcomes[..], [Outcome::Purged { rows }] if rows >= 3),
        "purged rows: {:?}",
        receipt.outcomes
    );
    check!(
        store.auth_tx(org, "CGT1").await.ctx("auth_tx")?.is_none(),
        "expired transaction kept"
    );
    check!(
        store.auth_tx(org, "CGT2").await.ctx("auth_tx")?.is_some(),
        "fresh transaction purged"
    );
    check!(
        store.push(org, "CGX1").await.ctx("push")?.is_none(),
        "expired decided push kept"
    );
    check!(
        store.push(org, "CGX2").await.ctx("push")?.is_some(),
        "pending push purged"
    );
    check!(
        store.push(org, "CGX3").await.ctx("push")?.is_some(),
        "unexpired push purged"
    );
    let old_nonce = commit(
        store,
        vec![Change::ConsumeNonce {
            nonce_hash: "CGN-old".into(),
            device_id: "CGD1".into(),
            now_ms: 1,
        }],
    )
    .await;
    check!(
        matches!(old_nonce, Err(StoreError::ConditionFailed(_))),
        "expired nonce kept: {old_nonce:?}"
    );
    commit(
        store,
        vec![Change::ConsumeNonce {
            nonce_hash: "CGN-new".into(),
            device_id: "CGD1".into(),
            now_ms: 1,
        }],
    )
    .await
    .ctx("fresh nonce purged")?;
    Ok(())
}

/// A hundred concurrent pushes to one user with a limit of five: exactly five are inserted.
pub async fn concurrent_push_limit(store: &dyn Store) -> Check {
    let org = "conf-storm";
    let setup = vec![
        Change::InsertUser(user(org, "CPLU1", "alice")),
        Change::InsertDevice(device_row(org, "CPLD1", "CPLU1", 1)),
    ];
    commit(store, setup).await.ctx("setup")?;
    let limited = |i: usize| {
        let row = push_row(org, &format!("CPLTX{i}"), "CPLU1", "CPLD1", 10_000);
        vec![
            Change::CheckPushLimit {
                org_id: org.into(),
                user_id: "CPLU1".into(),
                since_ms: 5_000,
                limit: 5,
            },
            Change::InsertPush(row),
        ]
    };
    let results = join_all((0..100).map(|i| commit(store, limited(i)))).await;
    let sent = results.iter().filter(|r| r.is_ok()).count();
    check_eq!(sent, 5, "pushes inserted under the limit");
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::ConditionFailed(_))))
        .count();
    check_eq!(refused, 95, "the others are refused: {results:?}");
    let counted = store
        .pushes_since(org, "CPLU1", 5_000)
        .await
        .ctx("pushes_since")?;
    check_eq!(counted, 5, "stored pushes");
    let older = store
        .pushes_since(org, "CPLU1", 20_000)
        .await
        .ctx("pushes_since")?;
    check_eq!(older, 0, "none after the window");
    Ok(())
}
