//! Users, integrations, settings, and organisation scoping.

use super::{Check, Ctx, auth_tx_row, commit, head, integration, totp, user};
use crate::{Change, Store, StoreError};

/// Users are read back by name and id exactly as inserted, and listed by username, paged.
pub async fn users(store: &dyn Store) -> Check {
    let org = "conf-users";
    for (id, name) in [("CU3", "carol"), ("CU1", "alice"), ("CU2", "bob")] {
        commit(store, vec![Change::InsertUser(user(org, id, name))])
            .await
            .ctx("insert user")?;
    }
    let alice = store.user_by_name(org, "alice").await.ctx("user_by_name")?;
    check_eq!(
        alice,
        Some(user(org, "CU1", "alice")),
        "user_by_name returns the inserted row"
    );
    let bob = store.user_by_id(org, "CU2").await.ctx("user_by_id")?;
    check_eq!(
        bob,
        Some(user(org, "CU2", "bob")),
        "user_by_id returns the inserted row"
    );
    let none = store.user_by_name(org, "ALICE").await.ctx("user_by_name")?;
    check_eq!(none, None, "usernames match exactly");
    check_eq!(
        store.user_by_id(org, "CU9").await.ctx("user_by_id")?,
        None,
        "unknown id"
    );

    let names =
        |rows: Vec<crate::UserRow>| rows.into_iter().map(|u| u.username).collect::<Vec<_>>();
    let first = store.list_users(org, 2, 0).await.ctx("list_users")?;
    check_eq!(
        names(first),
        ["alice", "bob"],
        "first page, ordered by username"
    );
    let second = store.list_users(org, 2, 2).await.ctx("list_users")?;
    check_eq!(names(second), ["carol"], "second page");
    let past = store.list_users(org, 2, 4).await.ctx("list_users")?;
    check!(
        past.is_empty(),
        "a page past the end is empty, got {past:?}"
    );

    let mut full = user(org, "CU4", "dave");
    full.email = Some("dave@example.org".into());
    full.status = "disabled".into();
    full.failed_attempts = 2;
    full.locked_until_ms = Some(9_000);
    full.last_login_ms = Some(8_000);
    full.push_muted_until_ms = Some(10_000);
    full.last_prompt_method = Some("passkey".into());
    commit(store, vec![Change::InsertUser(full.clone())])
        .await
        .ctx("insert full user")?;
    let read = store.user_by_id(org, "CU4").await.ctx("user_by_id")?;
    check_eq!(read, Some(full), "every optional field round-trips");
    Ok(())
}

/// A duplicate username fails the set with `Duplicate("username")` and nothing else of the set
/// (users, audit events) is applied.
pub async fn duplicate_username(store: &dyn Store) -> Check {
    let org = "conf-dup";
    commit(store, vec![Change::InsertUser(user(org, "CD1", "alice"))])
        .await
        .ctx("insert")?;
    let before = head(store, org).await?;

    let audited = vec![
        Change::Audit(super::event(org, "user.create", "CD2")),
        Change::InsertUser(user(org, "CD2", "alice")),
    ];
    let result = commit(store, audited).await;
    check!(
        matches!(&result, Err(StoreError::Duplicate(field)) if field == "username"),
        "duplicate username must fail with Duplicate(\"username\"), got {result:?}"
    );
    check_eq!(
        store.user_by_id(org, "CD2").await.ctx("user_by_id")?,
        None,
        "no second alice"
    );
    check_eq!(
        head(store, org).await?,
        before,
        "a failed set appends no audit event"
    );
    let after = store
        .audit_page(&store.chain_for(org), before.0, 10)
        .await
        .ctx("audit_page")?;
    check!(
        after.is_empty(),
        "no audit event past the head, got {after:?}"
    );

    let mixed = vec![
        Change::InsertUser(user(org, "CD3", "bob")),
        Change::InsertUser(user(org, "CD4", "alice")),
    ];
    let result = commit(store, mixed).await;
    check!(
        matches!(result, Err(StoreError::Duplicate(_))),
        "got {result:?}"
    );
    let bob = store.user_by_name(org, "bob").await.ctx("user_by_name")?;
    check_eq!(bob, None, "the set's first insert was rolled back");

    let other_org = commit(
        store,
        vec![Change::InsertUser(user("conf-dup-2", "CD5", "alice"))],
    );
    other_org
        .await
        .ctx("the same username in another organisation")?;
    let same_id = commit(store, vec![Change::InsertUser(user(org, "CD1", "zed"))]).await;
    check!(
        matches!(same_id, Err(StoreError::Duplicate(_))),
        "duplicate id: got {same_id:?}"
    );
    Ok(())
}

/// Status changes apply to existing users of the organisation only.
pub async fn user_status(store: &dyn Store) -> Check {
    let org = "conf-status";
    commit(store, vec![Change::InsertUser(user(org, "CS1", "alice"))])
        .await
        .ctx("insert")?;
    let disable = |org: &str, user_id: &str| Change::SetUserStatus {
        org_id: org.into(),
        user_id: user_id.into(),
        status: "disabled".into(),
    };
    commit(store, vec![disable(org, "CS1")])
        .await
        .ctx("disable")?;
    let read = store.user_by_id(org, "CS1").await.ctx("user_by_id")?;
    check_eq!(
        read.map(|u| u.status),
        Some("disabled".to_owned()),
        "status changed"
    );

    let missing = commit(store, vec![disable(org, "CS9")]).await;
    check!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "unknown user: got {missing:?}"
    );
    let enable = Change::SetUserStatus {
        org_id: "conf-status-other".into(),
        user_id: "CS1".into(),
        status: "active".into(),
    };
    let wrong_org = commit(store, vec![enable]).await;
    check!(
        matches!(wrong_org, Err(StoreError::NotFound(_))),
        "other org: got {wrong_org:?}"
    );
    let read = store.user_by_id(org, "CS1").await.ctx("user_by_id")?;
    check_eq!(
        read.map(|u| u.status),
        Some("disabled".to_owned()),
        "status unchanged"
    );
    Ok(())
}

/// Nothing of one organisation can be read or changed through another's id.
pub async fn org_scoping(store: &dyn Store) -> Check {
    let (a, b) = ("conf-scope-a", "conf-scope-b");
    let setup = vec![
        Change::InsertUser(user(a, "CSA1", "alice")),
        Change::InsertUser(user(b, "CSB1", "alice")),
        Change::InsertTotp(totp(a, "CTA1", "CSA1", 1)),
        Change::InsertAuthTx(auth_tx_row(a, "CTXA1", "CSA1")),
        Change::InsertIntegration(integration(a, "DISCOPEA", 1)),
    ];
    commit(store, setup).await.ctx("setup")?;

    let alice_b = store.user_by_name(b, "alice").await.ctx("user_by_name")?;
    check_eq!(
        alice_b.map(|u| u.user_id),
        Some("CSB1".to_owned()),
        "each org has its alice"
    );
    check_eq!(
        store.user_by_id(b, "CSA1").await.ctx("user_by_id")?,
        None,
        "user of org a"
    );
    let listed = store.list_users(b, 10, 0).await.ctx("list_users")?;
    check_eq!(listed.len(), 1, "org b lists only its own users");
    let totps = store
        .totps_for_user(b, "CSA1")
        .await
        .ctx("totps_for_user")?;
    check!(totps.is_empty(), "totps of org a through org b: {totps:?}");
    check_eq!(
        store.auth_tx(b, "CTXA1").await.ctx("auth_tx")?,
        None,
        "auth tx of org a"
    );
    let apps = store.list_integrations(b).await.ctx("list_integrations")?;
    check!(
        apps.is_empty(),
        "integrations of org a through org b: {apps:?}"
    );

    let step = Change::UseTotpStep {
        org_id: b.into(),
        totp_id: "CTA1".into(),
        step: 5,
    };
    let result = commit(store, vec![step]).await;
    check!(
        matches!(result, Err(StoreError::ConditionFailed(_))),
        "totp step: got {result:?}"
    );
    let totps = store
        .totps_for_user(a, "CSA1")
        .await
        .ctx("totps_for_user")?;
    check_eq!(
        totps.first().and_then(|t| t.last_step),
        None,
        "org a's totp untouched"
    );
    let failure = Change::RecordAuthFailure {
        org_id: b.into(),
        user_id: "CSA1".into(),
        threshold: 1,
        lock_until_ms: 5,
        now_ms: 1,
    };
    let result = commit(store, vec![failure]).await;
    check!(
        matches!(result, Err(StoreError::NotFound(_))),
        "auth failure: got {result:?}"
    );
    let finish = Change::FinishAuthTx {
        org_id: b.into(),
        txid: "CTXA1".into(),
        result: "allow".into(),
        status: "allow".into(),
        status_msg: "ok".into(),
    };
    let result = commit(store, vec![finish]).await;
    check!(
        matches!(result, Err(StoreError::ConditionFailed(_))),
        "finish tx: got {result:?}"
    );
    let tx = store.auth_tx(a, "CTXA1").await.ctx("auth_tx")?;
    check_eq!(
        tx.map(|t| t.result),
        Some("waiting".to_owned()),
        "org a's tx untouched"
    );
    Ok(())
}

/// Integrations are found by key and listed oldest first; keys are unique.
pub async fn integrations(store: &dyn Store) -> Check {
    let org = "conf-int";
    let (newer, older) = (
        integration(org, "DICONF2", 20),
        integration(org, "DICONF1", 10),
    );
    let setup = vec![
        Change::InsertIntegration(newer.clone()),
        Change::InsertIntegration(older.clone()),
    ];
    commit(store, setup).await.ctx("insert integrations")?;
    let found = store
        .integration_by_ikey("DICONF2")
        .await
        .ctx("integration_by_ikey")?;
    check_eq!(found, Some(newer.clone()), "found by ikey");
    let unknown = store
        .integration_by_ikey("DINOPE")
        .await
        .ctx("integration_by_ikey")?;
    check_eq!(unknown, None, "unknown ikey");
    let listed = store
        .list_integrations(org)
        .await
        .ctx("list_integrations")?;
    check_eq!(listed, [older, newer], "listed oldest first");

    let again = integration("conf-int-other", "DICONF1", 30);
    let result = commit(store, vec![Change::InsertIntegration(again)]).await;
    check!(
        matches!(result, Err(StoreError::Duplicate(_))),
        "ikeys are unique across organisations, got {result:?}"
    );
    Ok(())
}

/// `meta_insert_if_absent` keeps the first value written.
pub async fn meta(store: &dyn Store) -> Check {
    let key = "conformance.meta";
    let first = store
        .meta_insert_if_absent(key, "first")
        .await
        .ctx("meta_insert_if_absent")?;
    check_eq!(first, "first", "the first insert stores its value");
    let second = store
        .meta_insert_if_absent(key, "second")
        .await
        .ctx("meta_insert_if_absent")?;
    check_eq!(second, "first", "a second insert returns the stored value");
    check_eq!(
        store.meta(key).await.ctx("meta")?,
        Some("first".to_owned()),
        "read back"
    );
    check_eq!(
        store.meta("conformance.absent").await.ctx("meta")?,
        None,
        "absent key"
    );
    Ok(())
}

/// The hosted prompt remembers each user's last method; other users are untouched.
pub async fn last_prompt_method(store: &dyn Store) -> Check {
    let org = "conf-prompt";
    for (id, name) in [("CP1", "alice"), ("CP2", "bob")] {
        commit(store, vec![Change::InsertUser(user(org, id, name))])
            .await
            .ctx("insert user")?;
    }
    commit(
        store,
        vec![Change::SetLastPromptMethod {
            org_id: org.into(),
            user_id: "CP1".into(),
            method: "push".into(),
        }],
    )
    .await
    .ctx("set last method")?;
    let alice = store.user_by_id(org, "CP1").await.ctx("user_by_id")?;
    check_eq!(
        alice.and_then(|u| u.last_prompt_method),
        Some("push".to_owned()),
        "the method is stored"
    );
    let bob = store.user_by_name(org, "bob").await.ctx("user_by_name")?;
    check_eq!(
        bob.and_then(|u| u.last_prompt_method),
        None,
        "another user is untouched"
    );
    let unknown = commit(
        store,
        vec![Change::SetLastPromptMethod {
            org_id: org.into(),
            user_id: "CP9".into(),
            method: "push".into(),
        }],
    )
    .await;
    check!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "an unknown user is NotFound, got {unknown:?}"
    );
    Ok(())
}
