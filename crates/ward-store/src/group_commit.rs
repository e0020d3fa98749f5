//! Group commit: many callers' change sets share one write transaction and one flush to disk.
//!
//! Backends implement [`CommitBackend`] (how to open a write transaction on their one writer
//! connection) and [`Batch`] (the statements inside it). [`GroupCommit`] owns everything that
//! does not depend on the database: the queue, batching, per-set savepoints, placing audit
//! events in this node's chains (one per organisation), and answering callers only once their batch is durable.
//!
//! One batch is:
//!
//! ```text
//! BEGIN (IMMEDIATE on SQLite)
//!   read + lock this node's chain heads of the       (only if some set appends audit events)
//!     organisations the batch records events of, in chain-id order
//!   for each set:  apply changes (audit events are only placed in the chain)
//!   insert every placed audit event                 (one multi-row INSERT per chunk)
//!   write the chain heads back                      (those that moved)
//! COMMIT  → answer every caller
//! ```
//!
//! If a set of a batch of several fails, that transaction is rolled back and the batch is run
//! again with each set isolated:
//!
//! ```text
//! BEGIN
//!   read + lock those chain heads
//!   for each set:  SAVEPOINT · apply changes · insert the set's audit events · RELEASE
//!                  on error: ROLLBACK TO · RELEASE · restore the chain heads snapshot
//!   write the chain heads back                      (those that moved)
//! COMMIT  → answer every caller
//! ```
//!
//! A set that fails gets its own error and leaves no trace, while the other sets of its batch
//! proceed; that holds for its audit events too, which is why they are inserted inside the
//! set's savepoint on this path (a failed multi-row insert of the first attempt also leads
//! here). Before a set joins a batch at all, [`ChangeSet::check_storable`] refuses text no
//! store can hold, so such a set never costs the others an attempt. If the transaction as a whole fails (BEGIN, COMMIT, a savepoint, the chain head),
//! every set in the batch gets [`StoreError::Unavailable`] (or [`StoreError::Corrupt`] when the
//! stored chain head could not be decoded) and nothing of the batch is applied.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use crate::{
    ChainHeadRow, Change, ChangeSet, CommitReceipt, NewAudit, Outcome, StoreError, StoreResult,
    audit_chain_id, audit_hash,
};

/// Most change sets applied in one transaction.
pub const MAX_BATCH: usize = 256;

/// Change sets that may wait for the writer before callers are slowed down (backpressure).
pub const QUEUE_DEPTH: usize = 1024;

/// Opens write transactions on a backend's single writer connection.
#[async_trait]
pub trait CommitBackend: Send + Sync + 'static {
    /// One open write transaction.
    type Batch: Batch;

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite, so the write lock is held from
    /// the start and the chain head read inside it cannot go stale).
    async fn begin(&self) -> StoreResult<Self::Batch>;
}

/// The statements of one open write transaction.
///
/// Implementations must make sure that a batch dropped without [`Batch::commit`] or
/// [`Batch::rollback`] having succeeded never hands its connection back mid-transaction
/// (close the connection instead).
#[async_trait]
pub trait Batch: Send {
    /// Reads this chain's head, inserting it (`seq` 0, [`crate::GENESIS_HASH`]) if absent, and
    /// locks it until the end of the transaction.
    async fn chain_head(&mut self, chain_id: &str) -> StoreResult<ChainHeadRow>;
    /// Records the chain's new head.
    async fn set_chain_head(&mut self, head: &ChainHeadRow) -> StoreResult<()>;
    /// `SAVEPOINT …` before one change set.
    async fn savepoint(&mut self) -> StoreResult<()>;
    /// `ROLLBACK TO SAVEPOINT …` after a change set failed.
    async fn rollback_to_savepoint(&mut self) -> StoreResult<()>;
    /// `RELEASE SAVEPOINT …` after a change set (applied or rolled back).
    async fn release_savepoint(&mut self) -> StoreResult<()>;
    /// Applies one change. Audit events never come here: they are placed in the chain as their
    /// set is applied and written together by [`Batch::insert_audits`].
    async fn apply(&mut self, change: &Change) -> StoreResult<Outcome>;
    /// Inserts the audit events of the whole batch (of the sets that applied), in chain order,
    /// with as few statements as the backend allows.
    async fn insert_audits(&mut self, events: &[PlacedAudit]) -> StoreResult<()>;
    /// `COMMIT`: durable once this returns `Ok`.
    async fn commit(&mut self) -> StoreResult<()>;
    /// `ROLLBACK`.
    async fn rollback(&mut self) -> StoreResult<()>;
}

/// Where the next audit event of each chain goes, while a batch is applied: one chain per
/// organisation on this node (see [`audit_chain_id`]).
#[derive(Clone, Debug, Default)]
pub struct ChainCursor {
    node: String,
    heads: BTreeMap<String, ChainHeadRow>,
}

/// An audit event with its place in the chain, waiting to be inserted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedAudit {
    pub placement: Placement,
    pub event: NewAudit,
}

/// An audit event's place in its chain, as computed by [`ChainCursor::append`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub chain_id: String,
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
}

impl ChainCursor {
    /// A cursor of `node`'s chains, positioned after `heads` (those of the organisations
    /// whose events it will place).
    pub fn new(node: impl Into<String>, heads: impl IntoIterator<Item = ChainHeadRow>) -> Self {
        Self {
            node: node.into(),
            heads: heads
                .into_iter()
                .map(|head| (head.chain_id.clone(), head))
                .collect(),
        }
    }

    /// Places `event` after the head of its organisation's chain and advances that head.
    pub fn append(&mut self, event: &NewAudit) -> StoreResult<Placement> {
        let chain_id = audit_chain_id(&self.node, &event.org_id);
        let head = self.heads.get_mut(&chain_id).ok_or_else(|| {
            StoreError::Unavailable("audit chain head was not loaded for this batch".into())
        })?;
        let seq = head
            .head_seq
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupt("audit chain sequence overflow".into()))?;
        let hash = audit_hash(&head.chain_id, seq, &head.head_hash, event);
        let prev_hash = std::mem::replace(&mut head.head_hash, hash.clone());
        head.head_seq = seq;
        Ok(Placement {
            chain_id,
            seq,
            prev_hash,
            hash,
        })
    }

    /// The current head of one chain, if loaded.
    pub fn head(&self, chain_id: &str) -> Option<&ChainHeadRow> {
        self.heads.get(chain_id)
    }
}

type Reply = oneshot::Sender<StoreResult<CommitReceipt>>;

enum Msg {
    Commit(ChangeSet, Reply),
    Close(oneshot::Sender<()>),
}

struct Job {
    set: ChangeSet,
    reply: Reply,
}

/// The handle through which callers reach a backend's writer task.
#[derive(Debug)]
pub struct GroupCommit {
    queue: mpsc::Sender<Msg>,
}

impl GroupCommit {
    /// Spawns the writer task on the current tokio runtime. It appends audit events to the
    /// chains of `node` (one per organisation, see [`audit_chain_id`]) and runs until
    /// [`GroupCommit::close`] or until the handle is dropped.
    pub fn spawn<B: CommitBackend>(backend: B, node: String) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(backend, node, rx));
        Self { queue }
    }

    /// Queues `set` and waits until its batch is committed (or the set failed). A set holding
    /// text no store can hold fails at once with [`StoreError::Unstorable`], before it joins a
    /// batch.
    pub async fn commit(&self, set: ChangeSet) -> StoreResult<CommitReceipt> {
        if set.changes.is_empty() {
            return Ok(CommitReceipt::default());
        }
        set.check_storable()?;
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Msg::Commit(set, reply))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Stops accepting change sets, lets the writer finish everything already queued, and
    /// waits for it to stop.
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.queue.send(Msg::Close(ack)).await.is_ok() {
            // An error only means the writer already stopped.
            let _ = done.await;
        }
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed (its writer has stopped)".into())
}

async fn run<B: CommitBackend>(backend: B, node: String, mut rx: mpsc::Receiver<Msg>) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut acks = Vec::new();
    while let Some(msg) = rx.recv().await {
        take(msg, &mut jobs, &mut acks, &mut rx);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(msg) => take(msg, &mut jobs, &mut acks, &mut rx),
                Err(_) => break,
            }
        }
        if !jobs.is_empty() {
            run_batch(&backend, &node, std::mem::take(&mut jobs)).await;
        }
    }
    tracing::debug!(node, "store writer stopped");
    for ack in acks {
        let _ = ack.send(());
    }
}

fn take(
    msg: Msg,
    jobs: &mut Vec<Job>,
    acks: &mut Vec<oneshot::Sender<()>>,
    rx: &mut mpsc::Receiver<Msg>,
) {
    match msg {
        Msg::Commit(set, reply) => jobs.push(Job { set, reply }),
        Msg::Close(ack) => {
            // Refuse new work; what is already queued is still received and applied.
            rx.close();
            acks.push(ack);
        }
    }
}

async fn run_batch<B: CommitBackend>(backend: &B, node: &str, jobs: Vec<Job>) {
    let sets: Vec<&ChangeSet> = jobs.iter().map(|job| &job.set).collect();
    let results = match execute(backend, node, &sets).await {
        Ok(results) => results,
        Err(err) => {
            tracing::warn!(node, sets = jobs.len(), error = %err, "group commit failed");
            vec![Err(err); jobs.len()]
        }
    };
    tracing::trace!(node, sets = jobs.len(), "group commit");
    for (job, result) in jobs.into_iter().zip(results) {
        // The caller may have gone away; its set is committed all the same.
        let _ = job.reply.send(result);
    }
}

/// Runs one batch; `Err` means the whole batch failed and nothing of it was applied.
///
/// Sets almost never fail, so a batch of several sets is first applied without savepoints
/// (half the statements); only if one of them fails is the transaction rolled back and the
/// batch applied again with a savepoint around each set, so that the failure stays its own.
async fn execute<B: CommitBackend>(
    backend: &B,
    node: &str,
    sets: &[&ChangeSet],
) -> StoreResult<Vec<StoreResult<CommitReceipt>>> {
    if sets.len() > 1
        && let Some(results) = attempt(backend, node, sets, Isolation::None).await?
    {
        return Ok(results);
    }
    let isolation = if sets.len() > 1 {
        Isolation::Savepoints
    } else {
        Isolation::None
    };
    let results = attempt(backend, node, sets, isolation).await?;
    // With savepoints, or with a single set, every outcome is final.
    Ok(results.unwrap_or_else(|| vec![Err(StoreError::Unavailable("batch not applied".into()))]))
}

/// How the sets of one transaction are kept apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isolation {
    /// No savepoints: the first failing set aborts the transaction.
    None,
    /// A savepoint around each set: a failing set is undone alone.
    Savepoints,
}

/// One transaction over `sets`. `Ok(None)`: without isolation, several sets were given and one
/// failed; the transaction was rolled back and nothing was applied.
async fn attempt<B: CommitBackend>(
    backend: &B,
    node: &str,
    sets: &[&ChangeSet],
    isolation: Isolation,
) -> StoreResult<Option<Vec<StoreResult<CommitReceipt>>>> {
    let mut batch = backend.begin().await?;
    match apply_sets(&mut batch, node, sets, isolation).await {
        Ok(applied) if applied.commit => match batch.commit().await {
            Ok(()) => Ok(Some(applied.results)),
            Err(err) => {
                rollback(&mut batch, node).await;
                Err(unavailable(err))
            }
        },
        Ok(applied) => {
            rollback(&mut batch, node).await;
            if isolation == Isolation::None && sets.len() > 1 {
                Ok(None)
            } else {
                Ok(Some(applied.results))
            }
        }
        Err(err) => {
            rollback(&mut batch, node).await;
            Err(err)
        }
    }
}

async fn rollback<T: Batch>(batch: &mut T, node: &str) {
    if let Err(err) = batch.rollback().await {
        tracing::warn!(node, error = %err, "rollback of a write batch failed");
    }
}

fn unavailable(err: StoreError) -> StoreError {
    match err {
        StoreError::Unavailable(_) => err,
        other => StoreError::Unavailable(other.to_string()),
    }
}

struct Applied {
    results: Vec<StoreResult<CommitReceipt>>,
    /// False when no set applied, so the transaction is rolled back instead.
    commit: bool,
}

async fn apply_sets<T: Batch>(
    batch: &mut T,
    node: &str,
    sets: &[&ChangeSet],
    isolation: Isolation,
) -> StoreResult<Applied> {
    // The chains of the organisations this batch records events of, locked in one order on
    // every node (so two nodes' batches never wait for each other's chains crosswise).
    let chains: BTreeSet<String> = sets
        .iter()
        .flat_map(|set| set.changes.iter())
        .filter_map(|c| match c {
            Change::Audit(event) => Some(audit_chain_id(node, &event.org_id)),
            _ => None,
        })
        .collect();
    let mut start = Vec::with_capacity(chains.len());
    for chain_id in &chains {
        start.push(batch.chain_head(chain_id).await?);
    }
    let mut chain = ChainCursor::new(node, start.clone());
    let isolate = isolation == Isolation::Savepoints;
    let mut results = Vec::with_capacity(sets.len());
    let mut audits = Vec::new();
    for set in sets {
        if isolate {
            results.push(apply_isolated(batch, set, &mut chain, &mut audits).await?);
            continue;
        }
        match apply_set(batch, set, &mut chain, &mut audits).await {
            Ok(receipt) => results.push(Ok(receipt)),
            Err(err) => {
                return Ok(Applied {
                    results: vec![Err(err)],
                    commit: false,
                });
            }
        }
    }
    let commit = results.iter().any(Result::is_ok);
    if commit
        && !isolate
        && !audits.is_empty()
        && let Err(err) = batch.insert_audits(&audits).await
    {
        // Which set's event was refused is unknown here: as when a set fails, the caller
        // rolls back and (for several sets) tries again with each set isolated.
        return Ok(Applied {
            results: vec![Err(err)],
            commit: false,
        });
    }
    if commit {
        for before in &start {
            if let Some(head) = chain.head(&before.chain_id).filter(|head| *head != before) {
                batch.set_chain_head(head).await?;
            }
        }
    }
    Ok(Applied { results, commit })
}

/// Applies one set inside its own savepoint, its audit events inserted there too, so that any
/// failure of the set is undone alone. The outer `Err` is a failure of the transaction itself.
async fn apply_isolated<T: Batch>(
    batch: &mut T,
    set: &ChangeSet,
    chain: &mut ChainCursor,
    audits: &mut Vec<PlacedAudit>,
) -> StoreResult<StoreResult<CommitReceipt>> {
    let snapshot = chain.clone();
    let audits_before = audits.len();
    batch.savepoint().await?;
    let mut applied = apply_set(batch, set, chain, audits).await;
    if applied.is_ok()
        && let Some(own) = audits.get(audits_before..).filter(|own| !own.is_empty())
        && let Err(err) = batch.insert_audits(own).await
    {
        applied = Err(err);
    }
    if applied.is_err() {
        batch.rollback_to_savepoint().await?;
        *chain = snapshot;
        audits.truncate(audits_before);
    }
    batch.release_savepoint().await?;
    Ok(applied)
}

async fn apply_set<T: Batch>(
    batch: &mut T,
    set: &ChangeSet,
    chain: &mut ChainCursor,
    audits: &mut Vec<PlacedAudit>,
) -> StoreResult<CommitReceipt> {
    let mut outcomes = Vec::with_capacity(set.changes.len());
    for change in &set.changes {
        let outcome = match change {
            Change::Audit(event) => {
                let placement = chain.append(event)?;
                let outcome = Outcome::Audited {
                    chain_id: placement.chain_id.clone(),
                    seq: placement.seq,
                };
                audits.push(PlacedAudit {
                    placement,
                    event: event.clone(),
                });
                outcome
            }
            other => batch.apply(other).await?,
        };
        outcomes.push(outcome);
    }
    Ok(CommitReceipt { outcomes })
}

#[cfg(test)]
mod tests;
