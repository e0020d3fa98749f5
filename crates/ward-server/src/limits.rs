//! Request rate limits: per client address, per integration, and a tighter one on failed
//! authentication per client address.
//!
//! Limits are kept in each node's memory; behind a load balancer each node enforces them on
//! the traffic it sees.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

const FAILURE_WINDOW: Duration = Duration::from_mins(1);

/// The limiters of one node.
#[derive(Debug)]
pub struct Limits {
    ip: DefaultKeyedRateLimiter<IpAddr>,
    ip_failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    max_failures: u32,
    integration: DefaultKeyedRateLimiter<String>,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Limits {
    /// Limits with the given sustained rates; bursts of twice the per-second rates are allowed.
    pub fn new(
        ip_per_second: u32,
        ip_failures_per_minute: u32,
        integration_per_second: u32,
    ) -> Self {
        Self {
            ip: RateLimiter::keyed(
                Quota::per_second(nz(ip_per_second))
                    .allow_burst(nz(ip_per_second.saturating_mul(2))),
            ),
            ip_failures: Mutex::new(HashMap::new()),
            max_failures: ip_failures_per_minute.max(1),
            integration: RateLimiter::keyed(
                Quota::per_second(nz(integration_per_second))
                    .allow_burst(nz(integration_per_second.saturating_mul(2))),
            ),
        }
    }

    /// Admits one request from `ip`, unless it is over its rate or has failed to
    /// authenticate too often recently.
    pub fn admit_ip(&self, ip: IpAddr) -> bool {
        self.failures_below_limit(ip) && self.ip.check_key(&ip).is_ok()
    }

    fn failures_below_limit(&self, ip: IpAddr) -> bool {
        let Ok(failures) = self.ip_failures.lock() else {
            return true;
        };
        failures.get(&ip).is_none_or(|(start, count)| {
            start.elapsed() >= FAILURE_WINDOW || *count < self.max_failures
        })
    }

    /// Counts a failed authentication from `ip`.
    pub fn note_failure(&self, ip: IpAddr) {
        if let Ok(mut failures) = self.ip_failures.lock() {
            let entry = failures.entry(ip).or_insert((Instant::now(), 0));
            if entry.0.elapsed() >= FAILURE_WINDOW {
                *entry = (Instant::now(), 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
    }

    /// Admits one authenticated request from an integration.
    pub fn admit_integration(&self, ikey: &str) -> bool {
        self.integration.check_key(&ikey.to_owned()).is_ok()
    }

    /// Drops idle keys periodically so memory stays bounded.
    pub fn spawn_housekeeping(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let limits = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_mins(1));
            loop {
                tick.tick().await;
                limits.ip.retain_recent();
                if let Ok(mut failures) = limits.ip_failures.lock() {
                    failures.retain(|_, (start, _)| start.elapsed() < FAILURE_WINDOW);
                }
                limits.integration.retain_recent();
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_per_integration_limits() {
        let l = Limits::new(1, 60, 1);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(l.admit_ip(ip));
        assert!(l.admit_ip(ip));
        assert!(!l.admit_ip(ip), "burst of 2 exceeded");
        assert!(
            l.admit_ip("192.0.2.8".parse().unwrap()),
            "other addresses unaffected"
        );
        assert!(l.admit_integration("DI1"));
        assert!(l.admit_integration("DI1"));
        assert!(!l.admit_integration("DI1"));
    }

    #[test]
    fn failures_block_an_address() {
        let l = Limits::new(1000, 3, 1000);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        for _ in 0..3 {
            l.note_failure(ip);
        }
        assert!(!l.admit_ip(ip));
        assert!(l.admit_ip("192.0.2.10".parse().unwrap()));
    }
}
