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
        }
    }
}
