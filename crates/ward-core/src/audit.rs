//! Audit events and verification of the hash chains.
//!
//! Events are appended by the store in the same atomic change set as the change they record
//! (see [`ward_store::Writer`]), to the chain of their organisation on the node that wrote them
//! ([`ward_store::audit_chain_id`]). Verification walks every chain (or one organisation's)
//! and recomputes each hash, so an edited, deleted or reordered record is found.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use ward_store::{AuditRow, ChainHeadRow, Change, GENESIS_HASH, NewAudit, Store, audit_hash};

mod action;

pub use action::{Action, REGENERATE, reference_markdown};

use crate::error::CoreResult;
use crate::model::{Actor, OrgId};

/// Builds an audit event. Details hold ids and reasons, never secrets.
#[derive(Debug)]
pub struct Event {
    inner: NewAudit,
    details: Map<String, Value>,
}

impl Event {
    /// An event of `action` on `target` by `actor`, at `now`.
    pub fn new(
        org_id: &str,
        now: DateTime<Utc>,
        actor: &Actor,
        action: Action,
        target: &str,
        outcome: &str,
    ) -> Self {
        Self {
            inner: NewAudit {
                org_id: org_id.to_owned(),
                ts_ms: now.timestamp_millis(),
                actor: actor.to_string(),
                action: action.as_str().to_owned(),
                target: target.to_owned(),
                outcome: outcome.to_owned(),
                details: String::new(),
            },
            details: Map::new(),
        }
    }

    /// Adds a detail.
    #[must_use]
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a detail when present.
    #[must_use]
    pub fn detail_opt(self, key: &str, value: Option<impl Into<Value>>) -> Self {
        match value {
            Some(v) => self.detail(key, v),
            None => self,
        }
    }

    /// The change that appends this event.
    pub fn into_change(mut self) -> Change {
        self.inner.details = Value::Object(self.details).to_string();
        Change::Audit(self.inner)
    }
}

/// The result of checking every chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub chains: usize,
    pub events: u64,
}

/// The first record found not to match its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub chain_id: String,
    pub seq: i64,
    pub problem: String,
}

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "chain {} record {}: {}",
            self.chain_id, self.seq, self.problem
        )
    }
}

const PAGE: u32 = 1000;

/// Verifies every chain. `Ok(Err(bad))` names the first record that does not match.
pub async fn verify(store: &dyn Store) -> CoreResult<Result<AuditReport, BadRecord>> {
    let heads = store.audit_chains().await?;
    verify_chains(store, &heads, None).await
}

/// Verifies the chains of one organisation (one per node that recorded its events). An event
/// of another organisation in them is a bad record.
pub async fn verify_org(
    store: &dyn Store,
    org: &OrgId,
) -> CoreResult<Result<AuditReport, BadRecord>> {
    let mut heads = Vec::new();
    for head in store.audit_chains().await? {
        if chain_of(store, &head, org).await? {
            heads.push(head);
        }
    }
    verify_chains(store, &heads, Some(org.as_str())).await
}

/// Whether a chain is `org`'s: named so (`NODE@ORG`, or a bare node name for the default
/// organisation), or holding its events. Either is enough, so that neither a renamed chain
/// nor an edited first record hides a chain from its organisation's check.
async fn chain_of(store: &dyn Store, head: &ChainHeadRow, org: &OrgId) -> CoreResult<bool> {
    let node = head
        .chain_id
        .rsplit_once('@')
        .map_or(head.chain_id.as_str(), |(node, _)| node);
    let named = ward_store::audit_chain_id(node, org.as_str()) == head.chain_id;
    if named {
        return Ok(true);
    }
    let first = store.audit_page(&head.chain_id, 0, 1).await?;
    Ok(first.iter().any(|row| row.event.org_id == org.as_str()))
}

async fn verify_chains(
    store: &dyn Store,
    heads: &[ChainHeadRow],
    org: Option<&str>,
) -> CoreResult<Result<AuditReport, BadRecord>> {
    let mut events = 0u64;
    for head in heads {
        match verify_chain(store, head, org).await? {
            Ok(count) => events += count,
            Err(bad) => return Ok(Err(bad)),
        }
    }
    Ok(Ok(AuditReport {
        chains: heads.len(),
        events,
    }))
}

/// Walks one chain to its recorded head; returns how many events it holds.
async fn verify_chain(
    store: &dyn Store,
    head: &ChainHeadRow,
    org: Option<&str>,
) -> CoreResult<Result<u64, BadRecord>> {
    let mut expected_seq = 1i64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut events = 0u64;
    loop {
        let page = store
            .audit_page(&head.chain_id, expected_seq - 1, PAGE)
            .await?;
        let done = page.len() < PAGE as usize;
        for row in page {
            if let Err(bad) = check_row(&row, expected_seq, &prev_hash, org) {
                return Ok(Err(bad));
            }
            prev_hash = row.hash;
            expected_seq += 1;
            events += 1;
        }
        if done {
            break;
        }
    }
    let last_seq = expected_seq - 1;
    if last_seq != head.head_seq || prev_hash != head.head_hash {
        return Ok(Err(BadRecord {
            chain_id: head.chain_id.clone(),
            seq: last_seq + 1,
            problem: format!(
                "chain ends at record {last_seq} but its recorded head is record {}: \
                 records were deleted or the head was altered",
                head.head_seq
            ),
        }));
    }
    Ok(Ok(events))
}

fn check_row(
    row: &AuditRow,
    expected_seq: i64,
    prev_hash: &str,
    org: Option<&str>,
) -> Result<(), BadRecord> {
    let bad = |seq: i64, problem: String| BadRecord {
        chain_id: row.chain_id.clone(),
        seq,
        problem,
    };
    if row.seq != expected_seq {
        return Err(bad(
            expected_seq,
            format!("record missing (next record found is {})", row.seq),
        ));
    }
    if row.prev_hash != prev_hash {
        return Err(bad(row.seq, "does not link to the previous record".into()));
    }
    if audit_hash(&row.chain_id, row.seq, &row.prev_hash, &row.event) != row.hash {
        return Err(bad(
            row.seq,
            "content does not match its hash (edited)".into(),
        ));
    }
    if org.is_some_and(|org| row.event.org_id != org) {
        return Err(bad(
            row.seq,
            "an event of another organisation in this organisation's chain".into(),
        ));
    }
    Ok(())
}

/// One exported event (JSON lines).
pub fn export_line(row: &AuditRow) -> String {
    let details: Value = serde_json::from_str(&row.event.details)
        .unwrap_or(Value::String(row.event.details.clone()));
    serde_json::json!({
        "chain_id": row.chain_id,
        "seq": row.seq,
        "ts_ms": row.event.ts_ms,
        "org_id": row.event.org_id,
        "actor": row.event.actor,
        "action": row.event.action,
        "target": row.event.target,
        "outcome": row.event.outcome,
        "details": details,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    })
    .to_string()
}

/// Writes every event of every chain as JSON lines.
pub async fn export(store: &dyn Store, out: &mut dyn std::io::Write) -> CoreResult<u64> {
    export_where(store, None, out).await
}

/// Writes the events of one organisation as JSON lines, from every chain (so that an event
/// recorded in a chain that is not the organisation's is exported too, and found by
/// [`verify_org`]).
pub async fn export_org(
    store: &dyn Store,
    org: &OrgId,
    out: &mut dyn std::io::Write,
) -> CoreResult<u64> {
    export_where(store, Some(org), out).await
}

async fn export_where(
    store: &dyn Store,
    org: Option<&OrgId>,
    out: &mut dyn std::io::Write,
) -> CoreResult<u64> {
    let mut n = 0;
    for head in store.audit_chains().await? {
        let mut after = 0;
        loop {
            let page = store.audit_page(&head.chain_id, after, PAGE).await?;
            let done = page.len() < PAGE as usize;
            for row in &page {
                after = row.seq;
                if org.is_some_and(|org| row.event.org_id != org.as_str()) {
                    continue;
                }
                writeln!(out, "{}", export_line(row))
                    .map_err(|e| crate::CoreError::Internal(format!("export: {e}")))?;
                n += 1;
            }
            if done {
                break;
            }
        }
    }
    Ok(n)
}
