//! What Ward tells the outside world: push deliveries to devices, and alerts to administrators.
//!
//! Both are traits so that adapters can be added without touching the decisions: Ward's own
//! device channel is the default delivery (a device's open event stream); FCM/APNs or Web Push
//! (RFC 8030/8291/8292) would be further [`PushDelivery`]s that wake a device whose stream is
//! closed. Alerts go to the log and, when configured, to an operator's hook.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use ward_proto::device::PushEvent;
use ward_store::{Signal, Store};

/// Delivers a new push request to a device.
#[async_trait]
pub trait PushDelivery: Send + Sync + std::fmt::Debug {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// Tells the device (or its push service) that `event` waits. Best effort: a device that
    /// is offline gets the request when it next connects, until it expires.
    async fn deliver(&self, device_id: &str, event: &PushEvent);
}

/// Ward's own channel: wakes the device's open event stream, on any node.
#[derive(Debug)]
pub struct ChannelDelivery {
    store: Arc<dyn Store>,
}

impl ChannelDelivery {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl PushDelivery for ChannelDelivery {
    fn name(&self) -> &'static str {
        "channel"
    }

    async fn deliver(&self, device_id: &str, _event: &PushEvent) {
        self.store
            .signals()
            .publish(Signal::Device(device_id.to_owned()))
            .await;
    }
}

/// Something administrators must hear about at once. Ids and facts, never secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "alert", rename_all = "snake_case")]
pub enum Alert {
    /// A user answered a push with "deny and report": someone else tried to log in.
    FraudReported {
        org_id: String,
        user_id: String,
        txid: String,
        device_id: String,
        integration: String,
        ip: Option<String>,
        at_ms: i64,
    },
    /// A user answered "this wasn't me" to a notification: their factor changes are frozen.
    AccountFrozen {
        org_id: String,
        user_id: String,
        /// The change the user disowned, e.g. `passkey.add`.
        disowned: String,
        at_ms: i64,
    },
    /// Recovery starts exceed the circuit breaker's threshold: new cases need approvals.
    RecoveryCircuitBreaker { org_id: String, at_ms: i64 },
    /// A recovery case was frozen for review (an agent's fraud flag, "this wasn't me").
    RecoveryFrozen {
        org_id: String,
        user_id: String,
        reason: String,
        at_ms: i64,
    },
    /// Someone reported a call, message or visit claiming to be IT or the helpdesk.
    SuspiciousContact {
        org_id: String,
        /// The reporting user, when signed in.
        user_id: Option<String>,
        kind: String,
        at_ms: i64,
    },
    /// A WebAuthn credential's signature counter went backwards: it may have been cloned.
    CredentialCloneSuspected {
        org_id: String,
        user_id: String,
        cred_id: String,
        stored_count: i64,
        presented_count: i64,
        at_ms: i64,
    },
}

impl Alert {
    /// The alert's kind, as in its JSON `alert` field.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::FraudReported { .. } => "fraud_reported",
            Self::AccountFrozen { .. } => "account_frozen",
            Self::RecoveryCircuitBreaker { .. } => "recovery_circuit_breaker",
            Self::RecoveryFrozen { .. } => "recovery_frozen",
            Self::SuspiciousContact { .. } => "suspicious_contact",
            Self::CredentialCloneSuspected { .. } => "credential_clone_suspected",
        }
    }
}

/// Receives alerts.
#[async_trait]
pub trait AlertSink: Send + Sync + std::fmt::Debug {
    /// Handles one alert. Must not block the caller for long.
    async fn alert(&self, alert: &Alert);
}

/// Alerts to the server log (always on).
#[derive(Debug, Default)]
pub struct LogAlerts;

#[async_trait]
impl AlertSink for LogAlerts {
    async fn alert(&self, alert: &Alert) {
        match alert {
            Alert::FraudReported {
                user_id,
                txid,
                integration,
                ..
            } => {
                tracing::warn!(%user_id, %txid, %integration, "ALERT: push reported as fraud");
            }
            Alert::AccountFrozen {
                user_id, disowned, ..
            } => {
                tracing::warn!(%user_id, %disowned, "ALERT: user disowned a change; factor changes frozen");
            }
            Alert::RecoveryCircuitBreaker { .. } => {
                tracing::warn!(
                    "ALERT: recovery starts exceed the circuit breaker; new cases need approvals"
                );
            }
            Alert::RecoveryFrozen {
                user_id, reason, ..
            } => {
                tracing::warn!(%user_id, %reason, "ALERT: recovery case frozen for review");
            }
            Alert::SuspiciousContact { user_id, kind, .. } => {
                tracing::warn!(user_id = user_id.as_deref().unwrap_or("-"), %kind, "ALERT: suspicious contact reported");
            }
            Alert::CredentialCloneSuspected {
                user_id, cred_id, ..
            } => {
                tracing::warn!(%user_id, %cred_id, "ALERT: passkey counter went backwards; possible clone");
            }
        }
    }
}

/// A message to a user about their own account: a factor added or removed, a sign-in, and so
/// on. It carries no secret; `report_url` is the single-use "this wasn't me" link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserNotice {
    pub org_id: String,
    pub user_id: String,
    pub username: String,
    /// The verified address, when the user has one.
    pub email: Option<String>,
    /// The audit action it reports, e.g. `passkey.add`.
    pub action: String,
    /// One line, e.g. "A passkey was added to your account".
    pub subject: String,
    /// A few sentences of plain text: what happened, when, and from where.
    pub body: String,
    /// Opens the page that freezes the account's factor changes and alerts the administrators.
    pub report_url: Option<String>,
    /// The organisation's name, for the greeting and signature.
    pub organisation: String,
}

/// Delivers notices to users (e-mail, or the log when no mail server is configured).
#[async_trait]
pub trait UserNotifier: Send + Sync + std::fmt::Debug {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// Sends one notice. Best effort: a failure is logged by the notifier, never returned,
    /// because the change it reports has already been made and audited.
    async fn notify(&self, notice: &UserNotice);
}

/// Notices to the server log: who and what, never the link (it is a bearer token).
#[derive(Debug, Default)]
pub struct LogNotifier;

#[async_trait]
impl UserNotifier for LogNotifier {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn notify(&self, notice: &UserNotice) {
        tracing::info!(
            user_id = %notice.user_id,
            action = %notice.action,
            subject = %notice.subject,
            "user notice (no mail server configured)"
        );
    }
}

/// Sends e-mail that must arrive for something to work (a one-time code), unlike notices.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Sends one plain-text message; the error says why it could not be sent (never secrets).
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String>;
}
