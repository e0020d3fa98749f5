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

mod authenticate;
mod ceremony;
mod register;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use ward_store::{UserRow, WebauthnCredentialRow};
use webauthn_rs::prelude::{
    AttestationCaList, AttestationCaListBuilder, AttestedPasskey, AttestedPasskeyRegistration,
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, Uuid, Webauthn, WebauthnBuilder,
};

use super::Ward;
use crate::error::{CoreError, CoreResult};
use crate::model::{OrgId, UserId};
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

    /// The account of `user_id`, refused when it is disabled (for factor changes).
    pub(super) async fn active_user(&self, org: &OrgId, user_id: &UserId) -> CoreResult<UserRow> {
        let user = self
            .store
            .user_by_id(org.as_str(), user_id.as_str())
            .await?
            .ok_or_else(|| CoreError::NotFound("user".into()))?;
        if user.status.parse::<crate::model::UserStatus>()? == crate::model::UserStatus::Disabled {
            return Err(CoreError::Forbidden(DISABLED.into()));
        }
        Ok(user)
    }

    /// Sends an alert to every sink.
    pub(super) async fn raise(&self, alert: Alert) {
        for sink in &self.alerts {
            sink.alert(&alert).await;
        }
    }
}

/// What a disabled account's owner is told.
pub(super) const DISABLED: &str = "this account is disabled";

/// What the owner of a locked account is told.
pub(super) const LOCKED: &str =
    "this account is locked after too many failed sign-in attempts; try again later";
