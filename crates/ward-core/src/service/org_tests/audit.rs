//! One audit chain per organisation and node: `ward audit verify --org` checks one
//! organisation's chains, and damage to another organisation's does not touch them.

use sqlx::Connection as _;

use super::*;

#[tokio::test]
async fn each_organisation_has_its_own_chain_and_check() {
    let db = TempSqlite::new();
    let url = db.url();
    let p = pair_on(db.store("node-1").await).await;
    let default = default_org();
    p.ward()
        .admin()
        .create_user(default, &Actor::Cli, "carol", None, p.now())
        .await
        .unwrap();
    let chains = p.f.store.audit_chains().await.unwrap();
    let ids: Vec<&str> = chains.iter().map(|c| c.chain_id.as_str()).collect();
    let a_chain = format!("node-1@{}", p.a.org);
    let b_chain = format!("node-1@{}", p.b.org);
    assert!(
        ids.contains(&a_chain.as_str()) && ids.contains(&b_chain.as_str()),
        "{ids:?}"
    );
    // The default organisation keeps the node's own chain.
    assert!(ids.contains(&"node-1"), "{ids:?}");
    let a = crate::audit::verify_org(p.f.store.as_ref(), &p.a.org).await;
    let a = a.unwrap().unwrap();
    assert_eq!(a.chains, 1);
    let a_events = p.f.store.audit_page(&a_chain, 0, 1000).await.unwrap();
    assert_eq!(a.events, u64::try_from(a_events.len()).unwrap());
    assert!(
        a_events
            .iter()
            .all(|row| row.event.org_id == p.a.org.as_str())
    );
    // Export with an organisation writes exactly that organisation's events.
    let mut out = Vec::new();
    let exported = crate::audit::export_org(p.f.store.as_ref(), &p.a.org, &mut out)
        .await
        .unwrap();
    assert_eq!(exported, a.events);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), a_events.len());
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["org_id"], p.a.org.as_str(), "{line}");
    }
    let mut all = Vec::new();
    let every = crate::audit::export(p.f.store.as_ref(), &mut all)
        .await
        .unwrap();
    assert!(every > exported, "{every} events in all, {exported} of A");
    // Edit one of B's events: B's check and the whole log's find it, A's is still intact.
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE audit_events SET target = 'edited' WHERE chain_id = ? AND seq = 2")
        .bind(&b_chain)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let b = crate::audit::verify_org(p.f.store.as_ref(), &p.b.org).await;
    let bad = b.unwrap().unwrap_err();
    assert_eq!((bad.chain_id.as_str(), bad.seq), (b_chain.as_str(), 2));
    assert!(
        crate::audit::verify(p.f.store.as_ref())
            .await
            .unwrap()
            .is_err()
    );
    let a = crate::audit::verify_org(p.f.store.as_ref(), &p.a.org).await;
    assert!(a.unwrap().is_ok());
    let d = crate::audit::verify_org(p.f.store.as_ref(), default).await;
    assert_eq!(d.unwrap().unwrap().chains, 1);
}
