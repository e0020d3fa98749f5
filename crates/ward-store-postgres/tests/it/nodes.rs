//! Several nodes on one database: decisions are won once, every node's chain stays valid.

use futures::future::join_all;
use ward_store::conformance::verify_chain;
use ward_store::{
    Change, ChangeSet, NewAudit, PushStore, Store, StoreError, TotpRow, UserRow, UserStore, Writer,
};

use crate::{node, with_schema};

fn audit(target: &str) -> Change {
    Change::Audit(NewAudit {
        org_id: "default".into(),
        ts_ms: 1,
        actor: "integration:DITEST".into(),
        action: "auth.passcode".into(),
        target: target.into(),
        outcome: "allow".into(),
        details: "{}".into(),
    })
}

fn setup() -> ChangeSet {
    let user = UserRow {
        org_id: "default".into(),
        user_id: "DU1".into(),
        username: "alice".into(),
        email: None,
        status: "active".into(),
        created_ms: 0,
        failed_attempts: 0,
        locked_until_ms: None,
        last_login_ms: None,
        push_muted_until_ms: None,
        factors_frozen_ms: None,
        policy_group: None,
        last_prompt_method: None,
        recovery_blocked_until_ms: None,
        probation_until_ms: None,
        last_recovered_ms: None,
    };
    let totp = TotpRow {
        org_id: "default".into(),
        totp_id: "DT1".into(),
        user_id: "DU1".into(),
        name: "phone".into(),
        seed_sealed: "k1:x".into(),
        algorithm: "sha1".into(),
        digits: 6,
        step_secs: 30,
        last_step: None,
        created_ms: 0,
    };
    ChangeSet::new()
        .with(Change::InsertUser(user))
        .with(Change::InsertTotp(totp))
}

fn use_step(step: i64) -> ChangeSet {
    ChangeSet::new()
        .with(audit("DU1"))
        .with(Change::UseTotpStep {
            org_id: "default".into(),
            totp_id: "DT1".into(),
            step,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_used_on_one_node_is_refused_on_the_other() {
    with_schema(|url| async move {
        // Both nodes start (and migrate) together.
        let (a, b) = tokio::join!(node(&url, "node-a"), node(&url, "node-b"));
        a.commit(setup()).await.unwrap();

        a.commit(use_step(10)).await.unwrap();
        let replay = b.commit(use_step(10)).await;
        assert!(
            matches!(replay, Err(StoreError::ConditionFailed(_))),
            "{replay:?}"
        );

        // Both nodes race for each of the next steps: exactly one wins each.
        for step in 11..=20 {
            let (ra, rb) = tokio::join!(a.commit(use_step(step)), b.commit(use_step(step)));
            assert!(ra.is_ok() != rb.is_ok(), "step {step}: {ra:?} / {rb:?}");
            let loser = if ra.is_ok() { rb } else { ra };
            assert!(
                matches!(loser, Err(StoreError::ConditionFailed(_))),
                "{loser:?}"
            );
        }

        let on_a = verify_chain(&a, "node-a").await.unwrap();
        let on_b = verify_chain(&b, "node-b").await.unwrap();
        assert_eq!(on_a + on_b, 11, "one audit event per winning use");
        // Either node can verify the other's chain.
        assert_eq!(verify_chain(&b, "node-a").await.unwrap(), on_a);
        b.close().await;
        a.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_load_on_two_nodes_keeps_both_chains_gap_free() {
    with_schema(|url| async move {
        let (a, b) = tokio::join!(node(&url, "node-a"), node(&url, "node-b"));
        let commits = (0..100).map(|i| {
            let store: &dyn Store = if i % 2 == 0 { &a } else { &b };
            let user = UserRow {
                org_id: "default".into(),
                user_id: format!("DU{i}"),
                username: format!("user{i}"),
                email: None,
                status: "active".into(),
                created_ms: 0,
                failed_attempts: 0,
                locked_until_ms: None,
                last_login_ms: None,
                push_muted_until_ms: None,
                factors_frozen_ms: None,
                policy_group: None,
                last_prompt_method: None,
                recovery_blocked_until_ms: None,
                probation_until_ms: None,
                last_recovered_ms: None,
            };
            let set = ChangeSet::new()
                .with(Change::InsertUser(user))
                .with(audit(&format!("DU{i}")));
            store.commit(set)
        });
        for result in join_all(commits).await {
            result.unwrap();
        }
        assert_eq!(verify_chain(&a, "node-a").await.unwrap(), 50);
        assert_eq!(verify_chain(&a, "node-b").await.unwrap(), 50);
        assert_eq!(b.list_users("default", 200, 0).await.unwrap().len(), 100);
        b.close().await;
        a.close().await;
    })
    .await;
}

/// Lockout and the push storm limit hold across nodes: 100 concurrent failures (threshold 10)
/// and 100 concurrent limited pushes (limit 5), split over two nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_across_two_nodes() {
    with_schema(|url| async move {
        let (a, b) = tokio::join!(node(&url, "node-a"), node(&url, "node-b"));
        a.commit(setup()).await.unwrap();
        a.commit(
            ChangeSet::new().with(Change::InsertDevice(ward_store::DeviceRow {
                org_id: "default".into(),
                device_id: "DD1".into(),
                user_id: "DU1".into(),
                name: "phone".into(),
                platform: "test".into(),
                key_alg: "ed25519".into(),
                public_key: "k".into(),
                created_ms: 0,
            })),
        )
        .await
        .unwrap();
        let fail = || {
            ChangeSet::new()
                .with(Change::RecordAuthFailure {
                    org_id: "default".into(),
                    user_id: "DU1".into(),
                    threshold: 10,
                    lock_until_ms: 9_000,
                    now_ms: 1_000,
                })
                .with(audit("DU1"))
        };
        let failures = (0..100).map(|i| {
            let store: &dyn Store = if i % 2 == 0 { &a } else { &b };
            store.commit(fail())
        });
        let results = join_all(failures).await;
        let counted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(counted, 10, "{results:?}");
        assert!(
            results
                .iter()
                .all(|r| r.is_ok() || matches!(r, Err(StoreError::ConditionFailed(_)))),
            "{results:?}"
        );
        let user = b.user_by_id("default", "DU1").await.unwrap().unwrap();
        assert_eq!(
            (user.failed_attempts, user.locked_until_ms),
            (10, Some(9_000))
        );

        let push = |i: usize| {
            ChangeSet::new()
                .with(Change::CheckPushLimit {
                    org_id: "default".into(),
                    user_id: "DU1".into(),
                    since_ms: 0,
                    limit: 5,
                })
                .with(Change::InsertPush(ward_store::PushRow {
                    org_id: "default".into(),
                    txid: format!("TX{i}"),
                    ikey: "DITEST".into(),
                    user_id: "DU1".into(),
                    device_id: "DD1".into(),
                    state: "pending".into(),
                    number: None,
                    context: "{}".into(),
                    context_hash: "h".into(),
                    created_ms: 1_000,
                    expires_ms: 61_000,
                    decided_ms: None,
                }))
        };
        let pushes = (0..100).map(|i| {
            let store: &dyn Store = if i % 2 == 0 { &a } else { &b };
            store.commit(push(i))
        });
        let results = join_all(pushes).await;
        let sent = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(sent, 5, "{results:?}");
        assert_eq!(a.pushes_since("default", "DU1", 0).await.unwrap(), 5);
        assert_eq!(
            verify_chain(&a, "node-a").await.unwrap() + verify_chain(&a, "node-b").await.unwrap(),
            10
        );
        b.close().await;
        a.close().await;
    })
    .await;
}
