//! Decisions that must happen once: TOTP steps, failure counting and locking, transactions.

use futures::future::join_all;

use super::{Check, Ctx, auth_tx_row, commit, event, head, totp, user};
use crate::{Change, Outcome, Store, StoreError, UserKey};

fn use_step(org: &str, totp_id: &str, step: i64) -> Change {
    Change::UseTotpStep {
        org_id: org.into(),
        totp_id: totp_id.into(),
        step,
    }
}

/// Authenticators are listed oldest first and belong to an existing user.
pub async fn totp_factors(store: &dyn Store) -> Check {
    let org = "conf-totp";
    let (newer, older) = (totp(org, "CT2", "CTU1", 20), totp(org, "CT1", "CTU1", 10));
    let setup = vec![
        Change::InsertUser(user(org, "CTU1", "alice")),
        Change::InsertTotp(newer.clone()),
        Change::InsertTotp(older.clone()),
    ];
    commit(store, setup)
        .await
        .ctx("insert user and authenticators")?;
    let listed = store
        .totps_for_user(org, "CTU1")
        .await
        .ctx("totps_for_user")?;
    check_eq!(
        listed,
        [older.clone(), newer.clone()],
        "listed oldest first, as inserted"
    );
    let alice = user(org, "CTU1", "alice");
    for key in [UserKey::Name("alice"), UserKey::Id("CTU1")] {
        let joined = store
            .user_with_totps(org, key)
            .await
            .ctx("user_with_totps")?;
        check_eq!(
            joined,
            Some((alice.clone(), vec![older.clone(), newer.clone()])),
            "user and authenticators in one read, by {key:?}"
        );
    }
    commit(store, vec![Change::InsertUser(user(org, "CTU2", "bob"))])
        .await
        .ctx("insert bob")?;
    let bare = store
        .user_with_totps(org, UserKey::Name("bob"))
        .await
        .ctx("user_with_totps")?;
    check_eq!(
        bare,
        Some((user(org, "CTU2", "bob"), vec![])),
        "a user without authenticators"
    );
    let missing = store
        .user_with_totps(org, UserKey::Name("carol"))
        .await
        .ctx("user_with_totps")?;
    check!(missing.is_none(), "unknown user: got {missing:?}");
    let other_org = store
        .user_with_totps("conf-other", UserKey::Name("alice"))
        .await
        .ctx("user_with_totps")?;
    check!(
        other_org.is_none(),
        "scoped by organisation: got {other_org:?}"
    );
    let none = store
        .totps_for_user(org, "CTU9")
        .await
        .ctx("totps_for_user")?;
    check!(
        none.is_empty(),
        "unknown user has no authenticators, got {none:?}"
    );

    let orphan = commit(
        store,
        vec![Change::InsertTotp(totp(org, "CT3", "CTU9", 30))],
    )
    .await;
    check!(
        matches!(orphan, Err(StoreError::NotFound(_))),
        "unknown user: got {orphan:?}"
    );
    let again = commit(store, vec![Change::InsertTotp(newer)]).await;
    check!(
        matches!(again, Err(StoreError::Duplicate(_))),
        "duplicate id: got {again:?}"
    );
    Ok(())
}

/// A step is accepted only if it is higher than every step accepted before.
pub async fn totp_step_once(store: &dyn Store) -> Check {
    let org = "conf-step";
    let setup = vec![
        Change::InsertUser(user(org, "CSU1", "alice")),
        Change::InsertTotp(totp(org, "CST1", "CSU1", 1)),
    ];
    commit(store, setup).await.ctx("setup")?;
    let receipt = commit(store, vec![use_step(org, "CST1", 100)])
        .await
        .ctx("first use")?;
    check_eq!(receipt.outcomes, [Outcome::Done], "outcome of UseTotpStep");
    let last = |rows: Vec<crate::TotpRow>| rows.first().and_then(|t| t.last_step);
    let stored = store
        .totps_for_user(org, "CSU1")
        .await
        .ctx("totps_for_user")?;
    check_eq!(last(stored), Some(100), "step recorded");

    for step in [100, 99] {
        let result = commit(store, vec![use_step(org, "CST1", step)]).await;
        check!(
            matches!(result, Err(StoreError::ConditionFailed(_))),
            "step {step} after 100 must be refused, got {result:?}"
        );
    }
    commit(store, vec![use_step(org, "CST1", 101)])
        .await
        .ctx("a higher step")?;
    let stored = store
        .totps_for_user(org, "CSU1")
        .await
        .ctx("totps_for_user")?;
    check_eq!(last(stored), Some(101), "higher step recorded");

    let before = head(store, org).await?;
    let replay = vec![
        Change::Audit(event(org, "auth.passcode", "CSU1")),
        use_step(org, "CST1", 101),
    ];
    let result = commit(store, replay).await;
    check!(
        matches!(result, Err(StoreError::ConditionFailed(_))),
        "replay: got {result:?}"
    );
    check_eq!(
        head(store, org).await?,
        before,
        "a refused set appends no audit event"
    );
    let unknown = commit(store, vec![use_step(org, "CST9", 1)]).await;
    check!(
        matches!(unknown, Err(StoreError::ConditionFailed(_))),
        "unknown authenticator: got {unknown:?}"
    );
    Ok(())
}

/// Twenty concurrent uses of the same step: exactly one wins.
pub async fn concurrent_totp_step(store: &dyn Store) -> Check {
    let org = "conf-race";
    let setup = vec![
        Change::InsertUser(user(org, "CRU1", "alice")),
        Change::InsertTotp(totp(org, "CRT1", "CRU1", 1)),
    ];
    commit(store, setup).await.ctx("setup")?;
    let attempts = (0..20).map(|_| commit(store, vec![use_step(org, "CRT1", 7)]));
    let results = join_all(attempts).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    check_eq!(won, 1, "exactly one concurrent use of a step succeeds");
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::ConditionFailed(_))))
        .count();
    check_eq!(
        refused,
        19,
        "every other use is refused as ConditionFailed: {results:?}"
    );
    Ok(())
}

fn failure(org: &str, user_id: &str, threshold: i64, now_ms: i64) -> Change {
    Change::RecordAuthFailure {
        org_id: org.into(),
        user_id: user_id.into(),
        threshold,
        lock_until_ms: now_ms + 4_000,
        now_ms,
    }
}

fn success(org: &str, user_id: &str, at_ms: i64) -> Change {
    Change::RecordAuthSuccess {
        org_id: org.into(),
        user_id: user_id.into(),
        at_ms,
    }
}

/// Failures are counted and lock at the threshold; a locked account counts nothing more and
/// takes no success; after the lock runs out counting starts again; a success resets.
pub async fn auth_failures(store: &dyn Store) -> Check {
    let org = "conf-fail";
    commit(store, vec![Change::InsertUser(user(org, "CFU1", "alice"))])
        .await
        .ctx("insert")?;
    for (count, locked_until_ms) in [(1, None), (2, None), (3, Some(5_000))] {
        let receipt = commit(store, vec![failure(org, "CFU1", 3, 1_000)])
            .await
            .ctx("record failure")?;
        check_eq!(
            receipt.outcomes,
            [Outcome::Failures {
                count,
                locked_until_ms
            }],
            "failure number {count}"
        );
    }
    let locked = commit(store, vec![failure(org, "CFU1", 3, 1_500)]).await;
    check!(
        matches!(locked, Err(StoreError::ConditionFailed(_))),
        "a failure while locked is refused: {locked:?}"
    );
    let locked = commit(store, vec![success(org, "CFU1", 2_000)]).await;
    check!(
        matches!(locked, Err(StoreError::ConditionFailed(_))),
        "a success does not clear a lock: {locked:?}"
    );
    let alice = store.user_by_id(org, "CFU1").await.ctx("user_by_id")?;
    let state = alice.map(|u| (u.failed_attempts, u.locked_until_ms, u.last_login_ms));
    check_eq!(state, Some((3, Some(5_000), None)), "stored count and lock");

    let receipt = commit(store, vec![failure(org, "CFU1", 3, 6_000)])
        .await
        .ctx("failure after the lock ran out")?;
    check_eq!(
        receipt.outcomes,
        [Outcome::Failures {
            count: 1,
            locked_until_ms: None
        }],
        "counting starts again after the lock"
    );
    let receipt = commit(store, vec![success(org, "CFU1", 7_000)])
        .await
        .ctx("record success")?;
    check_eq!(
        receipt.outcomes,
        [Outcome::Done],
        "outcome of RecordAuthSuccess"
    );
    let alice = store.user_by_id(org, "CFU1").await.ctx("user_by_id")?;
    let state = alice.map(|u| (u.failed_attempts, u.locked_until_ms, u.last_login_ms));
    check_eq!(state, Some((0, None, Some(7_000))), "reset after success");

    let missing = commit(store, vec![failure(org, "CFU9", 3, 1)]).await;
    check!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "failure: got {missing:?}"
    );
    let missing = commit(store, vec![success(org, "CFU9", 1)]).await;
    check!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "success: got {missing:?}"
    );
    Ok(())
}

/// A hundred concurrent failures with threshold 10: exactly ten are counted, the account is
/// locked, the others are refused as locked; a success sent after them does not unlock.
pub async fn concurrent_lockout(store: &dyn Store) -> Check {
    let org = "conf-lock-race";
    commit(store, vec![Change::InsertUser(user(org, "CLU1", "alice"))])
        .await
        .ctx("insert")?;
    let attempts = (0..100).map(|_| commit(store, vec![failure(org, "CLU1", 10, 1_000)]));
    let results = join_all(attempts).await;
    let counted = results.iter().filter(|r| r.is_ok()).count();
    check_eq!(counted, 10, "failures counted under concurrency");
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::ConditionFailed(_))))
        .count();
    check_eq!(refused, 90, "the others are refused as locked: {results:?}");
    let late = commit(store, vec![success(org, "CLU1", 1_001)]).await;
    check!(
        matches!(late, Err(StoreError::ConditionFailed(_))),
        "a success after the burst does not clear the lock: {late:?}"
    );
    let alice = store.user_by_id(org, "CLU1").await.ctx("user_by_id")?;
    let state = alice.map(|u| (u.failed_attempts, u.locked_until_ms));
    check_eq!(state, Some((10, Some(5_000))), "stored count and lock");
    Ok(())
}

/// A transaction is decided once; later decisions are refused.
pub async fn auth_tx(store: &dyn Store) -> Check {
    let org = "conf-tx";
    let waiting = auth_tx_row(org, "CTX1", "CXU1");
    commit(store, vec![Change::InsertAuthTx(waiting.clone())])
        .await
        .ctx("insert")?;
    let read = store.auth_tx(org, "CTX1").await.ctx("auth_tx")?;
    check_eq!(read, Some(waiting.clone()), "read back as inserted");
    check_eq!(
        store.auth_tx(org, "CTX9").await.ctx("auth_tx")?,
        None,
        "unknown txid"
    );

    let finish = |result: &str, txid: &str| Change::FinishAuthTx {
        org_id: org.into(),
        txid: txid.into(),
        result: result.into(),
        status: result.into(),
        status_msg: format!("decided {result}"),
    };
    let receipt = commit(store, vec![finish("allow", "CTX1")])
        .await
        .ctx("finish")?;
    check_eq!(receipt.outcomes, [Outcome::Done], "outcome of FinishAuthTx");
    let read = store.auth_tx(org, "CTX1").await.ctx("auth_tx")?;
    let decided = read.map(|t| (t.result, t.status, t.status_msg));
    let allowed = (
        "allow".to_owned(),
        "allow".to_owned(),
        "decided allow".to_owned(),
    );
    check_eq!(decided, Some(allowed.clone()), "decision stored");

    let second = commit(store, vec![finish("deny", "CTX1")]).await;
    check!(
        matches!(second, Err(StoreError::ConditionFailed(_))),
        "second: got {second:?}"
    );
    let read = store.auth_tx(org, "CTX1").await.ctx("auth_tx")?;
    check_eq!(
        read.map(|t| (t.result, t.status, t.status_msg)),
        Some(allowed),
        "unchanged"
    );
    let unknown = commit(store, vec![finish("allow", "CTX9")]).await;
    check!(
        matches!(unknown, Err(StoreError::ConditionFailed(_))),
        "unknown: got {unknown:?}"
    );
    let again = commit(store, vec![Change::InsertAuthTx(waiting)]).await;
    check!(
        matches!(again, Err(StoreError::Duplicate(_))),
        "duplicate txid: got {again:?}"
    );
    Ok(())
}
