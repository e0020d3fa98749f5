//! Router tests over `tower::ServiceExt::oneshot`, with real stores: every front door (the Auth
//! API v2, the legacy API, the hosted prompt and its back channel, the portal, the device
//! channel, the helpdesk console, the recovery pages), and each kept inside its organisation
//! on SQLite and on PostgreSQL.

// Integration tests are always built with cfg(test); saying so lets the workspace's
// allow-unwrap-in-tests (and friends) cover the helpers, not only #[test] functions.
#![cfg(test)]

/// The two tests of one cross-tenant check `$check` (an `async fn(Tenants)`): `on_sqlite`, and
/// `on_postgres` (skipped without `WARD_TEST_DATABASE_URL`; a failure then under
/// `WARD_TEST_STRICT=1`).
macro_rules! on_both_backends {
    ($check:ident) => {
        mod $check {
            #[tokio::test]
            async fn on_sqlite() {
                crate::tenants::on_sqlite(super::$check).await;
            }

            #[tokio::test]
            async fn on_postgres() {
                crate::tenants::on_postgres(super::$check).await;
            }
        }
    };
}

mod auth_api;
mod databases;
mod device;
mod edge;
mod helpdesk;
mod legacy;
mod limits;
mod orgs;
mod portal;
mod prompt;
mod recovery;
mod recovery_orgs;
mod tenants;

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
