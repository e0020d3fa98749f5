//! A short-lived cache of integration credentials, so that verifying a request signature does
//! not cost a database read and a decryption on every call.
//!
//! Entries live for [`TTL_MS`]; a changed or removed integration takes effect on every node
//! within that time. Concurrent lookups of a key that is not cached wait for one database read
//! (see [`IntegrationCache::loading`]): a burst of logins after a restart or an expiry costs
//! one read per integration, not one per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

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
    loads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The right to read one key from the database; other lookups of the key wait until it is
/// dropped, then find the cache filled.
pub(super) struct Loading<'a> {
    cache: &'a IntegrationCache,
    ikey: String,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        if let Ok(mut loads) = self.cache.loads.lock() {
            loads.remove(&self.ikey);
        }
    }
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

    /// Waits until no other lookup of `ikey` is reading it, then returns the right to read it.
    /// The caller checks the cache again first: the read it waited for may have filled it.
    pub(super) async fn loading(&self, ikey: &str) -> Loading<'_> {
        let lock = match self.loads.lock() {
            Ok(mut loads) => Arc::clone(loads.entry(ikey.to_owned()).or_default()),
            // A poisoned map only loses the sharing of reads, never a lookup.
            Err(_) => Arc::default(),
        };
        Loading {
            cache: self,
            ikey: ikey.to_owned(),
            _held: lock.lock_owned().await,
        }
    }

    pub(super) fn put(&self, creds: Arc<IntegrationCredentials>, now: DateTime<Utc>) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_ENTRIES {
                let now_ms = now.timestamp_millis();
                entries.retain(|_, (stored_at, _)| now_ms - *stored_at < TTL_MS);
            }
            entries.insert(
                creds.integration.ikey.to_string(),
                (now.timestamp_millis(), creds),
            );
        }
    }
}
