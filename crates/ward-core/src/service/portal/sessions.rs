//! Sessions: opening, checking and ending them, CSRF, step-up, and signing in with a passkey
//! or a TOTP code.

use crate::service::Portal;
use chrono::{DateTime, TimeDelta, Utc};
use ward_store::{Change, ChangeSet, Outcome, SessionRow, UserKey, UserRow};
use zeroize::Zeroizing;

use super::{NewSession, STEP_UP_NEEDED, Session, TOUCH_EVERY};
use crate::audit::{Action, Event};
use crate::crypto::{Purpose, constant_time_eq, new_token, token_hash};
use crate::error::{CoreError, CoreResult};
use crate::gate::{Allowed, Door, OrgState};
use crate::model::{Actor, OrgId, UserId, UserStatus};
use crate::service::auth::passcode::PasscodeCheck;
use crate::service::passkeys::purpose;
use crate::service::{AuthStatus, CeremonyStart, Ward};

impl Ward {
    pub(super) async fn require_fresh_check(
        &self,
        session: &Session,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        if self.portal().needs_step_up(session, now).await? {
            return Err(CoreError::Forbidden(STEP_UP_NEEDED.into()));
        }
        Ok(())
    }
}

impl Portal<'_> {
    /// Opens a session for a user who has just authenticated by `method`.
    pub async fn open_session(
        self,
        user: &UserRow,
        method: &str,
        ttl: Option<TimeDelta>,
        now: DateTime<Utc>,
    ) -> CoreResult<NewSession> {
        let settings = &self.passkeys()?.settings;
        let token = Zeroizing::new(new_token());
        let hash = token_hash(&token);
        let ttl = ttl
            .unwrap_or(settings.session_ttl)
            .min(settings.session_ttl);
        // Sensitive changes always ask for a fresh check, even right after a passkey sign-in.
        let step_up = None;
        let row = SessionRow {
            session_hash: hash.clone(),
            org_id: user.org_id.clone(),
            user_id: user.user_id.clone(),
            auth_method: method.into(),
            created_ms: now.timestamp_millis(),
            last_seen_ms: now.timestamp_millis(),
            expires_ms: (now + ttl).timestamp_millis(),
            step_up_until_ms: step_up,
        };
        let event = Event::new(
            &user.org_id,
            now,
            &Actor::User(user.user_id.clone()),
            Action::SessionOpen,
            &user.user_id,
            "ok",
        )
        .detail("method", method)
        .detail("expires_ms", row.expires_ms);
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::InsertSession(row.clone()))
                    .with(event.into_change()),
            )
            .await?;
        Ok(NewSession {
            session: Session {
                csrf: self.keys.mac(Purpose::SessionCsrf, hash.as_bytes()),
                session_hash: hash,
                user: user.clone(),
                auth_method: row.auth_method,
                expires_ms: row.expires_ms,
                step_up_until_ms: row.step_up_until_ms,
            },
            token,
        })
    }

    /// The session a cookie value names, if it is still valid (expired, idle, disabled-user,
    /// disabled-organisation and frozen-and-ended sessions are not).
    pub async fn session(self, token: &str, now: DateTime<Utc>) -> CoreResult<Option<Session>> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let settings = &self.passkeys()?.settings;
        let hash = token_hash(token);
        let Some(row) = self.store.session(&hash).await? else {
            return Ok(None);
        };
        let now_ms = now.timestamp_millis();
        let idle_limit = row.last_seen_ms + settings.idle_ttl.num_milliseconds();
        if row.expires_ms <= now_ms || idle_limit <= now_ms {
            return Ok(None);
        }
        let Some(user) = self.store.user_by_id(&row.org_id, &row.user_id).await? else {
            return Ok(None);
        };
        if user.status.parse::<UserStatus>()? == UserStatus::Disabled {
            return Ok(None);
        }
        // A disabled organisation's sessions end with it (they come back if it is enabled
        // again before they expire).
        if self.org_state(&row.org_id, now).await? == OrgState::Disabled {
            return Ok(None);
        }
        if now_ms - row.last_seen_ms >= TOUCH_EVERY.num_milliseconds() {
            self.store
                .commit(ChangeSet::new().with(Change::TouchSession {
                    session_hash: hash.clone(),
                    last_seen_ms: now_ms,
                    step_up_until_ms: None,
                }))
                .await?;
        }
        Ok(Some(Session {
            csrf: self.keys.mac(Purpose::SessionCsrf, hash.as_bytes()),
            session_hash: hash,
            user,
            auth_method: row.auth_method,
            expires_ms: row.expires_ms,
            step_up_until_ms: row.step_up_until_ms,
        }))
    }

    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_ok(self, session: &Session, token: &str) -> bool {
        constant_time_eq(&session.csrf, token)
    }

    /// Ends one session.
    pub async fn sign_out(self, session: &Session, now: DateTime<Utc>) -> CoreResult<()> {
        let event = Event::new(
            &session.user.org_id,
            now,
            &Actor::User(session.user.user_id.clone()),
            Action::SessionClose,
            &session.user.user_id,
            "ok",
        );
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::DeleteSession {
                        session_hash: session.session_hash.clone(),
                    })
                    .with(event.into_change()),
            )
            .await?;
        Ok(())
    }

    /// Ends every session of a user (sign out everywhere). Returns how many ended.
    pub async fn sign_out_everywhere(
        self,
        org: &OrgId,
        actor: &Actor,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> CoreResult<u64> {
        let receipt = self
            .store
            .commit(
                ChangeSet::new()
                    .with(Change::DeleteUserSessions {
                        org_id: org.to_string(),
                        user_id: user_id.to_string(),
                    })
                    .with(
                        Event::new(
                            org.as_str(),
                            now,
                            actor,
                            Action::SessionCloseAll,
                            user_id.as_str(),
                            "ok",
                        )
                        .into_change(),
                    ),
            )
            .await?;
        Ok(match receipt.outcomes.first() {
            Some(Outcome::Purged { rows }) => *rows,
            _ => 0,
        })
    }

    /// Whether a sensitive change needs a fresh passkey check first: adding a factor, new
    /// recovery codes or removing a factor, for a user who has a passkey to check with.
    pub async fn needs_step_up(self, session: &Session, now: DateTime<Utc>) -> CoreResult<bool> {
        if session.stepped_up(now) {
            return Ok(false);
        }
        let passkeys = self
            .store
            .webauthn_credentials_for_user(&session.user.org_id, &session.user.user_id)
            .await?;
        Ok(!passkeys.is_empty())
    }

    /// Starts adding a passkey to the signed-in user (after a fresh check, when they already
    /// have a passkey: a stolen session must not add the thief's authenticator).
    pub async fn passkey_register_start_for(
        self,
        session: &Session,
        now: DateTime<Utc>,
    ) -> CoreResult<CeremonyStart> {
        self.require_fresh_check(session, now).await?;
        self.portal()
            .passkey_register_start(&session.org(), &session.user_id(), now)
            .await
    }

    /// Starts a step-up: a fresh check with one of the signed-in user's passkeys.
    pub async fn step_up_start(
        self,
        session: &Session,
        now: DateTime<Utc>,
    ) -> CoreResult<CeremonyStart> {
        self.portal()
            .passkey_auth_start(
                &session.org(),
                purpose::STEP_UP,
                Some(&session.user.user_id),
                now,
            )
            .await
    }

    /// Finishes a step-up: the session may make sensitive changes for a few minutes.
    pub async fn step_up_finish(
        self,
        session: &Session,
        ceremony: &str,
        response: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> CoreResult<i64> {
        let check = self
            .portal()
            .passkey_auth_finish(&session.org(), purpose::STEP_UP, ceremony, response, now)
            .await?;
        if check.user.user_id != session.user.user_id {
            return Err(CoreError::Forbidden(
                "this passkey belongs to another account".into(),
            ));
        }
        let until = (now + self.passkeys()?.settings.step_up_ttl).timestamp_millis();
        self.store
            .commit(ChangeSet::new().with(Change::TouchSession {
                session_hash: session.session_hash.clone(),
                last_seen_ms: now.timestamp_millis(),
                step_up_until_ms: Some(until),
            }))
            .await?;
        Ok(until)
    }

    /// Signs in with a passkey (usernameless): returns the new session.
    pub async fn passkey_sign_in(
        self,
        org: &OrgId,
        ceremony: &str,
        response: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> CoreResult<NewSession> {
        let check = self
            .portal()
            .passkey_auth_finish(org, purpose::SIGN_IN, ceremony, response, now)
            .await?;
        self.portal()
            .open_session(&check.user, "passkey", None, now)
            .await
    }

    /// Signs in with a TOTP code, where the user's policy allows it. Every refusal looks the
    /// same to the caller; the reason is audited. The decision is the one passcode check of
    /// every door ([`passcode`](crate::service::passcode)).
    pub async fn totp_sign_in(
        self,
        org: &OrgId,
        username: &str,
        code: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<NewSession> {
        let generic = || CoreError::Unauthenticated;
        if username.is_empty() || username.len() > 100 || code.len() > 10 {
            return Err(generic());
        }
        let audit = |target: &str, outcome: &str| {
            let actor = if outcome == "allow" {
                Actor::User(target.to_owned())
            } else {
                Actor::Anonymous
            };
            Event::new(
                org.as_str(),
                now,
                &actor,
                Action::PortalSigninTotp,
                target,
                outcome,
            )
            .detail("door", Door::Portal.as_str())
        };
        let allowed = |user: Option<&UserRow>| match user {
            Some(user) => Ok(self.factor_policy(user)?.portal_allowed()),
            None => Ok(Allowed::ALL),
        };
        let check = PasscodeCheck {
            org_id: org.as_str(),
            user: UserKey::Name(username),
            passcode: code,
            allowed: &allowed,
            audit: &audit,
            record: &|_, _| Vec::new(),
        };
        let outcome = self.check_passcode(&check, now).await?;
        match (outcome.status, outcome.user) {
            (AuthStatus::Allow, Some(user)) => {
                self.portal().open_session(&user, "totp", None, now).await
            }
            _ => Err(generic()),
        }
    }
}
