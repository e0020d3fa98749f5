//! Recovery cases: one open case per account (phantom cases aside), appends conditional on the
//! case's version, and the queries over cases; roles, approver sets, the account's recovery
//! fields and the revocation of factors are in [`account`].

use futures::future::join_all;

use super::{Check, Ctx, commit, event, head, user};
use crate::{Change, Outcome, RecoveryCaseRow, RecoveryEventRow, Store, StoreError};

mod account;
mod handles;

pub use account::{approvers, recovery_account_fields, revoke_factors, roles};
pub use handles::{concurrent_adopt, concurrent_notice_slots, concurrent_rotate};

/// An open case at version 1, opened at `opened_ms`, expiring a day later.
fn case_row(org_id: &str, case_id: &str, user_id: Option<&str>, opened_ms: i64) -> RecoveryCaseRow {
    RecoveryCaseRow {
        case_id: case_id.into(),
        org_id: org_id.into(),
        user_id: user_id.map(Into::into),
        handle_hash: format!("handle-of-{case_id}"),
        state: "collecting".into(),
        is_open: true,
        opened_by: "user".into(),
        opened_ms,
        updated_ms: opened_ms,
        expires_ms: opened_ms + 86_400_000,
        version: 1,
        opened_from: Some("192.0.2.1".into()),
        adopt_hash: None,
    }
}

fn event_row(case_id: &str, seq: i64, text: &str) -> RecoveryEventRow {
    RecoveryEventRow {
        case_id: case_id.into(),
        seq,
        at_ms: 1_000 + seq,
        event: format!("{{\"seq\":{seq},\"text\":\"{text}\"}}"),
    }
}

/// Opens `case` with its first event.
fn open(case: &RecoveryCaseRow) -> Change {
    Change::OpenRecoveryCase {
        case: case.clone(),
        first_event: event_row(&case.case_id, 1, "opened"),
    }
}

/// The state a case reaches through an append (what [`append`] sets besides its events).
struct Next<'a> {
    state: &'a str,
    is_open: bool,
    at_ms: i64,
}

fn append(case_id: &str, expected: i64, events: Vec<RecoveryEventRow>, next: &Next<'_>) -> Change {
    Change::AppendRecoveryEvents {
        case_id: case_id.into(),
        expected_version: expected,
        events,
        state: next.state.into(),
        is_open: next.is_open,
        updated_ms: next.at_ms,
        expires_ms: next.at_ms + 60_000,
    }
}

/// `case` after an append of `events` that led to `next`.
fn appended(case: &RecoveryCaseRow, events: i64, next: &Next<'_>) -> RecoveryCaseRow {
    RecoveryCaseRow {
        state: next.state.into(),
        is_open: next.is_open,
        updated_ms: next.at_ms,
        expires_ms: next.at_ms + 60_000,
        version: case.version + events,
        ..case.clone()
    }
}

/// A case as stored, and its events.
async fn stored(
    store: &dyn Store,
    case_id: &str,
) -> Result<(Option<RecoveryCaseRow>, Vec<RecoveryEventRow>), String> {
    let case = store.recovery_case(case_id).await.ctx("recovery_case")?;
    let events = store
        .recovery_events(case_id)
        .await
        .ctx("recovery_events")?;
    Ok((case, events))
}

/// A case is read back as opened (by id, by handle, as its user's open case) with its first
/// event; a second open case of the same user, or a handle in use, is `Duplicate` and writes
/// nothing; phantom cases (no user) do not limit each other.
pub async fn recovery_cases(store: &dyn Store) -> Check {
    let org = "conf-rc-open";
    let first = case_row(org, "RC1", Some("RCU1"), 1_000);
    let setup = vec![
        Change::InsertUser(user(org, "RCU1", "alice")),
        Change::InsertUser(user(org, "RCU2", "bob")),
        open(&first),
    ];
    let receipt = commit(store, setup).await.ctx("open")?;
    check_eq!(receipt.outcomes, vec![Outcome::Done; 3], "outcomes");
    let opened = (Some(first.clone()), vec![event_row("RC1", 1, "opened")]);
    check_eq!(stored(store, "RC1").await?, opened, "read back by id");
    let by_handle = store
        .recovery_case_by_handle("handle-of-RC1")
        .await
        .ctx("recovery_case_by_handle")?;
    check_eq!(by_handle.as_ref(), Some(&first), "read back by handle");
    let open_case = store
        .open_recovery_case(org, "RCU1")
        .await
        .ctx("open_recovery_case")?;
    check_eq!(open_case.as_ref(), Some(&first), "the user's open case");
    let handle = store
        .recovery_case_by_handle("handle-of-RC9")
        .await
        .ctx("recovery_case_by_handle")?;
    check_eq!(handle, None, "unknown handle");
    check_eq!(stored(store, "RC9").await?, (None, vec![]), "unknown case");
    for (org_id, user_id) in [(org, "RCU2"), ("conf-other", "RCU1")] {
        let none = store
            .open_recovery_case(org_id, user_id)
            .await
            .ctx("open_recovery_case")?;
        check_eq!(none, None, "{org_id}/{user_id} has no open case");
    }

    let before = head(store, org).await?;
    let mut same_handle = case_row(org, "RC3", Some("RCU2"), 1_500);
    same_handle.handle_hash = first.handle_hash.clone();
    for second in [case_row(org, "RC2", Some("RCU1"), 2_000), same_handle] {
        let result = commit(
            store,
            vec![
                Change::Audit(event(org, "recovery.open", "RCU1")),
                open(&second),
            ],
        )
        .await;
        check!(
            matches!(result, Err(StoreError::Duplicate(_))),
            "{second:?}: got {result:?}"
        );
        let nothing = stored(store, &second.case_id).await?;
        check_eq!(nothing, (None, vec![]), "a refused case is not written");
    }
    check_eq!(
        head(store, org).await?,
        before,
        "a refused set appends no audit event"
    );
    let open_case = store
        .open_recovery_case(org, "RCU1")
        .await
        .ctx("open_recovery_case")?;
    check_eq!(
        open_case,
        Some(first),
        "the first case is still the open one"
    );

    let phantoms = [
        case_row(org, "RCP1", None, 3_000),
        case_row(org, "RCP2", None, 3_000),
    ];
    let receipt = commit(store, phantoms.iter().map(open).collect())
        .await
        .ctx("two phantom cases")?;
    check_eq!(receipt.outcomes, vec![Outcome::Done; 2], "outcomes");
    for phantom in phantoms {
        let (read, events) = stored(store, &phantom.case_id).await?;
        check_eq!(read, Some(phantom), "a phantom case is read back");
        check_eq!(events.len(), 1, "with its first event");
    }
    Ok(())
}

/// An append on the current version records its events (read back in order) and the state
/// they lead to; a stale version is `ConditionFailed`, and events that are not numbered on from
/// the version are refused; neither writes anything.
pub async fn recovery_append(store: &dyn Store) -> Check {
    let org = "conf-rc-append";
    let case = case_row(org, "RA1", Some("RAU1"), 1_000);
    let setup = vec![Change::InsertUser(user(org, "RAU1", "alice")), open(&case)];
    commit(store, setup).await.ctx("setup")?;
    let cooling = Next {
        state: "cooling",
        is_open: true,
        at_ms: 2_000,
    };
    let events = vec![
        event_row("RA1", 2, "evidence"),
        event_row("RA1", 3, "approved"),
    ];
    let receipt = commit(store, vec![append("RA1", 1, events.clone(), &cooling)])
        .await
        .ctx("append")?;
    check_eq!(receipt.outcomes, [Outcome::Done], "outcome of an append");
    let mut all = vec![event_row("RA1", 1, "opened")];
    all.extend(events);
    let expected = (Some(appended(&case, 2, &cooling)), all);
    check_eq!(
        stored(store, "RA1").await?,
        expected,
        "events in order, state updated"
    );

    let before = head(store, org).await?;
    let late = Next {
        state: "denied",
        is_open: false,
        at_ms: 3_000,
    };
    let stale = vec![
        Change::Audit(event(org, "recovery.deny", "RAU1")),
        append("RA1", 1, vec![event_row("RA1", 2, "stale")], &late),
    ];
    let stale = commit(store, stale).await;
    check!(
        matches!(stale, Err(StoreError::ConditionFailed(_))),
        "a stale version: got {stale:?}"
    );
    check_eq!(
        stored(store, "RA1").await?,
        expected,
        "a stale append writes nothing"
    );
    check_eq!(
        head(store, org).await?,
        before,
        "a refused set appends no audit event"
    );
    let unknown = append("RA9", 1, vec![event_row("RA9", 2, "x")], &late);
    let unknown = commit(store, vec![unknown]).await;
    check!(
        matches!(unknown, Err(StoreError::ConditionFailed(_))),
        "unknown case: got {unknown:?}"
    );

    let misnumbered = [
        vec![event_row("RA1", 5, "a gap")],
        vec![event_row("RA1", 4, "fine"), event_row("RA1", 4, "again")],
        vec![event_row("RA2", 4, "another case's")],
        vec![],
    ];
    for events in misnumbered {
        let result = commit(store, vec![append("RA1", 3, events.clone(), &late)]).await;
        check!(
            result.is_err(),
            "{events:?} must be refused, got {result:?}"
        );
        check_eq!(
            stored(store, "RA1").await?,
            expected,
            "a refused append writes nothing"
        );
    }
    let bad_first = Change::OpenRecoveryCase {
        case: case_row(org, "RA3", None, 1_000),
        first_event: event_row("RA3", 2, "not the first"),
    };
    let result = commit(store, vec![bad_first]).await;
    check!(result.is_err(), "a first event numbered 2: got {result:?}");
    check_eq!(
        stored(store, "RA3").await?,
        (None, vec![]),
        "nothing opened"
    );
    Ok(())
}

/// Closing a case frees its user's slot, so that a new case can open; a closed case is never
/// reopened, though it still takes events.
pub async fn recovery_close(store: &dyn Store) -> Check {
    let org = "conf-rc-close";
    let first = case_row(org, "RL1", Some("RLU1"), 1_000);
    let setup = vec![Change::InsertUser(user(org, "RLU1", "alice")), open(&first)];
    commit(store, setup).await.ctx("setup")?;
    let completed = Next {
        state: "completed",
        is_open: false,
        at_ms: 2_000,
    };
    let close = append("RL1", 1, vec![event_row("RL1", 2, "completed")], &completed);
    commit(store, vec![close]).await.ctx("close")?;
    let closed = appended(&first, 1, &completed);
    let read = store.recovery_case("RL1").await.ctx("recovery_case")?;
    check_eq!(read, Some(closed.clone()), "the case is closed");
    let none = store
        .open_recovery_case(org, "RLU1")
        .await
        .ctx("open_recovery_case")?;
    check_eq!(none, None, "a closed case is not the open one");

    let second = case_row(org, "RL2", Some("RLU1"), 3_000);
    commit(store, vec![open(&second)])
        .await
        .ctx("a new case after closing")?;
    let open_case = store
        .open_recovery_case(org, "RLU1")
        .await
        .ctx("open_recovery_case")?;
    check_eq!(open_case, Some(second), "the new case is the open one");

    let reopen = Next {
        state: "collecting",
        is_open: true,
        at_ms: 4_000,
    };
    let result = commit(
        store,
        vec![append(
            "RL1",
            2,
            vec![event_row("RL1", 3, "reopen")],
            &reopen,
        )],
    )
    .await;
    check!(
        matches!(result, Err(StoreError::ConditionFailed(_))),
        "reopening a closed case: got {result:?}"
    );
    let noted = Next {
        state: "completed",
        is_open: false,
        at_ms: 5_000,
    };
    commit(
        store,
        vec![append("RL1", 2, vec![event_row("RL1", 3, "note")], &noted)],
    )
    .await
    .ctx("an event on a closed case")?;
    let read = store.recovery_case("RL1").await.ctx("recovery_case")?;
    check_eq!(read, Some(appended(&closed, 1, &noted)), "still closed");
    Ok(())
}

/// Of concurrent appends on the same version, exactly one wins, and only its event is stored.
pub async fn concurrent_recovery_append(store: &dyn Store) -> Check {
    let org = "conf-rc-race";
    let case = case_row(org, "RX1", Some("RXU1"), 1_000);
    let setup = vec![Change::InsertUser(user(org, "RXU1", "alice")), open(&case)];
    commit(store, setup).await.ctx("setup")?;
    let next = Next {
        state: "cooling",
        is_open: true,
        at_ms: 2_000,
    };
    let attempts = (0..20).map(|i| {
        let events = vec![event_row("RX1", 2, &format!("race-{i}"))];
        commit(store, vec![append("RX1", 1, events, &next)])
    });
    let results = join_all(attempts).await;
    let won: Vec<usize> = (0..)
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    check_eq!(won.len(), 1, "exactly one append succeeds: {results:?}");
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::ConditionFailed(_))))
        .count();
    check_eq!(refused, 19, "every other append is refused: {results:?}");
    let mut events = vec![event_row("RX1", 1, "opened")];
    events.extend(
        won.first()
            .map(|i| event_row("RX1", 2, &format!("race-{i}"))),
    );
    let expected = (Some(appended(&case, 1, &next)), events);
    check_eq!(
        stored(store, "RX1").await?,
        expected,
        "the winner's event only"
    );
    Ok(())
}

/// The ids of `cases`, in order.
fn ids(cases: &[RecoveryCaseRow]) -> Vec<&str> {
    cases.iter().map(|c| c.case_id.as_str()).collect()
}

/// Opens the cases [`recovery_queries`] reads: Alice's RQ1, RQ2 (both closed) and RQ3, Bob's
/// RQ4, a phantom RQP1, and RQ5 in another organisation; Carol approves Alice and Bob, Dave
/// Bob only.
async fn query_setup(store: &dyn Store, org: &str, other: &str) -> Check {
    let mut setup = vec![Change::InsertUser(user(other, "RQU5", "alice"))];
    for (id, name) in [
        ("RQU1", "alice"),
        ("RQU2", "bob"),
        ("RQU3", "carol"),
        ("RQU4", "dave"),
    ] {
        setup.push(Change::InsertUser(user(org, id, name)));
    }
    for (user_id, approver_id) in [("RQU1", "RQU3"), ("RQU2", "RQU3"), ("RQU2", "RQU4")] {
        setup.push(Change::AddRecoveryApprover(crate::ApproverRow {
            org_id: org.into(),
            user_id: user_id.into(),
            approver_id: approver_id.into(),
            added_ms: 1,
        }));
    }
    let done = Next {
        state: "expired",
        is_open: false,
        at_ms: 9_000,
    };
    for (case_id, opened_ms) in [("RQ1", 1_000), ("RQ2", 2_000)] {
        let case = case_row(org, case_id, Some("RQU1"), opened_ms);
        setup.push(open(&case));
        setup.push(append(
            case_id,
            1,
            vec![event_row(case_id, 2, "expired")],
            &done,
        ));
    }
    setup.extend([
        open(&case_row(org, "RQ3", Some("RQU1"), 3_000)),
        open(&case_row(org, "RQ4", Some("RQU2"), 1_500)),
        open(&case_row(org, "RQP1", None, 2_500)),
        open(&case_row(other, "RQ5", Some("RQU5"), 2_000)),
    ]);
    commit(store, setup).await.ctx("setup")?;
    Ok(())
}

/// A user's cases come newest first, at most `limit`; cases opened since a time are counted
/// per organisation, phantom ones included; an approver sees the open cases of the users they
/// approve for, oldest first.
pub async fn recovery_queries(store: &dyn Store) -> Check {
    let (org, other) = ("conf-rc-query", "conf-rc-query-other");
    query_setup(store, org, other).await?;
    for (user_id, limit, expected) in [
        ("RQU1", 10, vec!["RQ3", "RQ2", "RQ1"]),
        ("RQU1", 2, vec!["RQ3", "RQ2"]),
        ("RQU2", 10, vec!["RQ4"]),
        ("RQU3", 10, vec![]),
        ("RQU5", 10, vec![]),
    ] {
        let cases = store
            .recovery_cases_for_user(org, user_id, limit)
            .await
            .ctx("recovery_cases_for_user")?;
        check_eq!(ids(&cases), expected, "{user_id}'s cases, limit {limit}");
    }
    for (org_id, since_ms, expected) in
        [(org, 0, 5), (org, 2_000, 3), (org, 3_001, 0), (other, 0, 1)]
    {
        let count = store
            .recovery_cases_opened_since(org_id, since_ms)
            .await
            .ctx("recovery_cases_opened_since")?;
        check_eq!(count, expected, "cases opened in {org_id} since {since_ms}");
    }
    for (org_id, approver_id, expected) in [
        (org, "RQU3", vec!["RQ4", "RQ3"]),
        (org, "RQU4", vec!["RQ4"]),
        (org, "RQU1", vec![]),
        (other, "RQU3", vec![]),
    ] {
        let cases = store
            .open_cases_for_approver(org_id, approver_id)
            .await
            .ctx("open_cases_for_approver")?;
        check_eq!(ids(&cases), expected, "open cases {approver_id} approves");
    }
    for (org_id, limit, expected) in [
        (org, 10, vec!["RQ4", "RQP1", "RQ3"]),
        (org, 2, vec!["RQ4", "RQP1"]),
        (other, 10, vec!["RQ5"]),
    ] {
        let cases = store
            .open_recovery_cases(org_id, limit)
            .await
            .ctx("open_recovery_cases")?;
        check_eq!(
            ids(&cases),
            expected,
            "open cases of {org_id}, limit {limit}"
        );
    }
    Ok(())
}
