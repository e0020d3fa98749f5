//! The end of a recovery: a one-time token (in the case's own browser session) that only
//! binds a new passkey; the new passkey must sign in once; then the old factors are revoked,
//! every session ends, recovery codes are renewed and the account enters probation.
//!
//! # Security
//! A phantom case never gets here, but it must fail each of these calls exactly like a real
//! case in the same stage: any case not at the step asked for gets the same fixed refusal
//! ([`not_now`]), checked before anything else, and refusals of the case machine are fixed
//! sentences too.

use crate::service::Recovery;
use chrono::{DateTime, Utc};
use ward_store::{Change, ChangeSet};
use zeroize::Zeroizing;

use super::{Loaded, Ward, not_now, refusal_error};
use crate::crypto::{constant_time_eq, new_token, token_hash};
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor as AuditActor, OrgId, UserId};
use crate::recovery::{Actor, CaseState, Command};
use crate::service::CeremonyStart;

fn confirm_purpose(case_id: &str) -> String {
    format!("recovery-confirm:{case_id}")
}

impl Ward {
    /// The case's user, when the case is real and at `stage`; otherwise the refusal every case
    /// not at that step gets.
    fn case_owner(loaded: &Loaded, stage: fn(CaseState) -> bool) -> CoreResult<String> {
        match (&loaded.row.user_id, loaded.view.phantom) {
            (Some(id), false) if stage(loaded.view.state) => Ok(id.clone()),
            _ => Err(not_now()),
        }
    }

    async fn with_token(
        &self,
        handle: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<(Loaded, String)> {
        let loaded = self.case_by_handle(handle).await?;
        let user_id = Ward::case_owner(&loaded, |s| matches!(s, CaseState::TokenIssued { .. }))?;
        let CaseState::TokenIssued { expires_ms } = loaded.view.state else {
            return Err(not_now());
        };
        let ok = loaded
            .view
            .token_hash
            .as_deref()
            .is_some_and(|h| constant_time_eq(h, &token_hash(token)));
        if !ok || expires_ms <= now.timestamp_millis() {
            return Err(CoreError::Forbidden(
                "the enrolment token is not valid".into(),
            ));
        }
        Ok((loaded, user_id))
    }
}

impl Recovery<'_> {
    /// Issues the enrolment token to the case's browser (ready cases only).
    pub async fn issue_token(
        self,
        handle: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Zeroizing<String>> {
        let loaded = self.case_by_handle(handle).await?;
        // Cooling may have just ended, or a token lapsed: the machine decides, after time passes.
        let user_id = Ward::case_owner(&loaded, |s| {
            matches!(
                s,
                CaseState::Cooling { .. } | CaseState::ReadyToIssue | CaseState::TokenIssued { .. }
            )
        })?;
        let token = Zeroizing::new(new_token());
        let command = Command::IssueToken {
            by: Actor::User,
            token_hash: token_hash(&token),
            expires_ms: now.timestamp_millis() + self.recovery.policy.token_ttl_ms,
        };
        match self
            .run_case(loaded, command, &AuditActor::User(user_id), now)
            .await?
        {
            Ok(_) => Ok(token),
            Err(r) => Err(refusal_error(&r)),
        }
    }

    /// Starts the passkey registration the token allows (phishing-resistant only).
    pub async fn enrol_start(
        self,
        handle: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<CeremonyStart> {
        let (loaded, user_id) = self.with_token(handle, token, now).await?;
        let org = &OrgId::new(loaded.row.org_id.clone());
        self.portal()
            .passkey_register_start(org, &UserId::new(user_id.clone()), now)
            .await
    }

    /// Binds the new passkey to the account (the token is used up).
    pub async fn enrol_finish(
        self,
        handle: &str,
        token: &str,
        ceremony: &str,
        response: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let (loaded, user_id) = self.with_token(handle, token, now).await?;
        let org = &OrgId::new(loaded.row.org_id.clone());
        let view = self
            .portal()
            .passkey_register_finish(
                org,
                &UserId::new(user_id.clone()),
                ceremony,
                response,
                "Passkey (account recovery)",
                now,
            )
            .await?;
        let command = Command::BindAuthenticator { cred_id: view.id };
        match self
            .run_case(loaded, command, &AuditActor::User(user_id), now)
            .await?
        {
            Ok(_) => Ok(()),
            Err(r) => Err(refusal_error(&r)),
        }
    }

    /// Starts the first sign-in with the new passkey.
    pub async fn confirm_start(
        self,
        handle: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<CeremonyStart> {
        let loaded = self.case_by_handle(handle).await?;
        let org = &OrgId::new(loaded.row.org_id.clone());
        let user_id = Ward::case_owner(&loaded, |s| s == CaseState::Bound)?;
        self.portal()
            .passkey_auth_start(
                org,
                &confirm_purpose(&loaded.row.case_id),
                Some(&user_id),
                now,
            )
            .await
    }

    /// The new passkey signed in: revoke every old factor, end every session, renew recovery
    /// codes (returned once), start probation, complete the case.
    pub async fn confirm_finish(
        self,
        handle: &str,
        ceremony: &str,
        response: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> CoreResult<Vec<Zeroizing<String>>> {
        let loaded = self.case_by_handle(handle).await?;
        let org = &OrgId::new(loaded.row.org_id.clone());
        let user_id = Ward::case_owner(&loaded, |s| s == CaseState::Bound)?;
        let check = self
            .portal()
            .passkey_auth_finish(
                org,
                &confirm_purpose(&loaded.row.case_id),
                ceremony,
                response,
                now,
            )
            .await?;
        if Some(&check.cred_id) != loaded.view.bound_cred_id.as_ref()
            || check.user.user_id != user_id
        {
            return Err(CoreError::Forbidden(
                "sign in with the passkey you just set up".into(),
            ));
        }
        let (codes, new_codes) = self
            .new_recovery_code_set(org, &UserId::new(user_id.clone()), now)
            .await?;
        let event = crate::audit::Event::new(
            org.as_str(),
            now,
            &AuditActor::User(user_id.clone()),
            crate::audit::Action::RecoveryRevokeFactors,
            &user_id,
            "ok",
        )
        .detail("case_id", loaded.row.case_id.as_str())
        .detail("kept", check.cred_id.as_str());
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::RevokeFactors {
                        org_id: org.to_string(),
                        user_id: user_id.clone(),
                        keep_cred_id: Some(check.cred_id.clone()),
                    })
                    .with(new_codes)
                    .with(Change::DeleteUserSessions {
                        org_id: org.to_string(),
                        user_id: user_id.clone(),
                    })
                    .with(Change::SetRecovered {
                        org_id: org.to_string(),
                        user_id: user_id.clone(),
                        at_ms: now.timestamp_millis(),
                        probation_until_ms: (now + self.recovery.probation).timestamp_millis(),
                    })
                    .with(event.into_change()),
            )
            .await?;
        match self
            .run_case(loaded, Command::Complete, &AuditActor::User(user_id), now)
            .await?
        {
            Ok(_) => Ok(codes),
            Err(r) => Err(refusal_error(&r)),
        }
    }
}
