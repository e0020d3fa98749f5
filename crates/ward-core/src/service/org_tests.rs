//! Organisations as tenants: two organisations with the same usernames, and every door kept
//! inside its own — on SQLite and on PostgreSQL. Also managing organisations (names, disable).
//!
//! Each check names a user who exists only in the other organisation, or a same-named user
//! whose factors differ, so that a lookup in the wrong organisation changes the answer.

mod audit;
mod isolation;
mod management;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use ward_proto::device::Decision;
use ward_store::Store;
use ward_testkit::db::{Backend, TempSqlite};
use ward_testkit::device::{DeviceKey, Phone};

use super::passkey_tests::{Fixture, audit_of, fixture_on, settings};
use super::*;
use crate::model::{Actor, IntegrationKind, OrgId, Role, UserId, UserRef};
use crate::totp::{Algorithm, Totp};

/// Alice of organisation A and Alice of organisation B have different seeds.
const SEED_A: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const SEED_B: &str = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U";

/// One organisation of the pair: its id and its Auth API application.
struct Tenant {
    org: OrgId,
    api: AuthContext,
}

/// Two organisations over one store. Both have `alice` (with their own seed and phone) and an
/// `agent` with the helpdesk role; only B has `bob`.
struct Pair {
    f: Fixture,
    a: Tenant,
    b: Tenant,
}

/// A push device, by its key.
async fn pair_on(store: Arc<dyn Store>) -> Pair {
    // Codes may sign in to the portal, so that a refused code sign-in means something.
    let mut portal = settings();
    portal.factors.default.totp_signin = true;
    let f = fixture_on(store, portal).await;
    let now = f.now();
    let ward = &f.ward;
    let a = ward
        .admin()
        .create_org(&Actor::Cli, "Org A", now)
        .await
        .unwrap()
        .id;
    // B is a second younger, so that the oldest-first order is A, B.
    let later = now + TimeDelta::seconds(1);
    let b = ward
        .admin()
        .create_org(&Actor::Cli, "Org B", later)
        .await
        .unwrap()
        .id;
    let mut tenants = Vec::new();
    for (org, seed, users) in [
        (&a, SEED_A, &["alice", "agent"][..]),
        (&b, SEED_B, &["alice", "agent", "bob"][..]),
    ] {
        for name in users {
            let email = format!("{name}@{org}.example");
            ward.admin()
                .create_user(org, &Actor::Cli, name, Some(&email), now)
                .await
                .unwrap();
            ward.admin()
                .add_totp(org, &Actor::Cli, name, Some(seed), Algorithm::Sha1, 6, now)
                .await
                .unwrap();
        }
        ward.admin()
            .grant_role(org, &Actor::Cli, "agent", Role::Helpdesk, now)
            .await
            .unwrap();
        let (integration, _) = ward
            .admin()
            .create_integration(org, &Actor::Cli, "VPN", IntegrationKind::AuthApi, None, now)
            .await
            .unwrap();
        tenants.push(Tenant {
            org: org.clone(),
            api: AuthContext {
                integration,
                user_ip: Some("192.0.2.9".into()),
                client_ip: None,
            },
        });
    }
    let b = tenants.pop().unwrap();
    let a = tenants.pop().unwrap();
    Pair { f, a, b }
}

async fn pair() -> (TempSqlite, Pair) {
    let db = TempSqlite::new();
    let store = db.store("node-1").await;
    (db, pair_on(store).await)
}

/// Runs `test` on a fresh pair over PostgreSQL (when `WARD_TEST_DATABASE_URL` is set).
async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Pair) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    Backend::Postgres
        .run("node-1", async |store| test(pair_on(store).await).await)
        .await;
}

impl Pair {
    fn now(&self) -> DateTime<Utc> {
        self.f.now()
    }

    fn ward(&self) -> &Ward {
        &self.f.ward
    }

    /// The current code of `seed`, after moving to a fresh time step.
    fn code(&self, seed: &str) -> String {
        self.f.clock.advance(TimeDelta::seconds(30));
        let totp = Totp::new(
            crate::totp::base32_decode(seed).unwrap(),
            Algorithm::Sha1,
            6,
            30,
        )
        .unwrap();
        let step = u64::try_from(totp.step_at(self.now().timestamp())).unwrap();
        totp.code(step).to_string()
    }

    /// Activates a phone for `username` of `org`.
    async fn phone(&self, org: &OrgId, username: &str, seed: u8) -> Phone {
        let now = self.now();
        let code = self
            .ward()
            .devices()
            .activation_code(org, &Actor::Cli, username, now)
            .await
            .unwrap();
        let key = DeviceKey::from_seed(seed);
        let req = key.activate_request(&code.code, "phone", "linux");
        let (device, _) = self.ward().devices().activate(&req, now).await.unwrap();
        key.activated(device.id.into_string())
    }

    /// A portal session of `username` in `org`.
    async fn session(&self, org: &OrgId, username: &str) -> Session {
        let user = self
            .f
            .store
            .user_by_name(org.as_str(), username)
            .await
            .unwrap()
            .unwrap();
        self.ward()
            .portal()
            .open_session(&user, "passkey", None, self.now())
            .await
            .unwrap()
            .session
    }

    /// The user id of `username` in `org`.
    async fn id(&self, org: &OrgId, username: &str) -> UserId {
        self.ward().admin().user(org, username).await.unwrap().id
    }
}
