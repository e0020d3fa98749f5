//! Authentication decisions: preauth, passcode verification, transaction status.
//!
//! Every decision is one audit event, committed with the state it changes.

use chrono::{DateTime, Utc};
use ward_store::{AuthTxRow, Change, ChangeSet, TotpRow, UserKey};

use super::Ward;
use super::passcode::PasscodeCheck;
use crate::audit::{Action, Event};
use crate::error::{CoreError, CoreResult};
use crate::gate::{self, Allowed, Door, Enrolled, Method, Offer, Refusal, Subject};
use crate::ids;
use crate::model::{Actor, Integration, OrgId, UserRef};
use crate::policy::{ApiPushMode, AuthPolicy, UnknownUserPolicy};

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
    /// The context of Ward's own requests to a user's devices in `org` (recovery notices,
    /// helpdesk verification): a pseudo-application `ikey` that no API client can use.
    pub(crate) fn internal(org: &OrgId, ikey: &str, name: &str) -> Self {
        Self {
            integration: crate::model::Integration {
                org_id: org.clone(),
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
        action: Action,
        target: &str,
        outcome: &str,
    ) -> Event {
        Event::new(
            self.integration.org_id.as_str(),
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
    pub fn result(self) -> TxResult {
        match self {
            Self::Allow => TxResult::Allow,
            Self::Pushed => TxResult::Waiting,
            Self::Deny
            | Self::LockedOut
            | Self::Fraud
            | Self::Timeout
            | Self::PushDenied
            | Self::PushRefused => TxResult::Deny,
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

/// Duo's `result` of a transaction: decided (`allow`, `deny`) or still `waiting`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxResult {
    Waiting,
    Allow,
    Deny,
}

impl TxResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

impl std::str::FromStr for TxResult {
    type Err = CoreError;

    fn from_str(s: &str) -> CoreResult<Self> {
        match s {
            "waiting" => Ok(Self::Waiting),
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            other => Err(CoreError::Internal(format!(
                "stored transaction result {other:?}"
            ))),
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
    pub result: TxResult,
    pub status: String,
    pub status_msg: String,
}

impl AuthContext {
    /// What this integration's policy allows at `door` (the Auth API or the older API; the
    /// hosted prompt has its own policy). Passkeys are not a factor of these APIs.
    pub(super) fn allowed(&self, door: Door, policy: &AuthPolicy) -> Allowed {
        let mode = self
            .integration
            .push_mode
            .unwrap_or(policy.push.auth_api_mode);
        let push = match door {
            // These clients cannot show a Verified Push number: plain push only.
            Door::Legacy => mode == ApiPushMode::Plain,
            Door::AuthApi | Door::Prompt | Door::Portal => mode != ApiPushMode::Refuse,
        };
        Allowed {
            passkey: false,
            push,
            passcode: true,
        }
    }
}

impl Ward {
    /// Decides whether and how a user must authenticate (Duo `preauth`). Audited.
    pub async fn preauth(
        &self,
        ctx: &AuthContext,
        user_ref: &UserRef,
        now: DateTime<Utc>,
    ) -> CoreResult<PreauthOutcome> {
        self.preauth_at(ctx, Door::AuthApi, user_ref, now).await
    }

    /// `preauth` at one of the Duo API doors, through the gate.
    pub(super) async fn preauth_at(
        &self,
        ctx: &AuthContext,
        door: Door,
        user_ref: &UserRef,
        now: DateTime<Utc>,
    ) -> CoreResult<PreauthOutcome> {
        let org = ctx.integration.org_id.as_str();
        let found = self.store.user_with_totps(org, user_key(user_ref)).await?;
        let (user, totps) = match found {
            Some((user, totps)) => (Some(user), totps),
            None => (None, Vec::new()),
        };
        let push = match &user {
            Some(u) => self.store.devices_for_user(org, &u.user_id).await?,
            None => Vec::new(),
        };
        let subject = user.as_ref().map(Subject::of).transpose()?;
        let enrolled = Enrolled {
            passkey: false,
            push: !push.is_empty(),
            passcode: !totps.is_empty(),
        };
        let offer = gate::offer(
            self.org_state(org, now).await?,
            subject.as_ref(),
            enrolled,
            ctx.allowed(door, &self.policy),
            now.timestamp_millis(),
        );
        // Answered like a disabled account, but audited as what it is.
        let org_refused = offer == Offer::Refused(Refusal::OrgDisabled);
        let outcome = self.preauth_outcome(offer, &push, &totps);
        let target = user
            .as_ref()
            .map_or_else(|| user_ref_label(user_ref), |u| u.user_id.clone());
        let (result, reason) = match &outcome {
            PreauthOutcome::Auth { .. } => ("auth", None),
            PreauthOutcome::Enroll { .. } => ("enroll", None),
            PreauthOutcome::Deny { .. } if org_refused => {
                ("deny", Some(Refusal::OrgDisabled.as_str()))
            }
            PreauthOutcome::Deny { reason } => ("deny", Some(deny_reason_str(*reason))),
        };
        let event = ctx
            .event(now, Action::AuthPreauth, &target, result)
            .detail("door", door.as_str())
            .detail_opt("reason", reason);
        self.store
            .commit(ChangeSet::new().with(event.into_change()))
            .await?;
        Ok(outcome)
    }

    /// Renders the gate's offer as Duo's `preauth` answer.
    fn preauth_outcome(
        &self,
        offer: Offer,
        push: &[ward_store::DeviceRow],
        totps: &[TotpRow],
    ) -> PreauthOutcome {
        let deny = |reason| PreauthOutcome::Deny { reason };
        let (push_capable, push_muted) = match offer {
            Offer::Refused(Refusal::UnknownUser) => {
                return self.no_factor_outcome(DenyReason::UnknownUser);
            }
            Offer::NothingEnrolled => return self.no_factor_outcome(DenyReason::NoFactors),
            // A disabled organisation gets a disabled account's answer: nothing about the
            // account or its organisation shows.
            Offer::Refused(Refusal::Disabled | Refusal::OrgDisabled) => {
                return deny(DenyReason::Disabled);
            }
            Offer::Refused(Refusal::LockedOut) => return deny(DenyReason::LockedOut),
            Offer::Refused(
                refusal @ (Refusal::NotAllowed | Refusal::PushMuted | Refusal::PushStorm),
            ) => (false, refusal == Refusal::PushMuted),
            Offer::Methods {
                methods,
                push_muted,
            } => (methods.contains(&Method::Push), push_muted),
        };
        let push_capabilities = if push_capable {
            vec![Capability::Push]
        } else {
            vec![]
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

    /// An unknown user, or one without factors: enrol or deny, as configured.
    fn no_factor_outcome(&self, reason: DenyReason) -> PreauthOutcome {
        match self.policy.unknown_user {
            UnknownUserPolicy::Deny => PreauthOutcome::Deny { reason },
            UnknownUserPolicy::Enroll => PreauthOutcome::Enroll {
                portal_url: self.policy.enroll_portal_url.clone(),
            },
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
                Action::AuthRefusedFactor,
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

    /// Records the refusal of a signed request that gives a single-valued parameter more than
    /// once (its signature covers every order of the values, so neither can be trusted).
    pub async fn refuse_repeated_parameter(
        &self,
        ctx: &AuthContext,
        parameter: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let event = ctx
            .event(
                now,
                Action::AuthRequestRefused,
                &ctx.integration.ikey,
                "deny",
            )
            .detail("reason", "repeated_parameter")
            .detail("parameter", parameter);
        self.store
            .commit(ChangeSet::new().with(event.into_change()))
            .await?;
        Ok(())
    }

    /// Verifies a passcode for a user (Duo `auth` with `factor=passcode`). Audited; counts
    /// failures towards lockout. With `want_txid`, the result can later be read by
    /// [`Ward::auth_status`].
    ///
    /// # Security
    /// Every refusal of a passcode (wrong, replayed, malformed) gives the caller the same answer;
    /// the reason is only in the audit log. The decision is the gate's and the store's (see
    /// [`passcode`](super::passcode)): a time step is accepted once per authenticator and the
    /// lockout threshold holds under any concurrency and across nodes.
    pub async fn auth_passcode(
        &self,
        ctx: &AuthContext,
        user_ref: &UserRef,
        passcode: &str,
        want_txid: bool,
        now: DateTime<Utc>,
    ) -> CoreResult<AuthDecision> {
        self.auth_passcode_at(ctx, Door::AuthApi, user_ref, passcode, want_txid, now)
            .await
    }

    /// A passcode at one of the Duo API doors (or the hosted prompt, with its policy).
    pub(super) async fn auth_passcode_at(
        &self,
        ctx: &AuthContext,
        door: Door,
        user_ref: &UserRef,
        passcode: &str,
        want_txid: bool,
        now: DateTime<Utc>,
    ) -> CoreResult<AuthDecision> {
        let txid = want_txid.then(ids::txid);
        let audit = |target: &str, outcome: &str| {
            ctx.event(now, Action::AuthPasscode, target, outcome)
                .detail("door", door.as_str())
        };
        let record = |user_id: Option<&str>, status: AuthStatus| {
            txid.iter()
                .map(|txid| self.tx_change(ctx, "passcode", user_id, txid, status, now))
                .collect()
        };
        let allowed = match door {
            Door::Prompt => ctx.integration.prompt_policy.allowed(),
            Door::AuthApi | Door::Legacy | Door::Portal => ctx.allowed(door, &self.policy),
        };
        let check = PasscodeCheck {
            org_id: ctx.integration.org_id.as_str(),
            user: user_key(user_ref),
            passcode,
            allowed: &|_| Ok(allowed),
            audit: &audit,
            record: &record,
        };
        let outcome = self.check_passcode(&check, now).await?;
        Ok(decision(txid, outcome.status))
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
            org_id: ctx.integration.org_id.to_string(),
            txid: txid.to_owned(),
            ikey: ctx.integration.ikey.clone(),
            user_id: user_id.map(str::to_owned),
            factor: factor.into(),
            result: status.result().as_str().into(),
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
        if tx.result.parse::<TxResult>()? == TxResult::Waiting {
            let push = self
                .store
                .push(ctx.integration.org_id.as_str(), txid)
                .await?;
            if let Some(push) = push.filter(|p| p.expires_ms <= now.timestamp_millis()) {
                self.expire_push(&push, now).await?;
                tx = self.read_tx(ctx, txid).await?;
            }
        } else if tx.expires_ms <= now.timestamp_millis() {
            return Err(CoreError::Expired("transaction".into()));
        }
        Ok(TxView {
            result: tx.result.parse()?,
            status: tx.status,
            status_msg: tx.status_msg,
        })
    }

    async fn read_tx(&self, ctx: &AuthContext, txid: &str) -> CoreResult<ward_store::AuthTxRow> {
        self.store
            .auth_tx(ctx.integration.org_id.as_str(), txid)
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
