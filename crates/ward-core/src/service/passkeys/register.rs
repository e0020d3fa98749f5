//! Adding a passkey, or an attested security key where the user's policy requires one.

use crate::service::Portal;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::Value;
use ward_store::{Change, ChangeSet, StoreError, UserRow, WebauthnCredentialRow};
use webauthn_rs::prelude::{
    AttestationMetadata, AttestedPasskey, RegisterPublicKeyCredential, Uuid,
};

use super::{
    CeremonyStart, CeremonyState, PasskeyView, StoredCredential, bad_response, ca_list, purpose,
    require_resident_key, user_handle,
};
use crate::audit::{Action, Event};
use crate::crypto::Purpose;
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor, OrgId, UserId};
use crate::service::portal::refuse_if_frozen;
use crate::service::{Ward, check_text};

impl Ward {
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
                &user.org_id,
                now,
                &actor,
                Action::PasskeyAdd,
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
}

impl Portal<'_> {
    /// Starts adding a passkey (or, where policy requires, an attested security key) to a user.
    pub async fn passkey_register_start(
        self,
        org: &OrgId,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> CoreResult<CeremonyStart> {
        let passkeys = self.passkeys()?;
        let user = self.active_user(org, user_id).await?;
        refuse_if_frozen(&user)?;
        let existing = self
            .store
            .webauthn_credentials_for_user(org.as_str(), &user.user_id)
            .await?;
        let exclude = existing
            .iter()
            .filter_map(|r| URL_SAFE_NO_PAD.decode(&r.cred_id).ok())
            .collect::<Vec<_>>();
        let handle = user_handle(org.as_str(), &user.user_id);
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
            .begin_ceremony(org, purpose::REGISTER, Some(&user.user_id), &state, now)
            .await?;
        Ok(CeremonyStart { ceremony, options })
    }

    /// Finishes adding a passkey: verifies the authenticator's answer against the stored
    /// ceremony and the user's policy, stores the credential, audits and notifies.
    pub async fn passkey_register_finish(
        self,
        org: &OrgId,
        user_id: &UserId,
        ceremony: &str,
        response: &Value,
        name: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<PasskeyView> {
        check_text("name", name, 60)?;
        let response: RegisterPublicKeyCredential =
            serde_json::from_value(response.clone()).map_err(bad_response)?;
        let (row, state) = self
            .take_ceremony(org, purpose::REGISTER, ceremony, now)
            .await?;
        if row.user_id.as_deref() != Some(user_id.as_str()) {
            return Err(CoreError::Forbidden(
                "this request belongs to another session".into(),
            ));
        }
        let user = self.active_user(org, user_id).await?;
        refuse_if_frozen(&user)?;
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
            org_id: org.to_string(),
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
        let event = Event::new(
            org.as_str(),
            now,
            &actor,
            Action::PasskeyAdd,
            &user.user_id,
            "ok",
        )
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
}

fn attested_aaguid(key: &AttestedPasskey) -> Option<Uuid> {
    match &key.attestation().metadata {
        AttestationMetadata::Packed { aaguid } | AttestationMetadata::Tpm { aaguid, .. } => {
            Some(*aaguid)
        }
        _ => None,
    }
}
