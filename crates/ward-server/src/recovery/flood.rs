//! Limits on the suspicious-contact report, which anyone may send: a few per client address,
//! and a ceiling for everyone together, so that a flood can neither fill the audit log nor
//! keep the alert hook busy. Kept in each node's memory, like the other request limits.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Reports one address may send in a burst; then one more every [`PER_ADDRESS_EVERY_SECS`].
const PER_ADDRESS_BURST: u32 = 3;
const PER_ADDRESS_EVERY_SECS: u64 = 120;
/// Reports everyone together may send in a burst; then one more every
/// [`GLOBAL_EVERY_SECS`].
pub(super) const GLOBAL_BURST: u32 = 20;
const GLOBAL_EVERY_SECS: u64 = 3;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn every(secs: u64, burst: u32) -> Quota {
    Quota::with_period(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(nz(burst))
}

/// The limiters of the contact report on one node.
#[derive(Debug)]
pub struct ContactLimits {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    global: DefaultDirectRateLimiter,
}

impl Default for ContactLimits {
    fn default() -> Self {
        Self {
            per_address: RateLimiter::keyed(every(PER_ADDRESS_EVERY_SECS, PER_ADDRESS_BURST)),
            global: RateLimiter::direct(every(GLOBAL_EVERY_SECS, GLOBAL_BURST)),
        }
    }
}

impl ContactLimits {
    /// Admits one report from `ip`, unless that address or everyone together sent too many.
    pub fn admit(&self, ip: IpAddr) -> bool {
        self.per_address.check_key(&ip).is_ok() && self.global.check().is_ok()
    }
}
