//! Router tests over `tower::ServiceExt::oneshot`, with real stores: every front door (the Auth
//! API v2, the legacy API, the hosted prompt and its back channel, the portal, the device
//! channel, the helpdesk console, the recovery pages), and each kept inside its organisation
//! on SQLite and on PostgreSQL. The state, the databases, the organisations and the signed
//! requests come from `ward-testkit`; `tenants` builds the two organisations of the
//! cross-tenant checks.

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
