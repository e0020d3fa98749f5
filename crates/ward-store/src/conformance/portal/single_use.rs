//! What the portal hands out once: ceremonies, sessions, user tokens and recovery codes, and
//! their purge.

use futures::future::join_all;

use crate::conformance::{Check, Ctx, commit, user};
use crate::{
    CeremonyRow, Change, Outcome, RecoveryCodeRow, SessionRow, Store, StoreError, UserTokenRow,
};

fn ceremony(
    org_id: &str,
    hash: &str,
    user_id: Option<&str>,
    purpose: &str,
    expires_ms: i64,
) -> CeremonyRow {
    CeremonyRow {
        ceremony_hash: hash.into(),
        org_id: org_id.into(),
        user_id: user_id.map(Into::into),
        purpose: purpose.into(),
        state_sealed: format!("k1:sealed-state-of-{hash}"),
        created_ms: 1_000,
        expires_ms,
    }
}

fn consume_ceremony(hash: &str, purpose: &str, now_ms: i64) -> Change {
    Change::ConsumeCeremony {
        ceremony_hash: hash.into(),
        purpose: purpose.into(),
        now_ms,
    }
}

fn session(org_id: &str, hash: &str, user_id: &str, expires_ms: i64) -> SessionRow {
    SessionRow {
        session_hash: hash.into(),
        org_id: org_id.into(),
        user_id: user_id.into(),
        auth_method: "passkey".into(),
        created_ms: 1_000,
        last_seen_ms: 1_000,
        expires_ms,
        step_up_until_ms: None,
    }
}

fn touch(hash: &str, last_seen_ms: i64, step_up_until_ms: Option<i64>) -> Change {
    Change::TouchSession {
        session_hash: hash.into(),
        last_seen_ms,
        step_up_until_ms,
    }
}

fn token(org_id: &str, hash: &str, user_id: &str, purpose: &str, expires_ms: i64) -> UserTokenRow {
    UserTokenRow {
        token_hash: hash.into(),
        org_id: org_id.into(),
        user_id: user_id.into(),
        purpose: purpose.into(),
        created_ms: 1_000,
        expires_ms,
        used_ms: None,
    }
}

fn consume_token(hash: &str, purpose: &str, now_ms: i64) -> Change {
    Change::ConsumeUserToken {
        token_hash: hash.into(),
        purpose: purpose.into(),
        now_ms,
    }
}

fn code(org_id: &str, code_id: &str, user_id: &str, created_ms: i64) -> RecoveryCodeRow {
    RecoveryCodeRow {
        code_id: code_id.into(),
        org_id: org_id.into(),
        user_id: user_id.into(),
        code_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt${code_id}"),
        created_ms,
        used_ms: None,
    }
}

fn replace_codes(org_id: &str, user_id: &str, codes: &[&RecoveryCodeRow]) -> Change {
    Change::ReplaceRecoveryCodes {
        org_id: org_id.into(),
        user_id: user_id.into(),
        codes: codes.iter().map(|code| (*code).clone()).collect(),
    }
}

fn use_code(org_id: &str, user_id: &str, code_id: &str, used_ms: i64) -> Change {
    Change::UseRecoveryCode {
        org_id: org_id.into(),
        user_id: user_id.into(),
        code_id: code_id.into(),
        used_ms,
    }
}

/// A ceremony is consumed once, only for its purpose and before it expires, and hands back
/// its state; a set that fails leaves it consumable.
pub async fn ceremony_once(store: &dyn Store) -> Check {
    let org = "conf-ceremony";
    let register = ceremony(org, "QC1", Some("QCU1"), "passkey-register", 10_000);
    let signin = ceremony(org, "QC2", None, "passkey-signin", 10_000);
    let short = ceremony(org, "QC3", Some("QCU1"), "totp-enrol", 5_000);
    let setup = vec![
        Change::InsertUser(user(org, "QCU1", "alice")),
        Change::InsertCeremony(register.clone()),
        Change::InsertCeremony(signin.clone()),
        Change::InsertCeremony(short.clone()),
    ];
    commit(store, setup).await.ctx("setup")?;

    let refused = [
        (
            consume_ceremony("QC1", "passkey-signin", 1_000),
            "another purpose",
        ),
        (
            consume_ceremony("QC3", "totp-enrol", 5_000),
            "at its expiry",
        ),
        (consume_ceremony("QC9", "passkey-signin", 1_000), "unknown"),
    ];
    for (change, what) in refused {
        let result = commit(store, vec![change]).await;
        check!(
            matches!(result, Err(StoreError::ConditionFailed(_))),
            "{what}: got {result:?}"
        );
    }
    let failing_set = vec![
        consume_ceremony("QC2", "passkey-signin", 1_000),
        consume_ceremony("QC9", "passkey-signin", 1_000),
    ];
    let result = commit(store, failing_set).await;
    check!(
        matches!(result, Err(StoreError::ConditionFailed(_))),
        "a set with an unknown ceremony: got {result:?}"
    );
    let consumed = [
        (consume_ceremony("QC1", "passkey-register", 1_000), register),
        (consume_ceremony("QC2", "passkey-signin", 9_999), signin),
        (consume_ceremony("QC3", "totp-enrol", 4_999), short),
    ];
    for (change, row) in consumed {
        let receipt = commit(store, vec![change.clone()]).await.ctx("consume")?;
        check_eq!(receipt.outcomes, [Outcome::Ceremony(row)], "{change:?}");
        let again = commit(store, vec![change]).await;
        check!(
            matches!(again, Err(StoreError::ConditionFailed(_))),
            "a second time: got {again:?}"
        );
    }

    let live = ceremony(org, "QC4", None, "passkey-signin", 10_000);
    commit(store, vec![Change::InsertCeremony(live.clone())])
        .await
        .ctx("insert")?;
    let again = commit(store, vec![Change::InsertCeremony(live)]).await;
    check!(
        matches!(again, Err(StoreError::Duplicate(_))),
        "a duplicate ceremony: got {again:?}"
    );
    Ok(())
}

/// Twenty concurrent finishes of one ceremony: exactly one gets its state.
pub async fn concurrent_ceremony(store: &dyn Store) -> Check {
    let org = "conf-ceremony-race";
    let row = ceremony(org, "QX1", None, "passkey-signin", 10_000);
    commit(store, vec![Change::InsertCeremony(row.clone())])
        .await
        .ctx("insert")?;
    let attempts =
        (0..20).map(|_| commit(store, vec![consume_ceremony("QX1", "passkey-signin", 1)]));
    let results = join_all(attempts).await;
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    check_eq!(won.len(), 1, "exactly one consume succeeds: {results:?}");
    check_eq!(
        won.first().map(|receipt| receipt.outcomes.clone()),
        Some(vec![Outcome::Ceremony(row)]),
        "the winner gets the state"
    );
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::ConditionFailed(_))))
        .count();
    check_eq!(refused, 19, "every other consume is refused: {results:?}");
    Ok(())
}

/// Sessions are read back as inserted and belong to an existing user; a touch records
/// activity and keeps the step-up unless it grants a new one.
pub async fn sessions(store: &dyn Store) -> Check {
    let org = "conf-sessions";
    let first = session(org, "QS1", "QSU1", 100_000);
    let mut second = session(org, "QS2", "QSU1", 100_000);
    second.step_up_until_ms = Some(50_000);
    second.auth_method = "enrol-link".into();
    let setup = vec![
        Change::InsertUser(user(org, "QSU1", "alice")),
        Change::InsertSession(first.clone()),
        Change::InsertSession(second.clone()),
    ];
    commit(store, setup).await.ctx("setup")?;
    for row in [&first, &second] {
        let read = store.session(&row.session_hash).await.ctx("session")?;
        check_eq!(read.as_ref(), Some(row), "read back as inserted");
    }
    check_eq!(store.session("QS9").await.ctx("session")?, None, "unknown");

    let mut expected = first;
    for (at_ms, step_up, stored_step_up) in [
        (2_000, Some(9_000), Some(9_000)),
        (3_000, None, Some(9_000)),
        (4_000, Some(12_000), Some(12_000)),
    ] {
        let receipt = commit(store, vec![touch("QS1", at_ms, step_up)])
            .await
            .ctx("touch")?;
        check_eq!(receipt.outcomes, [Outcome::Done], "outcome of TouchSession");
        expected.last_seen_ms = at_ms;
        expected.step_up_until_ms = stored_step_up;
        let read = store.session("QS1").await.ctx("session")?;
        check_eq!(
            read.as_ref(),
            Some(&expected),
            "touched at {at_ms}, step-up {step_up:?}"
        );
    }
    let read = store.session("QS2").await.ctx("session")?;
    check_eq!(read, Some(second.clone()), "the other session is untouched");
    let gone = commit(store, vec![touch("QS9", 1, None)]).await;
    check!(
        matches!(gone, Err(StoreError::NotFound(_))),
        "touching an unknown session: got {gone:?}"
    );

    let again = commit(store, vec![Change::InsertSession(second)]).await;
    check!(
        matches!(again, Err(StoreError::Duplicate(_))),
        "a duplicate session: got {again:?}"
    );
    let orphan = session(org, "QS5", "QSU9", 1);
    let orphan = commit(store, vec![Change::InsertSession(orphan)]).await;
    check!(
        matches!(orphan, Err(StoreError::NotFound(_))),
        "a session of an unknown user: got {orphan:?}"
    );
    Ok(())
}

/// Sessions end one at a time (ending one that is gone is no error) or all of a user's at
/// once, counted, leaving other users' sessions alone.
pub async fn end_sessions(store: &dyn Store) -> Check {
    let org = "conf-sessions-end";
    let bobs = session(org, "QL3", "QLU2", 100_000);
    let setup = vec![
        Change::InsertUser(user(org, "QLU1", "alice")),
        Change::InsertUser(user(org, "QLU2", "bob")),
        Change::InsertSession(session(org, "QL1", "QLU1", 100_000)),
        Change::InsertSession(session(org, "QL2", "QLU1", 100_000)),
        Change::InsertSession(bobs.clone()),
        // Expired sessions are ended all the same.
        Change::InsertSession(session(org, "QL4", "QLU1", 1)),
    ];
    commit(store, setup).await.ctx("setup")?;
    for _ in 0..2 {
        let end = Change::DeleteSession {
            session_hash: "QL1".into(),
        };
        let receipt = commit(store, vec![end]).await.ctx("delete session")?;
        check_eq!(
            receipt.outcomes,
            [Outcome::Done],
            "ending a session, even twice"
        );
        check_eq!(store.session("QL1").await.ctx("session")?, None, "ended");
    }
    check!(
        store.session("QL2").await.ctx("session")?.is_some(),
        "only the one session ended"
    );

    let end_all = |org_id: &str, user_id: &str| Change::DeleteUserSessions {
        org_id: org_id.into(),
        user_id: user_id.into(),
    };
    let ended = [
        (org, "QLU1", 2),
        (org, "QLU1", 0),
        ("conf-other", "QLU2", 0),
        (org, "QLU9", 0),
    ];
    for (org_id, user_id, rows) in ended {
        let receipt = commit(store, vec![end_all(org_id, user_id)])
            .await
            .ctx("end all")?;
        check_eq!(
            receipt.outcomes,
            [Outcome::Purged { rows }],
            "ending {org_id}/{user_id}'s sessions"
        );
    }
    for hash in ["QL2", "QL4"] {
        let read = store.session(hash).await.ctx("session")?;
        check_eq!(read, None, "{hash} ended");
    }
    let read = store.session("QL3").await.ctx("session")?;
    check_eq!(read, Some(bobs), "Bob's session is untouched");
    Ok(())
}

/// A user token is used once, only for its purpose and before it expires, and names its
/// user; refused uses leave it as it was.
pub async fn user_tokens_once(store: &dyn Store) -> Check {
    let org = "conf-tokens";
    let enrol = token(org, "QT1", "QTU1", "enrol", 10_000);
    let report = token(org, "QT2", "QTU1", "report", 5_000);
    let race = token(org, "QT3", "QTU1", "enrol", 10_000);
    let setup = vec![
        Change::InsertUser(user(org, "QTU1", "alice")),
        Change::InsertUserToken(enrol.clone()),
        Change::InsertUserToken(report.clone()),
        Change::InsertUserToken(race.clone()),
    ];
    commit(store, setup).await.ctx("setup")?;
    let read = store.user_token("QT1").await.ctx("user_token")?;
    check_eq!(read.as_ref(), Some(&enrol), "read back as inserted");
    check_eq!(
        store.user_token("QT9").await.ctx("user_token")?,
        None,
        "unknown"
    );

    let refused = [
        (consume_token("QT1", "report", 1_000), "another purpose"),
        (consume_token("QT2", "report", 5_000), "at its expiry"),
        (consume_token("QT9", "enrol", 1_000), "unknown"),
    ];
    for (change, what) in refused {
        let result = commit(store, vec![change]).await;
        check!(
            matches!(result, Err(StoreError::ConditionFailed(_))),
            "{what}: got {result:?}"
        );
    }
    for row in [&enrol, &report] {
        let read = store.user_token(&row.token_hash).await.ctx("user_token")?;
        check_eq!(read.as_ref(), Some(row), "a refused use changes nothing");
    }
    let used = Outcome::TokenUsed {
        org_id: org.into(),
        user_id: "QTU1".into(),
    };
    for (hash, purpose, now_ms) in [("QT1", "enrol", 1_000), ("QT2", "report", 4_999)] {
        let receipt = commit(store, vec![consume_token(hash, purpose, now_ms)])
            .await
            .ctx("use")?;
        check_eq!(
            receipt.outcomes,
            std::slice::from_ref(&used),
            "the token names its user"
        );
        let read = store.user_token(hash).await.ctx("user_token")?;
        check_eq!(
            read.and_then(|t| t.used_ms),
            Some(now_ms),
            "{hash} is marked used"
        );
        let again = commit(store, vec![consume_token(hash, purpose, now_ms + 1)]).await;
        check!(
            matches!(again, Err(StoreError::ConditionFailed(_))),
            "{hash} a second time: got {again:?}"
        );
        let read = store.user_token(hash).await.ctx("user_token")?;
        check_eq!(
            read.and_then(|t| t.used_ms),
            Some(now_ms),
            "{hash} still used once"
        );
    }

    let attempts = (0..10).map(|i| commit(store, vec![consume_token("QT3", "enrol", 2_000 + i)]));
    let results = join_all(attempts).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    check_eq!(won, 1, "exactly one concurrent use succeeds: {results:?}");

    let again = commit(store, vec![Change::InsertUserToken(race)]).await;
    check!(
        matches!(again, Err(StoreError::Duplicate(_))),
        "a duplicate token: got {again:?}"
    );
    let orphan = token(org, "QT4", "QTU9", "enrol", 10_000);
    let orphan = commit(store, vec![Change::InsertUserToken(orphan)]).await;
    check!(
        matches!(orphan, Err(StoreError::NotFound(_))),
        "a token of an unknown user: got {orphan:?}"
    );
    Ok(())
}

/// A new set of recovery codes replaces the old one; each code is used once, by its user; a
/// set with another user's code is refused and changes nothing.
pub async fn recovery_codes(store: &dyn Store) -> Check {
    let org = "conf-recovery";
    let (one, two, three) = (
        code(org, "QR1", "QRU1", 10),
        code(org, "QR2", "QRU1", 10),
        code(org, "QR3", "QRU1", 10),
    );
    let bobs = code(org, "QR9", "QRU2", 10);
    let setup = vec![
        Change::InsertUser(user(org, "QRU1", "alice")),
        Change::InsertUser(user(org, "QRU2", "bob")),
        replace_codes(org, "QRU1", &[&two, &one, &three]),
        replace_codes(org, "QRU2", &[&bobs]),
    ];
    let receipt = commit(store, setup).await.ctx("first sets")?;
    check_eq!(receipt.outcomes, vec![Outcome::Done; 4], "outcomes");
    let codes = |user_id: &'static str| store.recovery_codes_for_user(org, user_id);
    let listed = codes("QRU1").await.ctx("recovery_codes_for_user")?;
    check_eq!(
        listed,
        [one.clone(), two.clone(), three],
        "listed oldest first, then by id"
    );

    let receipt = commit(store, vec![use_code(org, "QRU1", "QR2", 500)])
        .await
        .ctx("use")?;
    check_eq!(
        receipt.outcomes,
        [Outcome::Done],
        "outcome of UseRecoveryCode"
    );
    let refused = [
        use_code(org, "QRU1", "QR2", 600),
        use_code(org, "QRU1", "QR9", 600),
        use_code(org, "QRU2", "QR1", 600),
        use_code("conf-other", "QRU1", "QR1", 600),
        use_code(org, "QRU1", "QR0", 600),
    ];
    for change in refused {
        let result = commit(store, vec![change.clone()]).await;
        check!(
            matches!(result, Err(StoreError::ConditionFailed(_))),
            "{change:?}: got {result:?}"
        );
    }
    let used: Vec<_> = codes("QRU1")
        .await
        .ctx("recovery_codes_for_user")?
        .into_iter()
        .map(|c| (c.code_id, c.used_ms))
        .collect();
    let expected =
        [("QR1", None), ("QR2", Some(500_i64)), ("QR3", None)].map(|(id, at)| (id.to_owned(), at));
    check_eq!(used, expected, "only QR2 is used, once");

    let (four, five) = (code(org, "QR4", "QRU1", 20), code(org, "QR5", "QRU1", 20));
    commit(store, vec![replace_codes(org, "QRU1", &[&five, &four])])
        .await
        .ctx("a new set")?;
    let listed = codes("QRU1").await.ctx("recovery_codes_for_user")?;
    check_eq!(
        listed,
        [four.clone(), five.clone()],
        "the new set replaced the old one"
    );
    let old = commit(store, vec![use_code(org, "QRU1", "QR1", 700)]).await;
    check!(
        matches!(old, Err(StoreError::ConditionFailed(_))),
        "a code of the old set: got {old:?}"
    );

    let mixed = [&code(org, "QR6", "QRU1", 30), &code(org, "QR7", "QRU2", 30)];
    let mixed = commit(store, vec![replace_codes(org, "QRU1", &mixed)]).await;
    check!(
        mixed.is_err(),
        "a set with Bob's code in Alice's: got {mixed:?}"
    );
    let listed = codes("QRU1").await.ctx("recovery_codes_for_user")?;
    check_eq!(listed, [four, five], "a refused set changes nothing");
    let listed = codes("QRU2").await.ctx("recovery_codes_for_user")?;
    check_eq!(listed, [bobs], "Bob's codes are untouched throughout");

    commit(store, vec![replace_codes(org, "QRU1", &[])])
        .await
        .ctx("an empty set")?;
    let listed = codes("QRU1").await.ctx("recovery_codes_for_user")?;
    check!(
        listed.is_empty(),
        "an empty set removes every code, got {listed:?}"
    );
    Ok(())
}

/// `PurgeExpired` deletes expired ceremonies, sessions and user tokens (used or not), and keeps
/// the live ones.
pub async fn purge_portal(store: &dyn Store) -> Check {
    let org = "conf-purge-portal";
    let (expired_ms, fresh_ms) = (5_000, 9_000_000_000);
    let mut used_old = token(org, "QPT3", "QPU1", "report", expired_ms);
    used_old.used_ms = Some(1_000);
    let mut used_fresh = token(org, "QPT4", "QPU1", "report", fresh_ms);
    used_fresh.used_ms = Some(1_000);
    let setup = vec![
        Change::InsertUser(user(org, "QPU1", "alice")),
        Change::InsertCeremony(ceremony(org, "QPC1", None, "passkey-signin", expired_ms)),
        Change::InsertCeremony(ceremony(org, "QPC2", None, "passkey-signin", fresh_ms)),
        Change::InsertSession(session(org, "QPS1", "QPU1", expired_ms)),
        Change::InsertSession(session(org, "QPS2", "QPU1", fresh_ms)),
        Change::InsertUserToken(token(org, "QPT1", "QPU1", "enrol", expired_ms)),
        Change::InsertUserToken(token(org, "QPT2", "QPU1", "enrol", fresh_ms)),
        Change::InsertUserToken(used_old),
        Change::InsertUserToken(used_fresh),
    ];
    commit(store, setup).await.ctx("setup")?;
    let purge = || {
        vec![Change::PurgeExpired {
            before_ms: 1_000_000_000,
        }]
    };
    let receipt = commit(store, purge()).await.ctx("purge")?;
    check!(
        matches!(receipt.outcomes[..], [Outcome::Purged { rows }] if rows >= 4),
        "purged rows: {:?}",
        receipt.outcomes
    );
    let receipt = commit(store, purge()).await.ctx("purge again")?;
    check_eq!(
        receipt.outcomes,
        [Outcome::Purged { rows: 0 }],
        "nothing left to purge"
    );

    for (hash, kept) in [("QPS1", false), ("QPS2", true)] {
        let read = store.session(hash).await.ctx("session")?;
        check_eq!(read.is_some(), kept, "session {hash} kept");
    }
    for (hash, kept) in [
        ("QPT1", false),
        ("QPT2", true),
        ("QPT3", false),
        ("QPT4", true),
    ] {
        let read = store.user_token(hash).await.ctx("user_token")?;
        check_eq!(read.is_some(), kept, "user token {hash} kept");
    }
    // Consumed at a time before either expiry: only a purged ceremony is refused.
    let old = commit(store, vec![consume_ceremony("QPC1", "passkey-signin", 1)]).await;
    check!(
        matches!(old, Err(StoreError::ConditionFailed(_))),
        "expired ceremony kept: {old:?}"
    );
    commit(store, vec![consume_ceremony("QPC2", "passkey-signin", 1)])
        .await
        .ctx("fresh ceremony purged")?;
    Ok(())
}
