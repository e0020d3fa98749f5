//! Organisations: created, named uniquely, renamed, disabled and enabled.

use super::{Check, Ctx, commit};
use crate::{Change, OrgRow, Store, StoreError};

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
