//! Evidence the person recovering presents: a saved recovery code, and a one-time code sent to
//! the account's verified e-mail address. A phantom case checks nothing and fails the same way.
//! Each submission first replaces the case's handle: the submitting browser keeps the case,
//! any other holder of the old handle loses it.

use crate::service::Recovery;
use chrono::{DateTime, Utc};
use rand::RngExt;
use ward_store::{CeremonyRow, Change, ChangeSet, StoreError};
use zeroize::Zeroizing;

use super::{Loaded, Submission, Ward};
use crate::crypto::token_hash;
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor as AuditActor, OrgId, UserId};
use crate::recovery::{CaseState, Category, Command};

const EMAIL_PURPOSE: &str = "recovery-email";

/// What the person recovering learns about a submission: accepted, or the same refusal
/// whatever went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    Accepted,
    Refused,
}

impl Ward {
    async fn collecting(&self, handle: &str) -> CoreResult<Loaded> {
        let loaded = self.case_by_handle(handle).await?;
        // A phantom past the failure limit answers like the real case the limit denies.
        let exhausted =
            loaded.view.phantom && loaded.view.rejections > self.recovery.policy.max_rejections;
        if loaded.view.state != CaseState::Collecting || exhausted {
            return Err(CoreError::Conflict(
                "this recovery is not collecting evidence".into(),
            ));
        }
        Ok(loaded)
    }

    /// The collecting case of `handle`, which this submission takes over: its new handle.
    async fn take_over(
        &self,
        handle: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<(Loaded, Zeroizing<String>)> {
        let loaded = self.collecting(handle).await?;
        let new = self.rotate_handle(&loaded, handle, now).await?;
        Ok((loaded, new))
    }

    async fn record(
        &self,
        loaded: Loaded,
        category: Category,
        ok: Option<String>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Submitted> {
        let command = match &ok {
            Some(digest) => Command::AddEvidence {
                category,
                verifier: category.code().into(),
                verdict_digest: digest.clone(),
                attended: false,
            },
            None => Command::RejectEvidence {
                category,
                reason: reason.into(),
            },
        };
        match self
            .run_case(loaded, command, &AuditActor::Anonymous, now)
            .await?
        {
            Ok(_) if ok.is_some() => Ok(Submitted::Accepted),
            _ => Ok(Submitted::Refused),
        }
    }
}

impl Recovery<'_> {
    /// Checks a saved recovery code (used up when it matches).
    pub async fn submit_code(
        self,
        handle: &str,
        code: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Submission> {
        // Every submission takes a place in the Argon2 pool first, a phantom's too: when the
        // pool is full, real and unknown accounts are refused alike, and nobody's case handle
        // is replaced by a submission that was not checked.
        let ticket = self.argon2.admit()?;
        let (loaded, handle) = self.take_over(handle, now).await?;
        let org = &OrgId::new(loaded.row.org_id.clone());
        let matched = match (&loaded.row.user_id, loaded.view.phantom) {
            (Some(user_id), false) => {
                self.use_recovery_code_with(org, ticket, &UserId::new(user_id.clone()), code, now)
                    .await?
            }
            _ => false,
        };
        let digest = matched.then(|| token_hash(&format!("recovery-code:{}", loaded.row.case_id)));
        let outcome = self
            .record(
                loaded,
                Category::RecoveryCode,
                digest,
                "wrong or used recovery code",
                now,
            )
            .await?;
        Ok(Submission { outcome, handle })
    }

    /// Sends a one-time code to the account's verified e-mail address. Answers the same for
    /// phantom cases and accounts without an address (nothing is sent then).
    pub async fn send_email(self, handle: &str, now: DateTime<Utc>) -> CoreResult<()> {
        let Some(mailer) = &self.mailer else {
            return Err(CoreError::Forbidden(
                "e-mail codes are not available: no mail server is configured".into(),
            ));
        };
        let loaded = self.collecting(handle).await?;
        let org = &OrgId::new(loaded.row.org_id.clone());
        let user = match &loaded.row.user_id {
            Some(id) if !loaded.view.phantom => self.store.user_by_id(org.as_str(), id).await?,
            _ => None,
        };
        let code = format!("{:08}", rand::rng().random_range(0..100_000_000u32));
        let Some((user, email)) = user.and_then(|u| u.email.clone().map(|e| (u, e))) else {
            return Ok(());
        };
        let ttl = self.recovery.email_code_ttl;
        self.store
            .commit(ChangeSet::new().with(Change::InsertCeremony(CeremonyRow {
                ceremony_hash: token_hash(&format!("{}:{code}", loaded.row.case_id)),
                org_id: org.to_string(),
                user_id: Some(user.user_id.clone()),
                purpose: EMAIL_PURPOSE.into(),
                state_sealed: String::new(),
                created_ms: now.timestamp_millis(),
                expires_ms: (now + ttl).timestamp_millis(),
            })))
            .await?;
        let body = format!(
            "Your account recovery code is {code}\n\nIt is valid for {} minutes. Enter it only on \
             the recovery page you opened yourself. Nobody from the helpdesk or IT will ever ask \
             you for it.",
            ttl.num_minutes()
        );
        // Sent in the background: how long the mail server takes must not show in the answer.
        let mailer = std::sync::Arc::clone(mailer);
        let user_id = user.user_id.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer
                .send(&email, "Your account recovery code", &body)
                .await
            {
                tracing::warn!(%user_id, error = %e, "recovery code e-mail failed");
            }
        });
        Ok(())
    }

    /// Checks an e-mailed code (single use, 30 minutes, bound to this case).
    pub async fn submit_email_code(
        self,
        handle: &str,
        code: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Submission> {
        let (loaded, handle) = self.take_over(handle, now).await?;
        let code: String = code.chars().filter(char::is_ascii_digit).collect();
        let matched = if loaded.view.phantom || code.len() != 8 {
            false
        } else {
            match self
                .store
                .commit(ChangeSet::new().with(Change::ConsumeCeremony {
                    ceremony_hash: token_hash(&format!("{}:{code}", loaded.row.case_id)),
                    purpose: EMAIL_PURPOSE.into(),
                    now_ms: now.timestamp_millis(),
                }))
                .await
            {
                Ok(_) => true,
                Err(StoreError::ConditionFailed(_)) => false,
                Err(e) => return Err(e.into()),
            }
        };
        let digest = matched.then(|| token_hash(&format!("email-code:{}", loaded.row.case_id)));
        let outcome = self
            .record(
                loaded,
                Category::EmailCode,
                digest,
                "wrong or expired e-mail code",
                now,
            )
            .await?;
        Ok(Submission { outcome, handle })
    }
}
