//! The self-service portal: enrolment links, sessions, a user's factors and recovery codes,
//! notices about every change, and the "this wasn't me" freeze.
//!
//! # Security
//! Bearer values (session cookies, enrolment and report links) are 256-bit random tokens; only
//! their SHA-256 is stored. Single-use tokens are consumed by a conditional write. CSRF tokens
//! are MACs of the session hash under a key derived from the master key, compared in constant
//! time. Removing a factor needs a step-up (a fresh passkey check within minutes); a frozen
//! account refuses every factor change until an administrator unfreezes it.

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use ward_store::{
    Change, ChangeSet, DEFAULT_ORG, Outcome, RecoveryCodeRow, SessionRow, StoreError, TotpRow,
    UserKey, UserRow, UserTokenRow,
};
use zeroize::Zeroizing;

use super::passkeys::{PasskeyView, purpose};
use super::{PushDevice, Ward, check_text};
use crate::audit::Event;
use crate::crypto::{Purpose, constant_time_eq, new_token, token_hash};
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor, TotpAuthenticator};
use crate::notify::{Alert, UserNotice};
use crate::totp::{self, Algorithm, Totp};

/// User-token purposes.
const ENROL: &str = "enrol";
const REPORT_PREFIX: &str = "report:";
/// The ceremony purpose of a TOTP seed awaiting its first code.
const TOTP_ENROL: &str = "totp-enrol";
/// Sessions opened by an enrolment link are short: long enough to enrol.
const ENROL_SESSION_TTL: TimeDelta = TimeDelta::hours(1);
/// How many recovery codes a set has, and how many random bits each carries.
pub const RECOVERY_CODES: usize = 10;
const RECOVERY_CODE_BYTES: usize = 10;
/// Sessions are touched at most this often (each touch is a write).
const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);
/// What a change that needs a fresh passkey check answers without one.
pub const STEP_UP_NEEDED: &str = "confirm it is you with a passkey first";
/// Longest enrolment link an administrator may create.
pub const MAX_ENROL_TTL: TimeDelta = TimeDelta::days(30);

/// A new enrolment link.
#[derive(Clone, Debug)]
pub struct EnrolLink {
    pub url: String,
    pub expires_ms: i64,
}

/// What a single-use link is worth now, for the page that explains it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    Valid { username: String, expires_ms: i64 },
    Used,
    Expired,
    Unknown,
}

/// A new session: the cookie value (shown once) and what it allows.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub token: Zeroizing<String>,
    pub session: Session,
}

/// A signed-in session, checked.
#[derive(Clone, Debug)]
pub struct Session {
    pub session_hash: String,
    pub user: UserRow,
    pub auth_method: String,
    pub expires_ms: i64,
    /// A fresh passkey check allows sensitive changes until then.
    pub step_up_until_ms: Option<i64>,
    /// The CSRF token forms of this session must carry.
    pub csrf: String,
}

impl Session {
    pub fn stepped_up(&self, now: DateTime<Utc>) -> bool {
        self.step_up_until_ms
            .is_some_and(|until| until > now.timestamp_millis())
    }
}

/// A TOTP authenticator as the portal lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TotpView {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
}

/// Recovery codes: how many are left of the current set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryView {
    pub total: usize,
    pub remaining: usize,
    pub created_ms: Option<i64>,
}

/// Everything a user has enrolled.
#[derive(Clone, Debug, Default)]
pub struct Factors {
    pub passkeys: Vec<PasskeyView>,
    pub totps: Vec<TotpView>,
    pub devices: Vec<PushDevice>,
    pub recovery: RecoveryView,
}

impl Factors {
    /// Whether the user has a phishing-resistant factor.
    pub fn phishing_resistant(&self) -> bool {
        !self.passkeys.is_empty()
    }
}

/// A TOTP seed waiting for its first code.
#[derive(Debug)]
pub struct TotpSetup {
    pub ceremony: String,
    pub secret_base32: Zeroizing<String>,
    pub otpauth_uri: Zeroizing<String>,
}

/// The result of confirming a TOTP set-up.
#[derive(Debug)]
pub enum TotpConfirm {
    Added(TotpView),
    /// The code did not match; the set-up continues under this ceremony id.
    WrongCode {
        ceremony: String,
    },
}

/// A kind of factor, as the portal names it in URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorKind {
    Passkey,
    Totp,
    Device,
}

impl FactorKind {
    pub fn parse(s: &str) -> CoreResult<Self> {
        match s {
            "passkey" => Ok(Self::Passkey),
            "totp" => Ok(Self::Totp),
            "device" => Ok(Self::Device),
            _ => Err(CoreError::NotFound("factor".into())),
        }
    }

    fn store_kind(self) -> &'static str {
        match self {
            Self::Passkey => "webauthn",
            Self::Totp => "totp",
            Self::Device => "device",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Passkey => "passkey",
            Self::Totp => "authenticator app",
            Self::Device => "push device",
        }
    }
}

impl Ward {
    fn portal_url(&self, path: &str) -> CoreResult<String> {
        let origin = &self.passkeys()?.settings.origin;
        Ok(format!("{}{path}", origin.as_str().trim_end_matches('/')))
    }

    /// Creates a single-use enrolment link for a user (first access to the portal).
    pub async fn create_enrol_link(
        &self,
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
            .user_by_name(DEFAULT_ORG, username)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("user {username}")))?;
        if user.status != "active" {
            return Err(CoreError::Forbidden(format!("user {username} is disabled")));
        }
        let token = new_token();
        let row = UserTokenRow {
            token_hash: token_hash(&token),
            org_id: DEFAULT_ORG.into(),
            user_id: user.user_id.clone(),
            purpose: ENROL.into(),
            created_ms: now.timestamp_millis(),
            expires_ms: (now + ttl).timestamp_millis(),
            used_ms: None,
        };
        let expires_ms = row.expires_ms;
        let event = Event::new(
            DEFAULT_ORG,
            now,
            actor,
            "enrol_link.create",
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
    pub async fn enrol_link_state(&self, token: &str, now: DateTime<Utc>) -> CoreResult<LinkState> {
        self.link_state(token, |p| p == ENROL, now).await
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

    /// Uses an enrolment link: consumes it and opens a short session for enrolling.
    pub async fn redeem_enrol_link(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<NewSession> {
        let state = self.enrol_link_state(token, now).await?;
        let refusal = |state: &LinkState| match state {
            LinkState::Used => CoreError::Conflict("this enrolment link was already used".into()),
            LinkState::Expired => CoreError::Expired("this enrolment link".into()),
            _ => CoreError::NotFound("enrolment link".into()),
        };
        if !matches!(state, LinkState::Valid { .. }) {
            let event = Event::new(
                DEFAULT_ORG,
                now,
                &Actor::Anonymous,
                "enrol_link.use",
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
        let Some(Outcome::TokenUsed { user_id, .. }) = receipt.outcomes.first() else {
            return Err(CoreError::Internal(
                "token consumed without its user".into(),
            ));
        };
        let user = self.active_user(user_id).await?;
        self.open_session(&user, "enrol-link", Some(ENROL_SESSION_TTL), now)
            .await
    }

    /// Opens a session for a user who has just authenticated by `method`.
    pub async fn open_session(
        &self,
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
            org_id: DEFAULT_ORG.into(),
            user_id: user.user_id.clone(),
            auth_method: method.into(),
            created_ms: now.timestamp_millis(),
            last_seen_ms: now.timestamp_millis(),
            expires_ms: (now + ttl).timestamp_millis(),
            step_up_until_ms: step_up,
        };
        let event = Event::new(
            DEFAULT_ORG,
            now,
            &Actor::User(user.user_id.clone()),
            "session.open",
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

    /// The session a cookie value names, if it is still valid (expired, idle, disabled-user
    /// and frozen-and-ended sessions are not).
    pub async fn session(&self, token: &str, now: DateTime<Utc>) -> CoreResult<Option<Session>> {
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
        if user.status != "active" {
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
    pub fn csrf_ok(&self, session: &Session, token: &str) -> bool {
        constant_time_eq(&session.csrf, token)
    }

    /// Ends one session.
    pub async fn sign_out(&self, session: &Session, now: DateTime<Utc>) -> CoreResult<()> {
        let event = Event::new(
            DEFAULT_ORG,
            now,
            &Actor::User(session.user.user_id.clone()),
            "session.close",
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
        &self,
        actor: &Actor,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<u64> {
        let receipt = self
            .store
            .commit(
                ChangeSet::new()
                    .with(Change::DeleteUserSessions {
                        org_id: DEFAULT_ORG.into(),
                        user_id: user_id.into(),
                    })
                    .with(
                        Event::new(DEFAULT_ORG, now, actor, "session.close_all", user_id, "ok")
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
    pub async fn needs_step_up(&self, session: &Session, now: DateTime<Utc>) -> CoreResult<bool> {
        if session.stepped_up(now) {
            return Ok(false);
        }
        let passkeys = self
            .store
            .webauthn_credentials_for_user(DEFAULT_ORG, &session.user.user_id)
            .await?;
        Ok(!passkeys.is_empty())
    }

    async fn require_fresh_check(&self, session: &Session, now: DateTime<Utc>) -> CoreResult<()> {
        if self.needs_step_up(session, now).await? {
            return Err(CoreError::Forbidden(STEP_UP_NEEDED.into()));
        }
        Ok(())
    }

    /// Starts adding a passkey to the signed-in user (after a fresh check, when they already
    /// have a passkey: a stolen session must not add the thief's authenticator).
    pub async fn passkey_register_start_for(
        &self,
        session: &Session,
        now: DateTime<Utc>,
    ) -> CoreResult<super::CeremonyStart> {
        self.require_fresh_check(session, now).await?;
        self.passkey_register_start(&session.user.user_id, now)
            .await
    }

    /// Starts a step-up: a fresh check with one of the signed-in user's passkeys.
    pub async fn step_up_start(
        &self,
        session: &Session,
        now: DateTime<Utc>,
    ) -> CoreResult<super::CeremonyStart> {
        self.passkey_auth_start(purpose::STEP_UP, Some(&session.user.user_id), now)
            .await
    }

    /// Finishes a step-up: the session may make sensitive changes for a few minutes.
    pub async fn step_up_finish(
        &self,
        session: &Session,
        ceremony: &str,
        response: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> CoreResult<i64> {
        let check = self
            .passkey_auth_finish(purpose::STEP_UP, ceremony, response, now)
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
        &self,
        ceremony: &str,
        response: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> CoreResult<NewSession> {
        let check = self
            .passkey_auth_finish(purpose::SIGN_IN, ceremony, response, now)
            .await?;
        self.open_session(&check.user, "passkey", None, now).await
    }

    /// Signs in with a TOTP code, where the user's policy allows it. Every refusal looks the
    /// same to the caller; the reason is audited.
    pub async fn totp_sign_in(
        &self,
        username: &str,
        code: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<NewSession> {
        let generic = || CoreError::Unauthenticated;
        if username.is_empty() || username.len() > 100 || code.len() > 10 {
            return Err(generic());
        }
        let found = self
            .store
            .user_with_totps(DEFAULT_ORG, UserKey::Name(username))
            .await?;
        let refuse = |target: &str, reason: &str| {
            Event::new(
                DEFAULT_ORG,
                now,
                &Actor::Anonymous,
                "portal.signin.totp",
                target,
                "deny",
            )
            .detail("reason", reason)
            .into_change()
        };
        let Some((user, totps)) = found else {
            self.store
                .commit(ChangeSet::new().with(refuse("-", "unknown_user")))
                .await?;
            return Err(generic());
        };
        let policy = self.factor_policy(&user)?;
        let reason = if !policy.totp_signin {
            Some("totp sign-in not allowed by policy")
        } else if user.status != "active" {
            Some("disabled")
        } else if user
            .locked_until_ms
            .is_some_and(|until| until > now.timestamp_millis())
        {
            Some("locked_out")
        } else {
            None
        };
        if let Some(reason) = reason {
            self.store
                .commit(ChangeSet::new().with(refuse(&user.user_id, reason)))
                .await?;
            return Err(generic());
        }
        let matched = self.match_totp_rows(&totps, code, now)?;
        let Some((totp_id, step)) = matched else {
            let threshold = i64::from(self.policy.lockout_threshold);
            let mut set = ChangeSet::new().with(refuse(&user.user_id, "wrong_passcode"));
            if threshold > 0 {
                set.push(Change::RecordAuthFailure {
                    org_id: DEFAULT_ORG.into(),
                    user_id: user.user_id.clone(),
                    threshold,
                    lock_until_ms: (now + self.policy.lockout_duration).timestamp_millis(),
                });
            }
            self.store.commit(set).await?;
            return Err(generic());
        };
        let set = ChangeSet::new()
            .with(Change::UseTotpStep {
                org_id: DEFAULT_ORG.into(),
                totp_id: totp_id.clone(),
                step,
            })
            .with(Change::RecordAuthSuccess {
                org_id: DEFAULT_ORG.into(),
                user_id: user.user_id.clone(),
                at_ms: now.timestamp_millis(),
            })
            .with(
                Event::new(
                    DEFAULT_ORG,
                    now,
                    &Actor::User(user.user_id.clone()),
                    "portal.signin.totp",
                    &user.user_id,
                    "allow",
                )
                .detail("totp_id", totp_id.as_str())
                .into_change(),
            );
        match self.store.commit(set).await {
            Ok(_) => {}
            Err(StoreError::ConditionFailed(_)) => {
                self.store
                    .commit(ChangeSet::new().with(refuse(&user.user_id, "replayed_passcode")))
                    .await?;
                return Err(generic());
            }
            Err(e) => return Err(e.into()),
        }
        self.open_session(&user, "totp", None, now).await
    }

    /// The first TOTP authenticator `code` is valid for, and the step it matched.
    fn match_totp_rows(
        &self,
        totps: &[TotpRow],
        code: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Option<(String, i64)>> {
        for row in totps {
            let meta = TotpAuthenticator::try_from(row)?;
            let seed = self
                .keys
                .open(Purpose::TotpSeed, &row.totp_id, &row.seed_sealed)?;
            let generator = Totp::new(seed, meta.algorithm, meta.digits, meta.step_secs)?;
            if let Some(step) = generator.verify(
                code,
                now.timestamp(),
                row.last_step,
                self.policy.totp_window,
            ) {
                return Ok(Some((row.totp_id.clone(), step)));
            }
        }
        Ok(None)
    }

    /// Everything a user has enrolled.
    pub async fn factors(&self, user_id: &str) -> CoreResult<Factors> {
        let passkeys = self
            .store
            .webauthn_credentials_for_user(DEFAULT_ORG, user_id)
            .await?;
        let totps = self.store.totps_for_user(DEFAULT_ORG, user_id).await?;
        let devices = self.store.devices_for_user(DEFAULT_ORG, user_id).await?;
        let codes = self
            .store
            .recovery_codes_for_user(DEFAULT_ORG, user_id)
            .await?;
        Ok(Factors {
            passkeys: passkeys.iter().map(PasskeyView::from).collect(),
            totps: totps
                .iter()
                .map(|t| TotpView {
                    id: t.totp_id.clone(),
                    name: t.name.clone(),
                    created_ms: t.created_ms,
                })
                .collect(),
            devices: devices.iter().map(PushDevice::from).collect(),
            recovery: RecoveryView {
                total: codes.len(),
                remaining: codes.iter().filter(|c| c.used_ms.is_none()).count(),
                created_ms: codes.iter().map(|c| c.created_ms).max(),
            },
        })
    }

    /// Starts adding a TOTP authenticator: a new seed, kept server-side until a code from
    /// the app confirms it.
    pub async fn totp_setup_start(
        &self,
        session: &Session,
        now: DateTime<Utc>,
    ) -> CoreResult<TotpSetup> {
        let user = self.active_user(&session.user.user_id).await?;
        refuse_if_frozen(&user)?;
        self.require_fresh_check(session, now).await?;
        let secret = totp::generate_secret();
        let generator = Totp::new(secret, Algorithm::Sha1, 6, 30)?;
        let secret_base32 = Zeroizing::new(totp::base32_encode(generator.secret()));
        let ceremony = self
            .begin_sealed_ceremony(TOTP_ENROL, &user.user_id, generator.secret(), now)
            .await?;
        let issuer = self.passkeys()?.settings.organisation.clone();
        Ok(TotpSetup {
            ceremony,
            secret_base32,
            otpauth_uri: Zeroizing::new(generator.otpauth_uri(&issuer, &user.username)),
        })
    }

    /// Finishes adding a TOTP authenticator once `code` matches the seed. A wrong code keeps
    /// the set-up open under a new ceremony id, so the user can try the next code.
    pub async fn totp_setup_finish(
        &self,
        session: &Session,
        ceremony: &str,
        code: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<TotpConfirm> {
        check_text("name", name, 60)?;
        let code = code.trim().replace(' ', "");
        let (row, seed) = self.take_ceremony(TOTP_ENROL, ceremony, now).await?;
        if row.user_id.as_deref() != Some(session.user.user_id.as_str()) {
            return Err(CoreError::Forbidden(
                "this set-up belongs to another session".into(),
            ));
        }
        let user = self.active_user(&session.user.user_id).await?;
        refuse_if_frozen(&user)?;
        let generator = Totp::new(seed, Algorithm::Sha1, 6, 30)?;
        let Some(step) = generator.verify(&code, now.timestamp(), None, self.policy.totp_window)
        else {
            // Keep the seed usable for another try.
            let retry = self
                .begin_sealed_ceremony(TOTP_ENROL, &user.user_id, generator.secret(), now)
                .await?;
            return Ok(TotpConfirm::WrongCode { ceremony: retry });
        };
        let totp_id = crate::ids::totp_id();
        let row = TotpRow {
            org_id: DEFAULT_ORG.into(),
            totp_id: totp_id.clone(),
            user_id: user.user_id.clone(),
            name: name.into(),
            seed_sealed: self
                .keys
                .seal(Purpose::TotpSeed, &totp_id, generator.secret())?,
            algorithm: Algorithm::Sha1.as_str().into(),
            digits: 6,
            step_secs: 30,
            last_step: Some(step),
            created_ms: now.timestamp_millis(),
        };
        let event = Event::new(
            DEFAULT_ORG,
            now,
            &Actor::User(user.user_id.clone()),
            "factor.totp.add",
            &user.user_id,
            "ok",
        )
        .detail("totp_id", totp_id.as_str());
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::InsertTotp(row))
                    .with(event.into_change()),
            )
            .await?;
        self.notify_user(
            &user,
            "factor.totp.add",
            "An authenticator app was added to your account",
            &format!(
                "An authenticator app named \u{201c}{name}\u{201d} was added to your account."
            ),
            now,
        )
        .await;
        Ok(TotpConfirm::Added(TotpView {
            id: totp_id,
            name: name.into(),
            created_ms: now.timestamp_millis(),
        }))
    }

    /// Renames one of the user's factors.
    pub async fn rename_factor(
        &self,
        session: &Session,
        kind: FactorKind,
        id: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        check_text("name", name, 60)?;
        let user = self.active_user(&session.user.user_id).await?;
        refuse_if_frozen(&user)?;
        let event = Event::new(
            DEFAULT_ORG,
            now,
            &Actor::User(user.user_id.clone()),
            "factor.rename",
            &user.user_id,
            "ok",
        )
        .detail("kind", kind.store_kind())
        .detail("id", id);
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::RenameFactor {
                        org_id: DEFAULT_ORG.into(),
                        user_id: user.user_id.clone(),
                        kind: kind.store_kind().into(),
                        id: id.into(),
                        name: name.into(),
                    })
                    .with(event.into_change()),
            )
            .await?;
        Ok(())
    }

    /// Removes one of the user's factors. Needs a step-up; refuses to remove the last
    /// phishing-resistant factor where the user's policy requires one.
    pub async fn remove_factor(
        &self,
        session: &Session,
        kind: FactorKind,
        id: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let user = self.active_user(&session.user.user_id).await?;
        refuse_if_frozen(&user)?;
        let actor = Actor::User(user.user_id.clone());
        if !session.stepped_up(now) {
            return Err(CoreError::Forbidden(STEP_UP_NEEDED.into()));
        }
        let factors = self.factors(&user.user_id).await?;
        let policy = self.factor_policy(&user)?;
        if kind == FactorKind::Passkey
            && policy.require_phishing_resistant
            && factors.passkeys.len() == 1
            && factors.passkeys.iter().any(|p| p.id == id)
        {
            let event = Event::new(
                DEFAULT_ORG,
                now,
                &actor,
                "factor.remove",
                &user.user_id,
                "deny",
            )
            .detail("kind", kind.store_kind())
            .detail("id", id)
            .detail("reason", "last phishing-resistant factor");
            return Err(self
                .audited_refusal(
                    event,
                    "factor",
                    "this is your only passkey, and your organisation requires one; add \
                     another passkey first",
                )
                .await);
        }
        let event = Event::new(
            DEFAULT_ORG,
            now,
            &actor,
            "factor.remove",
            &user.user_id,
            "ok",
        )
        .detail("kind", kind.store_kind())
        .detail("id", id);
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::DeleteFactor {
                        org_id: DEFAULT_ORG.into(),
                        user_id: user.user_id.clone(),
                        kind: kind.store_kind().into(),
                        id: id.into(),
                    })
                    .with(event.into_change()),
            )
            .await?;
        let label = kind.label();
        self.notify_user(
            &user,
            "factor.remove",
            &format!("A {label} was removed from your account"),
            &format!("A {label} was removed from your account."),
            now,
        )
        .await;
        Ok(())
    }

    /// Generates a new set of recovery codes, replacing the old set. The codes are returned
    /// once; only their Argon2id hashes are kept.
    pub async fn regenerate_recovery_codes(
        &self,
        session: &Session,
        now: DateTime<Utc>,
    ) -> CoreResult<Vec<Zeroizing<String>>> {
        let user = self.active_user(&session.user.user_id).await?;
        refuse_if_frozen(&user)?;
        self.require_fresh_check(session, now).await?;
        let codes: Vec<Zeroizing<String>> =
            (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let plain: Vec<Zeroizing<String>> = codes.clone();
        let hashes = tokio::task::spawn_blocking(move || {
            plain
                .iter()
                .map(|c| hash_recovery_code(c))
                .collect::<CoreResult<Vec<String>>>()
        })
        .await
        .map_err(|e| CoreError::Internal(format!("hashing recovery codes: {e}")))??;
        let rows = hashes
            .into_iter()
            .map(|code_hash| RecoveryCodeRow {
                code_id: format!("DR{}", &crate::ids::totp_id()[2..]),
                org_id: DEFAULT_ORG.into(),
                user_id: user.user_id.clone(),
                code_hash,
                created_ms: now.timestamp_millis(),
                used_ms: None,
            })
            .collect::<Vec<_>>();
        let event = Event::new(
            DEFAULT_ORG,
            now,
            &Actor::User(user.user_id.clone()),
            "recovery_codes.generate",
            &user.user_id,
            "ok",
        )
        .detail("count", rows.len());
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::ReplaceRecoveryCodes {
                        org_id: DEFAULT_ORG.into(),
                        user_id: user.user_id.clone(),
                        codes: rows,
                    })
                    .with(event.into_change()),
            )
            .await?;
        self.notify_user(
            &user,
            "recovery_codes.generate",
            "New recovery codes were created for your account",
            "A new set of recovery codes was created for your account; any older codes no \
             longer work.",
            now,
        )
        .await;
        Ok(codes)
    }

    /// Checks a recovery code against the user's unused codes and, if it matches, uses it up.
    /// Returns whether it matched.
    pub async fn use_recovery_code(
        &self,
        user_id: &str,
        code: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<bool> {
        let normalised = normalise_recovery_code(code);
        if normalised.len() != RECOVERY_CODE_BYTES * 8 / 5 {
            return Ok(false);
        }
        let rows = self
            .store
            .recovery_codes_for_user(DEFAULT_ORG, user_id)
            .await?
            .into_iter()
            .filter(|r| r.used_ms.is_none())
            .collect::<Vec<_>>();
        let candidate = Zeroizing::new(normalised);
        let found = tokio::task::spawn_blocking(move || {
            let argon = argon2::Argon2::default();
            rows.into_iter().find(|r| {
                argon2::password_hash::phc::PasswordHash::new(&r.code_hash)
                    .is_ok_and(|h| argon.verify_password(candidate.as_bytes(), &h).is_ok())
            })
        })
        .await
        .map_err(|e| CoreError::Internal(format!("checking a recovery code: {e}")))?;
        let Some(row) = found else {
            return Ok(false);
        };
        match self
            .store
            .commit(ChangeSet::new().with(Change::UseRecoveryCode {
                org_id: DEFAULT_ORG.into(),
                user_id: user_id.into(),
                code_id: row.code_id,
                used_ms: now.timestamp_millis(),
            }))
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Tells the user about a change to their account, with a "this wasn't me" link. Best
    /// effort: the change is already made and audited.
    pub(super) async fn notify_user(
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

    /// What a "this wasn't me" link is worth now.
    pub async fn report_link_state(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<LinkState> {
        self.link_state(token, |p| p.starts_with(REPORT_PREFIX), now)
            .await
    }

    /// "This wasn't me": freezes the account's factor changes, ends its sessions, alerts the
    /// administrators. Returns the action the user disowned.
    pub async fn report_not_me(&self, token: &str, now: DateTime<Utc>) -> CoreResult<String> {
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
            DEFAULT_ORG,
            now,
            &Actor::User(row.user_id.clone()),
            "account.freeze",
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
        &self,
        actor: &Actor,
        username: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let user = self
            .store
            .user_by_name(DEFAULT_ORG, username)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("user {username}")))?;
        let event = Event::new(
            DEFAULT_ORG,
            now,
            actor,
            "account.unfreeze",
            &user.user_id,
            "ok",
        );
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::SetFactorsFrozen {
                        org_id: DEFAULT_ORG.into(),
                        user_id: user.user_id.clone(),
                        frozen_ms: None,
                    })
                    .with(event.into_change()),
            )
            .await?;
        Ok(())
    }

    /// Puts a user in a policy group (`None`: the default group).
    pub async fn set_policy_group(
        &self,
        actor: &Actor,
        username: &str,
        group: Option<&str>,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        if let Some(g) = group {
            check_text("group", g, 60)?;
            if !self.passkeys()?.settings.factors.groups.contains_key(g) {
                return Err(CoreError::invalid(
                    "group",
                    format!("no policy group {g} is configured"),
                ));
            }
        }
        let user = self
            .store
            .user_by_name(DEFAULT_ORG, username)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("user {username}")))?;
        let event = Event::new(
            DEFAULT_ORG,
            now,
            actor,
            "user.policy_group",
            &user.user_id,
            "ok",
        )
        .detail_opt("group", group);
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::SetPolicyGroup {
                        org_id: DEFAULT_ORG.into(),
                        user_id: user.user_id,
                        group: group.map(str::to_owned),
                    })
                    .with(event.into_change()),
            )
            .await?;
        Ok(())
    }
}

/// Refuses factor changes on a frozen account.
pub(super) fn refuse_if_frozen(user: &UserRow) -> CoreResult<()> {
    if user.factors_frozen_ms.is_some() {
        return Err(CoreError::Forbidden(
            "changes to this account's sign-in methods are frozen after a report of \
             suspicious activity; contact your administrators"
                .into(),
        ));
    }
    Ok(())
}

/// A new recovery code: 80 random bits as 16 Base32 characters in groups of four.
fn new_recovery_code() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; RECOVERY_CODE_BYTES]);
    rand::fill(bytes.as_mut_slice());
    let text = Zeroizing::new(totp::base32_encode(bytes.as_slice()));
    let grouped = text
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-");
    Zeroizing::new(grouped)
}

/// Upper case, without separators or spaces.
fn normalise_recovery_code(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn hash_recovery_code(code: &str) -> CoreResult<String> {
    let normalised = Zeroizing::new(normalise_recovery_code(code));
    argon2::Argon2::default()
        .hash_password(normalised.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Internal(format!("hashing a recovery code: {e}")))
}
