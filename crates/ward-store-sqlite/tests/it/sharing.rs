//! Two stores on one file behave like a server and the CLI in two processes: separate pools
//! and writer connections, coordinated only by SQLite's locks.

use futures::future::join_all;
use ward_store::conformance::verify_chain;
use ward_store::{Change, ChangeSet, NewAudit, Store, StoreError, TotpRow, UserRow, Writer};

use crate::{fresh, open_in};

fn audit(i: usize) -> Change {
    Change::Audit(NewAudit {
        org_id: "default".into(),
        ts_ms: 1,
        actor: "cli".into(),
        action: "test.append".into(),
        target: format!("T{i}"),
        outcome: "ok".into(),
        details: "{}".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_file_share_a_chain_without_forking_it() {
    let (dir, server) = fresh("node-1").await;
    let cli = open_in(&dir, "node-1").await;
    let commits = (0..60).map(|i| {
        let store: &dyn Store = if i % 2 == 0 { &server } else { &cli };
        store.commit(ChangeSet::new().with(audit(i)))
    });
    for result in join_all(commits).await {
        result.unwrap();
    }
    assert_eq!(verify_chain(&server, "node-1").await.unwrap(), 60);
    cli.close().await;
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_used_through_one_store_is_refused_through_the_other() {
    let (dir, a) = fresh("node-a").await;
    let b = open_in(&dir, "node-b").await;
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
    let setup = ChangeSet::new()
        .with(Change::InsertUser(user))
        .with(Change::InsertTotp(totp));
    a.commit(setup).await.unwrap();
    let step = || Change::UseTotpStep {
        org_id: "default".into(),
        totp_id: "DT1".into(),
        step: 9,
    };
    a.commit(ChangeSet::new().with(audit(0)).with(step()))
        .await
        .unwrap();
    let again = b.commit(ChangeSet::new().with(audit(1)).with(step())).await;
    assert!(
        matches!(again, Err(StoreError::ConditionFailed(_))),
        "{again:?}"
    );
    assert_eq!(verify_chain(&a, "node-a").await.unwrap(), 1);
    assert_eq!(verify_chain(&b, "node-b").await.unwrap(), 0);
    b.close().await;
    a.close().await;
}

#[tokio::test]
async fn open_creates_the_file_and_migrate_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let store = ward_store_sqlite::SqliteStore::open(&format!("sqlite://{}", path.display()), "n")
        .await
        .unwrap();
    assert!(path.exists());
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    let closed = store.commit(ChangeSet::new().with(audit(0))).await;
    assert!(
        matches!(closed, Err(StoreError::Unavailable(_))),
        "{closed:?}"
    );
}
