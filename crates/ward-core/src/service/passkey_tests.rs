//! Passkey and security-key ceremonies, driven by the software authenticators of
//! `webauthn-authenticator-rs` through the same JSON a browser would carry.
//!
//! The helpers here (fixture, [`Authr`], audit reading) are shared with `portal_tests`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use crypto_glue::traits::{EncodePem as _, LineEndingPem};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use ward_store::{DEFAULT_ORG, Store, UserRow};
use ward_store_sqlite::SqliteStore;
use webauthn_authenticator_rs::AuthenticatorBackend;
use webauthn_authenticator_rs::WebauthnAuthenticator as _;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::softtoken::{self, SoftToken};
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url, Uuid};

use super::*;
use crate::clock::{Clock, TestClock};
use crate::crypto::MasterKey;
use crate::model::Actor;
use crate::notify::{Alert, UserNotice};
use crate::policy::{FactorPolicy, PortalSettings};

pub(super) const ORIGIN: &str = "https://localhost:8443";
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
    dir: Option<tempfile::TempDir>,
    pub(super) store: Arc<dyn Store>,
    pub(super) ward: Ward,
    pub(super) clock: TestClock,
    pub(super) alerts: Arc<Alerts>,
    pub(super) notices: mpsc::UnboundedReceiver<UserNotice>,
}

/// A `Ward` serving the portal over a fresh SQLite database.
pub(super) async fn fixture(settings: PortalSettings) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ward.db").display());
    let store = SqliteStore::open(&url, "test").await.unwrap();
    store.migrate().await.unwrap();
    let mut f = fixture_on(Arc::new(store), settings).await;
    f.dir = Some(dir);
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
        dir: None,
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
    pub(super) async fn user(&self, name: &str) -> String {
        let email = format!("{name}@example.com");
        self.ward
            .create_user(&Actor::Cli, name, Some(&email), self.now())
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
        user_id: &str,
        authr: &mut Authr<A>,
        name: &str,
    ) -> PasskeyView {
        let start = self
            .ward
            .passkey_register_start(user_id, self.now())
            .await
            .unwrap();
        let answer = authr.register(&start.options).unwrap();
        self.ward
            .passkey_register_finish(user_id, &start.ceremony, &answer, name, self.now())
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
            .passkey_auth_start(purpose, user_id, self.now())
            .await
            .unwrap();
        let answer = authr.authenticate(&start.options).unwrap();
        self.ward
            .passkey_auth_finish(purpose, &start.ceremony, &answer, self.now())
            .await
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

/// A discoverable authenticator, driven the way a browser drives one: it takes Ward's options
/// JSON and returns the JSON that Ward's `*_finish` methods take.
///
/// The soft authenticators of webauthn-authenticator-rs 0.6.2 refuse `requireResidentKey`
/// (`NotSupported`), cannot answer a request without `allowCredentials`, and never return a
/// user handle. So this wrapper checks that Ward asked for a resident key, then lowers the
/// request to a non-resident one for the soft authenticator; it remembers the user handle of
/// each credential it made, answers a usernameless request by offering its own credentials,
/// and adds the user handle to the answer. None of that is signed data: Ward verifies the same
/// signatures, challenge, origin and flags as from a real passkey.
pub(super) struct Authr<A> {
    inner: A,
    origin: Url,
    /// Credential id → user handle (both base64url, as in the JSON).
    resident: BTreeMap<String, String>,
    /// Plays a client that lowers `userVerification` to `discouraged`: the authenticator
    /// then signs without the UV flag.
    pub(super) skip_uv: bool,
}

impl<A: AuthenticatorBackend> Authr<A> {
    pub(super) fn new(inner: A) -> Self {
        Self {
            inner,
            origin: Url::parse(ORIGIN).unwrap(),
            resident: BTreeMap::new(),
            skip_uv: false,
        }
    }

    /// Answers `navigator.credentials.create()`.
    pub(super) fn register(&mut self, options: &Value) -> Result<Value, String> {
        let asked = &options["publicKey"]["authenticatorSelection"];
        assert_eq!(asked["residentKey"], "required", "{options}");
        assert_eq!(asked["requireResidentKey"], true, "{options}");
        assert_eq!(asked["userVerification"], "required", "{options}");
        let mut options = options.clone();
        let selection = &mut options["publicKey"]["authenticatorSelection"];
        selection["residentKey"] = "discouraged".into();
        selection["requireResidentKey"] = false.into();
        if self.skip_uv {
            selection["userVerification"] = "discouraged".into();
        }
        let handle = options["publicKey"]["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let ccr: CreationChallengeResponse = serde_json::from_value(options).unwrap();
        let answer = self
            .inner
            .do_registration(self.origin.clone(), ccr)
            .map_err(|e| format!("{e:?}"))?;
        let answer = serde_json::to_value(&answer).unwrap();
        let id = answer["rawId"].as_str().unwrap().to_owned();
        self.resident.insert(id, handle);
        Ok(answer)
    }

    /// Answers `navigator.credentials.get()`.
    pub(super) fn authenticate(&mut self, options: &Value) -> Result<Value, String> {
        let mut options = options.clone();
        let public_key = &mut options["publicKey"];
        let usernameless = public_key["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty);
        if usernameless {
            public_key["allowCredentials"] = self
                .resident
                .keys()
                .map(|id| json!({"type": "public-key", "id": id}))
                .collect();
        }
        if self.skip_uv {
            public_key["userVerification"] = "discouraged".into();
        }
        let rcr: RequestChallengeResponse = serde_json::from_value(options).unwrap();
        let answer = self
            .inner
            .do_authentication(self.origin.clone(), rcr)
            .map_err(|e| format!("{e:?}"))?;
        let mut answer = serde_json::to_value(&answer).unwrap();
        let id = answer["rawId"].as_str().unwrap().to_owned();
        if let Some(handle) = self.resident.get(&id) {
            answer["response"]["userHandle"] = handle.clone().into();
        }
        Ok(answer)
    }
}

impl Authr<SoftToken> {
    /// A new security key, and its vendor's attestation root as PEM.
    pub(super) fn security_key() -> (Self, String) {
        let (token, ca) = SoftToken::new(true).unwrap();
        (Self::new(token), ca.to_pem(LineEndingPem::LF).unwrap())
    }

    /// A copy of the key as it is now (private keys and signature counter): a clone.
    pub(super) fn clone_key(&self) -> Self {
        let inner = SoftToken::from_cbor(&self.inner.to_cbor().unwrap()).unwrap();
        Self {
            inner,
            origin: self.origin.clone(),
            resident: self.resident.clone(),
            skip_uv: self.skip_uv,
        }
    }
}

/// A passkey that performs user verification.
pub(super) fn passkey() -> Authr<SoftPasskey> {
    Authr::new(SoftPasskey::new(true))
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
    let factors = f.ward.factors(&alice).await.unwrap();
    assert_eq!(factors.passkeys, vec![view.clone()]);
    assert!(factors.phishing_resistant());
    assert!(f.ward.factors("nobody").await.unwrap().passkeys.is_empty());
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
        .passkey_auth_start(SIGN_IN, None, f.now())
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
        .passkey_auth_finish(SIGN_IN, &start.ceremony, &answer, f.now())
        .await
        .unwrap();
    assert_eq!(check.user.user_id, alice);
    assert_eq!(check.cred_id, view.id);
    assert_eq!(check.credential_name, "Laptop");
    let signed_in_at = f.now().timestamp_millis();
    assert_eq!(f.sign_count(&view.id).await, 1);
    let listed = f.ward.factors(&alice).await.unwrap().passkeys;
    assert_eq!(listed[0].last_used_ms, Some(signed_in_at));
    assert_eq!(f.row(&alice).await.last_login_ms, Some(signed_in_at));

    // A check scoped to the user (step-up) names the user's credentials.
    f.clock.advance(TimeDelta::minutes(1));
    let start = f
        .ward
        .passkey_auth_start(STEP_UP, Some(&alice), f.now())
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
        .passkey_auth_finish(STEP_UP, &start.ceremony, &answer, f.now())
        .await
        .unwrap();
    assert_eq!(check.user.user_id, alice);
    assert_eq!(f.sign_count(&view.id).await, 2);
    let listed = f.ward.factors(&alice).await.unwrap().passkeys;
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
            .passkey_auth_start(STEP_UP, Some(&bob), f.now())
            .await,
        Err(CoreError::NotFound(_))
    ));
    f.register(&bob, &mut passkey(), "Bob's").await;

    // A client that ignores the request's credential list answers Bob's check with Alice's
    // passkey: a valid assertion, for the wrong account.
    let start = f
        .ward
        .passkey_auth_start(STEP_UP, Some(&bob), f.now())
        .await
        .unwrap();
    let mut options = start.options.clone();
    options["publicKey"]["allowCredentials"] = json!([]);
    let answer = alices.authenticate(&options).unwrap();
    let refused = f
        .ward
        .passkey_auth_finish(STEP_UP, &start.ceremony, &answer, f.now())
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
        .passkey_register_start(&alice, f.now())
        .await
        .unwrap();
    let answer = key.register(&start.options).unwrap();
    let view = f
        .ward
        .passkey_register_finish(&alice, &start.ceremony, &answer, "Laptop", f.now())
        .await
        .unwrap();
    let again = f
        .ward
        .passkey_register_finish(&alice, &start.ceremony, &answer, "Laptop", f.now())
        .await;
    assert!(matches!(again, Err(CoreError::Expired(_))), "{again:?}");
    assert_eq!(
        f.ward.factors(&alice).await.unwrap().passkeys,
        vec![view.clone()]
    );

    // A registration finished after the ceremony's five minutes is refused.
    let mut late = passkey();
    let start = f
        .ward
        .passkey_register_start(&alice, f.now())
        .await
        .unwrap();
    let answer = late.register(&start.options).unwrap();
    f.clock
        .advance(TimeDelta::minutes(5) + TimeDelta::milliseconds(1));
    let expired = f
        .ward
        .passkey_register_finish(&alice, &start.ceremony, &answer, "Late", f.now())
        .await;
    assert!(matches!(expired, Err(CoreError::Expired(_))), "{expired:?}");
    assert_eq!(f.ward.factors(&alice).await.unwrap().passkeys.len(), 1);
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
        .passkey_auth_start(SIGN_IN, None, f.now())
        .await
        .unwrap();
    let answer = key.authenticate(&start.options).unwrap();
    f.ward
        .passkey_auth_finish(SIGN_IN, &start.ceremony, &answer, f.now())
        .await
        .unwrap();
    assert_eq!(f.sign_count(&view.id).await, 1);
    let replay = f
        .ward
        .passkey_auth_finish(SIGN_IN, &start.ceremony, &answer, f.now())
        .await;
    assert!(matches!(replay, Err(CoreError::Expired(_))), "{replay:?}");
    assert_eq!(f.sign_count(&view.id).await, 1);

    // An expired sign-in is refused.
    let start = f
        .ward
        .passkey_auth_start(SIGN_IN, None, f.now())
        .await
        .unwrap();
    let answer = key.authenticate(&start.options).unwrap();
    f.clock.advance(TimeDelta::minutes(6));
    let expired = f
        .ward
        .passkey_auth_finish(SIGN_IN, &start.ceremony, &answer, f.now())
        .await;
    assert!(matches!(expired, Err(CoreError::Expired(_))), "{expired:?}");
    assert_eq!(f.sign_count(&view.id).await, 1);

    // A sign-in ceremony cannot be finished as a step-up (nor a registration as a sign-in);
    // the attempt does not use it up.
    let start = f
        .ward
        .passkey_auth_start(SIGN_IN, None, f.now())
        .await
        .unwrap();
    let answer = key.authenticate(&start.options).unwrap();
    let wrong = f
        .ward
        .passkey_auth_finish(STEP_UP, &start.ceremony, &answer, f.now())
        .await;
    assert!(matches!(wrong, Err(CoreError::Expired(_))), "{wrong:?}");
    let registration = f
        .ward
        .passkey_register_start(&alice, f.now())
        .await
        .unwrap();
    let wrong = f
        .ward
        .passkey_auth_finish(SIGN_IN, &registration.ceremony, &answer, f.now())
        .await;
    assert!(wrong.is_err(), "{wrong:?}");
    assert_eq!(f.sign_count(&view.id).await, 1);
    let check = f
        .ward
        .passkey_auth_finish(SIGN_IN, &start.ceremony, &answer, f.now())
        .await
        .unwrap();
    assert_eq!(check.user.user_id, alice);
    assert_eq!(f.sign_count(&view.id).await, 3);

    // Nonsense ceremony ids are refused without a lookup.
    for id in ["", &"x".repeat(129)] {
        assert!(matches!(
            f.ward
                .passkey_auth_finish(SIGN_IN, id, &answer, f.now())
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
            user_id: alice.clone(),
            cred_id: view.id.clone(),
            stored_count: 2,
            presented_count: 2,
            at_ms: f.now().timestamp_millis(),
        }]
    );

    // The genuine key goes on (3); the copy, now at 3, is refused in a step-up too.
    f.check(STEP_UP, Some(&alice), &mut key).await.unwrap();
    assert_eq!(f.sign_count(&view.id).await, 3);
    let err = f.check(STEP_UP, Some(&alice), &mut copy).await.unwrap_err();
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

fn hardware_policy(ca_pem: &str, aaguid: Uuid) -> FactorPolicy {
    FactorPolicy {
        synced_passkeys: false,
        attestation_ca_pems: vec![ca_pem.to_owned()],
        aaguids: vec![aaguid],
        ..FactorPolicy::default()
    }
}

#[tokio::test]
async fn hardware_groups_accept_only_attested_keys_of_allowed_models() {
    let (mut key, ca_pem) = Authr::security_key();
    let mut s = settings();
    s.factors.groups.insert(
        "hardware".into(),
        hardware_policy(&ca_pem, softtoken::AAGUID),
    );
    let other_model = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
    s.factors
        .groups
        .insert("other-model".into(), hardware_policy(&ca_pem, other_model));
    let f = fixture(s).await;
    let now = f.now();
    for (name, group) in [
        ("alice", "hardware"),
        ("bob", "other-model"),
        ("carol", "hardware"),
        ("dave", "hardware"),
    ] {
        f.user(name).await;
        f.ward
            .set_policy_group(&Actor::Cli, name, Some(group), now)
            .await
            .unwrap();
    }
    let alice = f.row_by_name("alice").await.user_id;
    assert_eq!(
        f.row(&alice).await.policy_group.as_deref(),
        Some("hardware")
    );

    // An attested key of an allowed model from a trusted vendor.
    let start = f.ward.passkey_register_start(&alice, now).await.unwrap();
    assert_eq!(start.options["publicKey"]["attestation"], "direct");
    let answer = key.register(&start.options).unwrap();
    let view = f
        .ward
        .passkey_register_finish(&alice, &start.ceremony, &answer, "YubiKey", now)
        .await
        .unwrap();
    assert_eq!(view.kind, "security-key");
    assert_eq!(view.aaguid, Some(softtoken::AAGUID.to_string()));
    assert!(!view.backup_eligible);
    assert_eq!(
        f.ward.factors(&alice).await.unwrap().passkeys,
        vec![view.clone()]
    );
    let audit = f.audit().await;
    let added = events(&audit, "passkey.add", "ok");
    assert_eq!(added[0]["details"]["kind"], "security-key");
    assert_eq!(
        added[0]["details"]["aaguid"],
        softtoken::AAGUID.to_string().as_str()
    );
    // ... and it signs in.
    let check = f.check(SIGN_IN, None, &mut key).await.unwrap();
    assert_eq!(check.user.user_id, alice);

    // The same key is not a model Bob's group allows.
    let bob = f.row_by_name("bob").await.user_id;
    let refused = attempt(&f, &bob, &mut key).await;
    assert!(
        matches!(&refused, Err(CoreError::InvalidInput { reason, .. }) if reason.contains("not allowed")),
        "{refused:?}"
    );

    // A passkey without attestation is refused in the hardware group.
    let carol = f.row_by_name("carol").await.user_id;
    let refused = attempt(&f, &carol, &mut passkey()).await;
    assert!(
        matches!(&refused, Err(CoreError::InvalidInput { reason, .. }) if reason.contains("not allowed")),
        "{refused:?}"
    );

    // So is a key of the allowed model whose attestation chains to another vendor's root.
    let dave = f.row_by_name("dave").await.user_id;
    let (mut foreign, _other_ca) = Authr::security_key();
    let refused = attempt(&f, &dave, &mut foreign).await;
    assert!(refused.is_err(), "{refused:?}");

    for user in [&bob, &carol, &dave] {
        assert!(f.ward.factors(user).await.unwrap().passkeys.is_empty());
    }
    let audit = f.audit().await;
    assert_eq!(events(&audit, "passkey.add", "ok").len(), 1);
    let denied: Vec<_> = events(&audit, "passkey.add", "deny")
        .iter()
        .map(|e| e["target"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(denied, [bob, carol, dave]);
}

/// Registers `authr` for the user; returns what the finish said.
async fn attempt<A: AuthenticatorBackend>(
    f: &Fixture,
    user_id: &str,
    authr: &mut Authr<A>,
) -> CoreResult<PasskeyView> {
    let start = f
        .ward
        .passkey_register_start(user_id, f.now())
        .await
        .unwrap();
    let answer = authr.register(&start.options).unwrap();
    f.ward
        .passkey_register_finish(user_id, &start.ceremony, &answer, "Key", f.now())
        .await
}

#[tokio::test]
async fn an_authenticator_that_does_not_verify_the_user_is_refused() {
    let f = fixture(settings()).await;
    let alice = f.user("alice").await;

    // An authenticator that cannot verify its user does not even answer Ward's request ...
    let mut no_uv = Authr::new(SoftPasskey::new(false));
    let start = f
        .ward
        .passkey_register_start(&alice, f.now())
        .await
        .unwrap();
    assert!(no_uv.register(&start.options).is_err());
    // ... and when a client lowers the requirement, its answer is refused.
    no_uv.skip_uv = true;
    let refused = attempt(&f, &alice, &mut no_uv).await;
    assert!(
        matches!(refused, Err(CoreError::InvalidInput { .. })),
        "{refused:?}"
    );
    assert!(f.ward.factors(&alice).await.unwrap().passkeys.is_empty());

    // A registered passkey whose assertion lacks user verification is refused too.
    let mut key = passkey();
    let view = f.register(&alice, &mut key, "Laptop").await;
    key.skip_uv = true;
    for (purpose, user) in [(SIGN_IN, None), (STEP_UP, Some(alice.as_str()))] {
        let refused = f.check(purpose, user, &mut key).await;
        assert!(
            matches!(refused, Err(CoreError::InvalidInput { .. })),
            "{refused:?}"
        );
    }
    assert_eq!(f.sign_count(&view.id).await, 0);
    assert_eq!(
        f.ward.factors(&alice).await.unwrap().passkeys[0].last_used_ms,
        None
    );
    key.skip_uv = false;
    f.check(SIGN_IN, None, &mut key).await.unwrap();

    let audit = f.audit().await;
    assert_eq!(events(&audit, "passkey.add", "deny").len(), 1);
    assert_eq!(events(&audit, "passkey.auth", "deny").len(), 2);
    assert_eq!(events(&audit, "passkey.auth", "allow").len(), 1);
}

/// The PostgreSQL server to test against: `None` (after saying so) when the test is skipped.
fn postgres_url() -> Option<String> {
    match std::env::var("WARD_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let strict = std::env::var("WARD_TEST_STRICT").is_ok_and(|v| v == "1");
            assert!(
                !strict,
                "WARD_TEST_STRICT=1 but WARD_TEST_DATABASE_URL is not set"
            );
            eprintln!(
                "SKIPPED: the two-node ceremony test needs WARD_TEST_DATABASE_URL \
                 (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

#[tokio::test]
async fn ceremonies_started_on_one_node_finish_on_another_once() {
    use sqlx::Connection as _;

    let Some(url) = postgres_url() else { return };
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let schema: String = sqlx::query_scalar("SELECT 'ward_core_test_' || md5(random()::text)")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    // The name is generated above from hex digits only.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    // In a task of its own so that the schema is dropped even when the test fails.
    let outcome = tokio::task::LocalSet::new()
        .run_until(async move { tokio::task::spawn_local(two_nodes(scoped)).await })
        .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn two_nodes(url: String) {
    let open = |chain: &'static str| {
        let url = url.clone();
        async move {
            let store = ward_store_postgres::PostgresStore::open(&url, chain)
                .await
                .unwrap();
            store.migrate().await.unwrap();
            Arc::new(store) as Arc<dyn Store>
        }
    };
    let a = fixture_on(open("node-a").await, settings()).await;
    let b = fixture_on(open("node-b").await, settings()).await;
    let now = a.now();
    let alice = a.user("alice").await;
    let mut key = passkey();

    // Registration started on A, finished on B, not again on A.
    let start = a.ward.passkey_register_start(&alice, now).await.unwrap();
    let answer = key.register(&start.options).unwrap();
    let view = b
        .ward
        .passkey_register_finish(&alice, &start.ceremony, &answer, "Laptop", now)
        .await
        .unwrap();
    assert_eq!(
        a.ward.factors(&alice).await.unwrap().passkeys,
        vec![view.clone()]
    );
    let again = a
        .ward
        .passkey_register_finish(&alice, &start.ceremony, &answer, "Laptop", now)
        .await;
    assert!(matches!(again, Err(CoreError::Expired(_))), "{again:?}");

    // Sign-in started on B, finished on A, not again on B.
    let start = b.ward.passkey_auth_start(SIGN_IN, None, now).await.unwrap();
    let answer = key.authenticate(&start.options).unwrap();
    let check = a
        .ward
        .passkey_auth_finish(SIGN_IN, &start.ceremony, &answer, now)
        .await
        .unwrap();
    assert_eq!(check.user.user_id, alice);
    let again = b
        .ward
        .passkey_auth_finish(SIGN_IN, &start.ceremony, &answer, now)
        .await;
    assert!(matches!(again, Err(CoreError::Expired(_))), "{again:?}");
    assert_eq!(b.sign_count(&view.id).await, 1);

    // Both nodes finishing the same ceremony at once: exactly one wins.
    let start = a
        .ward
        .passkey_auth_start(STEP_UP, Some(&alice), now)
        .await
        .unwrap();
    let answer = key.authenticate(&start.options).unwrap();
    let (on_a, on_b) = tokio::join!(
        a.ward
            .passkey_auth_finish(STEP_UP, &start.ceremony, &answer, now),
        b.ward
            .passkey_auth_finish(STEP_UP, &start.ceremony, &answer, now),
    );
    assert_eq!(
        u8::from(on_a.is_ok()) + u8::from(on_b.is_ok()),
        1,
        "{on_a:?} {on_b:?}"
    );
    assert!(matches!(
        on_a.err().or(on_b.err()),
        Some(CoreError::Expired(_))
    ));
    assert_eq!(a.sign_count(&view.id).await, 2);

    // Each node wrote to its own audit chain, and both verify.
    let report = crate::audit::verify(a.store.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.chains, 2);
    let audit = audit_of(a.store.as_ref()).await;
    assert_eq!(events(&audit, "passkey.auth", "allow").len(), 2);
    a.store.close().await;
    b.store.close().await;
}
