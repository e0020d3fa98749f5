//! Router tests over `tower::ServiceExt::oneshot`, with a real SQLite store: the Auth API v2,
//! and the recovery pages.

// Integration tests are always built with cfg(test); saying so lets the workspace's
// allow-unwrap-in-tests (and friends) cover the helpers, not only #[test] functions.
#![cfg(test)]

mod auth_api;
mod edge;
mod limits;
mod orgs;
mod recovery;

use std::sync::Arc;

use ward_core::clock::TestClock;
use ward_core::service::Ward;
use ward_server::app::AppState;
use ward_server::duo::signed::DuoSettings;
use ward_server::limits::Limits;

/// The server state every router test builds: `ward` on `clock`, the Duo API answering for
/// `hosts` (v1 signatures when `allow_v1`), with `limits`.
fn app_state(
    ward: Arc<Ward>,
    clock: TestClock,
    hosts: &[&str],
    allow_v1: bool,
    limits: Limits,
) -> AppState {
    AppState {
        ward,
        clock: Arc::new(clock),
        settings: Arc::new(DuoSettings {
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            skew_secs: 300,
            allow_v1,
            trust_forwarded_for: false,
            max_body_bytes: 64 * 1024,
        }),
        limits: Arc::new(limits),
        wakers: Arc::default(),
        shutdown: ward_server::app::Shutdown::default(),
        web: ward_server::web::WebSettings::new(
            ward_server::config::Branding {
                organisation: "Example".into(),
                logo: None,
                accent_colour: "#2b59c3".into(),
            },
            "localhost:8443",
        ),
    }
}

/// The organisation every database starts with.
fn default_org() -> &'static ward_core::model::OrgId {
    static ORG: std::sync::LazyLock<ward_core::model::OrgId> =
        std::sync::LazyLock::new(|| ward_core::model::OrgId::new(ward_store::DEFAULT_ORG));
    &ORG
}
