//! Push login requests: the lifecycle `pending → approved | denied | fraud | timeout`.
//!
//! Every transition is one conditional change (`state = 'pending'`) committed together with
//! the transaction's result and its audit event, so two nodes can never both decide a request.
//!
//! # Security
//! An answer counts only if it is signed by the key of the device the request was sent to, over
//! this transaction, the decision, the typed number and the hash of the context the device
//! showed. Forged, replayed and misdirected answers are refused and audited. With Verified Push,
//! approving needs the number shown to the user at the login; a wrong number denies.

use chrono::{DateTime, Utc};
use rand::RngExt;

use ward_proto::device::PushEvent;
use ward_store::{Change, ChangeSet, PushRow, Signal, StoreError};

use super::{AuthContext, AuthDecision, AuthStatus, decision, user_key, user_ref_label};
use crate::audit::{Action, Event};
use crate::service::{Auth, Ward};

use crate::error::{CoreError, CoreResult};
use crate::gate::{self, Allowed, Door, Method, Refusal, Subject};
use crate::ids;
use crate::model::{Actor, DeviceId, OrgId, User, UserRef};
use crate::notify::Alert;
use crate::policy::ApiPushMode;

/// What the application asked to show with a push (Duo's `type`, `display_username`,
/// `pushinfo`, `device`).
#[derive(Clone, Debug, Default)]
pub struct PushRequest {
    pub title: Option<String>,
    pub display_username: Option<String>,
    pub details: Vec<(String, String)>,
    /// A device id, or `None` for the user's first device (`device=auto`).
    pub device: Option<String>,
    /// Without `device`: the Nth (1-based) of the user's push devices, in preauth order.
    pub device_index: Option<usize>,
    /// The name of the host the user logs in to (`hostname`), shown and audited.
    pub hostname: Option<String>,
    /// Whether the user must type a number shown at the login.
    pub number_required: bool,
    /// Whether a refusal must still get a transaction id (`async=1` callers poll one).
    pub want_txid: bool,
}

/// A push that was sent: the transaction id, and the number to show when one is required.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushStarted {
    pub txid: String,
    pub number: Option<String>,
    pub device_id: DeviceId,
}

/// The result of asking for a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The device was asked; wait for the transaction.
    Started(PushStarted),
    /// Decided without asking (unknown, disabled, locked or muted user, push storm).
    Decided(AuthDecision),
}

/// What a door's policy lets a push do, and what the door answers when it does not allow it.
/// The gate decides with `allowed`; a refusal is audited with the gate's reason and `policy`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PushDoor {
    /// What the door's policy allows (the application's push mode or prompt policy).
    pub allowed: Allowed,
    /// The policy that does not allow the push, as audited (`details.policy`).
    pub policy: &'static str,
    /// The door's answer to a push its policy does not allow.
    pub refusal: fn() -> CoreError,
}

impl PushDoor {
    /// Ward's own requests to a user's devices (recovery notices, helpdesk verification): no
    /// application's policy applies.
    pub(crate) const WARD: Self = Self {
        allowed: Allowed::ALL,
        policy: "none",
        refusal: || CoreError::Forbidden("push is not allowed here".into()),
    };
}

/// The state of a push request: pending, then one final state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushState {
    Pending,
    Approved,
    Denied,
    Fraud,
    Timeout,
}

impl PushState {
    /// Every state.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Approved,
        Self::Denied,
        Self::Fraud,
        Self::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Fraud => "fraud",
            Self::Timeout => "timeout",
        }
    }

    fn status(self) -> AuthStatus {
        match self {
            Self::Pending => AuthStatus::Pushed,
            Self::Approved => AuthStatus::Allow,
            Self::Denied => AuthStatus::PushDenied,
            Self::Fraud => AuthStatus::Fraud,
            Self::Timeout => AuthStatus::Timeout,
        }
    }
}

impl std::str::FromStr for PushState {
    type Err = CoreError;

    fn from_str(s: &str) -> CoreResult<Self> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| CoreError::Internal(format!("stored push state {s:?}")))
    }
}

/// Whether a stored push is still waiting for its answer.
pub(in crate::service) fn is_pending(push: &PushRow) -> CoreResult<bool> {
    Ok(push.state.parse::<PushState>()? == PushState::Pending)
}

fn clean(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// The application's `pushinfo` pairs for the audit log (as shown on the device).
fn pushinfo_detail(details: &[(String, String)]) -> Option<serde_json::Value> {
    (!details.is_empty()).then(|| {
        details
            .iter()
            .take(20)
            .map(|(k, v)| serde_json::json!([clean(k, 100), clean(v, 500)]))
            .collect()
    })
}

impl Ward {
    /// The storm limit as a conditional change (checked by the store with the insert).
    fn push_limit(&self, user: &User, now: DateTime<Utc>) -> Option<Change> {
        let limit = self.policy.push.storm_limit;
        (limit > 0).then(|| Change::CheckPushLimit {
            org_id: user.org_id.to_string(),
            user_id: user.id.to_string(),
            since_ms: (now - self.policy.push.storm_window).timestamp_millis(),
            limit: i64::from(limit),
        })
    }

    fn push_number(&self) -> String {
        let digits = self.policy.push.number_digits.clamp(3, 6);
        let n = rand::rng().random_range(0..10u32.pow(digits));
        format!("{n:0width$}", width = digits as usize)
    }

    fn push_row(
        &self,
        ctx: &AuthContext,
        user: &User,
        req: &PushRequest,
        started: &PushStarted,
        now: DateTime<Utc>,
    ) -> CoreResult<PushRow> {
        let mut event = PushEvent {
            txid: started.txid.clone(),
            title: clean(req.title.as_deref().unwrap_or("Login request"), 100),
            application: clean(&ctx.integration.name, 100),
            username: clean(
                req.display_username.as_deref().unwrap_or(&user.username),
                100,
            ),
            ip: ctx.user_ip.as_deref().map(|ip| clean(ip, 64)),
            location: None,
            details: req
                .hostname
                .iter()
                .map(|h| ("Host".to_owned(), clean(h, 255)))
                .chain(
                    req.details
                        .iter()
                        .take(20)
                        .map(|(k, v)| (clean(k, 100), clean(v, 500))),
                )
                .collect(),
            time: now.timestamp(),
            expires: (now + self.policy.push.timeout).timestamp(),
            number_required: started.number.is_some(),
            context_hash: String::new(),
        };
        event.context_hash = event.computed_context_hash();
        Ok(PushRow {
            org_id: user.org_id.to_string(),
            txid: started.txid.clone(),
            ikey: ctx.integration.ikey.to_string(),
            user_id: user.id.to_string(),
            device_id: started.device_id.to_string(),
            state: PushState::Pending.as_str().into(),
            number: started.number.clone(),
            context_hash: event.context_hash.clone(),
            context: serde_json::to_string(&event)
                .map_err(|e| CoreError::Internal(format!("push context: {e}")))?,
            created_ms: now.timestamp_millis(),
            expires_ms: (now + self.policy.push.timeout).timestamp_millis(),
            decided_ms: None,
        })
    }

    /// A push the door's policy does not allow: audited with the gate's reason and the policy,
    /// answered with the door's own error.
    async fn push_not_allowed(
        &self,
        ctx: &AuthContext,
        door: &PushDoor,
        target: &str,
        now: DateTime<Utc>,
    ) -> CoreError {
        let event = ctx
            .event(now, Action::AuthPush, target, "deny")
            .detail("reason", Refusal::NotAllowed.as_str())
            .detail("policy", door.policy);
        match self
            .store
            .commit(ChangeSet::new().with(event.into_change()))
            .await
        {
            Ok(_) => (door.refusal)(),
            Err(e) => e.into(),
        }
    }

    async fn push_refused(
        &self,
        ctx: &AuthContext,
        user_id: Option<&str>,
        target: &str,
        req: &PushRequest,
        refusal: Refusal,
        now: DateTime<Utc>,
    ) -> CoreResult<PushOutcome> {
        let status = push_refused_status(refusal);
        let txid = req.want_txid.then(ids::txid);
        let event = ctx
            .event(now, Action::AuthPush, target, "deny")
            .detail("reason", refusal.as_str());
        let mut set = ChangeSet::new();
        if let Some(txid) = &txid {
            set.push(self.tx_change(ctx, "push", user_id, txid, status, now));
        }
        set.push(event.into_change());
        self.store.commit(set).await?;
        Ok(PushOutcome::Decided(decision(txid, status)))
    }

    /// Moves a pending push to its final state, with the transaction result, the fraud mute
    /// and the audit event, in one change set; then wakes whoever waits for it.
    pub(in crate::service) async fn decide_push(
        &self,
        push: &PushRow,
        state: PushState,
        reason: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let status = state.status();
        let outcome = if state == PushState::Approved {
            "allow"
        } else {
            "deny"
        };
        let event = Event::new(
            &push.org_id,
            now,
            actor,
            Action::AuthPushDecided,
            &push.user_id,
            outcome,
        )
        .detail("txid", push.txid.as_str())
        .detail("integration", push.ikey.as_str())
        .detail("device_id", push.device_id.as_str())
        .detail("state", state.as_str())
        .detail("reason", reason);
        let mut set = ChangeSet::new()
            .with(Change::DecidePush {
                org_id: push.org_id.clone(),
                txid: push.txid.clone(),
                state: state.as_str().into(),
                decided_ms: now.timestamp_millis(),
            })
            .with(Change::FinishAuthTx {
                org_id: push.org_id.clone(),
                txid: push.txid.clone(),
                result: status.result().as_str().into(),
                status: status.as_str().into(),
                status_msg: status.message().into(),
            });
        if state == PushState::Fraud {
            set.push(Change::MutePush {
                org_id: push.org_id.clone(),
                user_id: push.user_id.clone(),
                until_ms: (now + self.policy.push.mute_after_fraud).timestamp_millis(),
            });
        }
        set.push(event.into_change());
        match self.store.commit(set).await {
            Ok(_) => {}
            Err(StoreError::ConditionFailed(_)) => {
                return Err(CoreError::Conflict("request already decided".into()));
            }
            Err(e) => return Err(e.into()),
        }
        self.store
            .signals()
            .publish(Signal::Tx(push.txid.clone()))
            .await;
        if state == PushState::Fraud {
            let alert = Alert::FraudReported {
                org_id: push.org_id.clone(),
                user_id: push.user_id.clone(),
                txid: push.txid.clone(),
                device_id: push.device_id.clone(),
                integration: push.ikey.clone(),
                ip: serde_json::from_str::<PushEvent>(&push.context)
                    .ok()
                    .and_then(|e| e.ip),
                at_ms: now.timestamp_millis(),
            };
            for sink in &self.alerts {
                sink.alert(&alert).await;
            }
        }
        Ok(())
    }

    /// Times out a pending push whose time is up (any node may do it; one wins).
    pub(in crate::service) async fn expire_push(
        &self,
        push: &PushRow,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        if !is_pending(push)? || push.expires_ms > now.timestamp_millis() {
            return Ok(());
        }
        match self
            .decide_push(
                push,
                PushState::Timeout,
                "no_answer",
                &Actor::Integration(push.ikey.clone()),
                now,
            )
            .await
        {
            Ok(()) | Err(CoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Auth<'_> {
    /// A push asked for through the Duo Auth API, under the integration's push mode (else the
    /// server's `push.auth_api_mode`): Verified Push
    /// (a number the application shows; asynchronous calls only), plain push with context, or
    /// no push at all. The gate decides with that policy; a refusal by it is audited and
    /// explains what to do instead.
    pub async fn start_api_push(
        self,
        ctx: &AuthContext,
        user_ref: &UserRef,
        mut req: PushRequest,
        is_async: bool,
        now: DateTime<Utc>,
    ) -> CoreResult<PushOutcome> {
        let mut door = PushDoor {
            allowed: ctx.allowed(Door::AuthApi, &self.policy),
            policy: "api_push_refused",
            refusal: || CoreError::invalid("factor", API_PUSH_REFUSED),
        };
        match ctx.push_mode(&self.policy) {
            ApiPushMode::Refuse => {}
            // The number must reach the user, which a synchronous call cannot return.
            ApiPushMode::Verified if !is_async => {
                door.allowed.push = false;
                door.policy = "verified_push_needs_async";
                door.refusal = || CoreError::invalid("factor", VERIFIED_PUSH_NEEDS_ASYNC);
            }
            ApiPushMode::Verified => req.number_required = true,
            ApiPushMode::Plain => req.number_required = false,
        }
        self.auth()
            .start_push(ctx, &door, user_ref, &req, now)
            .await
    }

    /// Sends a push to one of the user's devices, if the gate admits it under the door's
    /// policy. Audited.
    pub(crate) async fn start_push(
        self,
        ctx: &AuthContext,
        door: &PushDoor,
        user_ref: &UserRef,
        req: &PushRequest,
        now: DateTime<Utc>,
    ) -> CoreResult<PushOutcome> {
        let org = ctx.integration.org_id.as_str();
        let row = self.store.user_with_totps(org, user_key(user_ref)).await?;
        let row = row.map(|(row, _totps)| row);
        let subject = row.as_ref().map(Subject::of).transpose()?;
        let admitted = gate::admit(
            self.org_state(org, now).await?,
            subject.as_ref(),
            Method::Push,
            door.allowed,
            now.timestamp_millis(),
        );
        let user = match (row, admitted) {
            (Some(row), Ok(())) => User::try_from(row)?,
            (row, admitted) => {
                let refusal = admitted.err().unwrap_or(Refusal::UnknownUser);
                let user_id = row.map(|r| r.user_id);
                let target = user_id.clone().unwrap_or_else(|| user_ref_label(user_ref));
                if refusal == Refusal::NotAllowed {
                    return Err(self.push_not_allowed(ctx, door, &target, now).await);
                }
                return self
                    .push_refused(ctx, user_id.as_deref(), &target, req, refusal, now)
                    .await;
            }
        };
        let devices = self.store.devices_for_user(org, user.id.as_str()).await?;
        let device = match (&req.device, req.device_index) {
            (Some(id), _) => devices.iter().find(|d| &d.device_id == id),
            (None, Some(n)) => n.checked_sub(1).and_then(|i| devices.get(i)),
            (None, None) => devices.first(),
        }
        .ok_or_else(|| CoreError::invalid("device", "no push device of this user matches"))?;
        let started = PushStarted {
            txid: ids::txid(),
            number: req.number_required.then(|| self.push_number()),
            device_id: DeviceId::new(device.device_id.clone()),
        };
        let row = self.push_row(ctx, &user, req, &started, now)?;
        let context = row.context.clone();
        let event = ctx
            .event(now, Action::AuthPushSent, user.id.as_str(), "pending")
            .detail("txid", started.txid.as_str())
            .detail("device_id", started.device_id.as_str())
            .detail("number_required", started.number.is_some())
            .detail_opt("hostname", req.hostname.as_deref().map(|h| clean(h, 255)))
            .detail_opt("pushinfo", pushinfo_detail(&req.details));
        let mut set = ChangeSet::new();
        if let Some(limit) = self.push_limit(&user, now) {
            set.push(limit);
        }
        let set = set
            .with(Change::InsertPush(row))
            .with(self.tx_change(
                ctx,
                "push",
                Some(user.id.as_str()),
                &started.txid,
                AuthStatus::Pushed,
                now,
            ))
            .with(event.into_change());
        match self.store.commit(set).await {
            Ok(_) => {}
            // Over the storm limit, as the store counted it (on every node).
            Err(StoreError::ConditionFailed(_)) => {
                return self
                    .push_refused(
                        ctx,
                        Some(user.id.as_str()),
                        user.id.as_str(),
                        req,
                        Refusal::PushStorm,
                        now,
                    )
                    .await;
            }
            Err(e) => return Err(e.into()),
        }
        if let Ok(event) = serde_json::from_str::<PushEvent>(&context) {
            for delivery in &self.deliveries {
                delivery.deliver(started.device_id.as_str(), &event).await;
            }
        }
        Ok(PushOutcome::Started(started))
    }

    /// When a waiting push transaction times out (for long-polls to bound their wait).
    pub async fn push_deadline(self, org: &OrgId, txid: &str) -> CoreResult<Option<DateTime<Utc>>> {
        match self.store.push(org.as_str(), txid).await? {
            Some(push) if is_pending(&push)? => {
                Ok(DateTime::from_timestamp_millis(push.expires_ms))
            }
            Some(_) | None => Ok(None),
        }
    }
}

const API_PUSH_REFUSED: &str = "Push through the Auth API is turned off for this server: this \
     integration must use the hosted prompt (Web SDK v4).";

const VERIFIED_PUSH_NEEDS_ASYNC: &str = "Verified Push needs async=1: show the returned \
     verified_push_code to the user, who types it on the device; or use the hosted prompt.";

/// The status a gate refusal gets at a push.
fn push_refused_status(refusal: Refusal) -> AuthStatus {
    match refusal {
        Refusal::OrgDisabled | Refusal::UnknownUser | Refusal::Disabled | Refusal::NotAllowed => {
            AuthStatus::PushDenied
        }
        Refusal::LockedOut => AuthStatus::LockedOut,
        Refusal::PushMuted | Refusal::PushStorm => AuthStatus::PushRefused,
    }
}
