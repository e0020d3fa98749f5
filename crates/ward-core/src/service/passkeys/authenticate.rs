//! Checking a passkey: usernameless sign-in or a check of one user's credentials, with the
//! signature counter and backup state recorded after each use.

use crate::service::Portal;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::Value;
use ward_store::{Change, ChangeSet, StoreError, UserRow, WebauthnCredentialRow};
use webauthn_rs::prelude::{PublicKeyCredential, WebauthnError};

use super::{
    CeremonyStart, CeremonyState, DISABLED, LOCKED, PasskeyCheck, StoredCredential, bad_response,
    user_handle,
};
use crate::audit::{Action, Event};
use crate::crypto::Purpose;
use crate::error::{CoreError, CoreResult};
use crate::gate::{self, Allowed, Method, OrgState, Refusal, Subject};
use crate::model::{Actor, OrgId};
use crate::notify::Alert;
use crate::service::Ward;

impl Ward {
    fn open_credential(&self, row: &WebauthnCredentialRow) -> CoreResult<StoredCredential> {
        let json = self.keys.open(
            Purpose::WebauthnCredential,
            &row.cred_id,
            &row.credential_sealed,
        )?;
        serde_json::from_slice(&json)
            .map_err(|e| CoreError::Internal(format!("credential cannot be read: {e}")))
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
            &row.org_id,
            now,
            &Actor::User(row.user_id.clone()),
            Action::PasskeyAuth,
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
                org_id: row.org_id.clone(),
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
                    Ok((handle, _)) if handle == user_handle(&user.org_id, &user.user_id) => {}
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
                org_id: row.org_id.clone(),
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
}

impl Portal<'_> {
    /// Starts a passkey check: usernameless sign-in (`user_id` `None`) or a check of one
    /// user's credentials (step-up, approvals, the hosted prompt).
    pub async fn passkey_auth_start(
        self,
        org: &OrgId,
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
                    .webauthn_credentials_for_user(org.as_str(), user_id)
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
        let ceremony = self
            .begin_ceremony(org, purpose, user_id, &state, now)
            .await?;
        Ok(CeremonyStart { ceremony, options })
    }

    /// Finishes a passkey check started by [`Portal::passkey_auth_start`] with the same purpose.
    /// Returns the user and credential; records the use (counter, backup state) and audits.
    pub async fn passkey_auth_finish(
        self,
        org: &OrgId,
        purpose: &str,
        ceremony: &str,
        response: &Value,
        now: DateTime<Utc>,
    ) -> CoreResult<PasskeyCheck> {
        let response: PublicKeyCredential =
            serde_json::from_value(response.clone()).map_err(bad_response)?;
        let (ceremony_row, state) = self.take_ceremony(org, purpose, ceremony, now).await?;
        let state: CeremonyState = serde_json::from_slice(&state)
            .map_err(|e| CoreError::Internal(format!("ceremony state cannot be read: {e}")))?;
        let cred_id = URL_SAFE_NO_PAD.encode(response.get_credential_id());
        let refusal = AuthRefusal {
            org,
            purpose,
            cred_id: &cred_id,
            now,
        };
        let refuse = |target: &str, reason: &str| refusal.event(target, reason);
        // A credential of another organisation is, to this one, not registered.
        let found = self.store.webauthn_credential(&cred_id).await?;
        let Some(row) = found.filter(|r| r.org_id == org.as_str()) else {
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
        let user = self
            .store
            .user_by_id(org.as_str(), &row.user_id)
            .await?
            .ok_or_else(|| CoreError::NotFound("user".into()))?;
        let org_state = self.org_state(org.as_str(), now).await?;
        if let Err(refusal) = admit_passkey(org_state, &user, now) {
            let message = refusal_message(refusal);
            return Err(self
                .audited_refusal(
                    refuse(&row.user_id, refusal.as_str()),
                    "credential",
                    message,
                )
                .await);
        }
        let mut stored = self.open_credential(&row)?;
        let result = self
            .verify_assertion(state, &response, (&row, &stored), &user, &refusal)
            .await?;
        self.check_counter(&row, i64::from(result.counter()), &refusal)
            .await?;
        let set = self.use_credential(&mut stored, &row, &result, purpose, now)?;
        match self.store.commit(set).await {
            Ok(_) => {}
            // The counter moved (the same passkey used twice at once), or a concurrent
            // request locked the account: the store decided; say which.
            Err(StoreError::ConditionFailed(_)) => {
                let now_user = self.store.user_by_id(org.as_str(), &user.user_id).await?;
                let (reason, message) = match now_user.map(|u| admit_passkey(org_state, &u, now)) {
                    Some(Err(refusal)) => (refusal.as_str(), refusal_message(refusal)),
                    _ => (
                        "concurrent use of the same counter",
                        "this passkey was used twice at once; try again",
                    ),
                };
                return Err(self
                    .audited_refusal(refuse(&user.user_id, reason), "credential", message)
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
}

/// The facts every refused assertion is audited with.
struct AuthRefusal<'a> {
    org: &'a OrgId,
    purpose: &'a str,
    cred_id: &'a str,
    now: DateTime<Utc>,
}

impl AuthRefusal<'_> {
    fn event(&self, target: &str, reason: &str) -> Event {
        Event::new(
            self.org.as_str(),
            self.now,
            &Actor::Anonymous,
            Action::PasskeyAuth,
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

/// The fixed sentence for a gate refusal of a passkey check.
fn refusal_message(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::LockedOut => LOCKED,
        Refusal::OrgDisabled
        | Refusal::UnknownUser
        | Refusal::Disabled
        | Refusal::NotAllowed
        | Refusal::PushMuted
        | Refusal::PushStorm => DISABLED,
    }
}

/// The gate for a passkey check: the account as read now.
fn admit_passkey(org: OrgState, user: &UserRow, now: DateTime<Utc>) -> Result<(), Refusal> {
    let subject = Subject::of(user).map_err(|_| Refusal::Disabled)?;
    gate::admit(
        org,
        Some(&subject),
        Method::Passkey,
        Allowed::ALL,
        now.timestamp_millis(),
    )
}
