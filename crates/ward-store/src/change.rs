//! Typed state changes, committed atomically as a [`ChangeSet`].

use crate::rows::{
    ActivationRow, ApproverRow, AuthTxRow, CeremonyRow, DeviceRow, IntegrationRow, NewAudit,
    OrgRow, PushRow, RecoveryCaseRow, RecoveryCodeRow, RecoveryEventRow, RoleRow, SessionRow,
    TotpRow, UserRow, UserTokenRow, WebauthnCredentialRow,
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
    /// Conditional: counts a failed authentication while the account is not locked at
    /// `now_ms`, and locks it until `lock_until_ms` when the count reaches `threshold`. After a
    /// lock has run out, counting starts again at one. Fails with `ConditionFailed` while the
    /// account is locked (the attempt must then be answered as locked out), `NotFound` when
    /// there is no such user. Outcome: [`Outcome::Failures`].
    ///
    /// Count and check are one statement, so the threshold holds under any concurrency and
    /// across nodes: of many concurrent failures exactly `threshold` are counted.
    RecordAuthFailure {
        org_id: String,
        user_id: String,
        threshold: i64,
        lock_until_ms: i64,
        now_ms: i64,
    },
    /// Conditional: clears the failure count and records the login time, only while the
    /// account is not locked at `at_ms` (a success never clears a lock another request set).
    /// Fails with `ConditionFailed` while locked, `NotFound` when there is no such user.
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
    /// Conditional: holds the user's row until the end of the transaction and fails with
    /// `ConditionFailed` when `limit` or more push requests were made to the user since
    /// `since_ms`. Put before [`Change::InsertPush`] in the same set, it makes the push storm
    /// limit hold under any concurrency and across nodes.
    CheckPushLimit {
        org_id: String,
        user_id: String,
        since_ms: i64,
        limit: i64,
    },
    /// Conditional: applies only while the push is `pending`.
    DecidePush {
        org_id: String,
        txid: String,
        state: String,
        decided_ms: i64,
    },
    /// Deletes what has expired before `before_ms` and is no longer needed: authentication
    /// transactions, decided push requests, stream nonces, activation codes, ceremonies,
    /// portal sessions and user tokens. The audit log keeps the record of every decision.
    /// Outcome: [`Outcome::Purged`].
    PurgeExpired {
        before_ms: i64,
    },
    /// Refuses pushes to the user until `until_ms`.
    MutePush {
        org_id: String,
        user_id: String,
        until_ms: i64,
    },
    /// Fails with `Duplicate` when the credential id is already registered.
    InsertWebauthnCredential(WebauthnCredentialRow),
    /// Records a successful authentication: the new sealed credential (counter, backup state).
    /// Conditional: applies only while the stored counter is `expected_sign_count`, so two
    /// nodes cannot both accept the same counter value.
    UseWebauthnCredential {
        cred_id: String,
        expected_sign_count: i64,
        credential_sealed: String,
        sign_count: i64,
        backed_up: bool,
        used_ms: i64,
    },
    /// Renames a user's factor (`kind`: `webauthn`, `totp` or `device`); fails with `NotFound`
    /// when the user has no such factor.
    RenameFactor {
        org_id: String,
        user_id: String,
        kind: String,
        id: String,
        name: String,
    },
    /// Deletes a user's factor (`kind`: `webauthn`, `totp` or `device`); fails with `NotFound`
    /// when the user has no such factor.
    DeleteFactor {
        org_id: String,
        user_id: String,
        kind: String,
        id: String,
    },
    InsertCeremony(CeremonyRow),
    /// Conditional: deletes an unexpired ceremony of that purpose and returns it
    /// ([`Outcome::Ceremony`]); fails if absent, expired or of another purpose.
    ConsumeCeremony {
        ceremony_hash: String,
        purpose: String,
        now_ms: i64,
    },
    InsertSession(SessionRow),
    /// Records activity and, when set, a step-up (fails with `NotFound` if the session is gone).
    TouchSession {
        session_hash: String,
        last_seen_ms: i64,
        step_up_until_ms: Option<i64>,
    },
    /// Ends one session (no error if it is already gone).
    DeleteSession {
        session_hash: String,
    },
    /// Ends every session of a user. Outcome: [`Outcome::Purged`] with the count.
    DeleteUserSessions {
        org_id: String,
        user_id: String,
    },
    InsertUserToken(UserTokenRow),
    /// Conditional: marks an unused, unexpired token of that purpose used.
    /// Outcome: [`Outcome::TokenUsed`] with the user it belongs to.
    ConsumeUserToken {
        token_hash: String,
        purpose: String,
        now_ms: i64,
    },
    /// Replaces a user's recovery codes with a new set (all codes must belong to that user).
    ReplaceRecoveryCodes {
        org_id: String,
        user_id: String,
        codes: Vec<RecoveryCodeRow>,
    },
    /// Conditional: marks an unused recovery code of that user used.
    UseRecoveryCode {
        org_id: String,
        user_id: String,
        code_id: String,
        used_ms: i64,
    },
    /// Freezes (`Some(when)`) or unfreezes (`None`) a user's factor changes.
    SetFactorsFrozen {
        org_id: String,
        user_id: String,
        frozen_ms: Option<i64>,
    },
    /// Remembers the method a user completed the hosted prompt with.
    SetLastPromptMethod {
        org_id: String,
        user_id: String,
        method: String,
    },
    /// Opens a recovery case with its first event. Fails with `Duplicate` when the user already
    /// has an open case (one open case per account, on every node).
    OpenRecoveryCase {
        case: RecoveryCaseRow,
        first_event: RecoveryEventRow,
    },
    /// Conditional: appends events to a case whose version is still `expected_version`, and
    /// records the state they lead to. Fails with `ConditionFailed` when another request
    /// appended first (the caller reads the case again and retries).
    AppendRecoveryEvents {
        case_id: String,
        expected_version: i64,
        events: Vec<RecoveryEventRow>,
        state: String,
        is_open: bool,
        updated_ms: i64,
        expires_ms: i64,
    },
    /// Conditional: gives an agent-opened case, still waiting to be adopted with the continue
    /// link whose token hashes to `adopt_hash`, to the browser holding the handle that hashes
    /// to `handle_hash`. The link is used up: of browsers racing to adopt, exactly one wins.
    AdoptRecoveryCase {
        case_id: String,
        adopt_hash: String,
        handle_hash: String,
    },
    /// Conditional: replaces the case's handle `old_hash` with `new_hash`, so only the browser
    /// given the new handle keeps the case. Fails when the case no longer has `old_hash`.
    RotateRecoveryHandle {
        case_id: String,
        old_hash: String,
        new_hash: String,
    },
    /// Conditional: counts one notice of `kind` to the user in the window that started at most
    /// `window_ms` before `now_ms` (a new window starts when it is older), and fails when `cap`
    /// were already counted in it. Count and check are one statement.
    TakeNoticeSlot {
        org_id: String,
        user_id: String,
        kind: String,
        now_ms: i64,
        window_ms: i64,
        cap: i64,
    },
    /// Fails with `Duplicate` when the user already holds the role.
    GrantRole(RoleRow),
    /// Fails with `NotFound` when the user does not hold the role.
    RevokeRole {
        org_id: String,
        user_id: String,
        role: String,
    },
    /// Fails with `Duplicate` when already an approver of that user.
    AddRecoveryApprover(ApproverRow),
    /// Fails with `NotFound` when not an approver of that user.
    RemoveRecoveryApprover {
        org_id: String,
        user_id: String,
        approver_id: String,
    },
    /// Sets (or clears) the time before which no new recovery case may be opened.
    SetRecoveryBlock {
        org_id: String,
        user_id: String,
        until_ms: Option<i64>,
    },
    /// Records a completed recovery: the time, and probation until `probation_until_ms`.
    SetRecovered {
        org_id: String,
        user_id: String,
        at_ms: i64,
        probation_until_ms: i64,
    },
    /// Deletes every factor of a user (passkeys, authenticator apps, push devices, recovery
    /// codes) except the passkey `keep_cred_id`. Outcome: [`Outcome::Purged`] with the count.
    RevokeFactors {
        org_id: String,
        user_id: String,
        keep_cred_id: Option<String>,
    },
    /// Sets a user's policy group (`None`: the default group).
    SetPolicyGroup {
        org_id: String,
        user_id: String,
        group: Option<String>,
    },
    /// Fails with `Duplicate` when the id or the name is taken.
    InsertOrg(OrgRow),
    /// Fails with `NotFound` when there is no such organisation, `Duplicate` when another one
    /// has the name.
    RenameOrg {
        org_id: String,
        name: String,
    },
    /// Disables (`Some(when)`) or enables (`None`) an organisation; fails with `NotFound` when
    /// there is no such organisation.
    SetOrgDisabled {
        org_id: String,
        disabled_ms: Option<i64>,
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
    /// How many rows a [`Change::PurgeExpired`] or [`Change::DeleteUserSessions`] deleted.
    Purged { rows: u64 },
    /// The ceremony a [`Change::ConsumeCeremony`] consumed.
    Ceremony(CeremonyRow),
    /// The token was valid: it belongs to this user.
    TokenUsed { org_id: String, user_id: String },
}

/// The outcomes of a committed set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitReceipt {
    pub outcomes: Vec<Outcome>,
}
