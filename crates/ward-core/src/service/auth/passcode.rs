//! The one passcode check every door uses: the Auth API, the older `/rest/v1` API, the hosted
//! prompt and the portal's TOTP sign-in.
//!
//! The [`gate`](crate::gate) decides from the account as read; the code is matched against the
//! user's authenticators (those with another digit count are skipped); then one change set
//! records the decision, the door's own changes and its audit event. The facts that must hold
//! under concurrency are conditional statements in that same set: the time step is used once
//! ([`Change::UseTotpStep`]), a failure is counted only while the account is not locked and
//! locks it at the threshold ([`Change::RecordAuthFailure`]), and a success never clears a lock
//! that another request set ([`Change::RecordAuthSuccess`]). When one of them does not hold, the
//! attempt is answered from what the store decided (locked out, or a replayed code).

use chrono::{DateTime, Utc};
use ward_store::{Change, ChangeSet, StoreError, TotpRow, UserKey, UserRow};

use super::AuthStatus;
use crate::audit::Event;
use crate::crypto::Purpose;
use crate::error::CoreResult;
use crate::gate::{self, Allowed, Method, Refusal, Subject};
use crate::model::TotpAuthenticator;
use crate::service::Ward;
use crate::totp::Totp;

/// What a door asks of the passcode check.
pub(in crate::service) struct PasscodeCheck<'a> {
    pub org_id: &'a str,
    pub user: UserKey<'a>,
    pub passcode: &'a str,
    /// What the door's policy allows for this account (`None`: no such account).
    pub allowed: &'a (dyn Fn(Option<&UserRow>) -> CoreResult<Allowed> + Sync),
    /// The door's audit event for the decision: `(target, outcome)`.
    pub audit: &'a (dyn Fn(&str, &str) -> Event + Sync),
    /// The door's own changes recorded with the decision (a transaction row): `(user id,
    /// status)`.
    pub record: &'a (dyn Fn(Option<&str>, AuthStatus) -> Vec<Change> + Sync),
}

/// The decision on a passcode.
#[derive(Clone, Debug)]
pub(in crate::service) struct PasscodeOutcome {
    /// `Allow`, `Deny` or `LockedOut`.
    pub status: AuthStatus,
    /// The account, when it exists.
    pub user: Option<UserRow>,
    /// Why the account was refused without its code being counted (the gate's reason, or a
    /// lock another request set).
    pub refusal: Option<Refusal>,
}

impl Ward {
    /// Checks a passcode through the gate and records the decision. Every refusal of a code
    /// (wrong, replayed, malformed) has the same status; the reason is only audited.
    pub(in crate::service) async fn check_passcode(
        &self,
        check: &PasscodeCheck<'_>,
        now: DateTime<Utc>,
    ) -> CoreResult<PasscodeOutcome> {
        let found = self.store.user_with_totps(check.org_id, check.user).await?;
        let (user, totps) = match found {
            Some((user, totps)) => (Some(user), totps),
            None => (None, Vec::new()),
        };
        let subject = user.as_ref().map(Subject::of).transpose()?;
        let allowed = (check.allowed)(user.as_ref())?;
        let org = self.org_state(check.org_id, now).await?;
        let admitted = gate::admit(
            org,
            subject.as_ref(),
            Method::Passcode,
            allowed,
            now.timestamp_millis(),
        );
        let user = match (user, admitted) {
            (Some(user), Ok(())) => user,
            (user, admitted) => {
                let refusal = admitted.err().unwrap_or(Refusal::UnknownUser);
                let target = user.as_ref().map_or_else(
                    || match check.user {
                        UserKey::Name(name) => format!("username:{name}"),
                        UserKey::Id(id) => id.to_owned(),
                    },
                    |u| u.user_id.clone(),
                );
                return self.record_passcode(check, user, &target, refusal).await;
            }
        };
        match self.match_totp(&totps, check.passcode, now)? {
            Some((totp_id, step)) => self.accept_passcode(check, user, totp_id, step, now).await,
            None => {
                self.refuse_passcode(check, user, "wrong_passcode", now)
                    .await
            }
        }
    }

    /// The first authenticator the code is valid for (skipping those with another number of
    /// digits), and the time step it matched.
    pub(super) fn match_totp(
        &self,
        totps: &[TotpRow],
        passcode: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Option<(String, i64)>> {
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
                return Ok(Some((row.totp_id.clone(), step)));
            }
        }
        Ok(None)
    }

    async fn accept_passcode(
        &self,
        check: &PasscodeCheck<'_>,
        user: UserRow,
        totp_id: String,
        step: i64,
        now: DateTime<Utc>,
    ) -> CoreResult<PasscodeOutcome> {
        let mut set = ChangeSet::new()
            .with(Change::RecordAuthSuccess {
                org_id: user.org_id.clone(),
                user_id: user.user_id.clone(),
                at_ms: now.timestamp_millis(),
            })
            .with(Change::UseTotpStep {
                org_id: user.org_id.clone(),
                totp_id: totp_id.clone(),
                step,
            });
        for change in (check.record)(Some(&user.user_id), AuthStatus::Allow) {
            set.push(change);
        }
        set.push(
            (check.audit)(&user.user_id, "allow")
                .detail("totp_id", totp_id.as_str())
                .into_change(),
        );
        match self.store.commit(set).await {
            Ok(_) => Ok(PasscodeOutcome {
                status: AuthStatus::Allow,
                user: Some(user),
                refusal: None,
            }),
            // Locked by a concurrent request, or the step was used first (perhaps on another
            // node): the store decided; answer from what it holds now.
            Err(StoreError::ConditionFailed(_)) => {
                self.refuse_passcode(check, user, "replayed_passcode", now)
                    .await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Counts a refused code (conditionally: a locked account counts nothing more and is
    /// answered as locked out) and records the decision.
    async fn refuse_passcode(
        &self,
        check: &PasscodeCheck<'_>,
        user: UserRow,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> CoreResult<PasscodeOutcome> {
        let threshold = i64::from(self.policy.lockout_threshold);
        let mut set = ChangeSet::new();
        if threshold > 0 {
            set.push(Change::RecordAuthFailure {
                org_id: user.org_id.clone(),
                user_id: user.user_id.clone(),
                threshold,
                lock_until_ms: (now + self.policy.lockout_duration).timestamp_millis(),
                now_ms: now.timestamp_millis(),
            });
        }
        let target = user.user_id.clone();
        for change in (check.record)(Some(&target), AuthStatus::Deny) {
            set.push(change);
        }
        set.push(
            (check.audit)(&target, "deny")
                .detail("reason", reason)
                .into_change(),
        );
        match self.store.commit(set).await {
            Ok(_) => Ok(PasscodeOutcome {
                status: AuthStatus::Deny,
                user: Some(user),
                refusal: None,
            }),
            Err(StoreError::ConditionFailed(_)) => {
                self.record_passcode(check, Some(user), &target, Refusal::LockedOut)
                    .await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records a refusal that changes no account state.
    async fn record_passcode(
        &self,
        check: &PasscodeCheck<'_>,
        user: Option<UserRow>,
        target: &str,
        refusal: Refusal,
    ) -> CoreResult<PasscodeOutcome> {
        let status = refused_status(refusal);
        let user_id = user.as_ref().map(|u| u.user_id.as_str());
        let mut set = ChangeSet::new();
        for change in (check.record)(user_id, status) {
            set.push(change);
        }
        set.push(
            (check.audit)(target, "deny")
                .detail("reason", refusal.as_str())
                .into_change(),
        );
        self.store.commit(set).await?;
        Ok(PasscodeOutcome {
            status,
            user,
            refusal: Some(refusal),
        })
    }
}

/// The status a gate refusal gets at a passcode door.
pub(super) fn refused_status(refusal: Refusal) -> AuthStatus {
    match refusal {
        Refusal::LockedOut => AuthStatus::LockedOut,
        Refusal::OrgDisabled
        | Refusal::UnknownUser
        | Refusal::Disabled
        | Refusal::NotAllowed
        | Refusal::PushMuted
        | Refusal::PushStorm => AuthStatus::Deny,
    }
}
