//! The core service: every entry point calls one method of one area of [`Ward`] per request.
//!
//! [`Ward`] holds the shared dependencies (store, keys, policy, deliveries, notifiers); its areas
//! are views over them, one folder each, named after who calls them:
//!
//! | area | folder | called by |
//! |---|---|---|
//! | [`Ward::auth`] | `auth/` | the Auth API, legacy `/rest/v1` (preauth, passcodes, pushes) |
//! | [`Ward::devices`] | `devices/` | the device channel (activation, stream, signed answers) |
//! | [`Ward::portal`] | `portal/`, `passkeys/` | the self-service portal (sessions, factors, links, passkeys) |
//! | [`Ward::prompt`] | `prompt/` | the hosted prompt and OAuth endpoints of the Web SDK |
//! | [`Ward::recovery`] | `recovery/` | recovery pages, approvers and the helpdesk |
//! | [`Ward::admin`] | `admin/` | the CLI: organisations, users, integrations, roles |
//!
//! Helpers shared by several areas (the gate's inputs, audit refusals, ceremonies) stay methods
//! of [`Ward`] itself, next to the area that uses them most.

mod admin;
mod auth;
mod cache;
mod devices;
mod passkeys;
mod portal;
mod prompt;
mod recovery;

use std::sync::Arc;

use ward_store::Store;

pub use admin::TotpEnrolment;
pub use auth::legacy::{LegacyAuth, LegacyFactor, LegacyMenu, legacy_menu};
pub use auth::push::{PushOutcome, PushRequest, PushStarted, PushState};
pub use auth::{
    AuthContext, AuthDecision, AuthStatus, Capability, DenyReason, Device, PreauthOutcome,
    TxResult, TxStatus, TxView,
};
pub use cache::IntegrationCredentials;
pub use devices::{ActivationCode, PushDevice};
pub use passkeys::{CeremonyStart, PasskeyCheck, PasskeyView, purpose as ceremony_purpose};
pub use portal::{
    EnrolLink, FactorKind, Factors, LinkState, MAX_ENROL_TTL, NewSession, RECOVERY_CODES,
    RecoveryView, STEP_UP_NEEDED, Session, TotpConfirm, TotpSetup, TotpView,
};
pub use prompt::{
    AuthorizeParams, Completion, OAuthError, OAuthErrorCode, PromptMethod, PromptNext,
    PromptPasscode, PromptPush, PromptRequest, PromptView, TokenParams, TokenResponse,
};
pub use recovery::{
    CallerCheck, CaseStatus, CaseSummary, HelpdeskView, PendingApproval, RecoverySettings,
    Submission, Submitted,
};

use crate::argon::Argon2Pool;
use crate::crypto::Keyring;
use crate::error::{CoreError, CoreResult};
use crate::notify::{
    AlertSink, ChannelDelivery, LogAlerts, LogNotifier, Mailer, PushDelivery, UserNotifier,
};
use crate::policy::AuthPolicy;

/// Meta key holding the id of the master key the database's secrets are sealed under.
const MASTER_KEY_META: &str = "master_key_id";

/// Ward's domain service.
#[derive(Debug)]
pub struct Ward {
    store: Arc<dyn Store>,
    keys: Keyring,
    policy: AuthPolicy,
    issuer: String,
    integrations: cache::IntegrationCache,
    org_states: admin::orgs::OrgStates,
    deliveries: Vec<Arc<dyn PushDelivery>>,
    alerts: Vec<Arc<dyn AlertSink>>,
    notifiers: Vec<Arc<dyn UserNotifier>>,
    mailer: Option<Arc<dyn Mailer>>,
    passkeys: Option<Arc<passkeys::Passkeys>>,
    recovery: RecoverySettings,
    argon2: Argon2Pool,
}

/// Declares the areas of [`Ward`]: a `Copy` view per area and the method that gives it.
///
/// An area's methods take the view by value, so a future they return borrows the service, not
/// a temporary view. The view dereferences to [`Ward`] for the shared dependencies and helpers.
macro_rules! areas {
    ($($(#[$doc:meta])* $accessor:ident => $area:ident;)*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug)]
            pub struct $area<'w> {
                ward: &'w Ward,
            }

            impl std::ops::Deref for $area<'_> {
                type Target = Ward;

                fn deref(&self) -> &Ward {
                    self.ward
                }
            }
        )*

        impl Ward {
            $(
                $(#[$doc])*
                pub fn $accessor(&self) -> $area<'_> {
                    $area { ward: self }
                }
            )*
        }
    };
}

areas! {
    /// Authentication for applications: preauth, passcodes, pushes and their transactions,
    /// over the Auth API and legacy `/rest/v1`.
    auth => Auth;
    /// The device channel: activation, the event stream and signed push answers.
    devices => Devices;
    /// The self-service portal: sessions, factors, passkeys, enrolment links, recovery codes.
    portal => Portal;
    /// The hosted prompt and the OAuth endpoints of the Web SDK.
    prompt => Prompt;
    /// Account recovery: cases, evidence, approvals, contact reports and the helpdesk.
    recovery => Recovery;
    /// Administration: organisations, users, integrations and roles.
    admin => Admin;
}

impl Ward {
    /// Builds the service, checking that the configured master key is the one this database's
    /// secrets were sealed under (recording it on first use).
    pub async fn new(
        store: Arc<dyn Store>,
        keys: Keyring,
        policy: AuthPolicy,
        issuer: impl Into<String>,
    ) -> CoreResult<Self> {
        let stored = store
            .meta_insert_if_absent(MASTER_KEY_META, &keys.current_id())
            .await?;
        if !keys.knows(&stored) {
            return Err(CoreError::Forbidden(format!(
                "this database's secrets are sealed under master key {stored}, but the configured \
                 master key is {}; configure the right key (secrets.master_key_file)",
                keys.current_id()
            )));
        }
        Ok(Self {
            deliveries: vec![Arc::new(ChannelDelivery::new(Arc::clone(&store)))],
            alerts: vec![Arc::new(LogAlerts)],
            notifiers: vec![Arc::new(LogNotifier)],
            mailer: None,
            passkeys: None,
            recovery: RecoverySettings::default(),
            argon2: Argon2Pool::default(),
            store,
            keys,
            policy,
            issuer: issuer.into(),
            integrations: cache::IntegrationCache::default(),
            org_states: admin::orgs::OrgStates::default(),
        })
    }

    /// Adds a push delivery besides Ward's own channel.
    #[must_use]
    pub fn with_delivery(mut self, delivery: Arc<dyn PushDelivery>) -> Self {
        self.deliveries.push(delivery);
        self
    }

    /// Adds an alert sink besides the log.
    #[must_use]
    pub fn with_alerts(mut self, sink: Arc<dyn AlertSink>) -> Self {
        self.alerts.push(sink);
        self
    }

    /// Sends user notices through `notifier` instead of the log.
    #[must_use]
    pub fn with_notifier(mut self, notifier: Arc<dyn UserNotifier>) -> Self {
        self.notifiers = vec![notifier];
        self
    }

    /// Sends e-mail that must arrive (one-time codes) through `mailer`; without one, evidence
    /// that needs e-mail is unavailable.
    #[must_use]
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Runs Argon2 work (recovery codes) on `pool` instead of one sized to this machine.
    #[must_use]
    pub fn with_argon2_pool(mut self, pool: Argon2Pool) -> Self {
        self.argon2 = pool;
        self
    }

    /// The store this service writes to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The policy in force.
    pub fn policy(&self) -> &AuthPolicy {
        &self.policy
    }
}

impl Ward {
    /// Records a refusal's audit event and returns the error the caller shows (or the store's
    /// error, if the event could not be recorded: a refusal is never silent).
    pub(crate) async fn audited_refusal(
        &self,
        event: crate::audit::Event,
        field: &'static str,
        reason: &str,
    ) -> CoreError {
        match self
            .store
            .commit(ward_store::ChangeSet::new().with(event.into_change()))
            .await
        {
            Ok(_) => CoreError::invalid(field, reason),
            Err(e) => e.into(),
        }
    }
}

/// Checks a free-text field: trimmed, non-empty, bounded, no control characters.
fn check_text(field: &'static str, value: &str, max: usize) -> CoreResult<()> {
    if value.trim().is_empty() {
        return Err(CoreError::invalid(field, "must not be empty"));
    }
    if value.trim() != value {
        return Err(CoreError::invalid(
            field,
            "must not start or end with spaces",
        ));
    }
    if value.chars().count() > max {
        return Err(CoreError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod gate_matrix_tests;
#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod org_tests;
#[cfg(test)]
mod passkey_tests;
#[cfg(test)]
mod portal_tests;
#[cfg(test)]
mod push_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod tests;

/// The organisation every database starts with, for tests written before there were several.
#[cfg(test)]
pub(crate) fn default_org() -> &'static crate::model::OrgId {
    static ORG: std::sync::LazyLock<crate::model::OrgId> =
        std::sync::LazyLock::new(|| crate::model::OrgId::new(ward_store::DEFAULT_ORG));
    &ORG
}
