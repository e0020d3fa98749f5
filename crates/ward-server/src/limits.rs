//! Request rate limits: per client address, per integration, and a budget of failed requests
//! per client address.
//!
//! [`guard`] runs in front of every route. A request that is not (yet) known to come from an
//! integration is charged to its address: refused once the address is over its request rate or
//! its failure budget, and counted as a failure when it is refused for bad input, failed
//! authentication or ends in a server error. A request whose Duo signature verifies for a known
//! integration is charged to that integration instead, so that noise from a shared address (a
//! NAT, a multi-user host) never locks out correctly signed logins.
//!
//! Limits are kept in each node's memory; behind a load balancer each node enforces them on
//! the traffic it sees.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;
use ward_proto::duo::envelope::DuoErrorCode;

use crate::app::AppState;
use crate::error::ApiError;

const FAILURE_WINDOW: Duration = Duration::from_mins(1);

/// Integration keys per second (bursts of twice) that one address may have looked up in the
/// database: a signed request is checked even from an address over its budget, but a key that
/// is not in the credentials cache costs a read, and random keys would miss it every time.
/// Known integrations are read once per cache lifetime (seconds), far below this.
const LOOKUPS_PER_SECOND: u32 = 20;

/// The limiters of one node.
#[derive(Debug)]
pub struct Limits {
    ip: DefaultKeyedRateLimiter<IpAddr>,
    ip_failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    max_failures: u32,
    integration: DefaultKeyedRateLimiter<String>,
    lookups: DefaultKeyedRateLimiter<IpAddr>,
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
            lookups: RateLimiter::keyed(
                Quota::per_second(nz(LOOKUPS_PER_SECOND))
                    .allow_burst(nz(LOOKUPS_PER_SECOND.saturating_mul(2))),
            ),
        }
    }

    /// Admits one database lookup of an integration key that is not cached, for `ip`.
    pub fn admit_lookup(&self, ip: IpAddr) -> bool {
        self.lookups.check_key(&ip).is_ok()
    }

    /// Admits one request from `ip` that no integration vouches for, unless the address is over
    /// its rate or has failed too often recently.
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

    /// Counts a failed request from `ip`.
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
                limits.lookups.retain_recent();
            }
        })
    }
}

/// Set on a request (by the Duo extractor) once its signature verified for a known
/// integration: the request is then charged to the integration, not to its address.
#[derive(Clone, Debug, Default)]
pub struct Verified(Arc<AtomicBool>);

impl Verified {
    /// Marks the request as coming from a known integration.
    pub fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_marked(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The per-address gate in front of every route (see the module documentation).
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let ip = crate::duo::signed::client_ip(&parts, state.settings.trust_forwarded_for);
    request = Request::from_parts(parts, body);
    let path = request.uri().path().to_owned();
    // A request that may carry a Duo signature is refused only once it turned out not to
    // verify: its address's noise must not keep a correctly signed login out.
    let may_be_signed = may_carry_duo_signature(&request);
    if !may_be_signed && !state.limits.admit_ip(ip) {
        return too_many_requests(&path);
    }
    let verified = Verified::default();
    request.extensions_mut().insert(verified.clone());
    let response = next.run(request).await;
    if verified.is_marked() {
        return response;
    }
    if may_be_signed && !state.limits.admit_ip(ip) {
        return too_many_requests(&path);
    }
    if counts_as_failure(response.status()) {
        state.limits.note_failure(ip);
    }
    response
}

fn may_carry_duo_signature(request: &Request) -> bool {
    let path = request.uri().path();
    (path.starts_with("/auth/v2/") || path.starts_with("/rest/v1/"))
        && request.headers().contains_key(header::AUTHORIZATION)
}

/// Answers that mean the request was bad, unauthenticated, probing, or made the server fail.
fn counts_as_failure(status: StatusCode) -> bool {
    status.is_server_error()
        || matches!(
            status,
            StatusCode::BAD_REQUEST
                | StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::GONE
                | StatusCode::LENGTH_REQUIRED
                | StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::URI_TOO_LONG
                | StatusCode::UNSUPPORTED_MEDIA_TYPE
                | StatusCode::UNPROCESSABLE_ENTITY
                | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        )
}

/// A 429 in the dialect of the endpoint asked.
fn too_many_requests(path: &str) -> Response {
    let mut response = if path.starts_with("/auth/") || path.starts_with("/rest/") {
        ApiError::code(DuoErrorCode::TooManyRequests).into_response()
    } else if path.starts_with("/device/") {
        (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(ward_proto::device::DeviceError {
                error: "rate_limited".into(),
                message: "too many requests; try again later".into(),
            }),
        )
            .into_response()
    } else {
        (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests from your address; try again in a minute.\n",
        )
            .into_response()
    };
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
    response
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
    fn uncached_key_lookups_are_limited_per_address() {
        let l = Limits::new(1000, 60, 1000);
        let ip: IpAddr = "192.0.2.11".parse().unwrap();
        let admitted = (0..100).filter(|_| l.admit_lookup(ip)).count();
        assert_eq!(
            admitted,
            2 * LOOKUPS_PER_SECOND as usize,
            "a burst, then refused"
        );
        assert!(l.admit_lookup("192.0.2.12".parse().unwrap()));
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
