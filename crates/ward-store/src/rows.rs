//! Records as they are stored. Timestamps are UTC milliseconds since the Unix epoch.

/// The organisation every record belongs to until multi-tenant administration exists.
pub const DEFAULT_ORG: &str = "default";

/// An application allowed to call Ward's APIs.
#[derive(Clone, PartialEq, Eq)]
pub struct IntegrationRow {
    pub org_id: String,
    /// Public integration key (Duo's `ikey`), unique across organisations.
    pub ikey: String,
    pub name: String,
    /// `auth-api` for now.
    pub kind: String,
    /// The secret key, sealed with the integration-key purpose key (never plaintext).
    pub skey_sealed: String,
    pub created_ms: i64,
    /// Push for Auth API clients: `verified`, `plain` or `refuse`; `None`: the server default.
    pub push_mode: Option<String>,
    /// What the hosted prompt offers (`web-sdk` integrations), as JSON; `None`: the defaults.
    pub prompt_policy: Option<String>,
}

impl std::fmt::Debug for IntegrationRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationRow")
            .field("org_id", &self.org_id)
            .field("ikey", &self.ikey)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("created_ms", &self.created_ms)
            .field("push_mode", &self.push_mode)
            .field("prompt_policy", &self.prompt_policy)
            .finish_non_exhaustive()
    }
}

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    pub org_id: String,
    pub user_id: String,
    pub username: String,
    pub email: Option<String>,
    /// `active` or `disabled`.
    pub status: String,
    pub created_ms: i64,
    /// Consecutive failed authentications since the last success.
    pub failed_attempts: i64,
    /// Set while the account is locked after too many failures.
    pub locked_until_ms: Option<i64>,
    pub last_login_ms: Option<i64>,
    /// Push requests to this user are refused until then (set when the user reports fraud).
    pub push_muted_until_ms: Option<i64>,
    /// When the user answered "this wasn't me": factor changes are refused until an
    /// administrator unfreezes the account.
    pub factors_frozen_ms: Option<i64>,
    /// The policy group whose passkey rules apply (`None`: the default group).
    pub policy_group: Option<String>,
    /// The method the user last completed the hosted prompt with (offered first next time).
    pub last_prompt_method: Option<String>,
    /// No new recovery case may be opened before then (after a denied case, or at the user's
    /// request after suspicious contact).
    pub recovery_blocked_until_ms: Option<i64>,
    /// After a recovery: no new recovery methods or approvers without a fresh approval.
    pub probation_until_ms: Option<i64>,
    pub last_recovered_ms: Option<i64>,
}

/// A TOTP/HOTP authenticator bound to a user.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpRow {
    pub org_id: String,
    pub totp_id: String,
    pub user_id: String,
    pub name: String,
    /// The seed, sealed with the TOTP purpose key.
    pub seed_sealed: String,
    /// `sha1`, `sha256` or `sha512`.
    pub algorithm: String,
    pub digits: i64,
    pub step_secs: i64,
    /// The highest time step ever accepted; a step is never accepted twice.
    pub last_step: Option<i64>,
    pub created_ms: i64,
}

impl std::fmt::Debug for TotpRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRow")
            .field("org_id", &self.org_id)
            .field("totp_id", &self.totp_id)
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("step_secs", &self.step_secs)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// An authentication transaction (`txid`): its result once decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthTxRow {
    pub org_id: String,
    pub txid: String,
    pub ikey: String,
    pub user_id: Option<String>,
    pub factor: String,
    /// `waiting`, `allow` or `deny`.
    pub result: String,
    /// Duo `status` value (`allow`, `deny`, `locked_out`, ...).
    pub status: String,
    pub status_msg: String,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// An audit event before the store places it in a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAudit {
    pub org_id: String,
    pub ts_ms: i64,
    /// Who acted: `cli`, `integration:DI…`, `user:DU…`.
    pub actor: String,
    /// What happened, e.g. `auth.passcode`, `user.create`.
    pub action: String,
    /// What it happened to (an id, never a secret).
    pub target: String,
    /// `allow`, `deny`, `ok`, ...
    pub outcome: String,
    /// Further facts as a JSON object (ids and reasons, never secrets).
    pub details: String,
}

/// A stored audit event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    pub chain_id: String,
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    pub event: NewAudit,
}

/// The recorded head of one audit chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHeadRow {
    pub chain_id: String,
    pub head_seq: i64,
    pub head_hash: String,
}

/// A one-time code that binds a new push device to a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivationRow {
    pub org_id: String,
    /// SHA-256 (hex) of the code; the code itself is never stored.
    pub code_hash: String,
    pub user_id: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub used_ms: Option<i64>,
}

/// A push authenticator: a device holding a private key, bound to a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    pub org_id: String,
    pub device_id: String,
    pub user_id: String,
    pub name: String,
    pub platform: String,
    /// `ed25519` or `p256`.
    pub key_alg: String,
    /// The public key, base64url without padding.
    pub public_key: String,
    pub created_ms: i64,
}

/// A push login request and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushRow {
    pub org_id: String,
    pub txid: String,
    pub ikey: String,
    pub user_id: String,
    pub device_id: String,
    /// `pending`, `approved`, `denied`, `fraud` or `timeout`.
    pub state: String,
    /// The number the login screen shows, when the user must type it on the device.
    pub number: Option<String>,
    /// What the device shows, as JSON (the device-channel event without its hash).
    pub context: String,
    /// SHA-256 (hex) binding an answer to that context.
    pub context_hash: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub decided_ms: Option<i64>,
}

/// A WebAuthn credential: a passkey or a security key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebauthnCredentialRow {
    /// The credential id, base64url without padding (unique for the relying party).
    pub cred_id: String,
    pub org_id: String,
    pub user_id: String,
    pub name: String,
    /// `passkey` or `security-key` (attested, device-bound).
    pub kind: String,
    /// The credential as the WebAuthn library stores it (public key, counter, flags), sealed.
    pub credential_sealed: String,
    /// The authenticator model, when attestation named it.
    pub aaguid: Option<String>,
    pub backup_eligible: bool,
    pub backed_up: bool,
    pub sign_count: i64,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
}

impl std::fmt::Debug for WebauthnCredentialRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebauthnCredentialRow")
            .field("cred_id", &self.cred_id)
            .field("org_id", &self.org_id)
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("aaguid", &self.aaguid)
            .field("backup_eligible", &self.backup_eligible)
            .field("backed_up", &self.backed_up)
            .field("sign_count", &self.sign_count)
            .field("created_ms", &self.created_ms)
            .field("last_used_ms", &self.last_used_ms)
            .finish_non_exhaustive()
    }
}

/// Server-side state of a ceremony in progress, consumed once.
#[derive(Clone, PartialEq, Eq)]
pub struct CeremonyRow {
    /// SHA-256 (hex) of the ceremony id the browser holds.
    pub ceremony_hash: String,
    pub org_id: String,
    /// The user the ceremony is for; `None` for a usernameless sign-in.
    pub user_id: Option<String>,
    /// What the ceremony is for, e.g. `passkey-register`, `passkey-signin`, `totp-enrol`.
    pub purpose: String,
    /// The state, sealed.
    pub state_sealed: String,
    pub created_ms: i64,
    pub expires_ms: i64,
}

impl std::fmt::Debug for CeremonyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CeremonyRow")
            .field("org_id", &self.org_id)
            .field("user_id", &self.user_id)
            .field("purpose", &self.purpose)
            .field("created_ms", &self.created_ms)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

/// A signed-in browser session of the portal.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 (hex) of the cookie value.
    pub session_hash: String,
    pub org_id: String,
    pub user_id: String,
    /// How the user signed in: `passkey`, `totp`, `enrol-link`, ...
    pub auth_method: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    /// Absolute expiry.
    pub expires_ms: i64,
    /// Until then, the session may make sensitive changes (after a fresh phishing-resistant
    /// authentication).
    pub step_up_until_ms: Option<i64>,
}

impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRow")
            .field("org_id", &self.org_id)
            .field("user_id", &self.user_id)
            .field("auth_method", &self.auth_method)
            .field("created_ms", &self.created_ms)
            .field("last_seen_ms", &self.last_seen_ms)
            .field("expires_ms", &self.expires_ms)
            .field("step_up_until_ms", &self.step_up_until_ms)
            .finish_non_exhaustive()
    }
}

/// A single-use token sent to a user (enrolment link, "this wasn't me" link).
#[derive(Clone, PartialEq, Eq)]
pub struct UserTokenRow {
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    pub org_id: String,
    pub user_id: String,
    /// `enrol`, `report`, ...
    pub purpose: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub used_ms: Option<i64>,
}

impl std::fmt::Debug for UserTokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTokenRow")
            .field("org_id", &self.org_id)
            .field("user_id", &self.user_id)
            .field("purpose", &self.purpose)
            .field("created_ms", &self.created_ms)
            .field("expires_ms", &self.expires_ms)
            .field("used_ms", &self.used_ms)
            .finish_non_exhaustive()
    }
}

/// One recovery code (its Argon2id hash).
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCodeRow {
    pub code_id: String,
    pub org_id: String,
    pub user_id: String,
    /// Argon2id PHC string.
    pub code_hash: String,
    pub created_ms: i64,
    pub used_ms: Option<i64>,
}

impl std::fmt::Debug for RecoveryCodeRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryCodeRow")
            .field("code_id", &self.code_id)
            .field("org_id", &self.org_id)
            .field("user_id", &self.user_id)
            .field("created_ms", &self.created_ms)
            .field("used_ms", &self.used_ms)
            .finish_non_exhaustive()
    }
}

/// A recovery case: what queries need; the case itself is the fold of its events.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCaseRow {
    pub case_id: String,
    pub org_id: String,
    /// `None` for a phantom case (a start for an unknown user walks the same screens).
    pub user_id: Option<String>,
    /// SHA-256 (hex) of the handle the browser that opened the case holds.
    pub handle_hash: String,
    /// The state after the last event, e.g. `collecting`, `cooling`, `completed`.
    pub state: String,
    pub is_open: bool,
    /// `user` or `agent:DU…`.
    pub opened_by: String,
    pub opened_ms: i64,
    pub updated_ms: i64,
    pub expires_ms: i64,
    /// How many events the case has; appends are conditional on it.
    pub version: i64,
    /// The client address the case was started from (`None` when an agent opened it).
    pub opened_from: Option<String>,
    /// SHA-256 (hex) of the continue link's token while an agent-opened case waits to be
    /// adopted by the user's browser; `None` once adopted, and always for self-service cases.
    pub adopt_hash: Option<String>,
}

impl std::fmt::Debug for RecoveryCaseRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryCaseRow")
            .field("case_id", &self.case_id)
            .field("org_id", &self.org_id)
            .field("user_id", &self.user_id)
            .field("state", &self.state)
            .field("is_open", &self.is_open)
            .field("opened_by", &self.opened_by)
            .field("opened_ms", &self.opened_ms)
            .field("updated_ms", &self.updated_ms)
            .field("expires_ms", &self.expires_ms)
            .field("version", &self.version)
            .field("opened_from", &self.opened_from)
            .field("adoptable", &self.adopt_hash.is_some())
            .finish_non_exhaustive()
    }
}

/// One event of a recovery case (JSON), numbered from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryEventRow {
    pub case_id: String,
    pub seq: i64,
    pub at_ms: i64,
    pub event: String,
}

/// A role held by a user: `admin`, `helpdesk`, `approver` or `security`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleRow {
    pub org_id: String,
    pub user_id: String,
    pub role: String,
    pub granted_ms: i64,
    pub granted_by: String,
}

/// Someone who may approve a user's recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApproverRow {
    pub org_id: String,
    pub user_id: String,
    pub approver_id: String,
    pub added_ms: i64,
}

/// An organisation: a tenant whose users, factors, integrations and audit chains are its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgRow {
    pub org_id: String,
    /// Unique across the deployment; what administrators type (`--org NAME`).
    pub name: String,
    pub created_ms: i64,
    /// When the organisation was disabled (every login in it is refused); `None`: enabled.
    pub disabled_ms: Option<i64>,
}
