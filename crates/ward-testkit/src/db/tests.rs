use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// Whether a schema named `name` exists on the test server.
async fn schema_exists(name: &str) -> bool {
    let server = postgres_url().unwrap();
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
    let found: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
    )
    .bind(name)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    found == 1
}

#[test]
fn a_missing_server_is_a_skip_unless_strict() {
    assert_eq!(
        server(Some("postgres://h/db".into()), true).as_deref(),
        Some("postgres://h/db")
    );
    assert_eq!(server(None, false), None);
    assert_eq!(server(Some(String::new()), false), None);
    for url in [None, Some(String::new())] {
        let strict = std::panic::catch_unwind(|| server(url, true));
        assert!(strict.is_err(), "a skip under WARD_TEST_STRICT=1 fails");
    }
}

#[test]
fn a_schema_url_keeps_the_query_and_can_go_through_a_relay() {
    let schema = PgSchema {
        server: "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into(),
        name: "ward_test_0f".into(),
    };
    assert_eq!(
        schema.url(),
        "postgres://postgres@127.0.0.1:5432/test?sslmode=disable\
         &options=-c%20search_path%3Dward_test_0f"
    );
    let bare = PgSchema {
        server: "postgres://postgres@127.0.0.1:5432/test".into(),
        ..schema
    };
    assert_eq!(
        bare.url_via("127.0.0.2:6000"),
        "postgres://postgres@127.0.0.2:6000/test?options=-c%20search_path%3Dward_test_0f"
    );
}

#[tokio::test]
async fn a_sqlite_file_is_migrated_and_removed_with_its_handle() {
    let (db, store) = sqlite("node-1").await;
    let path = db.path();
    assert!(path.exists());
    assert_eq!(store.backend(), "sqlite");
    // Migrated: the default organisation is there.
    assert!(store.org(ward_store::DEFAULT_ORG).await.unwrap().is_some());
    // A second node on the same file sees the same rows.
    let other = db.store("node-2").await;
    assert!(other.org(ward_store::DEFAULT_ORG).await.unwrap().is_some());
    other.close().await;
    store.close().await;
    drop(db);
    assert!(!path.exists());
}

#[tokio::test]
async fn a_schema_is_private_and_dropped_after_its_test_even_a_failed_one() {
    let mut seen = Vec::new();
    with_pg_schema(async |schema| {
        assert!(schema_exists(schema.name()).await);
        let store = schema.store("node-1").await;
        assert_eq!(store.backend(), "postgres");
        assert!(store.org(ward_store::DEFAULT_ORG).await.unwrap().is_some());
        store.close().await;
        seen.push(schema.name().to_owned());
    })
    .await;
    let failed = AssertUnwindSafe(with_pg_schema(async |schema| {
        seen.push(schema.name().to_owned());
        let _store = schema.store("node-1").await;
        panic!("the test fails");
    }))
    .catch_unwind()
    .await;
    if postgres_url().is_none() {
        assert!(seen.is_empty() && failed.is_ok(), "skipped");
        return;
    }
    assert!(failed.is_err(), "the failure is passed on");
    assert_eq!(seen.len(), 2);
    assert_ne!(seen[0], seen[1]);
    for name in &seen {
        assert!(!schema_exists(name).await, "{name} was dropped");
    }
}

#[tokio::test]
async fn each_backend_runs_the_test_on_every_backend_there_is() {
    let runs = AtomicUsize::new(0);
    let mut backends = Vec::new();
    each_backend("node-1", |backend, store| {
        runs.fetch_add(1, Ordering::SeqCst);
        backends.push((backend, store.backend()));
        async move {
            assert!(store.org(ward_store::DEFAULT_ORG).await.unwrap().is_some());
        }
    })
    .await;
    let expected = if postgres_url().is_some() {
        vec![(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")]
    } else {
        vec![(Backend::Sqlite, "sqlite")]
    };
    assert_eq!(backends, expected);
    assert_eq!(runs.load(Ordering::SeqCst), expected.len());
}
