//! Typed state changes, committed atomically as a [`ChangeSet`].

use crate::rows::{
    ActivationRow, AuthTxRow, DeviceRow, IntegrationRow, NewAudit, PushRow, TotpRow, UserRow,
};

/// One state change. Conditional changes fail the whole set with
/// [`crate::StoreError::ConditionFailed`] when their condition does not hold.
#[derive(Clone, Debug)]
pub enum Change {
    InsertIntegration(IntegrationRow),
    /// Fails with `Duplicate` when the username exists in the organisation.
    InsertUser(UserRow),
    SetUserStatus {
        org_id: String,
        user_id: String,
        status: String,
    },
    InsertTotp(TotpRow),
    /// Conditional: applies only if `step` is greater than every step used before.
    UseTotpStep {
        org_id: String,
        totp_id: String,
        step: i64,
    },
    /// Counts a failed authentication; locks the account until `lock_until_ms` when the count
    /// reaches `threshold`.
    RecordAuthFailure {
        org_id: String,
        user_id: String,
        threshold: i64,
        lock_until_ms: i64,
    },
    /// Clears the failure count and lock, and records the login time.
    RecordAuthSuccess {
        org_id: String,
        user_id: String,
        at_ms: i64,
    },
    InsertAuthTx(AuthTxRow),
    /// Conditional: applies only while the transaction is `waiting`.
    FinishAuthTx {
        org_id: String,
        txid: String,
        result: String,
        status: String,
        status_msg: String,
    },
    /// Appends an event to this node's audit chain.
    Audit(NewAudit),
    InsertActivation(ActivationRow),
    /// Conditional: marks an unused, unexpired activation code used.
    /// Outcome: [`Outcome::Activated`] with the user it belongs to.
    ConsumeActivation {
        code_hash: String,
        now_ms: i64,
    },
    InsertDevice(DeviceRow),
    /// Stores a single-use stream nonce (its hash) for a device.
    InsertNonce {
        nonce_hash: String,
        device_id: String,
        expires_ms: i64,
    },
    /// Conditional: deletes an unexpired nonce of that device; fails if absent or expired.
    ConsumeNonce {
        nonce_hash: String,
        device_id: String,
        now_ms: i64,
    },
    InsertPush(PushRow),
    /// Conditional: applies only while the push is `pending`.
    DecidePush {
        org_id: String,
        txid: String,
        state: String,
        decided_ms: i64,
    },
    /// Refuses pushes to the user until `until_ms`.
    /// Deletes what has expired before `before_ms` and is no longer needed: authentication
    /// transactions, decided push requests, stream nonces and activation codes. The audit log
    /// keeps the record of every decision. Outcome: [`Outcome::Purged`].
    PurgeExpired {
        before_ms: i64,
    },
    MutePush {
        org_id: String,
        user_id: String,
        until_ms: i64,
    },
}

/// Changes that commit together or not at all.
#[derive(Clone, Debug, Default)]
pub struct ChangeSet {
    pub changes: Vec<Change>,
}

impl ChangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a change (builder style).
    #[must_use]
    pub fn with(mut self, change: Change) -> Self {
        self.changes.push(change);
        self
    }

    /// Adds a change.
    pub fn push(&mut self, change: Change) {
        self.changes.push(change);
    }
}

/// What a change produced, in the order of the set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to report.
    Done,
    /// The failure count after [`Change::RecordAuthFailure`] and whether the account is locked.
    Failures {
        count: i64,
        locked_until_ms: Option<i64>,
    },
    /// Where an audit event was placed.
    Audited { chain_id: String, seq: i64 },
    /// The activation code was valid: it belongs to this user.
    Activated { org_id: String, user_id: String },
    /// How many rows a [`Change::PurgeExpired`] deleted.
    Purged { rows: u64 },
}

/// The outcomes of a committed set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitReceipt {
    pub outcomes: Vec<Outcome>,
}
