//! The control loop against a scripted backend that records the statements it would run.

use std::sync::{Arc, Mutex};

use super::*;
use crate::GENESIS_HASH;

#[derive(Clone, Default)]
struct Fake {
    log: Arc<Mutex<Vec<String>>>,
    head: Arc<Mutex<Option<ChainHeadRow>>>,
    fail_commit: bool,
}

impl Fake {
    fn push(&self, entry: impl Into<String>) {
        self.log.lock().unwrap().push(entry.into());
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

#[async_trait]
impl CommitBackend for Fake {
    type Batch = Fake;

    async fn begin(&self) -> StoreResult<Fake> {
        self.push("begin");
        Ok(self.clone())
    }
}

#[async_trait]
impl Batch for Fake {
    async fn chain_head(&mut self, chain_id: &str) -> StoreResult<ChainHeadRow> {
        self.push("head");
        let stored = self.head.lock().unwrap().clone();
        Ok(stored.unwrap_or_else(|| ChainHeadRow {
            chain_id: chain_id.into(),
            head_seq: 0,
            head_hash: GENESIS_HASH.into(),
        }))
    }

    async fn set_chain_head(&mut self, head: &ChainHeadRow) -> StoreResult<()> {
        self.push(format!("set_head {}", head.head_seq));
        *self.head.lock().unwrap() = Some(head.clone());
        Ok(())
    }

    async fn savepoint(&mut self) -> StoreResult<()> {
        self.push("savepoint");
        Ok(())
    }

    async fn rollback_to_savepoint(&mut self) -> StoreResult<()> {
        self.push("rollback_to");
        Ok(())
    }

    async fn release_savepoint(&mut self) -> StoreResult<()> {
        self.push("release");
        Ok(())
    }

    async fn insert_audits(&mut self, events: &[PlacedAudit]) -> StoreResult<()> {
        let seqs: Vec<String> = events.iter().map(|e| e.placement.seq.to_string()).collect();
        if events.iter().any(|e| e.event.action == "refused") {
            // As PostgreSQL refuses a value it cannot hold: the statement fails.
            self.push(format!("audits {} refused", seqs.join(",")));
            return Err(StoreError::Unavailable("invalid byte sequence".into()));
        }
        self.push(format!("audits {}", seqs.join(",")));
        Ok(())
    }

    async fn apply(&mut self, change: &Change) -> StoreResult<Outcome> {
        match change {
            Change::SetUserStatus { status, .. } if status == "fail" => {
                self.push("fail");
                Err(StoreError::ConditionFailed("scripted".into()))
            }
            _ => {
                self.push("change");
                Ok(Outcome::Done)
            }
        }
    }

    async fn commit(&mut self) -> StoreResult<()> {
        if self.fail_commit {
            self.push("commit failed");
            return Err(StoreError::Unavailable("disk full".into()));
        }
        self.push("commit");
        Ok(())
    }

    async fn rollback(&mut self) -> StoreResult<()> {
        self.push("rollback");
        Ok(())
    }
}

fn audit() -> Change {
    Change::Audit(NewAudit {
        org_id: "default".into(),
        ts_ms: 1,
        actor: "cli".into(),
        action: "test".into(),
        target: "t".into(),
        outcome: "ok".into(),
        details: "{}".into(),
    })
}

fn refused_audit() -> Change {
    let Change::Audit(mut event) = audit() else {
        unreachable!()
    };
    event.action = "refused".into();
    Change::Audit(event)
}

fn status(status: &str) -> Change {
    Change::SetUserStatus {
        org_id: "default".into(),
        user_id: "u".into(),
        status: status.into(),
    }
}

fn audited(seq: i64) -> Outcome {
    Outcome::Audited {
        chain_id: "c".into(),
        seq,
    }
}

#[tokio::test]
async fn failed_set_is_rolled_back_alone_and_its_audit_seq_reused() {
    let fake = Fake::default();
    let ok = ChangeSet::new().with(audit()).with(status("active"));
    let bad = ChangeSet::new().with(audit()).with(status("fail"));
    let results = execute(&fake, "c", &[&ok, &bad, &ok]).await.unwrap();

    assert_eq!(
        results[0].as_ref().unwrap().outcomes,
        vec![audited(1), Outcome::Done]
    );
    assert!(matches!(results[1], Err(StoreError::ConditionFailed(_))));
    assert_eq!(
        results[2].as_ref().unwrap().outcomes,
        vec![audited(2), Outcome::Done]
    );
    assert_eq!(
        fake.log(),
        [
            // First without savepoints: the failing set aborts the attempt.
            "begin",
            "head",
            "change",
            "fail",
            "rollback",
            // Then again, each set isolated with its own events; the failed set's audit seq is
            // given to the next.
            "begin",
            "head", //
            "savepoint",
            "change",
            "audits 1",
            "release", //
            "savepoint",
            "fail",
            "rollback_to",
            "release", //
            "savepoint",
            "change",
            "audits 2",
            "release", //
            "set_head 2",
            "commit",
        ]
    );
}

/// Poisoned write batch: an audit event the database refuses fails its own set only, even
/// though the first attempt inserts every set's events in one statement.
#[tokio::test]
async fn poisoned_write_batch_refused_audit_fails_only_its_set() {
    let fake = Fake::default();
    let ok = ChangeSet::new().with(audit()).with(status("active"));
    let bad = ChangeSet::new().with(refused_audit());
    let results = execute(&fake, "c", &[&ok, &bad, &ok]).await.unwrap();

    assert_eq!(
        results[0].as_ref().unwrap().outcomes,
        vec![audited(1), Outcome::Done]
    );
    assert!(matches!(results[1], Err(StoreError::Unavailable(_))));
    assert_eq!(
        results[2].as_ref().unwrap().outcomes,
        vec![audited(2), Outcome::Done]
    );
    assert_eq!(
        fake.log(),
        [
            // First without savepoints: the one multi-row insert is refused.
            "begin",
            "head",
            "change",
            "change",
            "audits 1,2,3 refused",
            "rollback",
            // Then each set isolated, its events inserted inside its savepoint.
            "begin",
            "head", //
            "savepoint",
            "change",
            "audits 1",
            "release", //
            "savepoint",
            "audits 2 refused",
            "rollback_to",
            "release", //
            "savepoint",
            "change",
            "audits 2",
            "release", //
            "set_head 2",
            "commit",
        ]
    );
}

#[tokio::test]
async fn lone_set_with_a_refused_audit_fails_and_rolls_back() {
    let fake = Fake::default();
    let bad = ChangeSet::new().with(refused_audit());
    let results = execute(&fake, "c", &[&bad]).await.unwrap();
    assert!(matches!(results[..], [Err(StoreError::Unavailable(_))]));
    assert_eq!(
        fake.log(),
        ["begin", "head", "audits 1 refused", "rollback"]
    );
}

/// Poisoned write batch: a set holding a NUL character is refused before it joins a batch,
/// while the sets queued with it commit.
#[tokio::test]
async fn poisoned_write_batch_nul_set_is_refused_before_the_batch() {
    let fake = Fake::default();
    let writer = GroupCommit::spawn(fake.clone(), "c".into());
    let good = ChangeSet::new().with(audit());
    let bad = ChangeSet::new().with(status("act\0ive"));
    let results = futures::future::join_all((0..10).map(|i| {
        writer.commit(if i % 2 == 0 {
            good.clone()
        } else {
            bad.clone()
        })
    }))
    .await;
    for (i, result) in results.iter().enumerate() {
        if i % 2 == 0 {
            assert!(result.is_ok(), "{result:?}");
        } else {
            assert!(
                matches!(result, Err(StoreError::Unstorable(_))),
                "{result:?}"
            );
        }
    }
    assert!(!fake.log().iter().any(|e| e == "fail" || e == "rollback"));
    assert!(
        fake.log().contains(&"audits 1,2,3,4,5".to_owned()),
        "{:?}",
        fake.log()
    );
    writer.close().await;
}

#[tokio::test]
async fn lone_set_needs_no_savepoint_and_a_failure_rolls_back() {
    let fake = Fake::default();
    let bad = ChangeSet::new().with(audit()).with(status("fail"));
    let results = execute(&fake, "c", &[&bad]).await.unwrap();
    assert!(matches!(results[..], [Err(StoreError::ConditionFailed(_))]));
    assert_eq!(fake.log(), ["begin", "head", "fail", "rollback"]);
}

#[tokio::test]
async fn batch_without_audit_events_leaves_the_chain_alone() {
    let fake = Fake::default();
    let set = ChangeSet::new().with(status("active"));
    let results = execute(&fake, "c", &[&set, &set]).await.unwrap();
    assert!(results.iter().all(Result::is_ok));
    // No set failed, so no savepoints were needed either.
    assert_eq!(fake.log(), ["begin", "change", "change", "commit"]);
}

#[tokio::test]
async fn all_sets_failing_rolls_back_instead_of_committing() {
    let fake = Fake::default();
    let bad = ChangeSet::new().with(audit()).with(status("fail"));
    let results = execute(&fake, "c", &[&bad, &bad]).await.unwrap();
    assert!(results.iter().all(Result::is_err));
    assert_eq!(fake.log().last().map(String::as_str), Some("rollback"));
    assert!(!fake.log().iter().any(|entry| entry.starts_with("set_head")));
}

#[tokio::test]
async fn failed_commit_fails_the_whole_batch() {
    let fake = Fake {
        fail_commit: true,
        ..Fake::default()
    };
    let set = ChangeSet::new().with(audit());
    let err = execute(&fake, "c", &[&set, &set]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)));
    assert_eq!(fake.log().last().map(String::as_str), Some("rollback"));
}

#[tokio::test]
async fn writer_answers_every_caller_and_refuses_work_after_close() {
    let fake = Fake::default();
    let writer = GroupCommit::spawn(fake.clone(), "c".into());
    let set = ChangeSet::new().with(audit());
    let results = futures::future::join_all((0..20).map(|_| writer.commit(set.clone()))).await;
    let mut seqs: Vec<i64> = results
        .into_iter()
        .map(|r| match r.unwrap().outcomes[..] {
            [Outcome::Audited { seq, .. }] => seq,
            ref other => panic!("unexpected outcomes {other:?}"),
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    // On a current-thread runtime all twenty are queued before the writer runs: one batch.
    assert_eq!(fake.log().iter().filter(|e| *e == "commit").count(), 1);
    let all: Vec<String> = (1..=20).map(|n| n.to_string()).collect();
    assert!(
        fake.log().contains(&format!("audits {}", all.join(","))),
        "{:?}",
        fake.log()
    );

    assert_eq!(
        writer.commit(ChangeSet::new()).await.unwrap(),
        CommitReceipt::default()
    );
    writer.close().await;
    assert!(matches!(
        writer.commit(set).await,
        Err(StoreError::Unavailable(_))
    ));
    writer.close().await;
}

#[test]
fn cursor_links_hashes() {
    let mut cursor = ChainCursor::new(
        "c",
        [ChainHeadRow {
            chain_id: "c".into(),
            head_seq: 0,
            head_hash: GENESIS_HASH.into(),
        }],
    );
    let Change::Audit(event) = audit() else {
        unreachable!()
    };
    let first = cursor.append(&event).unwrap();
    let second = cursor.append(&event).unwrap();
    assert_eq!((first.seq, first.prev_hash.as_str()), (1, GENESIS_HASH));
    assert_eq!(first.hash, audit_hash("c", 1, GENESIS_HASH, &event));
    assert_eq!((second.seq, &second.prev_hash), (2, &first.hash));
    assert_eq!(
        cursor.head("c").map(|h| (h.head_seq, &h.head_hash)),
        Some((2, &second.hash))
    );
    assert!(ChainCursor::default().append(&event).is_err());
}

#[test]
fn cursor_keeps_one_chain_per_organisation() {
    let head = |chain_id: &str| ChainHeadRow {
        chain_id: chain_id.into(),
        head_seq: 5,
        head_hash: GENESIS_HASH.into(),
    };
    let mut cursor = ChainCursor::new("n", [head("n"), head("n@acme")]);
    let Change::Audit(default) = audit() else {
        unreachable!()
    };
    let mut acme = default.clone();
    acme.org_id = "acme".into();
    let a1 = cursor.append(&acme).unwrap();
    let d1 = cursor.append(&default).unwrap();
    let a2 = cursor.append(&acme).unwrap();
    assert_eq!((a1.chain_id.as_str(), a1.seq), ("n@acme", 6));
    assert_eq!((d1.chain_id.as_str(), d1.seq), ("n", 6));
    assert_eq!((a2.seq, &a2.prev_hash), (7, &a1.hash));
    assert_eq!(a1.hash, audit_hash("n@acme", 6, GENESIS_HASH, &acme));
    let mut other = default;
    other.org_id = "other".into();
    assert!(cursor.append(&other).is_err(), "its head was not loaded");
}
