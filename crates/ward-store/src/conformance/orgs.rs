//! Organisations: created, named uniquely, renamed, disabled and enabled.

use super::{Check, Ctx, commit, event, head, verify_chain};
use crate::{Change, OrgRow, Outcome, Store, StoreError};

fn org(org_id: &str, name: &str, created_ms: i64) -> OrgRow {
    OrgRow {
        org_id: org_id.into(),
        name: name.into(),
        created_ms,
        disabled_ms: None,
    }
}

/// The default organisation survives the migration enabled; new ones are read back by id and
/// by name exactly as inserted, listed oldest first; ids and names are unique.
pub async fn orgs(store: &dyn Store) -> Check {
    let default = store.org("default").await.ctx("org default")?;
    check!(
        default.as_ref().is_some_and(|o| o.disabled_ms.is_none()),
        "the default organisation exists and is enabled, got {default:?}"
    );
    let (a, b) = (
        org("conf-org-a", "Conf A", 10),
        org("conf-org-b", "Conf B", 20),
    );
    commit(store, vec![Change::InsertOrg(b.clone())])
        .await
        .ctx("insert b")?;
    commit(store, vec![Change::InsertOrg(a.clone())])
        .await
        .ctx("insert a")?;
    check_eq!(
        store.org("conf-org-a").await.ctx("org")?,
        Some(a.clone()),
        "org by id"
    );
    check_eq!(
        store.org_by_name("Conf B").await.ctx("org_by_name")?,
        Some(b.clone()),
        "org by name"
    );
    check_eq!(
        store.org_by_name("conf b").await.ctx("org_by_name")?,
        None,
        "names match exactly"
    );
    let listed: Vec<String> = (store.list_orgs().await.ctx("list_orgs")?)
        .into_iter()
        .map(|o| o.org_id)
        .filter(|id| id.starts_with("conf-org-"))
        .collect();
    check_eq!(listed, ["conf-org-a", "conf-org-b"], "oldest first");
    let same_name = commit(
        store,
        vec![Change::InsertOrg(org("conf-org-c", "Conf A", 30))],
    )
    .await;
    check!(
        matches!(same_name, Err(StoreError::Duplicate(_))),
        "a taken name is a duplicate, got {same_name:?}"
    );
    let same_id = commit(
        store,
        vec![Change::InsertOrg(org("conf-org-a", "Conf X", 30))],
    )
    .await;
    check!(
        matches!(same_id, Err(StoreError::Duplicate(_))),
        "a taken id is a duplicate, got {same_id:?}"
    );
    check_eq!(
        store.org_by_name("Conf X").await.ctx("org_by_name")?,
        None,
        "a refused insert leaves nothing"
    );
    Ok(())
}

/// Renames keep names unique; disabling and enabling are recorded; unknown ids are not found.
pub async fn org_changes(store: &dyn Store) -> Check {
    let (c, d) = (
        org("conf-org-c", "Conf C", 1),
        org("conf-org-d", "Conf D", 2),
    );
    commit(store, vec![Change::InsertOrg(c), Change::InsertOrg(d)])
        .await
        .ctx("insert c and d")?;
    let rename = |org_id: &str, name: &str| Change::RenameOrg {
        org_id: org_id.into(),
        name: name.into(),
    };
    commit(store, vec![rename("conf-org-c", "Conf C2")])
        .await
        .ctx("rename")?;
    check_eq!(
        store
            .org_by_name("Conf C2")
            .await
            .ctx("org_by_name")?
            .map(|o| o.org_id),
        Some("conf-org-c".to_owned()),
        "renamed"
    );
    check_eq!(
        store.org_by_name("Conf C").await.ctx("org_by_name")?,
        None,
        "the old name is free"
    );
    let taken = commit(store, vec![rename("conf-org-c", "Conf D")]).await;
    check!(
        matches!(taken, Err(StoreError::Duplicate(_))),
        "renaming to a taken name is a duplicate, got {taken:?}"
    );
    let missing = commit(store, vec![rename("conf-org-none", "Conf N")]).await;
    check!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "renaming an unknown organisation, got {missing:?}"
    );
    let set = |org_id: &str, disabled_ms| Change::SetOrgDisabled {
        org_id: org_id.into(),
        disabled_ms,
    };
    commit(store, vec![set("conf-org-d", Some(77))])
        .await
        .ctx("disable")?;
    let disabled = store.org("conf-org-d").await.ctx("org")?;
    check_eq!(
        disabled.and_then(|o| o.disabled_ms),
        Some(77),
        "disabled at"
    );
    commit(store, vec![set("conf-org-d", None)])
        .await
        .ctx("enable")?;
    let enabled = store.org("conf-org-d").await.ctx("org")?;
    check!(
        enabled.as_ref().is_some_and(|o| o.disabled_ms.is_none()),
        "enabled again, got {enabled:?}"
    );
    let missing = commit(store, vec![set("conf-org-none", Some(1))]).await;
    check!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "disabling an unknown organisation, got {missing:?}"
    );
    Ok(())
}

/// Each organisation's events form a chain of their own on this node (the default
/// organisation's is the node's own chain): one set holding events of two organisations, and
/// concurrent sets of both, extend both chains without gaps, and neither holds the other's.
pub async fn org_chains(store: &dyn Store) -> Check {
    let (x, y) = ("conf-chain-x", "conf-chain-y");
    check_eq!(
        store.chain_for(crate::DEFAULT_ORG),
        store.chain_id(),
        "the default organisation's chain is the node's"
    );
    check!(
        store.chain_for(x) != store.chain_for(y) && store.chain_for(x) != store.chain_id(),
        "one chain per organisation"
    );
    let (x0, _) = head(store, x).await?;
    let (y0, _) = head(store, y).await?;
    let receipt = commit(
        store,
        vec![
            Change::Audit(event(x, "user.create", "X1")),
            Change::Audit(event(y, "user.create", "Y1")),
            Change::Audit(event(x, "user.enable", "X1")),
        ],
    )
    .await
    .ctx("events of two organisations in one set")?;
    let placed = |org: &str, seq| Outcome::Audited {
        chain_id: store.chain_for(org),
        seq,
    };
    check_eq!(
        receipt.outcomes,
        [placed(x, x0 + 1), placed(y, y0 + 1), placed(x, x0 + 2)],
        "each event placed in its organisation's chain"
    );
    let sets = (0..20).map(|i| {
        let org = if i % 2 == 0 { x } else { y };
        commit(store, vec![Change::Audit(event(org, "auth.passcode", "Z"))])
    });
    for result in futures::future::join_all(sets).await {
        result.ctx("concurrent sets of two organisations")?;
    }
    for (org, start, count) in [(x, x0, 12), (y, y0, 11)] {
        let chain_id = store.chain_for(org);
        check_eq!(
            verify_chain(store, &chain_id).await?,
            start + count,
            "chain of {org}"
        );
        let page = store.audit_page(&chain_id, start, 100).await.ctx("page")?;
        check!(
            page.iter().all(|row| row.event.org_id == org),
            "chain of {org} holds only its events"
        );
    }
    Ok(())
}
