//! Authentication decisions: preauth, passcode verification, transaction status.
//!
//! Every decision is one audit event, committed with the state it changes.

use chrono::{DateTime, Utc};
use ward_store::{AuthTxRow, Change, ChangeSet, DEFAULT_ORG, StoreError, TotpRow, UserKey};

use super::Ward;
use crate::audit::Event;
use crate::crypto::Purpose;
use crate::error::{CoreError, CoreResult};
use crate::ids;
use crate::model::{Actor, Integration, TotpAuthenticator, User, UserRef, UserStatus};
use crate::policy::UnknownUserPolicy;
use crate::totp::Totp;

/// Facts about the request an application makes on a user's behalf.
#[derive(Clone, Debug)]
pub struct AuthContext {
    pub integration: Integration,
    /// The end user's address as the application reports it (`ipaddr`).
    pub user_ip: Option<String>,
    /// The address the API request came from.
    pub client_ip: Option<String>,
}

impl AuthContext {
    /// The context of Ward's own requests to a user's devices (recovery notices, helpdesk
    /// verification): a pseudo-application `ikey` that no API client can use.
    pub(crate) fn internal(ikey: &str, name: &str) -> Self {
        Self {
            integration: crate::model::Integration {
                org_id: ward_store::DEFAULT_ORG.into(),
                ikey: ikey.into(),
                name: name.into(),
                kind: crate::model::IntegrationKind::AuthApi,
                created_ms: 0,
                push_mode: None,
                prompt_policy: crate::policy::PromptPolicy::default(),
            },
            user_ip: None,
            client_ip: None,
        }
    }

    fn actor(&self) -> Actor {
        Actor::Integration(self.integration.ikey.clone())
    }

    pub(super) fn event(
        &self,
        now: DateTime<Utc>,
        action: &str,
        target: &str,
        outcome: &str,
    ) -> Event {
        Event::new(
            &self.integration.org_id,
            now,
            &self.actor(),
            action,
            target,
            outcome,
        )
        .detail("integration", self.integration.ikey.as_str())
        .detail_opt("ipaddr", self.user_ip.clone())
        .detail_opt("client_ip", self.client_ip.clone())
    }
}

/// What a device can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Generates passcodes (TOTP).
    MobileOtp,
    /// Receives push requests (and so `factor=auto`).
    Push,
}

/// A device the user can authenticate with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub capabilities: Vec<Capability>,
}

/// Why a user is denied before any factor is tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    UnknownUser,
    Disabled,
    LockedOut,
    NoFactors,
}

/// The answer to `preauth`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreauthOutcome {
    /// The user must complete a second factor with one of these devices. `push_muted` says
    /// push is paused after a fraud report (push devices are listed without `push` then).
    Auth {
        devices: Vec<Device>,
        push_muted: bool,
    },
    /// The user must not be let in.
    Deny { reason: DenyReason },
    /// The user has no factor yet and may enrol at this address.
    Enroll { portal_url: String },
}

/// Duo's `status` values for a decided or pending authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthStatus {
    Allow,
    /// A passcode was refused.
    Deny,
    LockedOut,
    /// The user reported the push as fraud.
    Fraud,
    /// Nobody answered the push in time.
    Timeout,
    /// A push is waiting for its answer.
    Pushed,
    /// The user denied the push (or typed the wrong number).
    PushDenied,
    /// Pushes to the user are muted after a fraud report, or too many were sent.
    PushRefused,
}

impl AuthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny | Self::PushDenied | Self::PushRefused => "deny",
            Self::LockedOut => "locked_out",
            Self::Fraud => "fraud",
            Self::Timeout => "timeout",
            Self::Pushed => "pushed",
        }
    }

    /// Duo's `result` for this status.
    pub fn result(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Pushed => "waiting",
            _ => "deny",
        }
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Allow => "Success. Logging you in...",
            Self::Deny => "Incorrect passcode. Please try again.",
            Self::LockedOut => "Your account is locked out. Try again later.",
            Self::Fraud => "Login request reported as fraudulent.",
            Self::Timeout => "Login timed out.",
            Self::Pushed => "Pushed a login request to your device...",
            Self::PushDenied => "Login request denied.",
            Self::PushRefused => {
                "Push login requests to this account are paused. Use a passcode, or try again later."
            }
        }
    }
}

/// A decided authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthDecision {
    /// The transaction id, when the caller asked for one (`async=1`).
    pub txid: Option<String>,
    pub allowed: bool,
    pub status: AuthStatus,
    pub status_msg: &'static str,
}

/// A transaction as `auth_status` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxView {
    /// `waiting`, `allow` or `deny`.
    pub result: String,
    pub status: String,
    pub status_msg: String,
}

impl Ward {
    /// Decides whether and how a user must authenticate (Duo `preauth`). Audited.
    pub async fn preauth(
        &self,
        ctx: &AuthContext,
        user_ref: &UserRef,
        now: DateTime<Utc>,
    ) -> CoreResult<PreauthOutcome> {
        let found = self
            .store
            .user_with_totps(DEFAULT_ORG, user_key(user_ref))
            .await?;
        let (outcome, target) = match found {
            None => (self.unknown_user_outcome(), user_ref_label(user_ref)),
            Some((row, totps)) => {
                let muted = row
                    .push_muted_until_ms
                    .is_some_and(|t| t > now.timestamp_millis());
                let user = User::try_from(row)?;
                let push = self.store.devices_for_user(DEFAULT_ORG, &user.id).await?;
                (
                    self.known_user_outcome(&user, &totps, &push, muted, now),
                    user.id,
                )
            }
        };
        let (result, reason) = match &outcome {
            PreauthOutcome::Auth { .. } => ("auth", None),
            PreauthOutcome::Enroll { .. } => ("enroll", None),
            PreauthOutcome::Deny { reason } => ("deny", Some(deny_reason_str(*reason))),
        };
        let event = ctx
            .event(now, "auth.preauth", &target, result)
            .detail_opt("reason", reason);
        self.store
            .commit(ChangeSet::new().with(event.into_change()))
            .await?;
        Ok(outcome)
    }

    fn unknown_user_outcome(&self) -> PreauthOutcome {
        match self.policy.unknown_user {
            UnknownUserPolicy::Deny => PreauthOutcome::Deny {
                reason: DenyReason::UnknownUser,
            },
            UnknownUserPolicy::Enroll => PreauthOutcome::Enroll {
                portal_url: self.policy.enroll_portal_url.clone(),
            },
        }
    }

    fn known_user_outcome(
        &self,
        user: &User,
        totps: &[TotpRow],
        push: &[ward_store::DeviceRow],
        push_muted: bool,
        now: DateTime<Utc>,
    ) -> PreauthOutcome {
        if user.status == UserStatus::Disabled {
            return PreauthOutcome::Deny {
                reason: DenyReason::Disabled,
            };
        }
        if user.is_locked(now.timestamp_millis()) {
            return PreauthOutcome::Deny {
                reason: DenyReason::LockedOut,
            };
        }
        if totps.is_empty() && push.is_empty() {
            return match self.policy.unknown_user {
                UnknownUserPolicy::Enroll => PreauthOutcome::Enroll {
                    portal_url: self.policy.enroll_portal_url.clone(),
                },
                UnknownUserPolicy::Deny => PreauthOutcome::Deny {
                    reason: DenyReason::NoFactors,
                },
            };
        }
        let push_capabilities = if push_muted {
            vec![]
        } else {
            vec![Capability::Push]
        };
        let devices = push
            .iter()
            .map(|d| Device {
                id: d.device_id.clone(),
                name: d.name.clone(),
                capabilities: push_capabilities.clone(),
            })
            .chain(totps.iter().map(|t| Device {
                id: t.totp_id.clone(),
                name: t.name.clone(),
                capabilities: vec![Capability::MobileOtp],
            }))
            .collect();
        PreauthOutcome::Auth {
            devices,
            push_muted,
        }
    }

    /// Records the refusal of a factor Ward does not offer (SMS, voice) and returns the error
    /// the caller shows.
    pub async fn refuse_factor(
        &self,
        ctx: &AuthContext,
        user_ref: &UserRef,
        factor: &str,
        now: DateTime<Utc>,
    ) -> CoreError {
        let event = ctx
            .event(
                now,
                "auth.refused_factor",
                &user_ref_label(user_ref),
                "deny",
            )
            .detail("factor", factor);
        self.audited_refusal(
            event,
            "factor",
            "SMS and voice factors are disabled by design: Ward never sends codes by text \
             message or phone call. Use a passkey, Verified Push or a passcode.",
        )
        .await
    }

    /// Verifies a passcode for a user (Duo `auth` with `factor=passcode`). Audited; counts
    /// failures towards lockout. With `want_txid`, the result can later be read by
    /// [`Ward::auth_status`].
    ///
    /// # Security
    /// Every refusal of a passcode (wrong, replayed, malformed) gives the caller the same answer;
    /// the reason is only in the audit log. A time step is accepted once per authenticator, by a
    /// conditional update that also holds across nodes.
    pub async fn auth_passcode(
        &self,
        ctx: &AuthContext,
        user_ref: &UserRef,
        passcode: &str,
        want_txid: bool,
        now: DateTime<Utc>,
    ) -> CoreResult<AuthDecision> {
        let txid = want_txid.then(ids::txid);
        let found = self
            .store
            .user_with_totps(DEFAULT_ORG, user_key(user_ref))
            .await?;
        let Some((user_row, totps)) = found else {
            let target = user_ref_label(user_ref);
            return self
                .decide(
                    ctx,
                    None,
                    &target,
                    txid,
                    AuthStatus::Deny,
                    "unknown_user",
                    now,
                )
                .await;
        };
        let user = User::try_from(user_row)?;
        if user.status == UserStatus::Disabled {
            return self
                .decide(
                    ctx,
                    Some(&user),
                    &user.id,
                    txid,
                    AuthStatus::Deny,
                    "disabled",
                    now,
                )
                .await;
        }
        if user.is_locked(now.timestamp_millis()) {
            return self
                .decide(
                    ctx,
                    Some(&user),
                    &user.id,
                    txid,
                    AuthStatus::LockedOut,
                    "locked_out",
                    now,
                )
                .await;
        }
        let Some((authenticator, step)) = self.match_totp(&totps, passcode, now)? else {
            return self.fail(ctx, &user, txid, "wrong_passcode", now).await;
        };
        let event = ctx
            .event(now, "auth.passcode", &user.id, "allow")
            .detail("totp_id", authenticator.id.as_str());
        let mut set = ChangeSet::new()
            .with(Change::UseTotpStep {
                org_id: DEFAULT_ORG.into(),
                totp_id: authenticator.id.clone(),
                step,
            })
            .with(Change::RecordAuthSuccess {
                org_id: DEFAULT_ORG.into(),
                user_id: user.id.clone(),
                at_ms: now.timestamp_millis(),
            });
        if let Some(txid) = &txid {
            set.push(self.tx_change(
                ctx,
                "passcode",
                Some(&user.id),
                txid,
                AuthStatus::Allow,
                now,
            ));
        }
        set.push(event.into_change());
        match self.store.commit(set).await {
            Ok(_) => Ok(decision(txid, AuthStatus::Allow)),
            // Another request (perhaps on another node) used this step first.
            Err(StoreError::ConditionFailed(_)) => {
                self.fail(ctx, &user, txid, "replayed_passcode", now).await
            }
            Err(e) => Err(e.into()),
        }
    }

    fn match_totp(
        &self,
        totps: &[TotpRow],
        passcode: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Option<(TotpAuthenticator, i64)>> {
        for row in totps {
            let meta = TotpAuthenticator::try_from(row)?;
            if passcode.len() != meta.digits as usize {
                continue;
            }
            let seed = self
                .keys
                .open(Purpose::TotpSeed, &row.totp_id, &row.seed_sealed)?;
            let generator = Totp::new(seed, meta.algorithm, meta.digits, meta.step_secs)?;
            if let Some(step) = generator.verify(
                passcode,
                now.timestamp(),
                row.last_step,
                self.policy.totp_window,
            ) {
                return Ok(Some((meta, step)));
            }
        }
        Ok(None)
    }

    /// Records a failed passcode: counts it, locks at the threshold, audits.
    async fn fail(
        &self,
        ctx: &AuthContext,
        user: &User,
        txid: Option<String>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<AuthDecision> {
        let threshold = i64::from(self.policy.lockout_threshold);
        let locks = threshold > 0 && user.failed_attempts + 1 >= threshold;
        let event = ctx
            .event(now, "auth.passcode", &user.id, "deny")
            .detail("reason", reason)
            .detail("failed_attempts", user.failed_attempts + 1)
            .detail("locks_account", locks);
        let mut set = ChangeSet::new();
        if threshold > 0 {
            set.push(Change::RecordAuthFailure {
                org_id: DEFAULT_ORG.into(),
                user_id: user.id.clone(),
                threshold,
                lock_until_ms: (now + self.policy.lockout_duration).timestamp_millis(),
            });
        }
        if let Some(txid) = &txid {
            set.push(self.tx_change(ctx, "passcode", Some(&user.id), txid, AuthStatus::Deny, now));
        }
        set.push(event.into_change());
        self.store.commit(set).await?;
        Ok(decision(txid, AuthStatus::Deny))
    }

    /// Records a decision made before any passcode was checked.
    #[allow(clippy::too_many_arguments)] // the decision's facts, all required
    async fn decide(
        &self,
        ctx: &AuthContext,
        user: Option<&User>,
        target: &str,
        txid: Option<String>,
        status: AuthStatus,
        reason: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<AuthDecision> {
        let outcome = if status == AuthStatus::Allow {
            "allow"
        } else {
            "deny"
        };
        let event = ctx
            .event(now, "auth.passcode", target, outcome)
            .detail("reason", reason);
        let mut set = ChangeSet::new();
        if let Some(txid) = &txid {
            set.push(self.tx_change(
                ctx,
                "passcode",
                user.map(|u| u.id.as_str()),
                txid,
                status,
                now,
            ));
        }
        set.push(event.into_change());
        self.store.commit(set).await?;
        Ok(decision(txid, status))
    }

    #[allow(clippy::too_many_arguments)] // the transaction's facts, all required
    pub(super) fn tx_change(
        &self,
        ctx: &AuthContext,
        factor: &str,
        user_id: Option<&str>,
        txid: &str,
        status: AuthStatus,
        now: DateTime<Utc>,
    ) -> Change {
        Change::InsertAuthTx(AuthTxRow {
            org_id: ctx.integration.org_id.clone(),
            txid: txid.to_owned(),
            ikey: ctx.integration.ikey.clone(),
            user_id: user_id.map(str::to_owned),
            factor: factor.into(),
            result: status.result().into(),
            status: status.as_str().into(),
            status_msg: status.message().into(),
            created_ms: now.timestamp_millis(),
            expires_ms: (now + self.policy.tx_ttl).timestamp_millis(),
        })
    }

    /// The state of a transaction started by this integration (Duo `auth_status`). A push
    /// whose time is up is timed out here, by whichever node is asked first.
    pub async fn auth_status(
        &self,
        ctx: &AuthContext,
        txid: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<TxView> {
        let mut tx = self.read_tx(ctx, txid).await?;
        if tx.result == "waiting" {
            let push = self.store.push(&ctx.integration.org_id, txid).await?;
            if let Some(push) = push.filter(|p| p.expires_ms <= now.timestamp_millis()) {
                self.expire_push(&push, now).await?;
                tx = self.read_tx(ctx, txid).await?;
            }
        } else if tx.expires_ms <= now.timestamp_millis() {
            return Err(CoreError::Expired("transaction".into()));
        }
        Ok(TxView {
            result: tx.result,
            status: tx.status,
            status_msg: tx.status_msg,
        })
    }

    async fn read_tx(&self, ctx: &AuthContext, txid: &str) -> CoreResult<ward_store::AuthTxRow> {
        self.store
            .auth_tx(&ctx.integration.org_id, txid)
            .await?
            .filter(|tx| tx.ikey == ctx.integration.ikey)
            .ok_or_else(|| CoreError::NotFound("transaction".into()))
    }
}

pub(super) fn decision(txid: Option<String>, status: AuthStatus) -> AuthDecision {
    AuthDecision {
        txid,
        allowed: status == AuthStatus::Allow,
        status,
        status_msg: status.message(),
    }
}

pub(super) fn user_key(user: &UserRef) -> UserKey<'_> {
    match user {
        UserRef::Name(name) => UserKey::Name(name),
        UserRef::Id(id) => UserKey::Id(id),
    }
}

pub(super) fn user_ref_label(user: &UserRef) -> String {
    match user {
        UserRef::Name(name) => format!("username:{name}"),
        UserRef::Id(id) => id.clone(),
    }
}

fn deny_reason_str(reason: DenyReason) -> &'static str {
    match reason {
        DenyReason::UnknownUser => "unknown_user",
        DenyReason::Disabled => "disabled",
        DenyReason::LockedOut => "locked_out",
        DenyReason::NoFactors => "no_factors",
    }
}
