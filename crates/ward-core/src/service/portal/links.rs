//! Enrolment links, notices with their "this wasn't me" links, and the freeze they set off.

use crate::service::Portal;
use chrono::{DateTime, TimeDelta, Utc};
use ward_store::{Change, ChangeSet, Outcome, StoreError, UserRow, UserTokenRow};

use super::{
    ENROL, ENROL_SESSION_TTL, EnrolLink, LinkState, MAX_ENROL_TTL, NewSession, REPORT_PREFIX,
};
use crate::audit::{Action, Event};
use crate::crypto::{new_token, token_hash};
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor, OrgId, UserId, UserStatus};
use crate::notify::{Alert, UserNotice};
use crate::service::Ward;

impl Ward {
    pub(in crate::service) fn portal_url(&self, path: &str) -> CoreResult<String> {
        let origin = &self.passkeys()?.settings.origin;
        Ok(format!("{}{path}", origin.as_str().trim_end_matches('/')))
    }

    async fn link_state(
        &self,
        token: &str,
        purpose_ok: impl Fn(&str) -> bool,
        now: DateTime<Utc>,
    ) -> CoreResult<LinkState> {
        if token.is_empty() || token.len() > 128 {
            return Ok(LinkState::Unknown);
        }
        let Some(row) = self.store.user_token(&token_hash(token)).await? else {
            return Ok(LinkState::Unknown);
        };
        if !purpose_ok(&row.purpose) {
            return Ok(LinkState::Unknown);
        }
        if row.used_ms.is_some() {
            return Ok(LinkState::Used);
        }
        if row.expires_ms <= now.timestamp_millis() {
            return Ok(LinkState::Expired);
        }
        let user = self.store.user_by_id(&row.org_id, &row.user_id).await?;
        Ok(user.map_or(LinkState::Unknown, |u| LinkState::Valid {
            username: u.username,
            expires_ms: row.expires_ms,
        }))
    }

    /// Tells the user about a change to their account, with a "this wasn't me" link. Best
    /// effort: the change is already made and audited.
    pub(in crate::service) async fn notify_user(
        &self,
        user: &UserRow,
        action: &str,
        subject: &str,
        body: &str,
        now: DateTime<Utc>,
    ) {
        let report_url = match self.report_link(user, action, now).await {
            Ok(url) => Some(url),
            Err(e) => {
                tracing::warn!(user_id = %user.user_id, error = %e, "could not create a report link");
                None
            }
        };
        let Ok(settings) = self.passkeys() else {
            return;
        };
        let when = now.format("%Y-%m-%d %H:%M UTC");
        let notice = UserNotice {
            org_id: user.org_id.clone(),
            user_id: user.user_id.clone(),
            username: user.username.clone(),
            email: user.email.clone(),
            action: action.into(),
            subject: subject.into(),
            body: format!(
                "{body}\n\nWhen: {when}\n\nIf this was you, there is nothing to do. If it was \
                 not, use the link below at once: it stops any further change to your sign-in \
                 methods and alerts your administrators."
            ),
            report_url,
            organisation: settings.settings.organisation.clone(),
        };
        for notifier in &self.notifiers {
            let notifier = std::sync::Arc::clone(notifier);
            let notice = notice.clone();
            tokio::spawn(async move { notifier.notify(&notice).await });
        }
    }

    async fn report_link(
        &self,
        user: &UserRow,
        action: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<String> {
        let ttl = self.passkeys()?.settings.report_link_ttl;
        let token = new_token();
        self.store
            .commit(ChangeSet::new().with(Change::InsertUserToken(UserTokenRow {
                token_hash: token_hash(&token),
                org_id: user.org_id.clone(),
                user_id: user.user_id.clone(),
                purpose: format!("{REPORT_PREFIX}{action}"),
                created_ms: now.timestamp_millis(),
                expires_ms: (now + ttl).timestamp_millis(),
                used_ms: None,
            })))
            .await?;
        self.portal_url(&format!("/portal/report/{token}"))
    }
}

impl Portal<'_> {
    /// Creates a single-use enrolment link for a user (first access to the portal).
    pub async fn create_enrol_link(
        self,
        org: &OrgId,
        actor: &Actor,
        username: &str,
        ttl: TimeDelta,
        now: DateTime<Utc>,
    ) -> CoreResult<EnrolLink> {
        if ttl <= TimeDelta::zero() || ttl > MAX_ENROL_TTL {
            return Err(CoreError::invalid(
                "ttl",
                "must be more than zero and at most 30 days",
            ));
        }
        let user = self
            .store
            .user_by_name(org.as_str(), username)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("user {username}")))?;
        if user.status.parse::<UserStatus>()? == UserStatus::Disabled {
            return Err(CoreError::Forbidden(format!("user {username} is disabled")));
        }
        let token = new_token();
        let row = UserTokenRow {
            token_hash: token_hash(&token),
            org_id: org.to_string(),
            user_id: user.user_id.clone(),
            purpose: ENROL.into(),
            created_ms: now.timestamp_millis(),
            expires_ms: (now + ttl).timestamp_millis(),
            used_ms: None,
        };
        let expires_ms = row.expires_ms;
        let event = Event::new(
            org.as_str(),
            now,
            actor,
            Action::EnrolLinkCreate,
            &user.user_id,
            "ok",
        )
        .detail("expires_ms", expires_ms);
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::InsertUserToken(row))
                    .with(event.into_change()),
            )
            .await?;
        Ok(EnrolLink {
            url: self.portal_url(&format!("/portal/enrol/{token}"))?,
            expires_ms,
        })
    }

    /// What a single-use link is worth (for the page shown before it is used).
    pub async fn enrol_link_state(self, token: &str, now: DateTime<Utc>) -> CoreResult<LinkState> {
        self.link_state(token, |p| p == ENROL, now).await
    }

    /// Uses an enrolment link: consumes it and opens a short session for enrolling in the
    /// link's organisation.
    pub async fn redeem_enrol_link(
        self,
        token: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<NewSession> {
        let state = self.portal().enrol_link_state(token, now).await?;
        let refusal = |state: &LinkState| match state {
            LinkState::Used => CoreError::Conflict("this enrolment link was already used".into()),
            LinkState::Expired => CoreError::Expired("this enrolment link".into()),
            _ => CoreError::NotFound("enrolment link".into()),
        };
        if !matches!(state, LinkState::Valid { .. }) {
            // A link Ward knows is refused in its own organisation's log; an unknown one in
            // the unattributed log.
            let known = self.store.user_token(&token_hash(token)).await?;
            let log_org = match known {
                Some(row) => row.org_id,
                None => self.unattributed_org().await?.to_string(),
            };
            let event = Event::new(
                &log_org,
                now,
                &Actor::Anonymous,
                Action::EnrolLinkUse,
                "-",
                "deny",
            )
            .detail("reason", format!("{state:?}").to_lowercase());
            self.store
                .commit(ChangeSet::new().with(event.into_change()))
                .await?;
            return Err(refusal(&state));
        }
        let hash = token_hash(token);
        let receipt = self
            .store
            .commit(ChangeSet::new().with(Change::ConsumeUserToken {
                token_hash: hash,
                purpose: ENROL.into(),
                now_ms: now.timestamp_millis(),
            }))
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed(_) => refusal(&LinkState::Used),
                other => other.into(),
            })?;
        let Some(Outcome::TokenUsed { org_id, user_id }) = receipt.outcomes.first() else {
            return Err(CoreError::Internal(
                "token consumed without its user".into(),
            ));
        };
        let user = self
            .active_user(&OrgId::new(org_id.clone()), &UserId::new(user_id.clone()))
            .await?;
        self.portal()
            .open_session(&user, "enrol-link", Some(ENROL_SESSION_TTL), now)
            .await
    }

    /// What a "this wasn't me" link is worth now.
    pub async fn report_link_state(self, token: &str, now: DateTime<Utc>) -> CoreResult<LinkState> {
        self.link_state(token, |p| p.starts_with(REPORT_PREFIX), now)
            .await
    }

    /// "This wasn't me": freezes the account's factor changes, ends its sessions, alerts the
    /// administrators. Returns the action the user disowned.
    pub async fn report_not_me(self, token: &str, now: DateTime<Utc>) -> CoreResult<String> {
        if token.is_empty() || token.len() > 128 {
            return Err(CoreError::NotFound("link".into()));
        }
        let hash = token_hash(token);
        let Some(row) = self.store.user_token(&hash).await? else {
            return Err(CoreError::NotFound("link".into()));
        };
        let Some(disowned) = row.purpose.strip_prefix(REPORT_PREFIX).map(str::to_owned) else {
            return Err(CoreError::NotFound("link".into()));
        };
        let event = Event::new(
            &row.org_id,
            now,
            &Actor::User(row.user_id.clone()),
            Action::AccountFreeze,
            &row.user_id,
            "ok",
        )
        .detail("disowned", disowned.as_str());
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::ConsumeUserToken {
                        token_hash: hash,
                        purpose: row.purpose.clone(),
                        now_ms: now.timestamp_millis(),
                    })
                    .with(Change::SetFactorsFrozen {
                        org_id: row.org_id.clone(),
                        user_id: row.user_id.clone(),
                        frozen_ms: Some(now.timestamp_millis()),
                    })
                    .with(Change::DeleteUserSessions {
                        org_id: row.org_id.clone(),
                        user_id: row.user_id.clone(),
                    })
                    .with(event.into_change()),
            )
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed(_) => {
                    CoreError::Conflict("this link was already used, or has expired".into())
                }
                other => other.into(),
            })?;
        if disowned.starts_with("recovery.") {
            // A recovery the user disowns is held for review, whatever its stage.
            if let Err(e) = self
                .recovery()
                .freeze_for_user(
                    &OrgId::new(row.org_id.clone()),
                    &UserId::new(row.user_id.clone()),
                    crate::recovery::Actor::User,
                    "the user answered \"this wasn't me\" to a recovery notice",
                    now,
                )
                .await
            {
                tracing::warn!(user_id = %row.user_id, error = %e, "could not freeze the recovery case");
            }
        }
        self.raise(Alert::AccountFrozen {
            org_id: row.org_id,
            user_id: row.user_id,
            disowned: disowned.clone(),
            at_ms: now.timestamp_millis(),
        })
        .await;
        Ok(disowned)
    }

    /// Unfreezes an account's factor changes (an administrator, after investigating).
    pub async fn unfreeze_user(
        self,
        org: &OrgId,
        actor: &Actor,
        username: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let user = self
            .store
            .user_by_name(org.as_str(), username)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("user {username}")))?;
        let event = Event::new(
            org.as_str(),
            now,
            actor,
            Action::AccountUnfreeze,
            &user.user_id,
            "ok",
        );
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::SetFactorsFrozen {
                        org_id: org.to_string(),
                        user_id: user.user_id.clone(),
                        frozen_ms: None,
                    })
                    .with(event.into_change()),
            )
            .await?;
        Ok(())
    }
}
