//! The values of an authentication: the request's context, preauth answers, statuses and
//! transaction results.

use chrono::{DateTime, Utc};

use crate::audit::{Action, Event};
use crate::error::{CoreError, CoreResult};
use crate::gate::{Allowed, Door};
use crate::model::{Actor, Integration, IntegrationId, OrgId};
use crate::policy::{ApiPushMode, AuthPolicy};

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
                ikey: IntegrationId::new(ikey),
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
        Actor::Integration(self.integration.ikey.to_string())
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
        self.tx_status().as_str()
    }

    /// Duo's `status` for this status, as a transaction records it.
    pub fn tx_status(self) -> TxStatus {
        match self {
            Self::Allow => TxStatus::Allow,
            Self::Deny | Self::PushDenied | Self::PushRefused => TxStatus::Deny,
            Self::LockedOut => TxStatus::LockedOut,
            Self::Fraud => TxStatus::Fraud,
            Self::Timeout => TxStatus::Timeout,
            Self::Pushed => TxStatus::Pushed,
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

/// Duo's `status` of a transaction, as stored and as `auth_status` reports it. Several
/// [`AuthStatus`] values share one (a denied push and a refused code are both `deny`); the
/// transaction's `status_msg` tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    Allow,
    Deny,
    LockedOut,
    Fraud,
    Timeout,
    Pushed,
}

impl TxStatus {
    /// Every status.
    pub const ALL: [Self; 6] = [
        Self::Allow,
        Self::Deny,
        Self::LockedOut,
        Self::Fraud,
        Self::Timeout,
        Self::Pushed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::LockedOut => "locked_out",
            Self::Fraud => "fraud",
            Self::Timeout => "timeout",
            Self::Pushed => "pushed",
        }
    }
}

impl std::str::FromStr for TxStatus {
    type Err = CoreError;

    fn from_str(s: &str) -> CoreResult<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| CoreError::Internal(format!("stored transaction status {s:?}")))
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
    pub status: TxStatus,
    pub status_msg: String,
}

impl AuthContext {
    /// The integration's push mode, else the server's `push.auth_api_mode`.
    pub(super) fn push_mode(&self, policy: &AuthPolicy) -> ApiPushMode {
        self.integration
            .push_mode
            .unwrap_or(policy.push.auth_api_mode)
    }

    /// What this integration's policy allows at `door` (the Auth API or the older API; the
    /// hosted prompt has its own policy). Passkeys are not a factor of these APIs.
    pub(in crate::service) fn allowed(&self, door: Door, policy: &AuthPolicy) -> Allowed {
        let mode = self.push_mode(policy);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction's stored status reads back as the status it was recorded with.
    #[test]
    fn every_auth_status_reads_back_as_its_transaction_status() {
        let all = [
            AuthStatus::Allow,
            AuthStatus::Deny,
            AuthStatus::LockedOut,
            AuthStatus::Fraud,
            AuthStatus::Timeout,
            AuthStatus::Pushed,
            AuthStatus::PushDenied,
            AuthStatus::PushRefused,
        ];
        for status in all {
            let stored = status.as_str();
            assert_eq!(stored.parse::<TxStatus>().unwrap(), status.tx_status());
        }
        assert!(matches!(
            "waiting".parse::<TxStatus>(),
            Err(CoreError::Internal(_))
        ));
    }
}
