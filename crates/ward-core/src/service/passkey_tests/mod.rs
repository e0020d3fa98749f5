//! Passkey and security-key ceremonies, driven by the software authenticators of
//! `webauthn-authenticator-rs` through the same JSON a browser would carry (`ward-testkit`'s
//! [`Authr`]).
//!
//! The helpers here (fixture, audit reading) are shared with `portal_tests`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use ward_store::{DEFAULT_ORG, Store, UserRow};
use ward_testkit::db::TempSqlite;
pub(super) use ward_testkit::db::on_postgres;
pub(super) use ward_testkit::passkey::{Authr, ORIGIN, passkey};
use webauthn_authenticator_rs::AuthenticatorBackend;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::softtoken;
use webauthn_rs::prelude::{Url, Uuid};

use super::*;
use crate::clock::{Clock, TestClock};
use crate::crypto::MasterKey;
use crate::model::{Actor, UserId};
use crate::notify::{Alert, UserNotice};
use crate::policy::{FactorPolicy, PortalSettings};

const SIGN_IN: &str = ceremony_purpose::SIGN_IN;
const STEP_UP: &str = ceremony_purpose::STEP_UP;

/// Portal settings for the test origin with the default policies.
pub(super) fn settings() -> PortalSettings {
    PortalSettings::new(Url::parse(ORIGIN).unwrap(), "Example Org")
}

/// Collects alerts.
#[derive(Debug, Default)]
pub(super) struct Alerts(Mutex<Vec<Alert>>);

impl Alerts {
    pub(super) fn taken(&self) -> Vec<Alert> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[async_trait]
impl crate::notify::AlertSink for Alerts {
    async fn alert(&self, alert: &Alert) {
        self.0.lock().unwrap().push(alert.clone());
    }
}

/// Hands notices to the test through a channel (they are sent from spawned tasks).
#[derive(Debug)]
struct Notices(mpsc::UnboundedSender<UserNotice>);

#[async_trait]
impl crate::notify::UserNotifier for Notices {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn notify(&self, notice: &UserNotice) {
        self.0.send(notice.clone()).unwrap();
    }
}

pub(super) struct Fixture {
    db: Option<TempSqlite>,
    pub(super) store: Arc<dyn Store>,
    pub(super) ward: Ward,
    pub(super) clock: TestClock,
    pub(super) alerts: Arc<Alerts>,
    pub(super) notices: mpsc::UnboundedReceiver<UserNotice>,
}

/// A `Ward` serving the portal over a fresh SQLite database.
pub(super) async fn fixture(settings: PortalSettings) -> Fixture {
    let db = TempSqlite::new();
    let mut f = fixture_on(db.store("test").await, settings).await;
    f.db = Some(db);
    f
}

/// A `Ward` serving the portal over `store` (one node).
pub(super) async fn fixture_on(store: Arc<dyn Store>, settings: PortalSettings) -> Fixture {
    let keys = Keyring::new(MasterKey::from_bytes([7; 32]), vec![]);
    let alerts = Arc::new(Alerts::default());
    let (tx, notices) = mpsc::unbounded_channel();
    let ward = Ward::new(Arc::clone(&store), keys, AuthPolicy::default(), "Ward")
        .await
        .unwrap()
        .with_portal(settings)
        .unwrap()
        .with_alerts(Arc::clone(&alerts) as Arc<dyn crate::notify::AlertSink>)
        .with_notifier(Arc::new(Notices(tx)));
    Fixture {
        db: None,
        store,
        ward,
        clock: TestClock::at(DateTime::from_timestamp(1_800_000_000, 0).unwrap()),
        alerts,
        notices,
    }
}

impl Fixture {
    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Creates a user; returns its id.
    pub(super) async fn user(&self, name: &str) -> UserId {
        let email = format!("{name}@example.com");
        self.ward
            .admin()
            .create_user(default_org(), &Actor::Cli, name, Some(&email), self.now())
            .await
            .unwrap()
            .id
    }

    async fn row_by_name(&self, name: &str) -> UserRow {
        self.store
            .user_by_name(DEFAULT_ORG, name)
            .await
            .unwrap()
            .unwrap()
    }

    pub(super) async fn row(&self, user_id: &str) -> UserRow {
        self.store
            .user_by_id(DEFAULT_ORG, user_id)
            .await
            .unwrap()
            .unwrap()
    }

    /// Registers `authr` for the user, start to finish.
    pub(super) async fn register<A: AuthenticatorBackend>(
        &self,
        user_id: &UserId,
        authr: &mut Authr<A>,
        name: &str,
    ) -> PasskeyView {
        let start = self
            .ward
            .portal()
            .passkey_register_start(default_org(), user_id, self.now())
            .await
            .unwrap();
        let answer = authr.register(&start.options).unwrap();
        self.ward
            .portal()
            .passkey_register_finish(
                default_org(),
                user_id,
                &start.ceremony,
                &answer,
                name,
                self.now(),
            )
            .await
            .unwrap()
    }

    /// Checks `authr` with `purpose` (usernameless when `user_id` is `None`).
    pub(super) async fn check<A: AuthenticatorBackend>(
        &self,
        purpose: &str,
        user_id: Option<&str>,
        authr: &mut Authr<A>,
    ) -> CoreResult<PasskeyCheck> {
        let start = self
            .ward
            .portal()
            .passkey_auth_start(default_org(), purpose, user_id, self.now())
            .await
            .unwrap();
        let answer = authr.authenticate(&start.options).unwrap();
        self.ward
            .portal()
            .passkey_auth_finish(default_org(), purpose, &start.ceremony, &answer, self.now())
            .await
    }

    /// Everything the user has enrolled.
    pub(super) async fn factors(&self, user_id: &UserId) -> Factors {
        self.ward
            .portal()
            .factors(default_org(), user_id)
            .await
            .unwrap()
    }

    pub(super) async fn sign_count(&self, cred_id: &str) -> i64 {
        self.store
            .webauthn_credential(cred_id)
            .await
            .unwrap()
            .unwrap()
            .sign_count
    }

    pub(super) async fn audit(&self) -> Vec<Value> {
        audit_of(self.store.as_ref()).await
    }

    /// The next user notice (they are sent by spawned tasks).
    pub(super) async fn notice(&mut self) -> UserNotice {
        tokio::time::timeout(Duration::from_secs(10), self.notices.recv())
            .await
            .expect("a notice within 10 s")
            .expect("the notifier is alive")
    }
}

/// Every audit event, as exported.
pub(super) async fn audit_of(store: &dyn Store) -> Vec<Value> {
    let mut out = Vec::new();
    crate::audit::export(store, &mut out).await.unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The events of one action and outcome.
pub(super) fn events<'a>(audit: &'a [Value], action: &str, outcome: &str) -> Vec<&'a Value> {
    audit
        .iter()
        .filter(|e| e["action"] == action && e["outcome"] == outcome)
        .collect()
}

#[tokio::test]
async fn passkey_registers_then_signs_in_without_a_username_and_steps_up() {
    let f = fixture(settings()).await;
    let alice = f.user("alice").await;
    let mut key = passkey();
    let view = f.register(&alice, &mut key, "Laptop").await;
    assert_eq!(view.kind, "passkey");
    assert_eq!(view.name, "Laptop");
    assert_eq!(view.aaguid, None);
    assert_eq!(view.created_ms, f.now().timestamp_millis());
    assert_eq!(view.last_used_ms, None);
    let factors = f.factors(&alice).await;
    assert_eq!(factors.passkeys, vec![view.clone()]);
    assert!(factors.phishing_resistant());
    assert!(f.factors(&UserId::new("nobody")).await.passkeys.is_empty());
    let audit = f.audit().await;
    let added = events(&audit, "passkey.add", "ok");
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["target"], alice.as_str());
    assert_eq!(added[0]["details"]["cred_id"], view.id.as_str());
    assert_eq!(added[0]["details"]["kind"], "passkey");
    assert_eq!(f.sign_count(&view.id).await, 0);

    // Usernameless sign-in: the request names no credential.
    f.clock.advance(TimeDelta::minutes(1));
    let start = f
        .ward
        .portal()
        .passkey_auth_start(default_org(), SIGN_IN, None, f.now())
        .await
        .unwrap();
    assert!(
        start.options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{}",
        start.options
    );
    assert!(start.options.get("mediation").is_none());
    let answer = key.authenticate(&start.options).unwrap();
    let check = f
        .ward
        .portal()
        .passkey_auth_finish(default_org(), SIGN_IN, &start.ceremony, &answer, f.now())
        .await
        .unwrap();
    assert_eq!(check.user.user_id, alice.as_str());
    assert_eq!(check.cred_id, view.id);
    assert_eq!(check.credential_name, "Laptop");
    let signed_in_at = f.now().timestamp_millis();
    assert_eq!(f.sign_count(&view.id).await, 1);
    let listed = f.factors(&alice).await.passkeys;
    assert_eq!(listed[0].last_used_ms, Some(signed_in_at));
    assert_eq!(
        f.row(alice.as_str()).await.last_login_ms,
        Some(signed_in_at)
    );

    // A check scoped to the user (step-up) names the user's credentials.
    f.clock.advance(TimeDelta::minutes(1));
    let start = f
        .ward
        .portal()
        .passkey_auth_start(default_org(), STEP_UP, Some(alice.as_str()), f.now())
        .await
        .unwrap();
    let allowed = start.options["publicKey"]["allowCredentials"]
        .as_array()
        .unwrap();
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0]["id"], view.id.as_str());
    let answer = key.authenticate(&start.options).unwrap();
    let check = f
        .ward
        .portal()
        .passkey_auth_finish(default_org(), STEP_UP, &start.ceremony, &answer, f.now())
        .await
        .unwrap();
    assert_eq!(check.user.user_id, alice.as_str());
    assert_eq!(f.sign_count(&view.id).await, 2);
    let listed = f.factors(&alice).await.passkeys;
    assert_eq!(listed[0].last_used_ms, Some(f.now().timestamp_millis()));

    let audit = f.audit().await;
    let used = events(&audit, "passkey.auth", "allow");
    let purposes: Vec<_> = used.iter().map(|e| &e["details"]["purpose"]).collect();
    assert_eq!(purposes, [SIGN_IN, STEP_UP]);
    assert!(events(&audit, "passkey.auth", "deny").is_empty());
}

#[tokio::test]
async fn a_check_for_one_user_refuses_another_users_passkey() {
    let f = fixture(settings()).await;
    let alice = f.user("alice").await;
    let bob = f.user("bob").await;
    let mut alices = passkey();
    let view = f.register(&alice, &mut alices, "Laptop").await;

    // Bob has no passkey to check.
    assert!(matches!(
        f.ward
            .portal()
            .passkey_auth_start(default_org(), STEP_UP, Some(bob.as_str()), f.now())
            .await,
        Err(CoreError::NotFound(_))
    ));
    f.register(&bob, &mut passkey(), "Bob's").await;

    // A client that ignores the request's credential list answers Bob's check with Alice's
    // passkey: a valid assertion, for the wrong account.
    let start = f
        .ward
        .portal()
        .passkey_auth_start(default_org(), STEP_UP, Some(bob.as_str()), f.now())
        .await
        .unwrap();
    let mut options = start.options.clone();
    options["publicKey"]["allowCredentials"] = json!([]);
    let answer = alices.authenticate(&options).unwrap();
    let refused = f
        .ward
        .portal()
        .passkey_auth_finish(default_org(), STEP_UP, &start.ceremony, &answer, f.now())
        .await;
    assert!(
        matches!(&refused, Err(CoreError::InvalidInput { reason, .. }) if reason.contains("another account")),
        "{refused:?}"
    );
    assert_eq!(f.sign_count(&view.id).await, 0);
    let audit = f.audit().await;
    let denied = events(&audit, "passkey.auth", "deny");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["details"]["reason"], "credential of another user");
}

#[tokio::test]
async fn a_registration_is_finished_once_and_in_time() {
    let f = fixture(settings()).await;
    let alice = f.user("alice").await;
    let mut key = passkey();

    // A registration finishes once.
    let start = f
        .ward
        .portal()
        .passkey_register_start(default_org(), &alice, f.now())
        .await
        .unwrap();
    let answer = key.register(&start.options).unwrap();
    let view = f
        .ward
        .portal()
        .passkey_register_finish(
            default_org(),
            &alice,
            &start.ceremony,
            &answer,
            "Laptop",
            f.now(),
        )
        .await
        .unwrap();
    let again = f
        .ward
        .portal()
        .passkey_register_finish(
            default_org(),
            &alice,
            &start.ceremony,
            &answer,
            "Laptop",
            f.now(),
        )
        .await;
    assert!(matches!(again, Err(CoreError::Expired(_))), "{again:?}");
    assert_eq!(f.factors(&alice).await.passkeys, vec![view.clone()]);

    // A registration finished after the ceremony's five minutes is refused.
    let mut late = passkey();
    let start = f
        .ward
        .portal()
        .passkey_register_start(default_org(), &alice, f.now())
        .await
        .unwrap();
    let answer = late.register(&start.options).unwrap();
    f.clock
        .advance(TimeDelta::minutes(5) + TimeDelta::milliseconds(1));
    let expired = f
        .ward
        .portal()
        .passkey_register_finish(
            default_org(),
            &alice,
            &start.ceremony,
            &answer,
            "Late",
            f.now(),
        )
        .await;
    assert!(matches!(expired, Err(CoreError::Expired(_))), "{expired:?}");
    assert_eq!(f.factors(&alice).await.passkeys.len(), 1);
}

#[tokio::test]
async fn a_sign_in_is_finished_once_in_time_and_for_its_purpose() {
    let f = fixture(settings()).await;
    let alice = f.user("alice").await;
    let mut key = passkey();
    let view = f.register(&alice, &mut key, "Laptop").await;

    // A sign-in finishes once; the second attempt changes nothing.
    let start = f
        .ward
        .portal()
        .passkey_auth_start(default_org(), SIGN_IN, None, f.now())
        .await
        .unwrap();
    let answer = key.authenticate(&start.options).unwrap();
    f.ward
        .portal()
        .passkey_auth_finish(default_org(), SIGN_IN, &start.ceremony, &answer, f.now())
        .await
        .unwrap();
    assert_eq!(f.sign_count(&view.id).await, 1);
    let replay = f
        .ward
        .portal()
        .passkey_auth_finish(default_org(), SIGN_IN, &start.ceremony, &answer, f.now())
        .await;
    assert!(matches!(replay, Err(CoreError::Expired(_))), "{replay:?}");
    assert_eq!(f.sign_count(&view.id).await, 1);

    // An expired sign-in is refused.
    let start = f
        .ward
        .portal()
        .passkey_auth_start(default_org(), SIGN_IN, None, f.now())
        .await
        .unwrap();
    let answer = key.authenticate(&start.options).unwrap();
    f.clock.advance(TimeDelta::minutes(6));
    let expired = f
        .ward
        .portal()
        .passkey_auth_finish(default_org(), SIGN_IN, &start.ceremony, &answer, f.now())
        .await;
    assert!(matches!(expired, Err(CoreError::Expired(_))), "{expired:?}");
    assert_eq!(f.sign_count(&view.id).await, 1);

    // A sign-in ceremony cannot be finished as a step-up (nor a registration as a sign-in);
    // the attempt does not use it up.
    let start = f
        .ward
        .portal()
        .passkey_auth_start(default_org(), SIGN_IN, None, f.now())
        .await
        .unwrap();
    let answer = key.authenticate(&start.options).unwrap();
    let wrong = f
        .ward
        .portal()
        .passkey_auth_finish(default_org(), STEP_UP, &start.ceremony, &answer, f.now())
        .await;
    assert!(matches!(wrong, Err(CoreError::Expired(_))), "{wrong:?}");
    let registration = f
        .ward
        .portal()
        .passkey_register_start(default_org(), &alice, f.now())
        .await
        .unwrap();
    let wrong = f
        .ward
        .portal()
        .passkey_auth_finish(
            default_org(),
            SIGN_IN,
            &registration.ceremony,
            &answer,
            f.now(),
        )
        .await;
    assert!(wrong.is_err(), "{wrong:?}");
    assert_eq!(f.sign_count(&view.id).await, 1);
    let check = f
        .ward
        .portal()
        .passkey_auth_finish(default_org(), SIGN_IN, &start.ceremony, &answer, f.now())
        .await
        .unwrap();
    assert_eq!(check.user.user_id, alice.as_str());
    assert_eq!(f.sign_count(&view.id).await, 3);

    // Nonsense ceremony ids are refused without a lookup.
    for id in ["", &"x".repeat(129)] {
        assert!(matches!(
            f.ward
                .portal()
                .passkey_auth_finish(default_org(), SIGN_IN, id, &answer, f.now())
                .await,
            Err(CoreError::InvalidInput { .. })
        ));
    }
}

#[tokio::test]
async fn a_signature_counter_that_goes_backwards_is_refused_and_alerted() {
    let f = fixture(settings()).await;
    let alice = f.user("alice").await;
    let (mut key, _ca) = Authr::security_key();
    let view = f.register(&alice, &mut key, "Key").await;
    f.check(SIGN_IN, None, &mut key).await.unwrap();
    assert_eq!(f.sign_count(&view.id).await, 1);
    let mut copy = key.clone_key();
    f.check(SIGN_IN, None, &mut key).await.unwrap();
    assert_eq!(f.sign_count(&view.id).await, 2);
    assert!(f.alerts.taken().is_empty());

    // The copy signs with counter 2, which is not above the stored 2.
    f.clock.advance(TimeDelta::seconds(10));
    let err = f.check(SIGN_IN, None, &mut copy).await.unwrap_err();
    assert!(err.to_string().contains("copied"), "{err}");
    assert_eq!(f.sign_count(&view.id).await, 2);
    let audit = f.audit().await;
    let denied = events(&audit, "passkey.auth", "deny");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(
        denied[0]["details"]["reason"],
        "signature counter went backwards"
    );
    assert_eq!(denied[0]["details"]["stored_count"], 2);
    assert_eq!(denied[0]["details"]["presented_count"], 2);
    assert_eq!(
        f.alerts.taken(),
        vec![Alert::CredentialCloneSuspected {
            org_id: DEFAULT_ORG.into(),
            user_id: alice.to_string(),
            cred_id: view.id.clone(),
            stored_count: 2,
            presented_count: 2,
            at_ms: f.now().timestamp_millis(),
        }]
    );

    // The genuine key goes on (3); the copy, now at 3, is refused in a step-up too.
    f.check(STEP_UP, Some(alice.as_str()), &mut key)
        .await
        .unwrap();
    assert_eq!(f.sign_count(&view.id).await, 3);
    let err = f
        .check(STEP_UP, Some(alice.as_str()), &mut copy)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("copied"), "{err}");
    assert_eq!(f.sign_count(&view.id).await, 3);
    assert!(matches!(
        f.alerts.taken().as_slice(),
        [Alert::CredentialCloneSuspected {
            stored_count: 3,
            presented_count: 3,
            ..
        }]
    ));
}

mod policy_and_nodes;
