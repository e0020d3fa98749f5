//! Push devices: activation codes (used once), devices, stream nonces (used once).

use super::{Check, Ctx, commit, device_row, user};
use crate::{ActivationRow, Change, Outcome, Store, StoreError};

fn activation(org_id: &str, code_hash: &str, user_id: &str, expires_ms: i64) -> ActivationRow {
    ActivationRow {
        org_id: org_id.into(),
        code_hash: code_hash.into(),
        user_id: user_id.into(),
        created_ms: 1_000,
        expires_ms,
        used_ms: None,
    }
}

fn consume_activation(code_hash: &str, now_ms: i64) -> Change {
    Change::ConsumeActivation {
        code_hash: code_hash.into(),
        now_ms,
    }
}

fn insert_nonce(nonce_hash: &str, device_id: &str, expires_ms: i64) -> Change {
    Change::InsertNonce {
        nonce_hash: nonce_hash.into(),
        device_id: device_id.into(),
        expires_ms,
    }
}

fn consume_nonce(nonce_hash: &str, device_id: &str, now_ms: i64) -> Change {
    Change::ConsumeNonce {
        nonce_hash: nonce_hash.into(),
        device_id: device_id.into(),
        now_ms,
    }
}

/// An activation code is used once, only before it expires, and names its user; a device is
/// bound in the same set or not at all.
pub async fn activation_once(store: &dyn Store) -> Check {
    let org = "conf-activate";
    let setup = vec![
        Change::InsertUser(user(org, "CAU1", "alice")),
        Change::InsertActivation(activation(org, "code-a", "CAU1", 10_000)),
        Change::InsertActivation(activation(org, "code-b", "CAU1", 10_000)),
        Change::InsertActivation(activation(org, "code-c", "CAU1", 10_000)),
    ];
    commit(store, setup).await.ctx("setup")?;

    let bind = vec![
        consume_activation("code-a", 5_000),
        Change::InsertDevice(device_row(org, "CAD1", "CAU1", 5_000)),
    ];
    let receipt = commit(store, bind).await.ctx("first use")?;
    let activated = Outcome::Activated {
        org_id: org.into(),
        user_id: "CAU1".into(),
    };
    check_eq!(
        receipt.outcomes,
        [activated.clone(), Outcome::Done],
        "the code names its user"
    );
    let again = commit(store, vec![consume_activation("code-a", 5_001)]).await;
    check!(
        matches!(again, Err(StoreError::ConditionFailed(_))),
        "second use: got {again:?}"
    );

    let late = vec![
        consume_activation("code-b", 10_000),
        Change::InsertDevice(device_row(org, "CAD2", "CAU1", 10_000)),
    ];
    let late = commit(store, late).await;
    check!(
        matches!(late, Err(StoreError::ConditionFailed(_))),
        "use at expiry: got {late:?}"
    );
    let orphan = store.device("CAD2").await.ctx("device")?;
    check!(
        orphan.is_none(),
        "no device bound by a refused code: {orphan:?}"
    );
    let receipt = commit(store, vec![consume_activation("code-b", 9_999)])
        .await
        .ctx("use just before expiry")?;
    check_eq!(
        receipt.outcomes,
        [activated],
        "the refused use left the code"
    );

    let unknown = commit(store, vec![consume_activation("code-z", 1)]).await;
    check!(
        matches!(unknown, Err(StoreError::ConditionFailed(_))),
        "unknown code: got {unknown:?}"
    );
    let dup = vec![Change::InsertActivation(activation(
        org, "code-c", "CAU1", 20_000,
    ))];
    let dup = commit(store, dup).await;
    check!(
        matches!(dup, Err(StoreError::Duplicate(_))),
        "duplicate code: got {dup:?}"
    );
    let stranger = vec![Change::InsertActivation(activation(
        org, "code-d", "CAU9", 20_000,
    ))];
    let stranger = commit(store, stranger).await;
    check!(
        matches!(stranger, Err(StoreError::NotFound(_))),
        "code for an unknown user: got {stranger:?}"
    );
    Ok(())
}

/// Devices are read back as inserted, listed per user oldest first, scoped by organisation.
pub async fn devices(store: &dyn Store) -> Check {
    let org = "conf-devices";
    let (newer, older) = (
        device_row(org, "CDD2", "CDU1", 20),
        device_row(org, "CDD1", "CDU1", 10),
    );
    let bobs = device_row(org, "CDD3", "CDU2", 5);
    let setup = vec![
        Change::InsertUser(user(org, "CDU1", "alice")),
        Change::InsertUser(user(org, "CDU2", "bob")),
        Change::InsertDevice(newer.clone()),
        Change::InsertDevice(older.clone()),
        Change::InsertDevice(bobs.clone()),
    ];
    let receipt = commit(store, setup).await.ctx("setup")?;
    check_eq!(
        receipt.outcomes,
        vec![Outcome::Done; 5],
        "outcomes of the inserts"
    );
    check_eq!(
        store.device("CDD2").await.ctx("device")?,
        Some(newer.clone()),
        "read back as inserted"
    );
    check_eq!(
        store.device("CDD9").await.ctx("device")?,
        None,
        "unknown device"
    );
    let listed = store
        .devices_for_user(org, "CDU1")
        .await
        .ctx("devices_for_user")?;
    check_eq!(
        listed,
        [older, newer.clone()],
        "alice's devices, oldest first"
    );
    let listed = store
        .devices_for_user(org, "CDU2")
        .await
        .ctx("devices_for_user")?;
    check_eq!(listed, [bobs], "bob's devices");
    let none = store
        .devices_for_user("conf-other", "CDU1")
        .await
        .ctx("devices_for_user")?;
    check!(none.is_empty(), "scoped by organisation: got {none:?}");

    let again = commit(store, vec![Change::InsertDevice(newer)]).await;
    check!(
        matches!(again, Err(StoreError::Duplicate(_))),
        "duplicate id: got {again:?}"
    );
    let stranger = vec![Change::InsertDevice(device_row(org, "CDD4", "CDU9", 30))];
    let stranger = commit(store, stranger).await;
    check!(
        matches!(stranger, Err(StoreError::NotFound(_))),
        "device of an unknown user: got {stranger:?}"
    );
    Ok(())
}

/// A nonce is used once, by its own device, before it expires.
pub async fn nonce_once(store: &dyn Store) -> Check {
    let org = "conf-nonce";
    let setup = vec![
        Change::InsertUser(user(org, "CNU1", "alice")),
        Change::InsertDevice(device_row(org, "CND1", "CNU1", 1)),
        Change::InsertDevice(device_row(org, "CND2", "CNU1", 2)),
        insert_nonce("nonce-1", "CND1", 10_000),
        insert_nonce("nonce-2", "CND1", 10_000),
        insert_nonce("nonce-3", "CND2", 3_000),
    ];
    commit(store, setup).await.ctx("setup")?;

    let foreign = commit(store, vec![consume_nonce("nonce-1", "CND2", 5_000)]).await;
    check!(
        matches!(foreign, Err(StoreError::ConditionFailed(_))),
        "another device's nonce: got {foreign:?}"
    );
    let receipt = commit(store, vec![consume_nonce("nonce-1", "CND1", 5_000)])
        .await
        .ctx("first use")?;
    check_eq!(receipt.outcomes, [Outcome::Done], "outcome of ConsumeNonce");
    let again = commit(store, vec![consume_nonce("nonce-1", "CND1", 5_001)]).await;
    check!(
        matches!(again, Err(StoreError::ConditionFailed(_))),
        "second use: got {again:?}"
    );

    let late = commit(store, vec![consume_nonce("nonce-2", "CND1", 10_000)]).await;
    check!(
        matches!(late, Err(StoreError::ConditionFailed(_))),
        "use at expiry: got {late:?}"
    );
    commit(store, vec![consume_nonce("nonce-2", "CND1", 2_000)])
        .await
        .ctx("use before expiry")?;
    // CND1's uses at 5_000 may have cleaned up CND1's expired nonces, never another device's.
    commit(store, vec![consume_nonce("nonce-3", "CND2", 2_500)])
        .await
        .ctx("the other device's nonce")?;

    let unknown = commit(store, vec![consume_nonce("nonce-9", "CND1", 1)]).await;
    check!(
        matches!(unknown, Err(StoreError::ConditionFailed(_))),
        "unknown nonce: got {unknown:?}"
    );
    commit(store, vec![insert_nonce("nonce-4", "CND1", 10_000)])
        .await
        .ctx("insert")?;
    let dup = commit(store, vec![insert_nonce("nonce-4", "CND2", 10_000)]).await;
    check!(
        matches!(dup, Err(StoreError::Duplicate(_))),
        "duplicate nonce: got {dup:?}"
    );
    let stranger = commit(store, vec![insert_nonce("nonce-5", "CND9", 10_000)]).await;
    check!(
        matches!(stranger, Err(StoreError::NotFound(_))),
        "nonce of an unknown device: got {stranger:?}"
    );
    Ok(())
}
