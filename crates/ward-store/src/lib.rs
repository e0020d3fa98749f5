//! Storage contracts for Ward.
//!
//! This crate owns the shapes that cross the storage boundary (`*Row` records and typed
//! [`Change`]s), one small read trait per aggregate, the [`Writer`] trait through which every
//! state change is committed atomically together with its audit event, the conformance suite
//! that every backend must pass, and the backend-independent group-commit loop
//! ([`group_commit`]) that both adapters drive.
//!
//! It must not depend on `ward-core`, on any web framework or on a particular database driver:
//! the core depends on these traits, and the SQLite and PostgreSQL adapters implement them.

mod audit;
mod change;
pub mod conformance;
mod error;
pub mod group_commit;
mod rows;
mod signals;
mod storable;

pub use audit::{GENESIS_HASH, audit_chain_id, audit_hash};
pub use change::{Change, ChangeSet, CommitReceipt, Outcome};
pub use error::StoreError;
pub use rows::{
    ActivationRow, ApproverRow, AuditRow, AuthTxRow, CeremonyRow, ChainHeadRow, DEFAULT_ORG,
    DeviceRow, IntegrationRow, NewAudit, OrgRow, PushRow, RecoveryCaseRow, RecoveryCodeRow,
    RecoveryEventRow, RoleRow, SessionRow, TotpRow, UserRow, UserTokenRow, WebauthnCredentialRow,
};
pub use signals::{LocalSignals, Signal, Signals};
pub use storable::is_storable;

use async_trait::async_trait;

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Reads of organisations.
#[async_trait]
pub trait OrgStore {
    /// An organisation by id.
    async fn org(&self, org_id: &str) -> StoreResult<Option<OrgRow>>;
    /// An organisation by its exact name.
    async fn org_by_name(&self, name: &str) -> StoreResult<Option<OrgRow>>;
    /// Every organisation, oldest first.
    async fn list_orgs(&self) -> StoreResult<Vec<OrgRow>>;
}

/// Reads of integrations (applications that call Ward's APIs).
#[async_trait]
pub trait IntegrationStore {
    /// Looks an integration up by its public key. Integration keys are unique across
    /// organisations, so the key alone identifies the organisation.
    async fn integration_by_ikey(&self, ikey: &str) -> StoreResult<Option<IntegrationRow>>;
    /// Lists an organisation's integrations, oldest first.
    async fn list_integrations(&self, org_id: &str) -> StoreResult<Vec<IntegrationRow>>;
}

/// Reads of user accounts.
#[async_trait]
pub trait UserStore {
    /// Finds a user by exact username within an organisation.
    async fn user_by_name(&self, org_id: &str, username: &str) -> StoreResult<Option<UserRow>>;
    /// Finds a user by id within an organisation.
    async fn user_by_id(&self, org_id: &str, user_id: &str) -> StoreResult<Option<UserRow>>;
    /// Lists users ordered by username, paged.
    async fn list_users(&self, org_id: &str, limit: u32, offset: u32) -> StoreResult<Vec<UserRow>>;
}

/// How a user is named in a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserKey<'a> {
    Name(&'a str),
    Id(&'a str),
}

/// Reads of authentication factors.
#[async_trait]
pub trait FactorStore {
    /// All TOTP/HOTP authenticators of one user, oldest first.
    async fn totps_for_user(&self, org_id: &str, user_id: &str) -> StoreResult<Vec<TotpRow>>;
    /// A user and their TOTP/HOTP authenticators (oldest first) in one read — what every
    /// passcode check needs.
    async fn user_with_totps(
        &self,
        org_id: &str,
        user: UserKey<'_>,
    ) -> StoreResult<Option<(UserRow, Vec<TotpRow>)>>;
}

/// Reads of authentication transactions (the `txid`s of the Duo Auth API).
#[async_trait]
pub trait AuthTxStore {
    /// Looks a transaction up by id within an organisation.
    async fn auth_tx(&self, org_id: &str, txid: &str) -> StoreResult<Option<AuthTxRow>>;
}

/// Reads of the hash-chained audit log.
#[async_trait]
pub trait AuditStore {
    /// Every chain's recorded head (one chain per node).
    async fn audit_chains(&self) -> StoreResult<Vec<ChainHeadRow>>;
    /// Events of one chain with `seq > after_seq`, in sequence order, at most `limit`.
    async fn audit_page(
        &self,
        chain_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditRow>>;
}

/// Reads of push devices.
#[async_trait]
pub trait DeviceStore {
    /// A device by id (device ids are unique across organisations).
    async fn device(&self, device_id: &str) -> StoreResult<Option<DeviceRow>>;
    /// A user's devices, oldest first.
    async fn devices_for_user(&self, org_id: &str, user_id: &str) -> StoreResult<Vec<DeviceRow>>;
}

/// Reads of push requests.
#[async_trait]
pub trait PushStore {
    /// A push request by transaction id.
    async fn push(&self, org_id: &str, txid: &str) -> StoreResult<Option<PushRow>>;
    /// A device's requests still `pending` and not expired at `now_ms`, oldest first.
    async fn pending_pushes(&self, device_id: &str, now_ms: i64) -> StoreResult<Vec<PushRow>>;
    /// How many push requests were made to a user since `since_ms` (for the storm limit).
    async fn pushes_since(&self, org_id: &str, user_id: &str, since_ms: i64) -> StoreResult<i64>;
}

/// Reads of passkeys, portal sessions, user tokens and recovery codes.
#[async_trait]
pub trait PortalStore {
    /// A user's WebAuthn credentials, oldest first.
    async fn webauthn_credentials_for_user(
        &self,
        org_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<WebauthnCredentialRow>>;
    /// A WebAuthn credential by id.
    async fn webauthn_credential(
        &self,
        cred_id: &str,
    ) -> StoreResult<Option<WebauthnCredentialRow>>;
    /// A session by the hash of its cookie value (expired sessions too: the caller checks).
    async fn session(&self, session_hash: &str) -> StoreResult<Option<SessionRow>>;
    /// A user token by hash (used and expired ones too, so that the caller can say which).
    async fn user_token(&self, token_hash: &str) -> StoreResult<Option<UserTokenRow>>;
    /// A user's recovery codes (used ones too), oldest first.
    async fn recovery_codes_for_user(
        &self,
        org_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<RecoveryCodeRow>>;
}

/// Reads of recovery cases, roles and approver sets.
#[async_trait]
pub trait RecoveryStore {
    /// A case by id.
    async fn recovery_case(&self, case_id: &str) -> StoreResult<Option<RecoveryCaseRow>>;
    /// A case by the hash of the handle its browser holds.
    async fn recovery_case_by_handle(
        &self,
        handle_hash: &str,
    ) -> StoreResult<Option<RecoveryCaseRow>>;
    /// An agent-opened case waiting to be adopted, by the hash of its continue link's token.
    async fn recovery_case_by_adopt_hash(
        &self,
        adopt_hash: &str,
    ) -> StoreResult<Option<RecoveryCaseRow>>;
    /// The user's open case, if any.
    async fn open_recovery_case(
        &self,
        org_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<RecoveryCaseRow>>;
    /// Open cases (phantoms included) least recently updated first, at most `limit`: what the
    /// background tick visits.
    async fn open_recovery_cases(
        &self,
        org_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<RecoveryCaseRow>>;
    /// A case's events in order.
    async fn recovery_events(&self, case_id: &str) -> StoreResult<Vec<RecoveryEventRow>>;
    /// A user's cases, newest first, at most `limit`.
    async fn recovery_cases_for_user(
        &self,
        org_id: &str,
        user_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<RecoveryCaseRow>>;
    /// How many cases (phantom ones included) were opened since `since_ms`.
    async fn recovery_cases_opened_since(&self, org_id: &str, since_ms: i64) -> StoreResult<i64>;
    /// Open cases of the users `approver_id` may approve for, oldest first.
    async fn open_cases_for_approver(
        &self,
        org_id: &str,
        approver_id: &str,
    ) -> StoreResult<Vec<RecoveryCaseRow>>;
    /// A user's roles, sorted.
    async fn roles_for_user(&self, org_id: &str, user_id: &str) -> StoreResult<Vec<String>>;
    /// The ids of the users holding a role, sorted.
    async fn users_with_role(&self, org_id: &str, role: &str) -> StoreResult<Vec<String>>;
    /// Who may approve a user's recovery, oldest first.
    async fn recovery_approvers(
        &self,
        org_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<ApproverRow>>;
}

/// Small key/value settings that belong to the deployment (schema facts, key check values).
#[async_trait]
pub trait MetaStore {
    /// Reads a setting.
    async fn meta(&self, key: &str) -> StoreResult<Option<String>>;
    /// Writes a setting unless it already exists; returns the value now stored.
    async fn meta_insert_if_absent(&self, key: &str, value: &str) -> StoreResult<String>;
}

/// The one way state changes reach the database.
///
/// # Security
/// A [`ChangeSet`] is applied atomically: either every change in it (including its audit
/// events) is durable, or none is. Conditional changes ([`Change::UseTotpStep`],
/// [`Change::FinishAuthTx`], [`Change::ConsumeActivation`], [`Change::ConsumeNonce`],
/// [`Change::DecidePush`], [`Change::UseWebauthnCredential`], [`Change::ConsumeCeremony`],
/// [`Change::ConsumeUserToken`], [`Change::UseRecoveryCode`], [`Change::AppendRecoveryEvents`])
/// are single conditional statements, so that two nodes can never both
/// win the same decision.
#[async_trait]
pub trait Writer {
    /// Applies one change set atomically and durably.
    async fn commit(&self, set: ChangeSet) -> StoreResult<CommitReceipt>;
}

/// Everything a backend provides.
#[async_trait]
pub trait Store:
    OrgStore
    + IntegrationStore
    + UserStore
    + FactorStore
    + AuthTxStore
    + AuditStore
    + DeviceStore
    + PushStore
    + PortalStore
    + RecoveryStore
    + MetaStore
    + Writer
    + Send
    + Sync
    + std::fmt::Debug
{
    /// `"sqlite"` or `"postgres"`, for logs and diagnostics.
    fn backend(&self) -> &'static str;
    /// This process's name in the audit log: the default organisation's chain, and the node
    /// part of every other organisation's (see [`audit_chain_id`]).
    fn chain_id(&self) -> &str;
    /// The audit chain this process appends `org_id`'s events to.
    fn chain_for(&self, org_id: &str) -> String {
        audit_chain_id(self.chain_id(), org_id)
    }
    /// Change notifications between the requests of this node and, on PostgreSQL, of every
    /// node sharing the database.
    fn signals(&self) -> &dyn Signals;
    /// Flushes pending writes and closes connections.
    async fn close(&self);
}
