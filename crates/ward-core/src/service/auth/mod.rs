//! Authentication decisions: preauth, passcode verification, transaction status.
//!
//! Every decision is one audit event, committed with the state it changes.

pub(super) mod legacy;
pub(super) mod passcode;
pub(super) mod push;
mod types;

use chrono::{DateTime, Utc};
use ward_store::{AuthTxRow, Change, ChangeSet, TotpRow, UserKey};

use super::{Auth, Ward};
use crate::audit::Action;
use crate::error::{CoreError, CoreResult};
use crate::gate::{self, Door, Enrolled, Method, Offer, Refusal, Subject};
use crate::ids;
use crate::model::UserRef;
use crate::policy::UnknownUserPolicy;
use passcode::PasscodeCheck;
pub use types::{
    AuthContext, AuthDecision, AuthStatus, Capability, DenyReason, Device, PreauthOutcome,
    TxResult, TxStatus, TxView,
};

impl Ward {
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
        let (decision, _refusal) = self
            .auth_passcode_refusal_at(ctx, door, user_ref, passcode, want_txid, now)
            .await?;
        Ok(decision)
    }

    /// [`Ward::auth_passcode_at`], with the reason of a refusal that did not count the code
    /// (for doors that explain their policy's refusal).
    pub(super) async fn auth_passcode_refusal_at(
        &self,
        ctx: &AuthContext,
        door: Door,
        user_ref: &UserRef,
        passcode: &str,
        want_txid: bool,
        now: DateTime<Utc>,
    ) -> CoreResult<(AuthDecision, Option<Refusal>)> {
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
        Ok((decision(txid, outcome.status), outcome.refusal))
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
            ikey: ctx.integration.ikey.to_string(),
            user_id: user_id.map(str::to_owned),
            factor: factor.into(),
            result: status.result().as_str().into(),
            status: status.as_str().into(),
            status_msg: status.message().into(),
            created_ms: now.timestamp_millis(),
            expires_ms: (now + self.policy.tx_ttl).timestamp_millis(),
        })
    }

    async fn read_tx(&self, ctx: &AuthContext, txid: &str) -> CoreResult<ward_store::AuthTxRow> {
        self.store
            .auth_tx(ctx.integration.org_id.as_str(), txid)
            .await?
            .filter(|tx| tx.ikey == ctx.integration.ikey.as_str())
            .ok_or_else(|| CoreError::NotFound("transaction".into()))
    }
}

impl Auth<'_> {
    /// Decides whether and how a user must authenticate (Duo `preauth`). Audited.
    pub async fn preauth(
        self,
        ctx: &AuthContext,
        user_ref: &UserRef,
        now: DateTime<Utc>,
    ) -> CoreResult<PreauthOutcome> {
        self.preauth_at(ctx, Door::AuthApi, user_ref, now).await
    }

    /// Records the refusal of a factor Ward does not offer (SMS, voice) and returns the error
    /// the caller shows.
    pub async fn refuse_factor(
        self,
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
        self,
        ctx: &AuthContext,
        parameter: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let event = ctx
            .event(
                now,
                Action::AuthRequestRefused,
                ctx.integration.ikey.as_str(),
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
    /// [`Auth::status`].
    ///
    /// # Security
    /// Every refusal of a passcode (wrong, replayed, malformed) gives the caller the same answer;
    /// the reason is only in the audit log. The decision is the gate's and the store's (see
    /// [`passcode`](passcode)): a time step is accepted once per authenticator and the
    /// lockout threshold holds under any concurrency and across nodes.
    pub async fn passcode(
        self,
        ctx: &AuthContext,
        user_ref: &UserRef,
        passcode: &str,
        want_txid: bool,
        now: DateTime<Utc>,
    ) -> CoreResult<AuthDecision> {
        self.auth_passcode_at(ctx, Door::AuthApi, user_ref, passcode, want_txid, now)
            .await
    }

    /// The state of a transaction started by this integration (Duo `auth_status`). A push
    /// whose time is up is timed out here, by whichever node is asked first.
    pub async fn status(
        self,
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
            status: tx.status.parse()?,
            status_msg: tx.status_msg,
        })
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
