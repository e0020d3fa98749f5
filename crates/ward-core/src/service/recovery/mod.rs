//! Recovery cases as a service: persistence of the pure case machine ([`crate::recovery`]),
//! evidence checks, approvals, notifications on every channel, completion, and the helpdesk.
//!
//! # Security
//! Every command runs the pure `decide` over the case's events and appends what it returns
//! with a write conditional on the case's version, so two nodes never interleave a case. A
//! start for an unknown, disabled, blocked or rate-limited account opens a phantom case that
//! walks the same screens and can never succeed, so the answer never reveals anything. The
//! helpdesk can open a case and flag fraud; nothing in this service lets an agent approve,
//! shorten cooling or receive a token.

mod approvals;
mod contact;
mod evidence;
mod finish;
mod handles;
mod helpdesk;
mod notices;
mod start;
mod tick;

use crate::service::Recovery;
pub use approvals::PendingApproval;
use chrono::{DateTime, TimeDelta, Utc};
pub use evidence::Submitted;
pub use handles::Submission;
pub use helpdesk::{CallerCheck, CaseSummary, HelpdeskView};
use ward_store::{Change, ChangeSet, RecoveryCaseRow, RecoveryEventRow, StoreError, UserRow};

use super::Ward;
use crate::audit::{Action, Event};
use crate::crypto::token_hash;
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor as AuditActor, OrgId, Role, UserId};
use crate::recovery::{
    AccountFacts, ApproverFacts, CaseEvent, CaseState, CaseView, Category, Command, Level,
    PolicyInput, RecoveryPolicy, Refusal, decide, evaluate, fold,
};

/// How recovery behaves in this deployment.
#[derive(Clone, Debug)]
pub struct RecoverySettings {
    pub policy: RecoveryPolicy,
    /// Starts per account per 24 h; more are answered the same way but open nothing.
    pub starts_per_day: i64,
    /// After a denied case, no new case for this long.
    pub denied_cooloff: TimeDelta,
    /// The circuit breaker trips when the last hour's starts exceed this many times the hourly
    /// average of the last week (and at least `breaker_floor`); new cases then need approvals.
    pub breaker_multiple: i64,
    pub breaker_floor: i64,
    /// Lifetime of an e-mailed code.
    pub email_code_ttl: TimeDelta,
    /// After a recovery: no new approvers or recovery methods without a fresh approval.
    pub probation: TimeDelta,
    /// Notices about recovery starts an account may get per hour (on each channel); starts
    /// past the cap are still recorded in the audit log, but not announced separately.
    pub start_notices_per_hour: i64,
}

impl Default for RecoverySettings {
    fn default() -> Self {
        Self {
            policy: RecoveryPolicy::default(),
            starts_per_day: 3,
            denied_cooloff: TimeDelta::hours(24),
            breaker_multiple: 5,
            breaker_floor: 20,
            email_code_ttl: TimeDelta::minutes(30),
            probation: TimeDelta::days(7),
            start_notices_per_hour: 3,
        }
    }
}

/// What the person recovering sees: the same for real and phantom cases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseStatus {
    /// `collecting`, `cooling`, `ready`, `enrolling`, `confirming`, `completed`, `closed`.
    pub stage: &'static str,
    /// The categories accepted so far (codes shown to the user, e.g. "recovery code").
    pub accepted: Vec<&'static str>,
    /// What else would complete the case (human-readable).
    pub missing: Vec<String>,
    pub cooling_until_ms: Option<i64>,
    /// Approvals recorded so far.
    pub approvals: usize,
    /// Whether e-mail codes can be sent at all (a mail server is configured).
    pub email_available: bool,
    /// When the case was started.
    pub opened_ms: i64,
    /// The address it was started from (`None` when a helpdesk agent opened it).
    pub opened_from: Option<String>,
    /// Whether a helpdesk agent opened it (at a caller's request).
    pub by_helpdesk: bool,
}

/// A case with its row and its folded events.
#[derive(Clone, Debug)]
pub(crate) struct Loaded {
    pub(crate) row: RecoveryCaseRow,
    pub(crate) view: CaseView,
}

pub(crate) fn state_name(state: CaseState) -> &'static str {
    match state {
        CaseState::Collecting => "collecting",
        CaseState::Cooling { .. } => "cooling",
        CaseState::ReadyToIssue => "ready",
        CaseState::TokenIssued { .. } => "token_issued",
        CaseState::Bound => "bound",
        CaseState::Completed => "completed",
        CaseState::Cancelled => "cancelled",
        CaseState::Frozen => "frozen",
        CaseState::Expired => "expired",
        CaseState::Denied => "denied",
    }
}

fn category_label(c: Category) -> &'static str {
    match c {
        Category::RecoveryCode => "recovery code",
        Category::EmailCode => "e-mail code",
        Category::Approvals => "approvals",
        Category::Document => "identity document",
        Category::PersonVerification => "verification of the person",
        Category::SurvivingFactor => "remaining factor",
    }
}

/// What a person is told when the case machine refuses a command: a fixed sentence (the
/// refusal itself goes to the log; a state's `Debug` form is no message for a person).
fn refusal_error(r: &Refusal) -> CoreError {
    tracing::info!(refusal = %r, code = r.code(), "recovery command refused");
    match r {
        Refusal::OwnCase => CoreError::Forbidden(
            "An agent cannot open a recovery case for their own account.".into(),
        ),
        _ => not_now(),
    }
}

/// The one refusal of a step the case is not at (or a phantom case never reaches), so that
/// real and phantom cases in the same stage answer alike.
pub(crate) fn not_now() -> CoreError {
    CoreError::Conflict("This step of the recovery is not available now.".into())
}

/// What an unknown or replaced handle answers.
pub(crate) fn case_missing() -> CoreError {
    CoreError::NotFound("recovery case (start again)".into())
}

impl Ward {
    /// Serves recovery with these settings.
    #[must_use]
    pub fn with_recovery(mut self, settings: RecoverySettings) -> Self {
        self.recovery = settings;
        self
    }

    /// The account facts the policy needs: level (privileged roles need R3) and approvers.
    pub(crate) async fn account_facts(
        &self,
        user: &UserRow,
        breaker: bool,
    ) -> CoreResult<AccountFacts> {
        let org = &OrgId::new(user.org_id.clone());
        let roles = self.admin().roles(org, &UserId::of(user)).await?;
        let privileged = roles
            .iter()
            .any(|r| matches!(r, Role::Admin | Role::Helpdesk | Role::Security));
        let level = if privileged {
            Level::R3
        } else if breaker {
            Level::R2
        } else {
            Level::R1
        };
        let security = self
            .store
            .users_with_role(org.as_str(), Role::Security.as_str())
            .await?;
        let mut approvers = Vec::new();
        for a in self
            .store
            .recovery_approvers(org.as_str(), &user.user_id)
            .await?
        {
            let approver = self.store.user_by_id(org.as_str(), &a.approver_id).await?;
            approvers.push(ApproverFacts {
                security_pool: security.contains(&a.approver_id),
                last_recovered_ms: approver.and_then(|u| u.last_recovered_ms),
                approver_id: a.approver_id,
            });
        }
        Ok(AccountFacts { level, approvers })
    }

    pub(crate) async fn load_case(&self, row: RecoveryCaseRow) -> CoreResult<Loaded> {
        let events = self
            .store
            .recovery_events(&row.case_id)
            .await?
            .iter()
            .map(|e| serde_json::from_str::<CaseEvent>(&e.event))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CoreError::Internal(format!("recovery event: {e}")))?;
        let view =
            fold(&events).map_err(|e| CoreError::Internal(format!("recovery case: {e:?}")))?;
        Ok(Loaded { row, view })
    }

    pub(crate) async fn case_by_handle(&self, handle: &str) -> CoreResult<Loaded> {
        if handle.is_empty() || handle.len() > 128 {
            return Err(case_missing());
        }
        let row = self
            .store
            .recovery_case_by_handle(&token_hash(handle))
            .await?
            .ok_or_else(case_missing)?;
        self.load_case(row).await
    }

    async fn case_user(&self, loaded: &Loaded) -> CoreResult<Option<UserRow>> {
        match &loaded.row.user_id {
            Some(id) => self.store.user_by_id(&loaded.row.org_id, id).await,
            None => Ok(None),
        }
        .map_err(Into::into)
    }

    /// Runs a command on a case (then lets time pass), appends the events conditionally on the
    /// case's version, audits them, and sends the notices they call for. Returns the new view,
    /// or the refusal (nothing recorded).
    pub(crate) async fn run_case(
        &self,
        mut loaded: Loaded,
        command: Command,
        actor: &AuditActor,
        now: DateTime<Utc>,
    ) -> CoreResult<Result<CaseView, Refusal>> {
        for _ in 0..3 {
            let user = self.case_user(&loaded).await?;
            let facts = match &user {
                Some(u) => {
                    self.account_facts(u, loaded.view.level == Level::R2)
                        .await?
                }
                None => AccountFacts {
                    level: loaded.view.level,
                    approvers: Vec::new(),
                },
            };
            let policy = &self.recovery.policy;
            let now_ms = now.timestamp_millis();
            let mut events = match decide(&loaded.view, policy, &facts, command.clone(), now_ms) {
                Ok(e) => e,
                Err(r) => return Ok(Err(r)),
            };
            let mut view = loaded.view.clone();
            for e in &events {
                view.apply(e)
                    .map_err(|e| CoreError::Internal(format!("recovery case: {e:?}")))?;
            }
            if !matches!(command, Command::Tick)
                && let Ok(more) = decide(&view, policy, &facts, Command::Tick, now_ms)
            {
                for e in &more {
                    view.apply(e)
                        .map_err(|e| CoreError::Internal(format!("recovery case: {e:?}")))?;
                }
                events.extend(more);
            }
            if events.is_empty() {
                return Ok(Ok(view));
            }
            match self.append(&loaded, &view, &events, actor, now).await {
                Ok(()) => {
                    self.case_notices(&loaded, user.as_ref(), &events, now)
                        .await;
                    return Ok(Ok(view));
                }
                Err(StoreError::ConditionFailed(_)) => {
                    // Another request appended first: read the case again and retry.
                    let row = self
                        .store
                        .recovery_case(&loaded.row.case_id)
                        .await?
                        .ok_or_else(|| CoreError::NotFound("recovery case".into()))?;
                    loaded = self.load_case(row).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Conflict(
            "the recovery case is busy; try again".into(),
        ))
    }

    async fn append(
        &self,
        loaded: &Loaded,
        view: &CaseView,
        events: &[CaseEvent],
        actor: &AuditActor,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut set = ChangeSet::new();
        let mut rows = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let json = serde_json::to_string(e)
                .map_err(|err| StoreError::Corrupt(format!("recovery event: {err}")))?;
            rows.push(RecoveryEventRow {
                case_id: loaded.row.case_id.clone(),
                seq: loaded.row.version + 1 + i as i64,
                at_ms: e.at_ms(),
                event: json,
            });
        }
        set.push(Change::AppendRecoveryEvents {
            case_id: loaded.row.case_id.clone(),
            expected_version: loaded.row.version,
            events: rows,
            state: state_name(view.state).into(),
            is_open: !view.state.is_terminal(),
            updated_ms: now.timestamp_millis(),
            expires_ms: crate::recovery::deadline(view, &self.recovery.policy)
                .unwrap_or(loaded.row.expires_ms),
        });
        if view.state == CaseState::Denied
            && let Some(user_id) = &loaded.row.user_id
        {
            set.push(Change::SetRecoveryBlock {
                org_id: loaded.row.org_id.clone(),
                user_id: user_id.clone(),
                until_ms: Some((now + self.recovery.denied_cooloff).timestamp_millis()),
            });
        }
        for e in events {
            set.push(case_event_audit(&loaded.row, e, actor, now).into_change());
        }
        self.store.commit(set).await.map(|_| ())
    }

    async fn status_of(
        &self,
        loaded: &Loaded,
        view: &CaseView,
        now: DateTime<Utc>,
    ) -> CoreResult<CaseStatus> {
        let user = self.case_user(loaded).await?;
        let facts = match &user {
            Some(u) => self.account_facts(u, view.level == Level::R2).await?,
            None => AccountFacts {
                level: view.level,
                approvers: Vec::new(),
            },
        };
        let decision = evaluate(
            &self.recovery.policy,
            &view.policy_input(&facts, now.timestamp_millis()),
        );
        // A phantom past the failure limit stays collecting (it can never be denied), but must
        // look like the real case the limit denies.
        let exhausted = view.phantom && view.rejections > self.recovery.policy.max_rejections;
        let stage = match view.state {
            CaseState::Collecting if exhausted => "closed",
            CaseState::Collecting => "collecting",
            CaseState::Cooling { .. } => "cooling",
            CaseState::ReadyToIssue => "ready",
            CaseState::TokenIssued { .. } => "enrolling",
            CaseState::Bound => "confirming",
            CaseState::Completed => "completed",
            CaseState::Frozen | CaseState::Cancelled | CaseState::Expired | CaseState::Denied => {
                "closed"
            }
        };
        let mut missing: Vec<String> = decision.missing.iter().map(ToString::to_string).collect();
        if missing.is_empty() && view.state == CaseState::Collecting {
            // Nothing self-service reaches R3, so its cases have nothing to ask for: they ask
            // what a phantom opened at the same time (the case's recorded level, no approvers)
            // asks, or privileged accounts would stand out.
            let unknown = AccountFacts {
                level: view.level,
                approvers: Vec::new(),
            };
            let input = PolicyInput {
                required: view.level,
                ..view.policy_input(&unknown, now.timestamp_millis())
            };
            missing = evaluate(&self.recovery.policy, &input)
                .missing
                .iter()
                .map(ToString::to_string)
                .collect();
        }
        if view.phantom && missing.is_empty() {
            missing = vec!["a recovery code".into(), "an e-mail code".into()];
        }
        Ok(CaseStatus {
            stage,
            accepted: view
                .evidence
                .iter()
                .map(|e| category_label(e.category))
                .collect(),
            missing,
            cooling_until_ms: view.cooling_until_ms,
            approvals: view.approvals.len(),
            email_available: self.mailer.is_some(),
            opened_ms: loaded.row.opened_ms,
            opened_from: loaded.row.opened_from.clone(),
            by_helpdesk: loaded.row.opened_by.starts_with("agent:"),
        })
    }
}

impl Recovery<'_> {
    /// Where a case stands, as the person recovering sees it (time passes first).
    pub async fn status(self, handle: &str, now: DateTime<Utc>) -> CoreResult<CaseStatus> {
        let loaded = self.case_by_handle(handle).await?;
        let view = match self
            .run_case(loaded.clone(), Command::Tick, &AuditActor::Anonymous, now)
            .await?
        {
            Ok(v) => v,
            Err(_) => loaded.view.clone(),
        };
        self.midpoint_notice(&loaded, &view, now).await;
        self.status_of(&loaded, &view, now).await
    }

    /// The user's open case, for the portal banner.
    pub async fn open_case_for(
        self,
        org: &OrgId,
        user_id: &UserId,
    ) -> CoreResult<Option<(String, &'static str, Option<i64>)>> {
        let Some(row) = self
            .store
            .open_recovery_case(org.as_str(), user_id.as_str())
            .await?
        else {
            return Ok(None);
        };
        let loaded = self.load_case(row).await?;
        Ok(Some((
            loaded.row.case_id.clone(),
            state_name(loaded.view.state),
            loaded.view.cooling_until_ms,
        )))
    }

    /// The user cancels their open case from any enrolled factor (a portal session, a push
    /// device's deny). Returns whether a case was cancelled.
    pub async fn cancel_by_user(
        self,
        org: &OrgId,
        user_id: &UserId,
        via: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<bool> {
        let Some(row) = self
            .store
            .open_recovery_case(org.as_str(), user_id.as_str())
            .await?
        else {
            return Ok(false);
        };
        let loaded = self.load_case(row).await?;
        let command = Command::Cancel {
            by: crate::recovery::Actor::User,
            via: via.into(),
        };
        match self
            .run_case(loaded, command, &AuditActor::User(user_id.to_string()), now)
            .await?
        {
            Ok(_) => Ok(true),
            Err(r) => Err(refusal_error(&r)),
        }
    }

    /// Freezes the user's open case for review ("this wasn't me" on a recovery notice, or a
    /// fraud report on a recovery push). Returns whether a case was frozen.
    pub async fn freeze_for_user(
        self,
        org: &OrgId,
        user_id: &UserId,
        by: crate::recovery::Actor,
        reason: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<bool> {
        let Some(row) = self
            .store
            .open_recovery_case(org.as_str(), user_id.as_str())
            .await?
        else {
            return Ok(false);
        };
        let loaded = self.load_case(row).await?;
        let actor = match &by {
            crate::recovery::Actor::Agent { agent_id } => AuditActor::User(agent_id.clone()),
            _ => AuditActor::User(user_id.to_string()),
        };
        let command = Command::Freeze {
            by,
            reason: reason.into(),
        };
        match self.run_case(loaded, command, &actor, now).await? {
            Ok(_) => {
                self.raise(crate::notify::Alert::RecoveryFrozen {
                    org_id: org.to_string(),
                    user_id: user_id.to_string(),
                    reason: reason.into(),
                    at_ms: now.timestamp_millis(),
                })
                .await;
                Ok(true)
            }
            Err(r) => Err(refusal_error(&r)),
        }
    }
}

fn case_event_audit(
    row: &RecoveryCaseRow,
    e: &CaseEvent,
    actor: &AuditActor,
    now: DateTime<Utc>,
) -> Event {
    let target = row.user_id.as_deref().unwrap_or("-");
    let mut event = Event::new(
        &row.org_id,
        now,
        actor,
        Action::for_case_event(e),
        target,
        "ok",
    )
    .detail("case_id", row.case_id.as_str());
    match e {
        CaseEvent::EvidenceAccepted { category, .. } => {
            event = event.detail("category", category.code());
        }
        CaseEvent::EvidenceRejected {
            category, reason, ..
        } => {
            event = event
                .detail("category", category.code())
                .detail("reason", reason.as_str());
        }
        CaseEvent::ApprovalRecorded(a) => {
            event = event
                .detail("approver_id", a.approver_id.as_str())
                .detail("cred_id", a.cred_id.as_str())
                .detail("security_pool", a.from_security_pool);
        }
        CaseEvent::CoolingStarted { row, until_ms, .. } => {
            event = event
                .detail("row", row.as_str())
                .detail("until_ms", *until_ms);
        }
        CaseEvent::Cancelled { via, .. } => event = event.detail("via", via.as_str()),
        CaseEvent::Frozen { reason, .. } | CaseEvent::Denied { reason, .. } => {
            event = event.detail("reason", reason.as_str());
        }
        CaseEvent::AuthenticatorBound { cred_id, .. } => {
            event = event.detail("cred_id", cred_id.as_str());
        }
        _ => {}
    }
    event
}
