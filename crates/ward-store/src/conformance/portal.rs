//! The portal's records: WebAuthn credentials (counter checked), factor names and deletion
//! (scoped to their user), and the account settings the portal reads; the records handed out
//! once are in [`single_use`].

use futures::future::join_all;

use super::{Check, Ctx, commit, device_row, event, head, totp, user};
use crate::{Change, Outcome, Store, StoreError, UserKey, UserRow, WebauthnCredentialRow};

mod single_use;

pub use single_use::{
    ceremony_once, concurrent_ceremony, end_sessions, purge_portal, recovery_codes, sessions,
    user_tokens_once,
};

pub(super) fn credential(
    org_id: &str,
    cred_id: &str,
    user_id: &str,
    created_ms: i64,
) -> WebauthnCredentialRow {
    WebauthnCredentialRow {
        cred_id: cred_id.into(),
        org_id: org_id.into(),
        user_id: user_id.into(),
        name: format!("key {cred_id}"),
        kind: "passkey".into(),
        credential_sealed: format!("k1:sealed-credential-of-{cred_id}"),
        aaguid: None,
        backup_eligible: true,
        backed_up: false,
        sign_count: 0,
        created_ms,
        last_used_ms: None,
    }
}

fn use_credential(cred_id: &str, expected: i64, sealed: &str, count: i64, at_ms: i64) -> Change {
    Change::UseWebauthnCredential {
        cred_id: cred_id.into(),
        expected_sign_count: expected,
        credential_sealed: sealed.into(),
        sign_count: count,
        backed_up: true,
        used_ms: at_ms,
    }
}

/// Credentials are read back as inserted (flags both ways), listed oldest first per user, and
/// registered once.
pub async fn webauthn_credentials(store: &dyn Store) -> Check {
    let org = "conf-webauthn";
    let newer = credential(org, "QW2", "QWU1", 20);
    let mut older = credential(org, "QW1", "QWU1", 10);
    older.kind = "security-key".into();
    older.aaguid = Some("cb69481e-8ff7-4039-93ec-0a2729a154a8".into());
    older.backup_eligible = false;
    older.sign_count = 7;
    older.last_used_ms = Some(15);
    let mut bobs = credential(org, "QW3", "QWU2", 5);
    bobs.backed_up = true;
    let setup = vec![
        Change::InsertUser(user(org, "QWU1", "alice")),
        Change::InsertUser(user(org, "QWU2", "bob")),
        Change::InsertWebauthnCredential(newer.clone()),
        Change::InsertWebauthnCredential(older.clone()),
        Change::InsertWebauthnCredential(bobs.clone()),
    ];
    let receipt = commit(store, setup).await.ctx("insert credentials")?;
    check_eq!(receipt.outcomes, vec![Outcome::Done; 5], "outcomes");
    let listed = store
        .webauthn_credentials_for_user(org, "QWU1")
        .await
        .ctx("webauthn_credentials_for_user")?;
    check_eq!(
        listed,
        [older.clone(), newer.clone()],
        "oldest first, own only"
    );
    for row in [&older, &newer, &bobs] {
        let read = store
            .webauthn_credential(&row.cred_id)
            .await
            .ctx("webauthn_credential")?;
        check_eq!(read.as_ref(), Some(row), "every field round-trips");
    }
    let unknown = store
        .webauthn_credential("QW9")
        .await
        .ctx("webauthn_credential")?;
    check_eq!(unknown, None, "unknown credential");
    for (org_id, user_id) in [("conf-other", "QWU1"), (org, "QWU9")] {
        let none = store
            .webauthn_credentials_for_user(org_id, user_id)
            .await
            .ctx("webauthn_credentials_for_user")?;
        check!(none.is_empty(), "{org_id}/{user_id} has none, got {none:?}");
    }

    let again = credential(org, "QW1", "QWU2", 30);
    let again = commit(store, vec![Change::InsertWebauthnCredential(again)]).await;
    check!(
        matches!(again, Err(StoreError::Duplicate(_))),
        "a registered credential id: got {again:?}"
    );
    let read = store
        .webauthn_credential("QW1")
        .await
        .ctx("webauthn_credential")?;
    check_eq!(read, Some(older), "the registered credential is unchanged");
    let orphan = credential(org, "QW4", "QWU9", 30);
    let orphan = commit(store, vec![Change::InsertWebauthnCredential(orphan)]).await;
    check!(
        matches!(orphan, Err(StoreError::NotFound(_))),
        "unknown user: got {orphan:?}"
    );
    Ok(())
}

/// A use applies only while the stored counter is the one the caller verified against: a
/// stale counter is refused and changes nothing, and of concurrent uses exactly one wins.
pub async fn webauthn_counter(store: &dyn Store) -> Check {
    let org = "conf-webauthn-use";
    let mut stored = credential(org, "QU1", "QUU1", 10);
    stored.sign_count = 5;
    let setup = vec![
        Change::InsertUser(user(org, "QUU1", "alice")),
        Change::InsertWebauthnCredential(stored.clone()),
    ];
    commit(store, setup).await.ctx("setup")?;
    let receipt = commit(store, vec![use_credential("QU1", 5, "k1:after", 6, 2_000)])
        .await
        .ctx("use")?;
    check_eq!(receipt.outcomes, [Outcome::Done], "outcome of a use");
    stored.credential_sealed = "k1:after".into();
    stored.sign_count = 6;
    stored.backed_up = true;
    stored.last_used_ms = Some(2_000);
    let read = store
        .webauthn_credential("QU1")
        .await
        .ctx("webauthn_credential")?;
    check_eq!(read.as_ref(), Some(&stored), "the use is recorded");

    let before = head(store, org).await?;
    let stale = vec![
        Change::Audit(event(org, "auth.webauthn", "QUU1")),
        use_credential("QU1", 5, "k1:stale", 7, 3_000),
    ];
    let stale = commit(store, stale).await;
    check!(
        matches!(stale, Err(StoreError::ConditionFailed(_))),
        "a stale counter: got {stale:?}"
    );
    let read = store
        .webauthn_credential("QU1")
        .await
        .ctx("webauthn_credential")?;
    check_eq!(
        read.as_ref(),
        Some(&stored),
        "a refused use changes nothing"
    );
    check_eq!(
        head(store, org).await?,
        before,
        "a refused set appends no audit event"
    );
    let unknown = commit(store, vec![use_credential("QU9", 0, "k1:x", 1, 3_000)]).await;
    check!(
        matches!(unknown, Err(StoreError::ConditionFailed(_))),
        "unknown credential: got {unknown:?}"
    );

    let attempts = (0..20).map(|i| {
        let sealed = format!("k1:race-{i}");
        commit(
            store,
            vec![use_credential("QU1", 6, &sealed, 7 + i, 4_000 + i)],
        )
    });
    let results = join_all(attempts).await;
    let won: Vec<i64> = (0..)
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    check_eq!(
        won.len(),
        1,
        "exactly one concurrent use succeeds: {results:?}"
    );
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::ConditionFailed(_))))
        .count();
    check_eq!(refused, 19, "every other use is refused: {results:?}");
    let read = store
        .webauthn_credential("QU1")
        .await
        .ctx("webauthn_credential")?;
    let expected = won
        .first()
        .map(|&i| (format!("k1:race-{i}"), 7 + i, Some(4_000 + i)));
    check_eq!(
        read.map(|c| (c.credential_sealed, c.sign_count, c.last_used_ms)),
        expected,
        "the winner's use is stored"
    );
    Ok(())
}

/// `(kind, id, name)` of every factor of a user, in a fixed order.
async fn factors(store: &dyn Store, org: &str, user_id: &str) -> Result<Vec<[String; 3]>, String> {
    let mut all = Vec::new();
    for c in store
        .webauthn_credentials_for_user(org, user_id)
        .await
        .ctx("credentials")?
    {
        all.push(["webauthn".to_owned(), c.cred_id, c.name]);
    }
    for t in store
        .totps_for_user(org, user_id)
        .await
        .ctx("totps_for_user")?
    {
        all.push(["totp".to_owned(), t.totp_id, t.name]);
    }
    for d in store
        .devices_for_user(org, user_id)
        .await
        .ctx("devices_for_user")?
    {
        all.push(["device".to_owned(), d.device_id, d.name]);
    }
    Ok(all)
}

/// Alice and Bob, each with one factor of every kind: `{prefix}W1`, `{prefix}T1`, `{prefix}D1`
/// for Alice (`{prefix}U1`) and `…2` for Bob (`{prefix}U2`).
async fn two_users_with_factors(store: &dyn Store, org: &str, prefix: &str) -> Check {
    let mut setup = Vec::new();
    for (n, name) in [(1, "alice"), (2, "bob")] {
        let user_id = format!("{prefix}U{n}");
        setup.push(Change::InsertUser(user(org, &user_id, name)));
        let cred = credential(org, &format!("{prefix}W{n}"), &user_id, 1);
        setup.push(Change::InsertWebauthnCredential(cred));
        setup.push(Change::InsertTotp(totp(
            org,
            &format!("{prefix}T{n}"),
            &user_id,
            1,
        )));
        let device = device_row(org, &format!("{prefix}D{n}"), &user_id, 1);
        setup.push(Change::InsertDevice(device));
    }
    commit(store, setup).await.ctx("setup")?;
    Ok(())
}

/// The kinds of factor, with the id letter [`two_users_with_factors`] uses.
const KINDS: [(&str, char); 3] = [("webauthn", 'W'), ("totp", 'T'), ("device", 'D')];

fn rename(org_id: &str, user_id: &str, kind: &str, id: &str, name: &str) -> Change {
    Change::RenameFactor {
        org_id: org_id.into(),
        user_id: user_id.into(),
        kind: kind.into(),
        id: id.into(),
        name: name.into(),
    }
}

fn delete(org_id: &str, user_id: &str, kind: &str, id: &str) -> Change {
    Change::DeleteFactor {
        org_id: org_id.into(),
        user_id: user_id.into(),
        kind: kind.into(),
        id: id.into(),
    }
}

/// A user renames their own factors of every kind; another user's factor, another kind's id,
/// another organisation or an unknown kind is `NotFound` and changes nothing.
pub async fn rename_factor(store: &dyn Store) -> Check {
    let org = "conf-rename";
    two_users_with_factors(store, org, "QN").await?;
    let mut alice = factors(store, org, "QNU1").await?;
    let bob = factors(store, org, "QNU2").await?;
    check_eq!((alice.len(), bob.len()), (3, 3), "set up");
    // Alice's factor of another kind: the kind names the table, the id alone is not enough.
    let other_kinds_ids = ["QNT1", "QND1", "QNW1"];
    for ((kind, letter), foreign_id) in KINDS.into_iter().zip(other_kinds_ids) {
        let (own, bobs) = (format!("QN{letter}1"), format!("QN{letter}2"));
        let refused = [
            rename(org, "QNU1", kind, &bobs, "stolen"),
            rename("conf-other", "QNU2", kind, &bobs, "stolen"),
            rename(org, "QNU1", kind, "QN99", "unknown"),
            rename(org, "QNU1", kind, foreign_id, "another kind's id"),
            rename(org, "QNU1", "sms", &own, "an unknown kind"),
        ];
        for change in refused {
            let result = commit(store, vec![change.clone()]).await;
            check!(
                matches!(result, Err(StoreError::NotFound(_))),
                "{change:?}: got {result:?}"
            );
        }
        check_eq!(factors(store, org, "QNU1").await?, alice, "nothing renamed");
        let receipt = commit(store, vec![rename(org, "QNU1", kind, &own, "renamed")])
            .await
            .ctx("rename")?;
        check_eq!(
            receipt.outcomes,
            [Outcome::Done],
            "outcome of renaming a {kind}"
        );
        for [_, id, name] in &mut alice {
            if *id == own {
                "renamed".clone_into(name);
            }
        }
        check_eq!(
            factors(store, org, "QNU1").await?,
            alice,
            "the {kind} is renamed"
        );
    }
    check!(
        alice.iter().all(|[_, _, name]| name == "renamed"),
        "every kind renamed: {alice:?}"
    );
    check_eq!(factors(store, org, "QNU2").await?, bob, "Bob's untouched");
    Ok(())
}

/// A user deletes their own factors of every kind, once; another user's factor, another
/// organisation or an unknown kind is `NotFound` and deletes nothing.
pub async fn delete_factor(store: &dyn Store) -> Check {
    let org = "conf-delete";
    two_users_with_factors(store, org, "QE").await?;
    let mut alice = factors(store, org, "QEU1").await?;
    let bob = factors(store, org, "QEU2").await?;
    check_eq!((alice.len(), bob.len()), (3, 3), "set up");
    for (kind, letter) in KINDS {
        let (own, bobs) = (format!("QE{letter}1"), format!("QE{letter}2"));
        let refused = [
            delete(org, "QEU1", kind, &bobs),
            delete("conf-other", "QEU2", kind, &bobs),
            delete(org, "QEU1", "sms", &own),
        ];
        for change in refused {
            let result = commit(store, vec![change.clone()]).await;
            check!(
                matches!(result, Err(StoreError::NotFound(_))),
                "{change:?}: got {result:?}"
            );
        }
        check_eq!(factors(store, org, "QEU1").await?, alice, "nothing deleted");
        let receipt = commit(store, vec![delete(org, "QEU1", kind, &own)])
            .await
            .ctx("delete")?;
        check_eq!(
            receipt.outcomes,
            [Outcome::Done],
            "outcome of deleting a {kind}"
        );
        alice.retain(|[_, id, _]| *id != own);
        check_eq!(
            factors(store, org, "QEU1").await?,
            alice,
            "the {kind} is gone"
        );
        let again = commit(store, vec![delete(org, "QEU1", kind, &own)]).await;
        check!(
            matches!(again, Err(StoreError::NotFound(_))),
            "deleting a {kind} twice: got {again:?}"
        );
    }
    check_eq!(factors(store, org, "QEU2").await?, bob, "Bob's untouched");
    Ok(())
}

/// Every user read returns `expected` (found by name and by id, alone and with authenticators,
/// and in the organisation's list).
pub(super) async fn reads_agree(store: &dyn Store, expected: &UserRow) -> Check {
    let (org, id, name) = (&expected.org_id, &expected.user_id, &expected.username);
    let by_name = store.user_by_name(org, name).await.ctx("user_by_name")?;
    check_eq!(by_name.as_ref(), Some(expected), "user_by_name");
    let by_id = store.user_by_id(org, id).await.ctx("user_by_id")?;
    check_eq!(by_id.as_ref(), Some(expected), "user_by_id");
    for key in [UserKey::Name(name), UserKey::Id(id)] {
        let joined = store
            .user_with_totps(org, key)
            .await
            .ctx("user_with_totps")?
            .map(|(u, _)| u);
        check_eq!(
            joined.as_ref(),
            Some(expected),
            "user_with_totps by {key:?}"
        );
    }
    let listed = store.list_users(org, 100, 0).await.ctx("list_users")?;
    check!(
        listed.contains(expected),
        "list_users: {expected:?} not in {listed:?}"
    );
    Ok(())
}

/// Frozen factors and the policy group are stored with the user, set and cleared by their
/// changes, and read with the user everywhere users are read.
pub async fn account_settings(store: &dyn Store) -> Check {
    let org = "conf-settings";
    let mut alice = user(org, "QAU1", "alice");
    alice.factors_frozen_ms = Some(1_500);
    alice.policy_group = Some("strict".into());
    let mut bob = user(org, "QAU2", "bob");
    let setup = vec![
        Change::InsertUser(alice.clone()),
        Change::InsertUser(bob.clone()),
        Change::InsertTotp(totp(org, "QAT1", "QAU2", 1)),
    ];
    commit(store, setup).await.ctx("setup")?;
    reads_agree(store, &alice).await?;
    reads_agree(store, &bob).await?;

    let freeze = |user_id: &str, frozen_ms: Option<i64>| Change::SetFactorsFrozen {
        org_id: org.into(),
        user_id: user_id.into(),
        frozen_ms,
    };
    let group = |user_id: &str, group: Option<&str>| Change::SetPolicyGroup {
        org_id: org.into(),
        user_id: user_id.into(),
        group: group.map(Into::into),
    };
    let changes = vec![
        freeze("QAU2", Some(2_000)),
        group("QAU2", Some("contractors")),
        freeze("QAU1", None),
        group("QAU1", None),
    ];
    let receipt = commit(store, changes).await.ctx("set and clear")?;
    check_eq!(receipt.outcomes, vec![Outcome::Done; 4], "outcomes");
    bob.factors_frozen_ms = Some(2_000);
    bob.policy_group = Some("contractors".into());
    reads_agree(store, &bob).await?;
    reads_agree(store, &user(org, "QAU1", "alice")).await?;

    for change in [freeze("QAU9", Some(1)), group("QAU9", Some("x"))] {
        let result = commit(store, vec![change.clone()]).await;
        check!(
            matches!(result, Err(StoreError::NotFound(_))),
            "{change:?}: got {result:?}"
        );
    }
    let foreign = Change::SetPolicyGroup {
        org_id: "conf-other".into(),
        user_id: "QAU2".into(),
        group: None,
    };
    let foreign = commit(store, vec![foreign]).await;
    check!(
        matches!(foreign, Err(StoreError::NotFound(_))),
        "another organisation's user: got {foreign:?}"
    );
    reads_agree(store, &bob).await
}
