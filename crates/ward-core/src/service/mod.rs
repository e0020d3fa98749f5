//! The core service: every entry point calls one method of [`Ward`] per request.

mod admin;
mod auth;
mod cache;
mod device;
mod push;

use std::sync::Arc;

use ward_store::Store;

pub use admin::TotpEnrolment;
pub use auth::{
    AuthContext, AuthDecision, AuthStatus, Capability, DenyReason, Device, PreauthOutcome, TxView,
};
pub use cache::IntegrationCredentials;
pub use device::{ActivationCode, PushDevice};
pub use push::{PushOutcome, PushRequest, PushStarted, PushState};

use crate::crypto::Keyring;
use crate::error::{CoreError, CoreResult};
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
            store,
            keys,
            policy,
            issuer: issuer.into(),
            integrations: cache::IntegrationCache::default(),
        })
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
mod push_tests;
#[cfg(test)]
mod tests;
