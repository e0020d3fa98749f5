//! Administration: integrations, users and factor enrolment. Every change is audited in the
//! same change set.

pub(super) mod orgs;
mod roles;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ward_store::{Change, ChangeSet, IntegrationRow, TotpRow, UserRow};
use zeroize::Zeroizing;

use crate::audit::{Action, Event};
use crate::crypto::Purpose;
use crate::error::{CoreError, CoreResult};
use crate::ids;
use crate::model::{
    Actor, Integration, IntegrationId, IntegrationKind, OrgId, TotpAuthenticator, User, UserStatus,
};
use crate::policy::ApiPushMode;
use crate::service::cache::IntegrationCredentials;
use crate::service::{Admin, Auth, check_text};
use crate::totp::{self, Algorithm, Totp};

/// A new TOTP authenticator and the URI to load into an app (shown once).
#[derive(Debug)]
pub struct TotpEnrolment {
    pub authenticator: TotpAuthenticator,
    pub otpauth_uri: Zeroizing<String>,
}

impl Admin<'_> {
    /// Creates an integration; returns it with its secret key, which is shown once.
    pub async fn create_integration(
        self,
        org: &OrgId,
        actor: &Actor,
        name: &str,
        kind: IntegrationKind,
        push_mode: Option<ApiPushMode>,
        now: DateTime<Utc>,
    ) -> CoreResult<(Integration, Zeroizing<String>)> {
        check_text("name", name, 100)?;
        let ikey = ids::integration_key();
        let skey = Zeroizing::new(ids::integration_secret());
        let row = IntegrationRow {
            org_id: org.to_string(),
            ikey: ikey.clone(),
            name: name.into(),
            kind: kind.as_str().into(),
            skey_sealed: self
                .keys
                .seal(Purpose::IntegrationSecret, &ikey, skey.as_bytes())?,
            created_ms: now.timestamp_millis(),
            push_mode: push_mode.map(|m| m.as_str().to_owned()),
            prompt_policy: None,
        };
        let integration = Integration::try_from(&row)?;
        let event = Event::new(
            org.as_str(),
            now,
            actor,
            Action::IntegrationCreate,
            &ikey,
            "ok",
        )
        .detail("name", name)
        .detail("kind", kind.as_str())
        .detail_opt("push_mode", push_mode.map(ApiPushMode::as_str));
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::InsertIntegration(row))
                    .with(event.into_change()),
            )
            .await?;
        Ok((integration, skey))
    }

    /// Creates a `web-sdk` integration (the hosted prompt) with its prompt policy. Returns the
    /// integration and its client secret (shown once).
    pub async fn create_web_sdk_integration(
        self,
        org: &OrgId,
        actor: &Actor,
        name: &str,
        policy: &crate::policy::PromptPolicy,
        now: DateTime<Utc>,
    ) -> CoreResult<(Integration, Zeroizing<String>)> {
        check_text("name", name, 100)?;
        for uri in &policy.redirect_uris {
            super::prompt::check_redirect_uri(uri, &[])
                .map_err(|reason| CoreError::invalid("redirect_uri", reason))?;
        }
        let ikey = ids::integration_key();
        let skey = Zeroizing::new(ids::integration_secret());
        let row = IntegrationRow {
            org_id: org.to_string(),
            ikey: ikey.clone(),
            name: name.into(),
            kind: IntegrationKind::WebSdk.as_str().into(),
            skey_sealed: self
                .keys
                .seal(Purpose::IntegrationSecret, &ikey, skey.as_bytes())?,
            created_ms: now.timestamp_millis(),
            push_mode: None,
            prompt_policy: Some(policy.to_json()),
        };
        let integration = Integration::try_from(&row)?;
        let event = Event::new(
            org.as_str(),
            now,
            actor,
            Action::IntegrationCreate,
            &ikey,
            "ok",
        )
        .detail("name", name)
        .detail("kind", IntegrationKind::WebSdk.as_str())
        .detail(
            "prompt_policy",
            serde_json::to_value(policy).unwrap_or_default(),
        );
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::InsertIntegration(row))
                    .with(event.into_change()),
            )
            .await?;
        Ok((integration, skey))
    }

    /// Lists integrations (without secrets).
    pub async fn list_integrations(self, org: &OrgId) -> CoreResult<Vec<Integration>> {
        let rows = self.store.list_integrations(org.as_str()).await?;
        rows.iter().map(Integration::try_from).collect()
    }

    /// Creates a user.
    pub async fn create_user(
        self,
        org: &OrgId,
        actor: &Actor,
        username: &str,
        email: Option<&str>,
        now: DateTime<Utc>,
    ) -> CoreResult<User> {
        check_text("username", username, 100)?;
        if let Some(email) = email {
            check_email(email)?;
        }
        let row = UserRow {
            org_id: org.to_string(),
            user_id: ids::user_id(),
            username: username.into(),
            email: email.map(str::to_owned),
            status: UserStatus::Active.as_str().into(),
            created_ms: now.timestamp_millis(),
            failed_attempts: 0,
            locked_until_ms: None,
            last_login_ms: None,
            push_muted_until_ms: None,
            factors_frozen_ms: None,
            policy_group: None,
            last_prompt_method: None,
            recovery_blocked_until_ms: None,
            probation_until_ms: None,
            last_recovered_ms: None,
        };
        let user = User::try_from(row.clone())?;
        let event = Event::new(
            org.as_str(),
            now,
            actor,
            Action::UserCreate,
            user.id.as_str(),
            "ok",
        )
        .detail("username", username);
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::InsertUser(row))
                    .with(event.into_change()),
            )
            .await
            .map_err(|e| match e {
                ward_store::StoreError::Duplicate(_) => {
                    CoreError::Conflict(format!("user {username} already exists"))
                }
                other => other.into(),
            })?;
        Ok(user)
    }

    /// Finds a user by name.
    pub async fn user(self, org: &OrgId, username: &str) -> CoreResult<User> {
        self.store
            .user_by_name(org.as_str(), username)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("user {username}")))
            .and_then(User::try_from)
    }

    /// Lists users, ordered by username.
    pub async fn list_users(self, org: &OrgId, limit: u32, offset: u32) -> CoreResult<Vec<User>> {
        let rows = self
            .store
            .list_users(org.as_str(), limit.min(1000), offset)
            .await?;
        rows.into_iter().map(User::try_from).collect()
    }

    /// Enables or disables a user.
    pub async fn set_user_status(
        self,
        org: &OrgId,
        actor: &Actor,
        username: &str,
        status: UserStatus,
        now: DateTime<Utc>,
    ) -> CoreResult<User> {
        let mut user = self.admin().user(org, username).await?;
        let action = match status {
            UserStatus::Active => Action::UserEnable,
            UserStatus::Disabled => Action::UserDisable,
        };
        let event = Event::new(org.as_str(), now, actor, action, user.id.as_str(), "ok")
            .detail("previous", user.status.as_str());
        let change = Change::SetUserStatus {
            org_id: org.to_string(),
            user_id: user.id.to_string(),
            status: status.as_str().into(),
        };
        self.store
            .commit(ChangeSet::new().with(change).with(event.into_change()))
            .await?;
        user.status = status;
        Ok(user)
    }

    /// Adds a TOTP authenticator to a user, with the given Base32 secret or a new random one.
    #[allow(clippy::too_many_arguments)] // the organisation, the actor and the CLI's options
    pub async fn add_totp(
        self,
        org: &OrgId,
        actor: &Actor,
        username: &str,
        secret_base32: Option<&str>,
        algorithm: Algorithm,
        digits: u32,
        now: DateTime<Utc>,
    ) -> CoreResult<TotpEnrolment> {
        let user = self.admin().user(org, username).await?;
        let secret = match secret_base32 {
            Some(text) => totp::base32_decode(text)?,
            None => totp::generate_secret(),
        };
        let generator = Totp::new(secret, algorithm, digits, 30)?;
        let totp_id = ids::totp_id();
        let row = TotpRow {
            org_id: org.to_string(),
            totp_id: totp_id.clone(),
            user_id: user.id.to_string(),
            name: "Authenticator app".into(),
            seed_sealed: self
                .keys
                .seal(Purpose::TotpSeed, &totp_id, generator.secret())?,
            algorithm: algorithm.as_str().into(),
            digits: i64::from(digits),
            step_secs: 30,
            last_step: None,
            created_ms: now.timestamp_millis(),
        };
        let authenticator = TotpAuthenticator::try_from(&row)?;
        let event = Event::new(
            org.as_str(),
            now,
            actor,
            Action::FactorTotpAdd,
            user.id.as_str(),
            "ok",
        )
        .detail("totp_id", totp_id.as_str())
        .detail("algorithm", algorithm.as_str())
        .detail("digits", digits);
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::InsertTotp(row))
                    .with(event.into_change()),
            )
            .await?;
        let otpauth_uri = Zeroizing::new(generator.otpauth_uri(&self.issuer, &user.username));
        Ok(TotpEnrolment {
            authenticator,
            otpauth_uri,
        })
    }
}

impl Auth<'_> {
    /// An integration and its opened secret key, for checking a request signature.
    pub async fn integration_credentials(
        self,
        ikey: &IntegrationId,
        now: DateTime<Utc>,
    ) -> CoreResult<Option<Arc<IntegrationCredentials>>> {
        self.auth()
            .integration_credentials_admitted(ikey, now, || true)
            .await
    }

    /// As [`Self::integration_credentials`], asking `may_read` before each database read (not
    /// for cache hits, nor for lookups that waited for another's read of the same key):
    /// [`CoreError::RateLimited`] when it refuses.
    pub async fn integration_credentials_admitted(
        self,
        ikey: &IntegrationId,
        now: DateTime<Utc>,
        may_read: impl FnOnce() -> bool,
    ) -> CoreResult<Option<Arc<IntegrationCredentials>>> {
        if let Some(hit) = self.integrations.get(ikey.as_str(), now) {
            return Ok(Some(hit));
        }
        let _loading = self.integrations.loading(ikey.as_str()).await;
        if let Some(hit) = self.integrations.get(ikey.as_str(), now) {
            return Ok(Some(hit));
        }
        if !may_read() {
            return Err(CoreError::RateLimited);
        }
        let Some(row) = self.store.integration_by_ikey(ikey.as_str()).await? else {
            return Ok(None);
        };
        let opened = self
            .keys
            .open(Purpose::IntegrationSecret, &row.ikey, &row.skey_sealed)?;
        let skey = String::from_utf8(opened.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| CoreError::Internal(format!("secret of {ikey} is not text")))?;
        let creds = Arc::new(IntegrationCredentials {
            integration: Integration::try_from(&row)?,
            skey,
        });
        self.integrations.put(Arc::clone(&creds), now);
        Ok(Some(creds))
    }
}

impl Admin<'_> {
    /// Deletes authentication transactions, decided push requests, stream nonces and
    /// activation codes that expired more than an hour before `now` (the audit log keeps every
    /// decision). Returns how many rows went. Audited in every organisation's log when anything
    /// was deleted.
    pub async fn purge_expired(self, now: DateTime<Utc>) -> CoreResult<u64> {
        let before_ms = (now - chrono::TimeDelta::hours(1)).timestamp_millis();
        let receipt = self
            .store
            .commit(ChangeSet::new().with(Change::PurgeExpired { before_ms }))
            .await?;
        let rows = match receipt.outcomes.first() {
            Some(ward_store::Outcome::Purged { rows }) => *rows,
            _ => 0,
        };
        if rows > 0 {
            // The purged tables are shared by every organisation: each one's log records it.
            let mut set = ChangeSet::new();
            for org in self.store.list_orgs().await? {
                let event = Event::new(
                    &org.org_id,
                    now,
                    &Actor::Cli,
                    Action::MaintenancePurge,
                    "-",
                    "ok",
                )
                .detail("rows", rows)
                .detail("expired_before_ms", before_ms);
                set.push(event.into_change());
            }
            self.store.commit(set).await?;
        }
        Ok(rows)
    }
}

fn check_email(email: &str) -> CoreResult<()> {
    check_text("email", email, 254)?;
    let valid = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    }) && !email.contains(char::is_whitespace);
    if valid {
        Ok(())
    } else {
        Err(CoreError::invalid("email", "is not an e-mail address"))
    }
}
