//! Passkeys and security keys (WebAuthn, with webauthn-rs).
//!
//! # Security
//! Ceremony state lives in the database, sealed, keyed by the hash of an id the browser holds,
//! and is consumed once by a conditional delete: a ceremony can be finished on any node, and
//! only once. Every credential requires user verification. Passkeys are created as discoverable
//! credentials so that sign-in needs no username. Where a policy group refuses synced passkeys,
//! registration asks for attestation and accepts only security keys that chain to a configured
//! vendor root and whose model (AAGUID) is on the allow-list. After each authentication the
//! stored signature counter and backup state are updated by a conditional write; a counter that
//! goes backwards is refused and reported as a possible clone.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use ward_store::{
    CeremonyRow, Change, ChangeSet, DEFAULT_ORG, Outcome, StoreError, UserRow,
    WebauthnCredentialRow,
};
use webauthn_rs::prelude::{
    AttestationCaList, AttestationCaListBuilder, AttestationMetadata, AttestedPasskey,
    AttestedPasskeyRegistration, CreationChallengeResponse, DiscoverableAuthentication, Passkey,
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

use super::{Ward, check_text};
use crate::audit::Event;
use crate::crypto::{Purpose, new_token, token_hash};
use crate::error::{CoreError, CoreResult};
use crate::model::Actor;
use crate::notify::Alert;
use crate::policy::{FactorPolicy, PortalSettings};

/// Ceremony purposes that use WebAuthn.
pub mod purpose {
    /// Adding a passkey or security key to the signed-in user.
    pub const REGISTER: &str = "passkey-register";
    /// Signing in to the portal (usernameless).
    pub const SIGN_IN: &str = "passkey-signin";
    /// A fresh check before a sensitive change.
    pub const STEP_UP: &str = "passkey-step-up";
}

/// The WebAuthn relying party and the portal settings it was built from.
#[derive(Debug)]
pub(super) struct Passkeys {
    webauthn: Webauthn,
    pub(super) settings: PortalSettings,
}

impl Passkeys {
    pub(super) fn new(settings: PortalSettings) -> CoreResult<Self> {
        let webauthn = WebauthnBuilder::new(&settings.rp_id, &settings.origin)
            .and_then(|b| b.rp_name(&settings.organisation).build())
            .map_err(|e| {
                CoreError::invalid(
                    "public_host",
                    format!("cannot serve passkeys for {}: {e}", settings.origin),
                )
            })?;
        for (name, policy) in std::iter::once(("default", &settings.factors.default))
            .chain(settings.factors.groups.iter().map(|(k, v)| (k.as_str(), v)))
        {
            if !policy.synced_passkeys {
                ca_list(policy).map_err(|reason| {
                    CoreError::invalid(
                        "policy",
                        format!("group {name} requires attested security keys, but {reason}"),
                    )
                })?;
            }
        }
        Ok(Self { webauthn, settings })
    }
}

/// The attestation roots and models a policy accepts.
fn ca_list(policy: &FactorPolicy) -> Result<AttestationCaList, String> {
    if policy.attestation_ca_pems.is_empty() {
        return Err("no attestation CA certificate is configured".into());
    }
    if policy.aaguids.is_empty() {
        return Err("no authenticator model (AAGUID) is allowed".into());
    }
    let mut builder = AttestationCaListBuilder::new();
    for pem in &policy.attestation_ca_pems {
        for aaguid in &policy.aaguids {
            builder
                .insert_device_pem(
                    pem.as_bytes(),
                    *aaguid,
                    format!("security key {aaguid}"),
                    std::collections::BTreeMap::new(),
                )
                .map_err(|e| format!("an attestation CA certificate cannot be read: {e:?}"))?;
        }
    }
    Ok(builder.build())
}

/// A stored credential: a passkey, or a security key registered with attestation.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", content = "credential", rename_all = "snake_case")]
enum StoredCredential {
    Passkey(Passkey),
    SecurityKey(AttestedPasskey),
}

impl StoredCredential {
    fn kind(&self) -> &'static str {
        match self {
            Self::Passkey(_) => "passkey",
            Self::SecurityKey(_) => "security-key",
        }
    }

    fn as_passkey(&self) -> Passkey {
        match self {
            Self::Passkey(p) => p.clone(),
            Self::SecurityKey(k) => Passkey::from(k),
        }
    }

    /// Counter and backup flags, as the library stores them.
    fn flags(&self) -> CoreResult<CredentialFlags> {
        let value = serde_json::to_value(self)
            .map_err(|e| CoreError::Internal(format!("credential cannot be encoded: {e}")))?;
        let cred = value
            .get("credential")
            .and_then(|c| c.get("cred"))
            .cloned()
            .unwrap_or(Value::Null);
        serde_json::from_value(cred)
            .map_err(|e| CoreError::Internal(format!("credential flags cannot be read: {e}")))
    }
}

#[derive(Deserialize)]
struct CredentialFlags {
    counter: u32,
    backup_eligible: bool,
    backup_state: bool,
}

/// What a ceremony remembers between its start and its finish.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", content = "state", rename_all = "snake_case")]
enum CeremonyState {
    RegisterPasskey(PasskeyRegistration),
    RegisterSecurityKey(AttestedPasskeyRegistration),
    Discoverable(DiscoverableAuthentication),
    User(PasskeyAuthentication),
}

/// The start of a ceremony: the id the browser sends back, and the options for
/// `navigator.credentials.create()`/`get()` (WebAuthn JSON).
#[derive(Clone, Debug, Serialize)]
pub struct CeremonyStart {
    pub ceremony: String,
    pub options: Value,
}

/// A passkey or security key as the portal lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    /// `passkey` or `security-key`.
    pub kind: String,
    pub aaguid: Option<String>,
    /// The credential may be copied to the user's other devices (a synced passkey).
    pub backup_eligible: bool,
    pub backed_up: bool,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
}

impl From<&WebauthnCredentialRow> for PasskeyView {
    fn from(r: &WebauthnCredentialRow) -> Self {
        Self {
            id: r.cred_id.clone(),
            name: r.name.clone(),
            kind: r.kind.clone(),
            aaguid: r.aaguid.clone(),
            backup_eligible: r.backup_eligible,
            backed_up: r.backed_up,
            created_ms: r.created_ms,
            last_used_ms: r.last_used_ms,
        }
    }
}

/// A verified assertion: who it was, and with which credential.
#[derive(Clone, Debug)]
pub struct PasskeyCheck {
    pub user: UserRow,
    pub cred_id: String,
    pub credential_name: String,
}

/// The WebAuthn user handle of an account: stable, opaque, derived from its id.
pub(super) fn user_handle(org_id: &str, user_id: &str) -> Uuid {
    let digest = Sha256::digest(format!("ward/webauthn-user/{org_id}/{user_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
    uuid_from(bytes)
}

fn uuid_from(bytes: [u8; 16]) -> Uuid {
    Uuid::from_bytes(bytes)
}

/// Asks the authenticator for a discoverable credential (a passkey in the strict sense).
fn require_resident_key(ccr: &CreationChallengeResponse) -> CoreResult<Value> {
    let mut options = serde_json::to_value(ccr)
        .map_err(|e| CoreError::Internal(format!("challenge cannot be encoded: {e}")))?;
    if let Some(selection) = options
        .get_mut("publicKey")
        .and_then(|p| p.get_mut("authenticatorSelection"))
        .and_then(Value::as_object_mut)
    {
        selection.insert("residentKey".into(), Value::from("required"));
        selection.insert("requireResidentKey".into(), Value::from(true));
    }
    Ok(options)
}

fn bad_response(e: impl std::fmt::Display) -> CoreError {
    CoreError::invalid(
        "credential",
        format!("the authenticator's answer is malformed: {e}"),
    )
}

impl Ward {
    /// Serves passkeys and the portal with these settings.
    pub fn with_portal(mut self, settings: PortalSettings) -> CoreResult<Self> {
        self.passkeys = Some(std::sync::Arc::new(Passkeys::new(settings)?));
        Ok(self)
    }

    pub(super) fn passkeys(&self) -> CoreResult<&Passkeys> {
        self.passkeys
            .as_deref()
            .ok_or_else(|| CoreError::Internal("the portal is not configured".into()))
    }

    /// The portal settings in force.
    pub fn portal_settings(&self) -> CoreResult<&PortalSettings> {
        Ok(&self.passkeys()?.settings)
    }

    /// The factor policy that applies to a user.
    pub fn factor_policy(&self, user: &UserRow) -> CoreResult<&FactorPolicy> {
        Ok(self
            .passkeys()?
            .settings
            .factors
            .for_group(user.policy_group.as_deref()))
    }

    pub(super) async fn active_user(&self, user_id: &str) -> CoreResult<UserRow> {
        let user = self
            .store
            .user_by_id(DEFAULT_ORG, user_id)
            .await?
            .ok_or_else(|| CoreError::NotFound("user".into()))?;
        if user.status != "active" {
            return Err(CoreError::Forbidden("this account is disabled".into()));
        }
        Ok(user)
    }

    /// Stores a ceremony's state and returns the id the browser keeps.
    async fn begin_ceremony(
        &self,
        purpose: &str,
        user_id: Option<&str>,
        state: &CeremonyState,
        now: DateTime<Utc>,
    ) -> CoreResult<String> {
        let ttl = self.passkeys()?.settings.ceremony_ttl;
        let ceremony = new_token();
        let hash = token_hash(&ceremony);
        let json = serde_json::to_vec(state)
            .map_err(|e| CoreError::Internal(format!("ceremony state cannot be encoded: {e}")))?;
        let row = CeremonyRow {
            state_sealed: self.keys.seal(Purpose::Ceremony, &hash, &json)?,
            ceremony_hash: hash,
            org_id: DEFAULT_ORG.into(),
            user_id: user_id.map(str::to_owned),
            purpose: purpose.into(),
            created_ms: now.timestamp_millis(),
            expires_ms: (now + ttl).timestamp_millis(),
        };
        self.store
            .commit(ChangeSet::new().with(Change::InsertCeremony(row)))
            .await?;
        Ok(ceremony)
    }

    /// Consumes a ceremony (once, on any node) and opens its state.
    pub(super) async fn take_ceremony(
        &self,
        purpose: &str,
        ceremony: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<(CeremonyRow, zeroize::Zeroizing<Vec<u8>>)> {
        if ceremony.is_empty() || ceremony.len() > 128 {
            return Err(CoreError::invalid("ceremony", "is missing or malformed"));
        }
        let hash = token_hash(ceremony);
        let receipt = self
            .store
            .commit(ChangeSet::new().with(Change::ConsumeCeremony {
                ceremony_hash: hash.clone(),
                purpose: purpose.into(),
                now_ms: now.timestamp_millis(),
            }))
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed(_) => CoreError::Expired(
                    "this request (it was already used, or took too long; start again)".into(),
                ),
                other => other.into(),
            })?;
        let Some(Outcome::Ceremony(row)) = receipt.outcomes.into_iter().next() else {
            return Err(CoreError::Internal(
                "ceremony consumed without its state".into(),
            ));
        };
        let state = self
            .keys
            .open(Purpose::Ceremony, &hash, &row.state_sealed)?;
        Ok((row, state))
    }

    /// Stores a non-WebAuthn ceremony's state (e.g. a TOTP seed awaiting its first code).
    pub(super) async fn begin_sealed_ceremony(
        &self,
        purpose: &str,
        user_id: &str,
        state: &[u8],
        now: DateTime<Utc>,
    ) -> CoreResult<String> {
        let ttl = self.passkeys()?.settings.ceremony_ttl;
        let ceremony = new_token();
        let hash = token_hash(&ceremony);
        let row = CeremonyRow {
            state_sealed: self.keys.seal(Purpose::Ceremony, &hash, state)?,
            ceremony_hash: hash,
            org_id: DEFAULT_ORG.into(),
            user_id: Some(user_id.into()),
            purpose: purpose.into(),
            created_ms: now.timestamp_millis(),
            expires_ms: (now + ttl).timestamp_millis(),
        };
        self.store
            .commit(ChangeSet::new().with(Change::InsertCeremony(row)))
            .await?;
        Ok(ceremony)
    }

    /// Starts adding a passkey (or, where policy requires, an attested security key) to a user.
    pub async fn passkey_register_start(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<CeremonyStart> {
        let passkeys = self.passkeys()?;
        let user = self.active_user(user_id).await?;
        super::portal::refuse_if_frozen(&user)?;
        let existing = self
            .store
            .webauthn_credentials_for_user(DEFAULT_ORG, &user.user_id)
            .await?;
        let exclude = existing
            .iter()
            .filter_map(|r| URL_SAFE_NO_PAD.decode(&r.cred_id).ok())
            .collect::<Vec<_>>();
        let handle = user_handle(DEFAULT_ORG, &user.user_id);
        let policy = self.factor_policy(&user)?;
        let (options, state) = if policy.synced_passkeys {
            let (ccr, state) = passkeys
                .webauthn
                .start_passkey_registration(handle, &user.username, &user.username, Some(exclude))
                .map_err(|e| CoreError::Internal(format!("passkey registration: {e}")))?;
            (
                require_resident_key(&ccr)?,
                CeremonyState::RegisterPasskey(state),
            )
        } else {
            let cas = ca_list(policy).map_err(|e| CoreError::Forbidden(e.clone()))?;
            let (ccr, state) = passkeys
                .webauthn
                .start_attested_passkey_registration(
                    handle,
                    &user.username,
                    &user.username,
                    Some(exclude),
                    cas,
                    None,
                )
                .map_err(|e| CoreError::Internal(format!("security key registration: {e}")))?;
            (
                require_resident_key(&ccr)?,
                CeremonyState::RegisterSecurityKey(state),
            )
        };
        let ceremony = self
            .begin_ceremony(purpose::REGISTER, Some(&user.user_id), &state, now)
            .await?;
        Ok(CeremonyStart { ceremony, options })
    }

    /// Finishes adding a passkey: verifies the authenticator's answer against the stored
    /// ceremony and the user's policy, stores the credential, audits and notifies.
    pub async fn passkey_register_finish(
        &self,
        user_id: &str,
        ceremony: &str,
        response: &Value,
        name: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<PasskeyView> {
        check_text("name", name, 60)?;
        let response: RegisterPublicKeyCredential =
            serde_json::from_value(response.clone()).map_err(bad_response)?;
        let (row, state) = self.take_ceremony(purpose::REGISTER, ceremony, now).await?;
        if row.user_id.as_deref() != Some(user_id) {
            return Err(CoreError::Forbidden(
                "this request belongs to another session".into(),
            ));
        }
        let user = self.active_user(user_id).await?;
        super::portal::refuse_if_frozen(&user)?;
        let actor = Actor::User(user.user_id.clone());
        let state: CeremonyState = serde_json::from_slice(&state)
            .map_err(|e| CoreError::Internal(format!("ceremony state cannot be read: {e}")))?;
        let stored = self
            .verified_credential(&user, state, &response, now)
            .await?;
        let flags = stored.flags()?;
        let cred_id = match &stored {
            StoredCredential::Passkey(p) => URL_SAFE_NO_PAD.encode::<&[u8]>(p.cred_id().as_ref()),
            StoredCredential::SecurityKey(k) => {
                URL_SAFE_NO_PAD.encode::<&[u8]>(k.cred_id().as_ref())
            }
        };
        let aaguid = match &stored {
            StoredCredential::SecurityKey(k) => attested_aaguid(k).map(|a| a.to_string()),
            StoredCredential::Passkey(_) => None,
        };
        let json = serde_json::to_vec(&stored)
            .map_err(|e| CoreError::Internal(format!("credential cannot be encoded: {e}")))?;
        let row = WebauthnCredentialRow {
            credential_sealed: self
                .keys
                .seal(Purpose::WebauthnCredential, &cred_id, &json)?,
            cred_id: cred_id.clone(),
            org_id: DEFAULT_ORG.into(),
            user_id: user.user_id.clone(),
            name: name.into(),
            kind: stored.kind().into(),
            aaguid: aaguid.clone(),
            backup_eligible: flags.backup_eligible,
            backed_up: flags.backup_state,
            sign_count: i64::from(flags.counter),
            created_ms: now.timestamp_millis(),
            last_used_ms: None,
        };
        let view = PasskeyView::from(&row);
        let event = Event::new(DEFAULT_ORG, now, &actor, "passkey.add", &user.user_id, "ok")
            .detail("cred_id", cred_id.as_str())
            .detail("kind", stored.kind())
            .detail("backup_eligible", flags.backup_eligible)
            .detail_opt("aaguid", aaguid);
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::InsertWebauthnCredential(row))
                    .with(event.into_change()),
            )
            .await
            .map_err(|e| match e {
                StoreError::Duplicate(_) => {
                    CoreError::Conflict("this passkey is already registered".into())
                }
                other => other.into(),
            })?;
        let kind = if view.kind == "passkey" {
            "passkey"
        } else {
            "security key"
        };
        self.notify_user(
            &user,
            "passkey.add",
            &format!("A {kind} was added to your account"),
            &format!("A {kind} named \u{201c}{name}\u{201d} was added to your account."),
            now,
        )
        .await;
        Ok(view)
    }

    /// Verifies a registration answer against its ceremony and the user's policy; refusals
    /// are audited.
    async fn verified_credential(
        &self,
        user: &UserRow,
        state: CeremonyState,
        response: &RegisterPublicKeyCredential,
        now: DateTime<Utc>,
    ) -> CoreResult<StoredCredential> {
        let actor = Actor::User(user.user_id.clone());
        let policy = self.factor_policy(user)?;
        let passkeys = self.passkeys()?;
        let refuse = |reason: String| {
            Event::new(
                DEFAULT_ORG,
                now,
                &actor,
                "passkey.add",
                &user.user_id,
                "deny",
            )
            .detail("reason", reason)
        };
        let stored = match state {
            CeremonyState::RegisterPasskey(state) => {
                if !policy.synced_passkeys {
                    let event = refuse("policy changed: attested security keys required".into());
                    return Err(self
                        .audited_refusal(event, "credential", "this account needs a security key")
                        .await);
                }
                match passkeys
                    .webauthn
                    .finish_passkey_registration(response, &state)
                {
                    Ok(p) => StoredCredential::Passkey(p),
                    Err(e) => {
                        return Err(self
                            .audited_refusal(
                                refuse(e.to_string()),
                                "credential",
                                "the passkey could not be verified",
                            )
                            .await);
                    }
                }
            }
            CeremonyState::RegisterSecurityKey(state) => {
                match passkeys
                    .webauthn
                    .finish_attested_passkey_registration(response, &state)
                {
                    Ok(k) => {
                        let aaguid = attested_aaguid(&k);
                        if !aaguid.is_some_and(|a| policy.aaguids.contains(&a)) {
                            let event = refuse("authenticator model not allowed".into())
                                .detail_opt("aaguid", aaguid.map(|a| a.to_string()));
                            return Err(self
                                .audited_refusal(
                                    event,
                                    "credential",
                                    "this security key model is not allowed",
                                )
                                .await);
                        }
                        StoredCredential::SecurityKey(k)
                    }
                    Err(e) => {
                        return Err(self
                            .audited_refusal(
                                refuse(e.to_string()),
                                "credential",
                                "this security key is not allowed: its attestation or model \
                                 is not on the organisation's list",
                            )
                            .await);
                    }
                }
            }
            CeremonyState::Discoverable(_) | CeremonyState::User(_) => {
                return Err(CoreError::Internal("not a registration ceremony".into()));
            }
        };
        Ok(stored)
    }

    /// Starts a passkey check: usernameless sign-in (`user_id` `None`) or a check of one
    /// user's credentials (step-up, approvals, the hosted prompt).
    pub async fn passkey_auth_start(
        &self,
        purpose: &str,
        user_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> CoreResult<CeremonyStart> {
        let passkeys = self.passkeys()?;
        let (mut options, state) = match user_id {
            None => {
                let (rcr, state) = passkeys
                    .webauthn
                    .start_discoverable_authentication()
                    .map_err(|e| CoreError::Internal(format!("passkey sign-in: {e}")))?;
                let options = serde_json::to_value(&rcr)
                    .map_err(|e| CoreError::Internal(format!("challenge: {e}")))?;
                (options, CeremonyState::Discoverable(state))
            }
            Some(user_id) => {
                let rows = self
                    .store
                    .webauthn_credentials_for_user(DEFAULT_ORG, user_id)
                    .await?;
                let creds = rows
                    .iter()
                    .map(|r| self.open_credential(r).map(|c| c.as_passkey()))
                    .collect::<CoreResult<Vec<_>>>()?;
                if creds.is_empty() {
                    return Err(CoreError::NotFound("passkey for this account".into()));
                }
                let (rcr, state) = passkeys
                    .webauthn
                    .start_passkey_authentication(&creds)
                    .map_err(|e| CoreError::Internal(format!("passkey check: {e}")))?;
                let options = serde_json::to_value(&rcr)
                    .map_err(|e| CoreError::Internal(format!("challenge: {e}")))?;
                (options, CeremonyState::User(state))
            }
        };
        // The page decides how to ask (a button press, not the autofill UI).
        if let Some(o) = options.as_object_mut() {
            o.remove("mediation");
        }
        let ceremony = self.begin_ceremony(purpose, user_id, &state, now).await?;
        Ok(CeremonyStart { ceremony, options })
    }

    fn open_credential(&self, row: &WebauthnCredentialRow) -> CoreResult<StoredCredential> {
        let json = self.keys.open(
            Purpose::WebauthnCredential,
            &row.cred_id,
            &row.credential_sealed,
        )?;
        serde_json::from_slice(&json)
            .map_err(|e| CoreError::Internal(format!("credential cannot be read: {e}")))
    }

    /// Finishes a passkey check started by [`Ward::passkey_auth_start`] with the same purpose.
    /// Returns the user and credential; records the use (counter, backup state) and audits.
    pub async fn passkey_auth_finish(
        &self,
        purpose: &str,
        ceremony: &str,
        response: &Value,
        now: DateTime<Utc>,
    ) -> CoreResult<PasskeyCheck> {
        let response: PublicKeyCredential =
            serde_json::from_value(response.clone()).map_err(bad_response)?;
        let (ceremony_row, state) = self.take_ceremony(purpose, ceremony, now).await?;
        let state: CeremonyState = serde_json::from_slice(&state)
            .map_err(|e| CoreError::Internal(format!("ceremony state cannot be read: {e}")))?;
        let cred_id = URL_SAFE_NO_PAD.encode(response.get_credential_id());
        let refusal = AuthRefusal {
            purpose,
            cred_id: &cred_id,
            now,
        };
        let refuse = |target: &str, reason: &str| refusal.event(target, reason);
        let Some(row) = self.store.webauthn_credential(&cred_id).await? else {
            let event = refuse("-", "unknown credential");
            let reason = "this passkey is not registered with Ward (it may have been removed)";
            return Err(self.audited_refusal(event, "credential", reason).await);
        };
        if ceremony_row
            .user_id
            .as_deref()
            .is_some_and(|u| u != row.user_id)
        {
            return Err(self
                .audited_refusal(
                    refuse(&row.user_id, "credential of another user"),
                    "credential",
                    "this passkey belongs to another account",
                )
                .await);
        }
        let user = match self.active_user(&row.user_id).await {
            Ok(u) => u,
            Err(CoreError::Forbidden(m)) => {
                return Err(self
                    .audited_refusal(refuse(&row.user_id, "disabled"), "credential", &m)
                    .await);
            }
            Err(e) => return Err(e),
        };
        let mut stored = self.open_credential(&row)?;
        let result = self
            .verify_assertion(state, &response, (&row, &stored), &user, &refusal)
            .await?;
        self.check_counter(&row, i64::from(result.counter()), &refusal)
            .await?;
        let set = self.use_credential(&mut stored, &row, &result, purpose, now)?;
        match self.store.commit(set).await {
            Ok(_) => {}
            Err(StoreError::ConditionFailed(_)) => {
                return Err(self
                    .audited_refusal(
                        refuse(&user.user_id, "concurrent use of the same counter"),
                        "credential",
                        "this passkey was used twice at once; try again",
                    )
                    .await);
            }
            Err(e) => return Err(e.into()),
        }
        Ok(PasskeyCheck {
            user,
            cred_id,
            credential_name: row.name,
        })
    }

    /// The changes that record a successful use: the updated credential (counter, backup
    /// state, conditional on the counter read), the login time and the audit event.
    fn use_credential(
        &self,
        stored: &mut StoredCredential,
        row: &WebauthnCredentialRow,
        result: &webauthn_rs::prelude::AuthenticationResult,
        purpose: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<ChangeSet> {
        match stored {
            StoredCredential::Passkey(p) => {
                p.update_credential(result);
            }
            StoredCredential::SecurityKey(k) => {
                k.update_credential(result);
            }
        }
        let json = serde_json::to_vec(stored)
            .map_err(|e| CoreError::Internal(format!("credential cannot be encoded: {e}")))?;
        let event = Event::new(
            DEFAULT_ORG,
            now,
            &Actor::User(row.user_id.clone()),
            "passkey.auth",
            &row.user_id,
            "allow",
        )
        .detail("purpose", purpose)
        .detail("cred_id", row.cred_id.as_str())
        .detail("backed_up", result.backup_state());
        Ok(ChangeSet::new()
            .with(Change::UseWebauthnCredential {
                cred_id: row.cred_id.clone(),
                expected_sign_count: row.sign_count,
                credential_sealed: self.keys.seal(
                    Purpose::WebauthnCredential,
                    &row.cred_id,
                    &json,
                )?,
                sign_count: i64::from(result.counter()),
                backed_up: result.backup_state(),
                used_ms: now.timestamp_millis(),
            })
            .with(Change::RecordAuthSuccess {
                org_id: DEFAULT_ORG.into(),
                user_id: row.user_id.clone(),
                at_ms: now.timestamp_millis(),
            })
            .with(event.into_change()))
    }

    /// Verifies an assertion against its ceremony; requires user verification.
    async fn verify_assertion(
        &self,
        state: CeremonyState,
        response: &PublicKeyCredential,
        (row, stored): (&WebauthnCredentialRow, &StoredCredential),
        user: &UserRow,
        refusal: &AuthRefusal<'_>,
    ) -> CoreResult<webauthn_rs::prelude::AuthenticationResult> {
        let passkeys = self.passkeys()?;
        let refuse = |target: &str, reason: &str| refusal.event(target, reason);
        let result = match state {
            CeremonyState::Discoverable(state) => {
                match passkeys
                    .webauthn
                    .identify_discoverable_authentication(response)
                {
                    Ok((handle, _)) if handle == user_handle(DEFAULT_ORG, &user.user_id) => {}
                    _ => {
                        return Err(self
                            .audited_refusal(
                                refuse(&user.user_id, "user handle mismatch"),
                                "credential",
                                "the passkey's answer does not match its account",
                            )
                            .await);
                    }
                }
                passkeys.webauthn.finish_discoverable_authentication_v2(
                    response,
                    state,
                    stored.as_passkey(),
                )
            }
            CeremonyState::User(state) => passkeys
                .webauthn
                .finish_passkey_authentication(response, &state),
            CeremonyState::RegisterPasskey(_) | CeremonyState::RegisterSecurityKey(_) => {
                return Err(CoreError::Internal("not an authentication ceremony".into()));
            }
        };
        let result = match result {
            Ok(r) if r.user_verified() => r,
            Ok(_) => {
                return Err(self
                    .audited_refusal(
                        refuse(&user.user_id, "user not verified"),
                        "credential",
                        "your authenticator did not verify you (PIN or biometric)",
                    )
                    .await);
            }
            Err(e) => {
                if matches!(e, WebauthnError::CredentialPossibleCompromise) {
                    // webauthn-rs refuses a counter that did not advance before Ward sees the
                    // result, after checking the signature: report it as a possible clone.
                    self.check_counter(row, signed_counter(response), refusal)
                        .await?;
                }
                return Err(self
                    .audited_refusal(
                        refuse(&user.user_id, &e.to_string()),
                        "credential",
                        "the passkey could not be verified",
                    )
                    .await);
            }
        };
        Ok(result)
    }

    /// Refuses (and reports) an assertion whose signature counter did not advance.
    async fn check_counter(
        &self,
        row: &WebauthnCredentialRow,
        presented: i64,
        refusal: &AuthRefusal<'_>,
    ) -> CoreResult<()> {
        if (presented > 0 || row.sign_count > 0) && presented <= row.sign_count {
            let event = refusal
                .event(&row.user_id, "signature counter went backwards")
                .detail("stored_count", row.sign_count)
                .detail("presented_count", presented);
            let error = self
                .audited_refusal(
                    event,
                    "credential",
                    "this passkey may have been copied; it was refused and your \
                     administrators were alerted",
                )
                .await;
            self.raise(Alert::CredentialCloneSuspected {
                org_id: DEFAULT_ORG.into(),
                user_id: row.user_id.clone(),
                cred_id: row.cred_id.clone(),
                stored_count: row.sign_count,
                presented_count: presented,
                at_ms: refusal.now.timestamp_millis(),
            })
            .await;
            return Err(error);
        }
        Ok(())
    }

    /// Sends an alert to every sink.
    pub(super) async fn raise(&self, alert: Alert) {
        for sink in &self.alerts {
            sink.alert(&alert).await;
        }
    }
}

/// The facts every refused assertion is audited with.
struct AuthRefusal<'a> {
    purpose: &'a str,
    cred_id: &'a str,
    now: DateTime<Utc>,
}

impl AuthRefusal<'_> {
    fn event(&self, target: &str, reason: &str) -> Event {
        Event::new(
            DEFAULT_ORG,
            self.now,
            &Actor::Anonymous,
            "passkey.auth",
            target,
            "deny",
        )
        .detail("purpose", self.purpose)
        .detail("cred_id", self.cred_id)
        .detail("reason", reason)
    }
}

/// The signature counter of an assertion: authenticator data is the RP id hash (32 bytes), the
/// flags (1), then the counter (4, big-endian).
fn signed_counter(response: &PublicKeyCredential) -> i64 {
    response
        .response
        .authenticator_data
        .get(33..37)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |b| i64::from(u32::from_be_bytes(b)))
}

fn attested_aaguid(key: &AttestedPasskey) -> Option<Uuid> {
    match &key.attestation().metadata {
        AttestationMetadata::Packed { aaguid } | AttestationMetadata::Tpm { aaguid, .. } => {
            Some(*aaguid)
        }
        _ => None,
    }
}
