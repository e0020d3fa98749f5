//! What is particular to SQLite files: two stores on one file appending to the same chain (a
//! server and the CLI sharing a node id), and opening a file that does not exist yet. Two stores
//! with their own chains are in the conformance suite's two-node checks.

use futures::future::join_all;
use ward_store::conformance::verify_chain;
use ward_store::{Change, ChangeSet, NewAudit, Store, StoreError, Writer};

use ward_testkit::db::TempSqlite;

use crate::fresh;

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
    let (db, server) = fresh("node-1").await;
    let cli = db.open("node-1").await;
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

#[tokio::test]
async fn open_creates_the_file_and_migrate_is_idempotent() {
    let db = TempSqlite::new();
    let path = db.path();
    assert!(!path.exists());
    let store = ward_store_sqlite::SqliteStore::open(&db.url(), "n")
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
