//! The hash-chained audit log: placement, linkage, atomicity, concurrency.

use futures::future::join_all;

use super::{Check, Ctx, commit, event, head, user};
use crate::{AuditRow, Change, GENESIS_HASH, Outcome, Store, StoreError, audit_hash};

const PAGE: u32 = 100;

/// Walks a whole chain and checks it: sequence numbers 1, 2, 3, … without gaps, each event
/// linked to its predecessor's hash, each hash equal to [`audit_hash`], and the recorded head
/// equal to the last event. Returns the number of events.
pub async fn verify_chain(store: &dyn Store, chain_id: &str) -> Result<i64, String> {
    let (mut seq, mut hash) = (0_i64, GENESIS_HASH.to_owned());
    loop {
        let page = store
            .audit_page(chain_id, seq, PAGE)
            .await
            .ctx("audit_page")?;
        let full = page.len() == PAGE as usize;
        for row in page {
            check_link(&row, chain_id, seq, &hash)?;
            (seq, hash) = (row.seq, row.hash);
        }
        if !full {
            break;
        }
    }
    let chains = store.audit_chains().await.ctx("audit_chains")?;
    let recorded = chains.into_iter().find(|c| c.chain_id == chain_id);
    let recorded = recorded.map_or_else(
        || (0, GENESIS_HASH.to_owned()),
        |c| (c.head_seq, c.head_hash),
    );
    check_eq!(
        recorded,
        (seq, hash),
        "chain {chain_id}: recorded head vs last event"
    );
    Ok(seq)
}

fn check_link(row: &AuditRow, chain_id: &str, prev_seq: i64, prev_hash: &str) -> Check {
    check_eq!(row.chain_id, chain_id, "event of another chain in the page");
    check_eq!(row.seq, prev_seq + 1, "chain {chain_id}: sequence gap");
    check_eq!(
        row.prev_hash,
        prev_hash,
        "chain {chain_id} seq {}: broken link",
        row.seq
    );
    let expected = audit_hash(chain_id, row.seq, &row.prev_hash, &row.event);
    check_eq!(row.hash, expected, "chain {chain_id} seq {}: hash", row.seq);
    Ok(())
}

fn audited(store: &dyn Store, org: &str, seq: i64) -> Outcome {
    Outcome::Audited {
        chain_id: store.chain_for(org),
        seq,
    }
}

/// Events are placed after the head, in the order of their sets, and read back as written.
pub async fn audit_chain(store: &dyn Store) -> Check {
    let org = "conf-audit";
    let (start, _) = head(store, org).await?;
    let events = [
        event(org, "user.create", "CAU1"),
        event(org, "user.enrol", "CAU1"),
        event(org, "auth.passcode", "CAU1"),
    ];
    let [first, second, third] = events.clone();
    let receipt = commit(store, vec![Change::Audit(first), Change::Audit(second)])
        .await
        .ctx("two events in one set")?;
    let placed = [
        audited(store, org, start + 1),
        audited(store, org, start + 2),
    ];
    check_eq!(receipt.outcomes, placed, "placed after the head, in order");
    let receipt = commit(store, vec![Change::Audit(third)])
        .await
        .ctx("a third event")?;
    check_eq!(
        receipt.outcomes,
        [audited(store, org, start + 3)],
        "next set continues the chain"
    );

    let page = store
        .audit_page(&store.chain_for(org), start, 10)
        .await
        .ctx("audit_page")?;
    let read: Vec<_> = page.iter().map(|row| row.event.clone()).collect();
    check_eq!(read, events, "events read back as written");
    let one = store
        .audit_page(&store.chain_for(org), start, 1)
        .await
        .ctx("audit_page")?;
    check_eq!(
        one.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [start + 1],
        "limit respected"
    );
    let last = page.last().map(|row| (row.seq, row.hash.clone()));
    check_eq!(
        Some(head(store, org).await?),
        last,
        "the head row matches the last event"
    );

    let count = verify_chain(store, &store.chain_for(org)).await?;
    check!(count >= 3, "chain holds the events, got {count}");
    Ok(())
}

/// Sets committed concurrently, one of them failing, leave no gap and no trace of the failure.
pub async fn failed_set_in_batch(store: &dyn Store) -> Check {
    let org = "conf-batch";
    commit(store, vec![Change::InsertUser(user(org, "CBU0", "taken"))])
        .await
        .ctx("setup")?;
    let (start, _) = head(store, org).await?;
    let set = |user_id: &str, username: &str| {
        vec![
            Change::Audit(event(org, "user.create", user_id)),
            Change::InsertUser(user(org, user_id, username)),
        ]
    };
    let results = join_all([
        commit(store, set("CBU1", "first")),
        commit(store, set("CBU2", "taken")),
        commit(store, set("CBU3", "third")),
    ])
    .await;
    let [first, failed, third] = results.as_slice() else {
        return Err(format!("three results expected, got {results:?}"));
    };
    check!(
        matches!(failed, Err(StoreError::Duplicate(field)) if field == "username"),
        "the duplicate fails alone, got {failed:?}"
    );
    let mut seqs = Vec::new();
    for result in [first, third] {
        let receipt = result
            .as_ref()
            .map_err(|err| format!("the others proceed: {err}"))?;
        for outcome in &receipt.outcomes {
            if let Outcome::Audited { seq, .. } = outcome {
                seqs.push(*seq);
            }
        }
    }
    seqs.sort_unstable();
    check_eq!(
        seqs,
        [start + 1, start + 2],
        "the failed set's event left no gap"
    );
    check_eq!(head(store, org).await?.0, start + 2, "head after the batch");
    check_eq!(
        store.user_by_id(org, "CBU2").await.ctx("user_by_id")?,
        None,
        "rolled back"
    );
    for user_id in ["CBU1", "CBU3"] {
        let found = store.user_by_id(org, user_id).await.ctx("user_by_id")?;
        check!(found.is_some(), "{user_id} was committed");
    }
    verify_chain(store, &store.chain_for(org)).await.map(drop)
}

/// Fifty concurrent commits all succeed and extend the chain without gaps.
pub async fn concurrent_commits(store: &dyn Store) -> Check {
    let org = "conf-load";
    let (start, _) = head(store, org).await?;
    let commits = (0..50).map(|i| {
        let user_id = format!("CLU{i:02}");
        let changes = vec![
            Change::InsertUser(user(org, &user_id, &format!("user{i:02}"))),
            Change::Audit(event(org, "user.create", &user_id)),
        ];
        async move { commit(store, changes).await }
    });
    let results = join_all(commits).await;
    let mut seqs = Vec::new();
    for result in results {
        let receipt = result.ctx("concurrent commit")?;
        match receipt.outcomes.as_slice() {
            [Outcome::Done, Outcome::Audited { chain_id, seq }]
                if *chain_id == store.chain_for(org) =>
            {
                seqs.push(*seq);
            }
            other => return Err(format!("unexpected outcomes {other:?}")),
        }
    }
    seqs.sort_unstable();
    let expected: Vec<i64> = (start + 1..=start + 50).collect();
    check_eq!(seqs, expected, "fifty consecutive sequence numbers");
    let users = store.list_users(org, 100, 0).await.ctx("list_users")?;
    check_eq!(users.len(), 50, "every user committed");
    let count = verify_chain(store, &store.chain_for(org)).await?;
    check!(count >= start + 50, "chain length {count}");
    Ok(())
}

/// Poisoned write batch: sets holding a NUL character (in an audit event's details, in a row's
/// field), committed among a hundred good sets, fail alone; every good set commits, the chain
/// has no gap, and a read naming such a value finds nothing instead of failing the store.
pub async fn poisoned_write_batch(store: &dyn Store) -> Check {
    let org = "conf-poison";
    let (start, _) = head(store, org).await?;
    let good = (0..100).map(|i| {
        let user_id = format!("CPU{i:03}");
        let changes = vec![
            Change::InsertUser(user(org, &user_id, &format!("user{i:03}"))),
            Change::Audit(event(org, "user.create", &user_id)),
        ];
        async move { commit(store, changes).await }
    });
    let bad = (0..20).map(|i| {
        let user_id = format!("CPX{i:03}");
        let changes = if i % 2 == 0 {
            let mut audit = event(org, "push.answer", &user_id);
            audit.details = "{\"txid\":\"a\u{0}b\"}".into();
            vec![Change::Audit(audit)]
        } else {
            vec![
                Change::Audit(event(org, "user.create", &user_id)),
                Change::InsertUser(user(org, &user_id, "nul\u{0}name")),
            ]
        };
        async move { commit(store, changes).await }
    });
    let (good, bad) = futures::join!(join_all(good), join_all(bad));
    for result in bad {
        check!(
            matches!(result, Err(StoreError::Unstorable(_))),
            "a set holding NUL fails alone as unstorable, got {result:?}"
        );
    }
    let mut seqs = Vec::new();
    for result in good {
        match result
            .ctx("a good set among poisoned ones")?
            .outcomes
            .as_slice()
        {
            [Outcome::Done, Outcome::Audited { seq, .. }] => seqs.push(*seq),
            other => return Err(format!("unexpected outcomes {other:?}")),
        }
    }
    seqs.sort_unstable();
    let expected: Vec<i64> = (start + 1..=start + 100).collect();
    check_eq!(seqs, expected, "a hundred consecutive sequence numbers");
    let users = store.list_users(org, 200, 0).await.ctx("list_users")?;
    check_eq!(users.len(), 100, "every good user committed, no bad one");
    let lookup = store.user_by_name(org, "nul\u{0}name").await;
    check!(
        matches!(lookup, Ok(None) | Err(StoreError::Unstorable(_))),
        "a read naming NUL finds nothing or is refused as unstorable, got {lookup:?}"
    );
    verify_chain(store, &store.chain_for(org)).await.map(drop)
}
