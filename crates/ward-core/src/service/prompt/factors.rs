//! The prompt's factors: a passkey check, Verified Push, a code from an authenticator app, a
//! passkey set up inside the prompt, and cancelling.

use crate::service::Prompt;
use chrono::{DateTime, Utc};
use serde_json::Value;
use ward_store::{CeremonyRow, Change, ChangeSet, StoreError, UserRow};

use super::{
    Completion, Decision, Offer, PASSKEY_PURPOSE, PROMPT_TTL, PUSH_DONE_PURPOSE, PromptMethod,
    PromptPasscode, PromptPush, PromptRequest, invalid,
};
use crate::audit::{Action, Event};
use crate::crypto::token_hash;
use crate::error::{CoreError, CoreResult};
use crate::gate::{Door, Refusal};
use crate::model::{Actor, OrgId, UserId, UserRef};
use crate::service::auth::push::PushDoor;
use crate::service::{AuthStatus, CeremonyStart, PushOutcome, PushRequest, TxResult, Ward};

impl Ward {
    async fn prompt_enrollable_user(
        &self,
        request: &PromptRequest,
        now: DateTime<Utc>,
    ) -> CoreResult<UserRow> {
        match self.prompt_offer(request, now).await? {
            Offer::Enrol(user) => Ok(user),
            Offer::Choose(_) | Offer::Deny { .. } => Err(CoreError::Forbidden(
                "this account already has a sign-in method, or may not enrol here".into(),
            )),
        }
    }
}

impl Prompt<'_> {
    /// The user cancelled: back to the application with `error=access_denied`.
    pub async fn cancel(self, context: &str, now: DateTime<Utc>) -> CoreResult<String> {
        let request = self.prompt().open(context, now)?;
        let org = self.prompt_org(&request, now).await?;
        let event = Event::new(
            org.as_str(),
            now,
            &Actor::Integration(request.client_id.clone()),
            Action::PromptCancel,
            &request.username,
            "deny",
        )
        .detail_opt("ip", request.user_ip.clone());
        self.store
            .commit(ChangeSet::new().with(event.into_change()))
            .await?;
        let mut url = url::Url::parse(&request.redirect_uri)
            .map_err(|_| invalid("redirect_uri is not an absolute URL"))?;
        url.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "The user cancelled the sign-in.")
            .append_pair("state", &request.state);
        Ok(url.into())
    }

    /// Starts a passkey check for the prompt's user.
    pub async fn passkey_start(
        self,
        context: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<CeremonyStart> {
        let request = self.prompt().open(context, now)?;
        let user = self.prompt_user(&request, now).await?;
        let org = OrgId::new(user.org_id.clone());
        self.portal()
            .passkey_auth_start(&org, PASSKEY_PURPOSE, Some(&user.user_id), now)
            .await
    }

    /// Finishes the passkey check and completes the prompt.
    pub async fn passkey_finish(
        self,
        context: &str,
        ceremony: &str,
        response: &Value,
        now: DateTime<Utc>,
    ) -> CoreResult<Completion> {
        let request = self.prompt().open(context, now)?;
        let user = self.prompt_user(&request, now).await?;
        let check = self
            .portal()
            .passkey_auth_finish(
                &OrgId::new(user.org_id.clone()),
                PASSKEY_PURPOSE,
                ceremony,
                response,
                now,
            )
            .await?;
        if check.user.user_id != user.user_id {
            return Err(CoreError::Forbidden(
                "this passkey belongs to another account".into(),
            ));
        }
        let decision = Ward::allowed(
            PromptMethod::Passkey,
            "user_approved",
            Some(check.credential_name),
            crate::ids::txid(),
        );
        self.complete(&request, Some(&user), decision, now).await
    }

    /// Sends a Verified Push to the prompt's user: the page shows the number.
    pub async fn push_start(self, context: &str, now: DateTime<Utc>) -> CoreResult<PromptPush> {
        let request = self.prompt().open(context, now)?;
        let ctx = self.prompt_ctx(&request, now).await?;
        let door = PushDoor {
            allowed: ctx.integration.prompt_policy.allowed(),
            policy: "prompt_policy",
            refusal: || CoreError::Forbidden("push is not offered by this application".into()),
        };
        let push = PushRequest {
            title: Some(request.app_name.clone()),
            display_username: Some(request.username.clone()),
            details: Vec::new(),
            device: None,
            device_index: None,
            hostname: None,
            number_required: true,
            want_txid: true,
        };
        match self
            .auth()
            .start_push(
                &ctx,
                &door,
                &UserRef::Name(request.username.clone()),
                &push,
                now,
            )
            .await?
        {
            PushOutcome::Started(started) => Ok(PromptPush::Started {
                txid: started.txid,
                number: started.number.unwrap_or_default(),
            }),
            PushOutcome::Decided(decision) => {
                let user = self
                    .store
                    .user_by_name(ctx.integration.org_id.as_str(), &request.username)
                    .await?;
                let done = self
                    .prompt_deny(
                        &request,
                        user.as_ref(),
                        decision.status.as_str(),
                        decision.status_msg,
                        now,
                    )
                    .await?;
                Ok(PromptPush::Done(done))
            }
        }
    }

    /// Polls a push started from the prompt; completes it once answered.
    pub async fn push_status(
        self,
        context: &str,
        txid: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Option<Completion>> {
        let request = self.prompt().open(context, now)?;
        let ctx = self.prompt_ctx(&request, now).await?;
        let user = self.prompt_user(&request, now).await?;
        let tx = self
            .store
            .auth_tx(ctx.integration.org_id.as_str(), txid)
            .await?
            .filter(|t| t.ikey == request.client_id && t.user_id.as_deref() == Some(&user.user_id))
            .ok_or_else(|| CoreError::NotFound("push".into()))?;
        let view = self.auth().status(&ctx, &tx.txid, now).await?;
        if view.result == TxResult::Waiting {
            return Ok(None);
        }
        // Each push completes its prompt once, whichever node is polled.
        let marker = CeremonyRow {
            ceremony_hash: token_hash(&format!("push-done:{txid}")),
            org_id: ctx.integration.org_id.to_string(),
            user_id: Some(user.user_id.clone()),
            purpose: PUSH_DONE_PURPOSE.into(),
            state_sealed: String::new(),
            created_ms: now.timestamp_millis(),
            expires_ms: (now + PROMPT_TTL).timestamp_millis(),
        };
        match self
            .store
            .commit(ChangeSet::new().with(Change::InsertCeremony(marker)))
            .await
        {
            Ok(_) => {}
            Err(StoreError::Duplicate(_)) => {
                return Err(CoreError::Conflict(
                    "this push already completed the sign-in".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let push = self
            .store
            .push(ctx.integration.org_id.as_str(), txid)
            .await?;
        let device = push.map(|p| p.device_id);
        let decision = if view.result == TxResult::Allow {
            Ward::allowed(PromptMethod::Push, "user_approved", device, txid.to_owned())
        } else {
            Decision {
                allowed: false,
                status: view.status.as_str().into(),
                status_msg: view.status_msg.clone(),
                factor: Some(PromptMethod::Push.as_str().into()),
                reason: view.status.as_str().into(),
                device,
                txid: txid.to_owned(),
            }
        };
        self.complete(&request, Some(&user), decision, now)
            .await
            .map(Some)
    }

    /// Checks a code from an authenticator app typed into the prompt.
    pub async fn passcode(
        self,
        context: &str,
        passcode: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<PromptPasscode> {
        let request = self.prompt().open(context, now)?;
        let ctx = self.prompt_ctx(&request, now).await?;
        let passcode = passcode.trim().replace(' ', "");
        let (decision, refusal) = self
            .auth_passcode_refusal_at(
                &ctx,
                Door::Prompt,
                &UserRef::Name(request.username.clone()),
                &passcode,
                false,
                now,
            )
            .await?;
        if refusal == Some(Refusal::NotAllowed) {
            return Err(CoreError::Forbidden(
                "codes are not accepted by this application".into(),
            ));
        }
        match decision.status {
            AuthStatus::Allow => {
                let user = self.prompt_user(&request, now).await?;
                let d = Ward::allowed(
                    PromptMethod::Passcode,
                    "valid_passcode",
                    None,
                    crate::ids::txid(),
                );
                Ok(PromptPasscode::Done(
                    self.complete(&request, Some(&user), d, now).await?,
                ))
            }
            AuthStatus::LockedOut => {
                let user = self.prompt_user(&request, now).await?;
                Ok(PromptPasscode::Done(
                    self.prompt_deny(
                        &request,
                        Some(&user),
                        "locked_out",
                        Refusal::LockedOut.as_str(),
                        now,
                    )
                    .await?,
                ))
            }
            _ => Ok(PromptPasscode::Wrong),
        }
    }

    /// Starts setting up a passkey inside the prompt, for a user with no factor at all where
    /// the application's policy allows it.
    pub async fn enrol_start(self, context: &str, now: DateTime<Utc>) -> CoreResult<CeremonyStart> {
        let request = self.prompt().open(context, now)?;
        let user = self.prompt_enrollable_user(&request, now).await?;
        self.portal()
            .passkey_register_start(&OrgId::new(user.org_id.clone()), &UserId::of(&user), now)
            .await
    }

    /// Finishes the set-up and completes the prompt with the new passkey.
    pub async fn enrol_finish(
        self,
        context: &str,
        ceremony: &str,
        response: &Value,
        now: DateTime<Utc>,
    ) -> CoreResult<Completion> {
        let request = self.prompt().open(context, now)?;
        let user = self.prompt_enrollable_user(&request, now).await?;
        let view = self
            .portal()
            .passkey_register_finish(
                &OrgId::new(user.org_id.clone()),
                &UserId::of(&user),
                ceremony,
                response,
                "Passkey",
                now,
            )
            .await?;
        let decision = Ward::allowed(
            PromptMethod::Passkey,
            "new_enrollment",
            Some(view.name),
            crate::ids::txid(),
        );
        self.complete(&request, Some(&user), decision, now).await
    }
}
