//! The helpdesk console's service: look a user up (factor counts and case state, never
//! evidence), open a case for a caller, verify a caller on their enrolled device, flag fraud,
//! add a note. Nothing here approves, shortens cooling or issues a token.

use crate::service::Recovery;
use chrono::{DateTime, Utc};

use super::notices::RECOVERY_IKEY;
use super::{Ward, category_label, state_name};
use crate::audit::{Action, Event};
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor as AuditActor, OrgId, Role, UserId, UserRef};
use crate::recovery::{Actor, Opener};
use crate::service::auth::push::PushDoor;
use crate::service::{AuthContext, PushOutcome, PushRequest, PushState, Session};

const HELPDESK_IKEY: &str = "ward-helpdesk";

/// What an agent sees about a user.
#[derive(Clone, Debug)]
pub struct HelpdeskView {
    pub username: String,
    pub user_id: UserId,
    pub status: String,
    pub passkeys: usize,
    pub authenticator_apps: usize,
    pub push_devices: usize,
    pub recovery_codes_left: usize,
    pub factors_frozen: bool,
    pub case: Option<CaseSummary>,
}

/// An open case as the helpdesk sees it: state and categories, never evidence.
#[derive(Clone, Debug)]
pub struct CaseSummary {
    pub case_id: String,
    pub state: &'static str,
    /// `user` or `agent:DU…`.
    pub opened_by: String,
    pub accepted: Vec<&'static str>,
    pub approvals: usize,
    pub cooling_until_ms: Option<i64>,
}

/// A caller verification sent to the user's device: the agent reads `number` to the caller,
/// who types it on their device.
#[derive(Clone, Debug)]
pub struct CallerCheck {
    pub txid: String,
    pub number: String,
}

impl Ward {
    /// Refuses anyone but a helpdesk agent signed in with a passkey.
    async fn require_agent(&self, session: &Session) -> CoreResult<AuditActor> {
        let org = &session.org();
        if session.auth_method != "passkey"
            || !self
                .admin()
                .has_role(org, &session.user_id(), Role::Helpdesk)
                .await?
        {
            return Err(CoreError::Forbidden(
                "the helpdesk console needs the helpdesk role and a passkey sign-in".into(),
            ));
        }
        Ok(AuditActor::User(session.user.user_id.clone()))
    }

    /// Whether a push belongs to a recovery notice (its deny cancels the case).
    pub(crate) fn is_recovery_push(ikey: &str) -> bool {
        ikey == RECOVERY_IKEY
    }

    /// The user answered a recovery notice on a device: "deny" cancels the case, "deny and
    /// report" freezes it for review. Best effort: the answer itself is already recorded.
    pub(crate) async fn recovery_answered(
        &self,
        org: &OrgId,
        user_id: &UserId,
        state: crate::service::PushState,
        now: DateTime<Utc>,
    ) {
        let result = match state {
            crate::service::PushState::Denied => {
                self.recovery()
                    .cancel_by_user(org, user_id, "denied on a push device", now)
                    .await
            }
            crate::service::PushState::Fraud => {
                self.recovery()
                    .freeze_for_user(
                        org,
                        user_id,
                        Actor::User,
                        "reported from a push device",
                        now,
                    )
                    .await
            }
            _ => return,
        };
        if let Err(e) = result {
            tracing::warn!(%user_id, error = %e, "recovery answer from a device not applied");
        }
    }
}

impl Recovery<'_> {
    /// Whether the session may use the console.
    pub async fn is_agent(self, session: &Session) -> CoreResult<bool> {
        Ok(self.require_agent(session).await.is_ok())
    }

    /// Looks a user up. Audited.
    pub async fn helpdesk_lookup(
        self,
        session: &Session,
        username: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Option<HelpdeskView>> {
        let org = &session.org();
        let actor = self.require_agent(session).await?;
        let user = self
            .store
            .user_by_name(org.as_str(), username.trim())
            .await?;
        let event = Event::new(
            org.as_str(),
            now,
            &actor,
            Action::HelpdeskLookup,
            user.as_ref().map_or("-", |u| u.user_id.as_str()),
            "ok",
        )
        .detail("found", user.is_some());
        self.store
            .commit(ward_store::ChangeSet::new().with(event.into_change()))
            .await?;
        let Some(user) = user else {
            return Ok(None);
        };
        let factors = self.portal().factors(org, &UserId::of(&user)).await?;
        let case = match self
            .store
            .open_recovery_case(org.as_str(), &user.user_id)
            .await?
        {
            Some(row) => {
                let loaded = self.load_case(row).await?;
                Some(CaseSummary {
                    case_id: loaded.row.case_id.clone(),
                    state: state_name(loaded.view.state),
                    opened_by: loaded.row.opened_by.clone(),
                    accepted: loaded
                        .view
                        .evidence
                        .iter()
                        .map(|e| category_label(e.category))
                        .collect(),
                    approvals: loaded.view.approvals.len(),
                    cooling_until_ms: loaded.view.cooling_until_ms,
                })
            }
            None => None,
        };
        Ok(Some(HelpdeskView {
            username: user.username.clone(),
            user_id: UserId::new(user.user_id.clone()),
            status: user.status.clone(),
            passkeys: factors.passkeys.len(),
            authenticator_apps: factors.totps.len(),
            push_devices: factors.devices.len(),
            recovery_codes_left: factors.recovery.remaining,
            factors_frozen: user.factors_frozen_ms.is_some(),
            case,
        }))
    }

    /// Opens a case for a caller. The user is told on every channel, with a link to continue
    /// that only reaches their own address; the agent gets no handle.
    pub async fn helpdesk_open_case(
        self,
        session: &Session,
        username: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<String> {
        let org = &session.org();
        self.require_agent(session).await?;
        let opener = Opener::Agent {
            agent_id: session.user.user_id.clone(),
        };
        let (_handle, case_id) = self
            .recovery()
            .start(org, username, opener, None, now)
            .await?;
        Ok(case_id)
    }

    /// Sends a verification request to the user's enrolled device: the agent reads the number
    /// to the caller, who must type it on the device. The agent sees only the result.
    pub async fn helpdesk_verify_caller(
        self,
        session: &Session,
        username: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<CallerCheck> {
        let org = &session.org();
        self.require_agent(session).await?;
        let user = self.user_named(org, username).await?;
        let ctx = AuthContext::internal(org, HELPDESK_IKEY, "Helpdesk verification");
        let req = PushRequest {
            title: Some("Helpdesk verification".into()),
            display_username: Some(user.username.clone()),
            details: vec![
                ("Agent".into(), session.user.username.clone()),
                (
                    "Purpose".into(),
                    "Confirm you are the person on the phone".into(),
                ),
                ("If you did not call".into(), "Deny and report".into()),
            ],
            device: None,
            device_index: None,
            hostname: None,
            number_required: true,
            want_txid: true,
        };
        match self
            .auth()
            .start_push(
                &ctx,
                &PushDoor::WARD,
                &UserRef::Id(user.user_id.clone()),
                &req,
                now,
            )
            .await?
        {
            PushOutcome::Started(started) => Ok(CallerCheck {
                txid: started.txid,
                number: started.number.unwrap_or_default(),
            }),
            PushOutcome::Decided(d) => {
                tracing::info!(user_id = %user.user_id, status = %d.status_msg, "caller verification not sent");
                Err(CoreError::Conflict(
                    "No verification could be sent to the user's devices now.".into(),
                ))
            }
        }
    }

    /// The state of a caller verification; a pending one whose time is up is reported as
    /// [`PushState::Timeout`] (the device can no longer answer it).
    pub async fn helpdesk_verify_status(
        self,
        session: &Session,
        txid: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<PushState> {
        let org = &session.org();
        self.require_agent(session).await?;
        let push = self
            .store
            .push(org.as_str(), txid)
            .await?
            .filter(|p| p.ikey == HELPDESK_IKEY)
            .ok_or_else(|| CoreError::NotFound("verification".into()))?;
        match push.state.parse()? {
            PushState::Pending if push.expires_ms <= now.timestamp_millis() => {
                Ok(PushState::Timeout)
            }
            state => Ok(state),
        }
    }

    /// Flags fraud: the user's open case is frozen for security review and admins are alerted.
    pub async fn helpdesk_flag_fraud(
        self,
        session: &Session,
        username: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<bool> {
        let org = &session.org();
        self.require_agent(session).await?;
        let user = self.user_named(org, username).await?;
        let reason = reason.trim();
        let reason = if reason.is_empty() {
            "flagged by the helpdesk"
        } else {
            reason
        };
        let reason: String = reason.chars().take(500).collect();
        self.recovery()
            .freeze_for_user(
                org,
                &UserId::of(&user),
                Actor::Agent {
                    agent_id: session.user.user_id.clone(),
                },
                &reason,
                now,
            )
            .await
    }

    /// Adds a note to the user's record (the audit log).
    pub async fn helpdesk_note(
        self,
        session: &Session,
        username: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let org = &session.org();
        let actor = self.require_agent(session).await?;
        let user = self.user_named(org, username).await?;
        let note = note.trim();
        if note.is_empty() || note.chars().count() > 2000 {
            return Err(CoreError::invalid("note", "must be 1 to 2000 characters"));
        }
        let event = Event::new(
            org.as_str(),
            now,
            &actor,
            Action::HelpdeskNote,
            &user.user_id,
            "ok",
        )
        .detail("note", note);
        self.store
            .commit(ward_store::ChangeSet::new().with(event.into_change()))
            .await?;
        Ok(())
    }
}
