//! Starting a case: the same answer for every identifier (a phantom case for unknown,
//! disabled, blocked or rate-limited accounts, and for a second start while a case is open),
//! the circuit breaker, and the notices a start sends (capped per account and hour).

use crate::service::Recovery;
use chrono::{DateTime, TimeDelta, Utc};
use ward_store::{Change, ChangeSet, RecoveryCaseRow, RecoveryEventRow, StoreError, UserRow};
use zeroize::Zeroizing;

use super::{Loaded, Ward, refusal_error};
use crate::audit::{Action, Event};
use crate::crypto::{new_token, token_hash};
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor as AuditActor, OrgId, UserId, UserStatus};
use crate::recovery::{CaseEvent, Level, OpenCase, Opener, fold, open};

/// What a start needs to know.
struct Start<'a> {
    org: &'a OrgId,
    user: Option<&'a UserRow>,
    opener: &'a Opener,
    ip: Option<&'a str>,
    breaker: bool,
    now: DateTime<Utc>,
}

/// A case just opened: its browser handle, and for an agent-opened case the continue link's
/// token (the only way into the case).
struct Opened {
    loaded: Loaded,
    handle: Zeroizing<String>,
    link: Option<Zeroizing<String>>,
    reason: Option<&'static str>,
    /// Whether the start's notice fits within the hourly cap.
    told: bool,
}

impl Ward {
    /// Checks the circuit breaker, alerting when it is tripped.
    async fn check_breaker(&self, org: &OrgId, now: DateTime<Utc>) -> CoreResult<bool> {
        let tripped = self.breaker_tripped(org, now).await?;
        if tripped {
            self.raise(crate::notify::Alert::RecoveryCircuitBreaker {
                org_id: org.to_string(),
                at_ms: now.timestamp_millis(),
            })
            .await;
        }
        Ok(tripped)
    }

    /// Whether recovery starts in the last hour exceed the circuit breaker's threshold.
    async fn breaker_tripped(&self, org: &OrgId, now: DateTime<Utc>) -> CoreResult<bool> {
        let s = &self.recovery;
        let hour = self
            .store
            .recovery_cases_opened_since(
                org.as_str(),
                (now - TimeDelta::hours(1)).timestamp_millis(),
            )
            .await?;
        let week = self
            .store
            .recovery_cases_opened_since(
                org.as_str(),
                (now - TimeDelta::days(7)).timestamp_millis(),
            )
            .await?;
        let baseline = (week / (7 * 24)).max(1);
        Ok(hour >= (baseline * s.breaker_multiple).max(s.breaker_floor))
    }

    /// Opens a case (a phantom when `reason` is set) with its audit event; `Err(())` when the
    /// account already has an open case (a concurrent start won).
    async fn open_case(
        &self,
        start: &Start<'_>,
        reason: Option<&'static str>,
    ) -> CoreResult<Result<Opened, ()>> {
        let now = start.now;
        let org = start.org;
        let handle = Zeroizing::new(new_token());
        let link = match start.opener {
            Opener::Agent { .. } => Some(Zeroizing::new(new_token())),
            Opener::User => None,
        };
        let case_id = format!(
            "RC{}",
            &crate::ids::txid().replace('-', "")[..18].to_uppercase()
        );
        let real = start.user.filter(|_| reason.is_none());
        // The case records the level every start gets now (more while the breaker is tripped);
        // a privileged account's stricter level comes from its facts at each decision, so
        // nothing recorded or shown at the start tells it from an ordinary or unknown account.
        let level = if start.breaker { Level::R2 } else { Level::R1 };
        let first = open(
            &self.recovery.policy,
            OpenCase {
                case_id: case_id.clone(),
                user_id: real.map_or_else(|| format!("phantom-{case_id}"), |u| u.user_id.clone()),
                level,
                opened_by: start.opener.clone(),
                phantom: real.is_none(),
            },
            now.timestamp_millis(),
        )
        .map_err(|r| refusal_error(&r))?;
        let row = RecoveryCaseRow {
            case_id: case_id.clone(),
            org_id: org.to_string(),
            user_id: real.map(|u| u.user_id.clone()),
            handle_hash: token_hash(&handle),
            state: "collecting".into(),
            is_open: true,
            opened_by: start
                .opener
                .agent_id()
                .map_or_else(|| "user".into(), |a| format!("agent:{a}")),
            opened_ms: now.timestamp_millis(),
            updated_ms: now.timestamp_millis(),
            expires_ms: first.at_ms() + self.recovery.policy.collect_ttl_ms,
            version: 1,
            opened_from: start.ip.filter(|_| link.is_none()).map(str::to_owned),
            adopt_hash: link.as_ref().map(|l| token_hash(l)),
        };
        // Notices about starts are capped per account and hour; the cap is counted before the
        // start is recorded so that the audit event says whether the user was told.
        let announced = real.or(start.user.filter(|_| start_again_notice(reason).is_some()));
        let told = match announced {
            Some(u) => {
                self.take_notice_slot(org, &UserId::of(u), "recovery.start", now)
                    .await
            }
            None => false,
        };
        let actor = start
            .opener
            .agent_id()
            .map_or(AuditActor::Anonymous, |a| AuditActor::User(a.to_owned()));
        let target = start.user.map_or("-", |u| u.user_id.as_str());
        let audit = Event::new(
            org.as_str(),
            now,
            &actor,
            Action::RecoveryStart,
            target,
            "ok",
        )
        .detail("case_id", case_id.as_str())
        .detail("phantom", real.is_none())
        .detail_opt("phantom_reason", reason)
        .detail("breaker", start.breaker)
        .detail("user_told", told)
        .detail_opt("ip", start.ip.map(str::to_owned));
        let set = ChangeSet::new()
            .with(Change::OpenRecoveryCase {
                case: row.clone(),
                first_event: first_event_row(&case_id, &first)?,
            })
            .with(audit.into_change());
        match self.store.commit(set).await {
            Ok(_) => {}
            Err(StoreError::Duplicate(_)) if real.is_some() => return Ok(Err(())),
            Err(e) => return Err(e.into()),
        }
        let view = fold(&[first]).map_err(|e| CoreError::Internal(format!("{e:?}")))?;
        Ok(Ok(Opened {
            loaded: Loaded { row, view },
            handle,
            link,
            reason,
            told,
        }))
    }

    /// The notices a start sends: the opened case's on every channel, or the user's notice of
    /// a start that opened a phantom for their account (within the hourly cap).
    async fn start_notices(&self, start: &Start<'_>, opened: &Opened) {
        let Some(user) = start.user else {
            return;
        };
        if opened.loaded.row.user_id.is_some() {
            self.case_opened_notices(
                &opened.loaded,
                user,
                start.opener,
                start.ip,
                opened.link.as_deref().map(String::as_str),
                start.now,
            )
            .await;
        } else if let (true, Some(body)) = (opened.told, start_again_notice(opened.reason)) {
            self.notify_user(
                user,
                "recovery.start_again",
                "Someone tried to start another recovery of your account",
                body,
                start.now,
            )
            .await;
        }
    }

    /// Why a start for this account opens a phantom case instead (`None`: a real case).
    async fn phantom_reason(
        &self,
        org: &OrgId,
        user: Option<&UserRow>,
        now: DateTime<Utc>,
    ) -> CoreResult<Option<&'static str>> {
        let Some(user) = user else {
            return Ok(Some("unknown user"));
        };
        if user.status.parse::<UserStatus>()? == UserStatus::Disabled {
            return Ok(Some("disabled"));
        }
        if user
            .recovery_blocked_until_ms
            .is_some_and(|t| t > now.timestamp_millis())
        {
            return Ok(Some("recovery blocked"));
        }
        if self
            .store
            .open_recovery_case(org.as_str(), &user.user_id)
            .await?
            .is_some()
        {
            return Ok(Some("case already open"));
        }
        let day_ago = (now - TimeDelta::days(1)).timestamp_millis();
        let recent = self
            .store
            .recovery_cases_for_user(org.as_str(), &user.user_id, 10)
            .await?
            .iter()
            .filter(|c| c.opened_ms > day_ago)
            .count();
        if recent as i64 >= self.recovery.starts_per_day {
            return Ok(Some("too many starts"));
        }
        Ok(None)
    }
}

impl Recovery<'_> {
    /// Starts a recovery (self-service, or a helpdesk agent for a caller). Always answers the
    /// same way: a handle for the browser. Unknown, disabled, blocked or rate-limited accounts
    /// and a second start while a case is open get a phantom case. A case an agent opens has
    /// no browser yet: the handle returned is empty, and the user adopts the case with the
    /// continue link in their notice.
    pub async fn start(
        self,
        org: &OrgId,
        username: &str,
        opener: Opener,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> CoreResult<(Zeroizing<String>, String)> {
        let username = username.trim();
        let user = if username.is_empty() || username.len() > 100 {
            None
        } else {
            self.store.user_by_name(org.as_str(), username).await?
        };
        let reason = self.phantom_reason(org, user.as_ref(), now).await?;
        let breaker = self.check_breaker(org, now).await?;
        let start = Start {
            org,
            user: user.as_ref(),
            opener: &opener,
            ip,
            breaker,
            now,
        };
        let case = match self.open_case(&start, reason).await? {
            Ok(case) => case,
            // Another start for the account opened its case first: this one is a phantom,
            // answered the same way.
            Err(()) => self
                .open_case(&start, Some("case already open"))
                .await?
                .map_err(|()| CoreError::Conflict("the recovery case is busy; try again".into()))?,
        };
        self.start_notices(&start, &case).await;
        let handle = match opener {
            Opener::User => case.handle,
            Opener::Agent { .. } => Zeroizing::new(String::new()),
        };
        Ok((handle, case.loaded.row.case_id))
    }
}

/// What the user is told when a start for their account opened a phantom (recovery spec §5.8: a
/// start
/// over the limit is silent to the requester but still notifies the user); `None`: nothing.
fn start_again_notice(reason: Option<&str>) -> Option<&'static str> {
    match reason? {
        "case already open" => Some(
            "A recovery of your account is already open, and someone tried to start another one.",
        ),
        "too many starts" => Some(
            "Someone tried to start a recovery of your account again. Too many recoveries were \
             started today, so nothing was opened.",
        ),
        _ => None,
    }
}

fn first_event_row(case_id: &str, first: &CaseEvent) -> CoreResult<RecoveryEventRow> {
    Ok(RecoveryEventRow {
        case_id: case_id.to_owned(),
        seq: 1,
        at_ms: first.at_ms(),
        event: serde_json::to_string(first)
            .map_err(|e| CoreError::Internal(format!("recovery event: {e}")))?,
    })
}
