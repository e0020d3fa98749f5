//! What recovery keeps on and around the account: roles, approver sets, the account's recovery
//! fields, and the revocation of every factor but one passkey.

use crate::conformance::portal::{credential, reads_agree};
use crate::conformance::{Check, Ctx, commit, device_row, event, head, totp, user};
use crate::{ApproverRow, Change, Outcome, RecoveryCodeRow, RoleRow, Store, StoreError};

fn role(org_id: &str, user_id: &str, role: &str) -> RoleRow {
    RoleRow {
        org_id: org_id.into(),
        user_id: user_id.into(),
        role: role.into(),
        granted_ms: 1_000,
        granted_by: "cli".into(),
    }
}

fn revoke_role(org_id: &str, user_id: &str, role: &str) -> Change {
    Change::RevokeRole {
        org_id: org_id.into(),
        user_id: user_id.into(),
        role: role.into(),
    }
}

fn approver(org_id: &str, user_id: &str, approver_id: &str, added_ms: i64) -> ApproverRow {
    ApproverRow {
        org_id: org_id.into(),
        user_id: user_id.into(),
        approver_id: approver_id.into(),
        added_ms,
    }
}

fn remove_approver(org_id: &str, user_id: &str, approver_id: &str) -> Change {
    Change::RemoveRecoveryApprover {
        org_id: org_id.into(),
        user_id: user_id.into(),
        approver_id: approver_id.into(),
    }
}

/// Every role of `user_id` and every holder of each role in `roles`, as read.
async fn role_view(
    store: &dyn Store,
    org: &str,
    user_id: &str,
    roles: &[&str],
) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let held = store
        .roles_for_user(org, user_id)
        .await
        .ctx("roles_for_user")?;
    let mut holders = Vec::new();
    for role in roles {
        holders.push(
            store
                .users_with_role(org, role)
                .await
                .ctx("users_with_role")?,
        );
    }
    Ok((held, holders))
}

/// Roles are granted once (a second grant is `Duplicate` and writes nothing), read sorted per
/// user and per role, and revoked once (`NotFound` after).
pub async fn roles(store: &dyn Store) -> Check {
    let org = "conf-roles";
    let mut setup = Vec::new();
    for (id, name) in [("ROU1", "alice"), ("ROU2", "bob"), ("ROU3", "carol")] {
        setup.push(Change::InsertUser(user(org, id, name)));
    }
    for (user_id, held) in [
        ("ROU2", "approver"),
        ("ROU1", "approver"),
        ("ROU1", "admin"),
        ("ROU3", "helpdesk"),
    ] {
        setup.push(Change::GrantRole(role(org, user_id, held)));
    }
    let receipt = commit(store, setup).await.ctx("setup")?;
    check_eq!(receipt.outcomes, vec![Outcome::Done; 7], "outcomes");
    let kinds = ["admin", "approver", "helpdesk", "security"];
    let expected = (
        vec!["admin".to_owned(), "approver".to_owned()],
        vec![
            vec!["ROU1".to_owned()],
            vec!["ROU1".to_owned(), "ROU2".to_owned()],
            vec!["ROU3".to_owned()],
            vec![],
        ],
    );
    check_eq!(
        role_view(store, org, "ROU1", &kinds).await?,
        expected,
        "sorted"
    );
    let elsewhere = role_view(store, "conf-other", "ROU1", &kinds).await?;
    check_eq!(elsewhere, (vec![], vec![vec![]; 4]), "another organisation");

    let before = head(store, org).await?;
    let again = vec![
        Change::Audit(event(org, "role.grant", "ROU1")),
        Change::GrantRole(role(org, "ROU1", "admin")),
    ];
    let again = commit(store, again).await;
    check!(
        matches!(again, Err(StoreError::Duplicate(_))),
        "a role held: got {again:?}"
    );
    check_eq!(
        head(store, org).await?,
        before,
        "a refused set appends no audit event"
    );
    // A user of another organisation is unknown here, though the id exists.
    for (org_id, user_id) in [(org, "ROU9"), ("conf-other", "ROU2")] {
        let unknown = Change::GrantRole(role(org_id, user_id, "admin"));
        let unknown = commit(store, vec![unknown]).await;
        check!(
            matches!(unknown, Err(StoreError::NotFound(_))),
            "{org_id}/{user_id}: got {unknown:?}"
        );
    }
    check_eq!(
        role_view(store, org, "ROU1", &kinds).await?,
        expected,
        "unchanged"
    );

    let receipt = commit(store, vec![revoke_role(org, "ROU1", "admin")])
        .await
        .ctx("revoke")?;
    check_eq!(receipt.outcomes, [Outcome::Done], "outcome of a revoke");
    let (held, holders) = role_view(store, org, "ROU1", &["admin"]).await?;
    check_eq!(
        (held, holders),
        (vec!["approver".to_owned()], vec![vec![]]),
        "revoked"
    );
    for change in [
        revoke_role(org, "ROU1", "admin"),
        revoke_role(org, "ROU3", "approver"),
        revoke_role("conf-other", "ROU2", "approver"),
    ] {
        let result = commit(store, vec![change.clone()]).await;
        check!(
            matches!(result, Err(StoreError::NotFound(_))),
            "{change:?}: got {result:?}"
        );
    }
    let approvers = store
        .users_with_role(org, "approver")
        .await
        .ctx("users_with_role")?;
    check_eq!(approvers, ["ROU1", "ROU2"], "nothing else revoked");
    Ok(())
}

/// Approvers are added once (`Duplicate` after, the first row kept), listed oldest first, and
/// removed once (`NotFound` after); both users must exist.
pub async fn approvers(store: &dyn Store) -> Check {
    let (org, elsewhere) = ("conf-approvers", "conf-approvers-other");
    let (bob, carol) = (
        approver(org, "APU1", "APU2", 2_000),
        approver(org, "APU1", "APU3", 1_000),
    );
    let mut setup = Vec::new();
    for (id, name) in [("APU1", "alice"), ("APU2", "bob"), ("APU3", "carol")] {
        setup.push(Change::InsertUser(user(org, id, name)));
    }
    setup.push(Change::InsertUser(user(elsewhere, "APU4", "dave")));
    setup.push(Change::AddRecoveryApprover(bob.clone()));
    setup.push(Change::AddRecoveryApprover(carol.clone()));
    commit(store, setup).await.ctx("setup")?;
    let listed = store
        .recovery_approvers(org, "APU1")
        .await
        .ctx("recovery_approvers")?;
    check_eq!(listed, [carol.clone(), bob.clone()], "oldest first");
    for (org_id, user_id) in [(org, "APU2"), ("conf-other", "APU1")] {
        let none = store
            .recovery_approvers(org_id, user_id)
            .await
            .ctx("recovery_approvers")?;
        check!(none.is_empty(), "{org_id}/{user_id} has none, got {none:?}");
    }

    let again = approver(org, "APU1", "APU2", 5_000);
    let again = commit(store, vec![Change::AddRecoveryApprover(again)]).await;
    check!(
        matches!(again, Err(StoreError::Duplicate(_))),
        "an approver already: got {again:?}"
    );
    // Dave (APU4) exists, in another organisation: unknown here, and Alice unknown there.
    for (org_id, user_id, approver_id) in [
        (org, "APU1", "APU9"),
        (org, "APU9", "APU2"),
        (org, "APU1", "APU4"),
        (org, "APU4", "APU1"),
        (elsewhere, "APU4", "APU1"),
    ] {
        let unknown = approver(org_id, user_id, approver_id, 5_000);
        let unknown = commit(store, vec![Change::AddRecoveryApprover(unknown)]).await;
        check!(
            matches!(unknown, Err(StoreError::NotFound(_))),
            "{org_id}/{user_id} approved by {approver_id}: got {unknown:?}"
        );
    }
    let listed = store
        .recovery_approvers(org, "APU1")
        .await
        .ctx("recovery_approvers")?;
    check_eq!(listed, [carol, bob.clone()], "unchanged");

    let receipt = commit(store, vec![remove_approver(org, "APU1", "APU3")])
        .await
        .ctx("remove")?;
    check_eq!(receipt.outcomes, [Outcome::Done], "outcome of a removal");
    for change in [
        remove_approver(org, "APU1", "APU3"),
        remove_approver(org, "APU2", "APU1"),
        remove_approver("conf-other", "APU1", "APU2"),
    ] {
        let result = commit(store, vec![change.clone()]).await;
        check!(
            matches!(result, Err(StoreError::NotFound(_))),
            "{change:?}: got {result:?}"
        );
    }
    let listed = store
        .recovery_approvers(org, "APU1")
        .await
        .ctx("recovery_approvers")?;
    check_eq!(listed, [bob], "only Carol removed");
    Ok(())
}

/// The recovery block, the time of the last recovery and the probation are stored with the
/// user, set (and the block cleared) by their changes, and read wherever users are read.
pub async fn recovery_account_fields(store: &dyn Store) -> Check {
    let org = "conf-rc-fields";
    let mut alice = user(org, "RFU1", "alice");
    alice.recovery_blocked_until_ms = Some(5_000);
    alice.probation_until_ms = Some(6_000);
    alice.last_recovered_ms = Some(4_000);
    let mut bob = user(org, "RFU2", "bob");
    let setup = vec![
        Change::InsertUser(alice.clone()),
        Change::InsertUser(bob.clone()),
        Change::InsertTotp(totp(org, "RFT1", "RFU2", 1)),
    ];
    commit(store, setup).await.ctx("setup")?;
    reads_agree(store, &alice).await?;
    reads_agree(store, &bob).await?;

    let block = |user_id: &str, until_ms: Option<i64>| Change::SetRecoveryBlock {
        org_id: org.into(),
        user_id: user_id.into(),
        until_ms,
    };
    let recovered = |org_id: &str, user_id: &str| Change::SetRecovered {
        org_id: org_id.into(),
        user_id: user_id.into(),
        at_ms: 7_000,
        probation_until_ms: 9_000,
    };
    let changes = vec![block("RFU2", Some(8_000)), recovered(org, "RFU2")];
    let receipt = commit(store, changes).await.ctx("block and recover")?;
    check_eq!(receipt.outcomes, vec![Outcome::Done; 2], "outcomes");
    bob.recovery_blocked_until_ms = Some(8_000);
    bob.last_recovered_ms = Some(7_000);
    bob.probation_until_ms = Some(9_000);
    reads_agree(store, &bob).await?;
    commit(store, vec![block("RFU1", None)])
        .await
        .ctx("unblock")?;
    alice.recovery_blocked_until_ms = None;
    reads_agree(store, &alice).await?;

    let foreign = Change::SetRecoveryBlock {
        org_id: "conf-other".into(),
        user_id: "RFU2".into(),
        until_ms: None,
    };
    for change in [
        block("RFU9", Some(1)),
        recovered(org, "RFU9"),
        recovered("conf-other", "RFU1"),
        foreign,
    ] {
        let result = commit(store, vec![change.clone()]).await;
        check!(
            matches!(result, Err(StoreError::NotFound(_))),
            "{change:?}: got {result:?}"
        );
    }
    reads_agree(store, &bob).await?;
    reads_agree(store, &alice).await
}

/// Every factor id of a user: passkeys, authenticator apps, devices, recovery codes.
async fn all_factors(
    store: &dyn Store,
    org: &str,
    user_id: &str,
) -> Result<[Vec<String>; 4], String> {
    let creds = store
        .webauthn_credentials_for_user(org, user_id)
        .await
        .ctx("webauthn_credentials_for_user")?;
    let totps = store
        .totps_for_user(org, user_id)
        .await
        .ctx("totps_for_user")?;
    let devices = store
        .devices_for_user(org, user_id)
        .await
        .ctx("devices_for_user")?;
    let codes = store
        .recovery_codes_for_user(org, user_id)
        .await
        .ctx("recovery_codes_for_user")?;
    Ok([
        creds.into_iter().map(|c| c.cred_id).collect(),
        totps.into_iter().map(|t| t.totp_id).collect(),
        devices.into_iter().map(|d| d.device_id).collect(),
        codes.into_iter().map(|c| c.code_id).collect(),
    ])
}

/// Factors for `user_id`: passkeys `{p}W…`, apps `{p}T…`, devices `{p}D…`, codes `{p}C…`, as
/// many of each as `counts` says.
fn factor_changes(org: &str, user_id: &str, p: &str, counts: [usize; 4]) -> Vec<Change> {
    let [creds, totps, devices, codes] = counts;
    let mut changes = Vec::new();
    for n in 1..=creds {
        let cred = credential(org, &format!("{p}W{n}"), user_id, 1);
        changes.push(Change::InsertWebauthnCredential(cred));
    }
    for n in 1..=totps {
        changes.push(Change::InsertTotp(totp(
            org,
            &format!("{p}T{n}"),
            user_id,
            1,
        )));
    }
    for n in 1..=devices {
        let device = device_row(org, &format!("{p}D{n}"), user_id, 1);
        changes.push(Change::InsertDevice(device));
    }
    let codes = (1..=codes).map(|n| RecoveryCodeRow {
        code_id: format!("{p}C{n}"),
        org_id: org.into(),
        user_id: user_id.into(),
        code_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt${p}C{n}"),
        created_ms: 1,
        used_ms: None,
    });
    changes.push(Change::ReplaceRecoveryCodes {
        org_id: org.into(),
        user_id: user_id.into(),
        codes: codes.collect(),
    });
    changes
}

fn revoke(org_id: &str, user_id: &str, keep: Option<&str>) -> Change {
    Change::RevokeFactors {
        org_id: org_id.into(),
        user_id: user_id.into(),
        keep_cred_id: keep.map(Into::into),
    }
}

/// Revoking a user's factors deletes every one of them but the kept passkey and counts what
/// went; another user's factors, and another organisation's, are untouched.
pub async fn revoke_factors(store: &dyn Store) -> Check {
    let org = "conf-revoke";
    let mut setup = vec![
        Change::InsertUser(user(org, "RVU1", "alice")),
        Change::InsertUser(user(org, "RVU2", "bob")),
    ];
    setup.extend(factor_changes(org, "RVU1", "RVA", [2, 2, 1, 3]));
    setup.extend(factor_changes(org, "RVU2", "RVB", [1, 1, 1, 2]));
    commit(store, setup).await.ctx("setup")?;
    let bob = all_factors(store, org, "RVU2").await?;
    check_eq!(
        bob.iter().map(Vec::len).collect::<Vec<_>>(),
        [1, 1, 1, 2],
        "set up"
    );

    let receipt = commit(store, vec![revoke(org, "RVU1", Some("RVAW2"))])
        .await
        .ctx("revoke, keeping a passkey")?;
    check_eq!(
        receipt.outcomes,
        [Outcome::Purged { rows: 7 }],
        "1 + 2 + 1 + 3 rows"
    );
    let kept = [vec!["RVAW2".to_owned()], vec![], vec![], vec![]];
    check_eq!(
        all_factors(store, org, "RVU1").await?,
        kept,
        "only the kept passkey"
    );
    check_eq!(
        all_factors(store, org, "RVU2").await?,
        bob,
        "Bob's untouched"
    );

    for (change, rows) in [
        (revoke("conf-other", "RVU2", None), 0),
        (revoke(org, "RVU2", Some("RVAW2")), 5),
        (revoke(org, "RVU1", None), 1),
        (revoke(org, "RVU1", None), 0),
    ] {
        let receipt = commit(store, vec![change.clone()]).await.ctx("revoke")?;
        check_eq!(receipt.outcomes, [Outcome::Purged { rows }], "{change:?}");
    }
    let none: [Vec<String>; 4] = Default::default();
    check_eq!(
        all_factors(store, org, "RVU1").await?,
        none,
        "Alice has none left"
    );
    check_eq!(all_factors(store, org, "RVU2").await?, none, "nor has Bob");
    Ok(())
}
