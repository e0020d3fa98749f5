//! A short-lived cache of integration credentials, so that verifying a request signature does
//! not cost a database read and a decryption on every call.
//!
//! Entries live for [`TTL_MS`]; a changed or removed integration takes effect on every node
//! within that time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use crate::model::Integration;

const TTL_MS: i64 = 10_000;
const MAX_ENTRIES: usize = 10_000;

/// An integration and its secret key, opened for signature checks.
pub struct IntegrationCredentials {
    pub integration: Integration,
    pub skey: Zeroizing<String>,
}

impl std::fmt::Debug for IntegrationCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationCredentials")
            .field("integration", &self.integration)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
pub(super) struct IntegrationCache {
    entries: RwLock<HashMap<String, (i64, Arc<IntegrationCredentials>)>>,
}

impl IntegrationCache {
    pub(super) fn get(
        &self,
        ikey: &str,
        now: DateTime<Utc>,
    ) -> Option<Arc<IntegrationCredentials>> {
        let now_ms = now.timestamp_millis();
        let entries = self.entries.read().ok()?;
        entries
            .get(ikey)
            .filter(|(stored_at, _)| now_ms - stored_at < TTL_MS && now_ms >= *stored_at)
            .map(|(_, c)| Arc::clone(c))
    }

    pub(super) fn put(&self, creds: Arc<IntegrationCredentials>, now: DateTime<Utc>) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_ENTRIES {
                let now_ms = now.timestamp_millis();
                entries.retain(|_, (stored_at, _)| now_ms - *stored_at < TTL_MS);
            }
            entries.insert(
                creds.integration.ikey.clone(),
                (now.timestamp_millis(), creds),
            );
        }
    }
}
