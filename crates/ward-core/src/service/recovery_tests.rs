//! Recovery as a service, end to end (recovery spec §5): a case from start
//! to a new passkey, the helpdesk, approvals, anti-enumeration and the abuse controls, driven
//! through `Ward` over a real store with a test clock, soft passkeys, signed device answers, a
//! capturing mailer and a capturing notifier.
//!
//! The helpers here (the [`Rig`], phones, passkey sign-ins) are shared by the modules below.

mod abuse;
mod approvals;
mod completion;
mod enumeration;
mod fixation;
mod floods;
mod helpdesk;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use ward_proto::device::{Decision, PushEvent};
use ward_store::Store;
use ward_testkit::db::Backend;
use ward_testkit::device::{DeviceKey, Phone};
use ward_testkit::passkey::{Authr, passkey};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use zeroize::Zeroizing;

use super::passkey_tests::{Fixture, audit_of, fixture, fixture_on, settings};
use super::*;
use crate::model::{Actor, DeviceId, Role, UserId};
use crate::notify::UserNotice;
use crate::recovery::RecoveryPolicy;

const HOUR_MS: i64 = 3_600_000;

/// Recovery with short cooling periods, so that tests can tell them apart: P-code + P-mail cools
/// 3 h, a row with an approval 1 h, R2 6 h. Everything else is the default.
fn short_cooling() -> RecoverySettings {
    RecoverySettings {
        policy: RecoveryPolicy {
            r1_cooling_ms: HOUR_MS,
            r1_cooling_without_approval_or_document_ms: 3 * HOUR_MS,
            r2_cooling_ms: 6 * HOUR_MS,
            ..RecoveryPolicy::default()
        },
        ..RecoverySettings::default()
    }
}

/// One e-mail the mailer was asked to send.
#[derive(Clone, Debug)]
struct Mail {
    to: String,
    subject: String,
    body: String,
}

/// A mailer that keeps what it is given.
#[derive(Debug, Default)]
struct Mailbox(Mutex<Vec<Mail>>);

#[async_trait]
impl crate::notify::Mailer for Mailbox {
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        self.0.lock().unwrap().push(Mail {
            to: to.into(),
            subject: subject.into(),
            body: body.into(),
        });
        Ok(())
    }
}

impl Mailbox {
    fn all(&self) -> Vec<Mail> {
        self.0.lock().unwrap().clone()
    }

    /// Every mail once at least `n` have arrived (codes are sent from a spawned task).
    async fn at_least(&self, n: usize) -> Vec<Mail> {
        for _ in 0..500 {
            let all = self.all();
            if all.len() >= n {
                return all;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        panic!("fewer than {n} mails arrived: {:?}", self.all());
    }
}

/// A service with a portal, recovery settings, a mailbox and a notice collector.
struct Rig {
    f: Fixture,
    mail: Arc<Mailbox>,
    /// Every notice received so far (they arrive from spawned tasks).
    seen: Vec<UserNotice>,
}

/// A rig over a fresh SQLite database.
async fn rig(recovery: RecoverySettings) -> Rig {
    equip(fixture(settings()).await, recovery)
}

/// A rig over `store`.
async fn rig_on(store: Arc<dyn Store>, recovery: RecoverySettings) -> Rig {
    equip(fixture_on(store, settings()).await, recovery)
}

fn equip(mut f: Fixture, recovery: RecoverySettings) -> Rig {
    let mail = Arc::new(Mailbox::default());
    f.ward = f
        .ward
        .with_recovery(recovery)
        .with_mailer(Arc::clone(&mail) as Arc<dyn crate::notify::Mailer>);
    Rig {
        f,
        mail,
        seen: Vec::new(),
    }
}

/// The token at the end of a portal link.
fn token_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

/// The eight-digit code in a recovery e-mail.
fn code_in(body: &str) -> String {
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 8)
        .unwrap_or_else(|| panic!("no code in {body:?}"))
        .to_owned()
}

impl Rig {
    fn ward(&self) -> &Ward {
        &self.f.ward
    }

    fn now(&self) -> DateTime<Utc> {
        self.f.now()
    }

    fn advance(&self, by: TimeDelta) {
        self.f.clock.advance(by);
    }

    /// Collects the notices sent so far (the notifier runs in spawned tasks).
    async fn collect(&mut self) {
        for _ in 0..50 {
            tokio::task::yield_now().await;
            while let Ok(n) = self.f.notices.try_recv() {
                self.seen.push(n);
            }
        }
    }

    /// The notices of `action` to `user_id` so far.
    async fn notices(&mut self, user_id: &str, action: &str) -> Vec<UserNotice> {
        self.collect().await;
        self.seen
            .iter()
            .filter(|n| n.user_id == user_id && n.action == action)
            .cloned()
            .collect()
    }

    /// The one notice of `action` to `user_id`, waiting for it if need be.
    async fn notice(&mut self, user_id: &str, action: &str) -> UserNotice {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.notices(user_id, action).await;
            if let [n] = found.as_slice() {
                return n.clone();
            }
            assert!(
                found.is_empty(),
                "{} notices {action}: {found:?}",
                found.len()
            );
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let n = tokio::time::timeout(left, self.f.notices.recv())
                .await
                .unwrap_or_else(|_| panic!("no notice {action} to {user_id}"))
                .expect("the notifier is alive");
            self.seen.push(n);
        }
    }

    /// The actions of the `recovery.*` notices to `user_id`, sorted.
    async fn recovery_notices(&mut self, user_id: &str) -> Vec<String> {
        self.collect().await;
        let mut actions: Vec<String> = self
            .seen
            .iter()
            .filter(|n| n.user_id == user_id && n.action.starts_with("recovery."))
            .map(|n| n.action.clone())
            .collect();
        actions.sort();
        actions
    }

    async fn audit(&self) -> Vec<Value> {
        audit_of(self.f.store.as_ref()).await
    }

    /// The `type`s of a case's stored events, in order.
    async fn case_events(&self, case_id: &str) -> Vec<String> {
        self.f
            .store
            .recovery_events(case_id)
            .await
            .unwrap()
            .iter()
            .map(|e| {
                let v: Value = serde_json::from_str(&e.event).unwrap();
                v["type"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    async fn status(&self, handle: &str) -> CaseStatus {
        self.ward()
            .recovery()
            .status(handle, self.now())
            .await
            .unwrap()
    }

    async fn start(&self, username: &str) -> (Zeroizing<String>, String) {
        self.ward()
            .recovery()
            .start(
                default_org(),
                username,
                crate::recovery::Opener::User,
                None,
                self.now(),
            )
            .await
            .unwrap()
    }

    /// Submits a saved recovery code as the case page does: the browser keeps the new handle.
    async fn submit_code(&self, handle: &mut Zeroizing<String>, code: &str) -> Submitted {
        let s = self
            .ward()
            .recovery()
            .submit_code(handle, code, self.now())
            .await
            .unwrap();
        *handle = s.handle;
        s.outcome
    }

    /// Submits an e-mailed code as the case page does: the browser keeps the new handle.
    async fn submit_email(&self, handle: &mut Zeroizing<String>, code: &str) -> Submitted {
        let s = self
            .ward()
            .recovery()
            .submit_email_code(handle, code, self.now())
            .await
            .unwrap();
        *handle = s.handle;
        s.outcome
    }

    /// Whether the case is a phantom (no user on its row).
    async fn is_phantom(&self, case_id: &str) -> bool {
        let row = self.f.store.recovery_case(case_id).await.unwrap().unwrap();
        row.user_id.is_none()
    }

    /// A user with a role.
    async fn user_with(&self, name: &str, roles: &[Role]) -> String {
        let id = self.f.user(name).await;
        for role in roles {
            self.ward()
                .admin()
                .grant_role(default_org(), &Actor::Cli, name, *role, self.now())
                .await
                .unwrap();
        }
        id.into_string()
    }

    /// Registers a new passkey for the user.
    async fn passkey_for(&self, user_id: &str) -> Authr<SoftPasskey> {
        let mut key = passkey();
        self.f
            .register(&UserId::new(user_id), &mut key, "Laptop")
            .await;
        key
    }

    /// Signs in with `key` (usernameless), as the portal's sign-in page does.
    async fn sign_in(&self, key: &mut Authr<SoftPasskey>) -> NewSession {
        let start = self
            .ward()
            .portal()
            .passkey_auth_start(default_org(), ceremony_purpose::SIGN_IN, None, self.now())
            .await
            .unwrap();
        let answer = key.authenticate(&start.options).unwrap();
        self.ward()
            .portal()
            .passkey_sign_in(default_org(), &start.ceremony, &answer, self.now())
            .await
            .unwrap()
    }

    /// A fresh set of recovery codes, made in a signed-in, stepped-up session; returns the
    /// session's cookie too.
    async fn recovery_codes(
        &self,
        key: &mut Authr<SoftPasskey>,
    ) -> (Zeroizing<String>, Vec<Zeroizing<String>>) {
        let signed_in = self.sign_in(key).await;
        let start = self
            .ward()
            .portal()
            .step_up_start(&signed_in.session, self.now())
            .await
            .unwrap();
        let answer = key.authenticate(&start.options).unwrap();
        self.ward()
            .portal()
            .step_up_finish(&signed_in.session, &start.ceremony, &answer, self.now())
            .await
            .unwrap();
        let session = self
            .ward()
            .portal()
            .session(&signed_in.token, self.now())
            .await
            .unwrap()
            .unwrap();
        let codes = self
            .ward()
            .portal()
            .regenerate_recovery_codes(&session, self.now())
            .await
            .unwrap();
        (signed_in.token, codes)
    }

    /// A user with the approver role, a passkey and a portal session.
    async fn approver(&self, name: &str) -> Approver {
        let id = self.user_with(name, &[Role::Approver]).await;
        let mut key = self.passkey_for(&id).await;
        let session = self.sign_in(&mut key).await.session;
        Approver { id, key, session }
    }

    /// Names `approver` in `username`'s approver set.
    async fn add_approver(&self, username: &str, approver: &str) {
        self.ward()
            .admin()
            .add_recovery_approver(default_org(), &Actor::Cli, username, approver, self.now())
            .await
            .unwrap();
    }

    /// An approval of `case_id` by the session's user with `key`, start to finish.
    async fn approve(
        &self,
        session: &Session,
        key: &mut Authr<SoftPasskey>,
        case_id: &str,
    ) -> CoreResult<()> {
        let start = self
            .ward()
            .recovery()
            .approval_start(session, case_id, self.now())
            .await?;
        let answer = key.authenticate(&start.options).unwrap();
        self.ward()
            .recovery()
            .approval_finish(session, case_id, &start.ceremony, &answer, self.now())
            .await
    }

    /// Activates a push device for `username`.
    async fn phone(&self, username: &str, seed: u8) -> Phone {
        let code = self
            .ward()
            .devices()
            .activation_code(default_org(), &Actor::Cli, username, self.now())
            .await
            .unwrap();
        let key = DeviceKey::from_seed(seed);
        let req = key.activate_request(&code.code, &format!("phone {seed}"), "android");
        let (device, _) = self
            .ward()
            .devices()
            .activate(&req, self.now())
            .await
            .unwrap();
        key.activated(device.id.into_string())
    }

    /// The requests the phone shows now.
    async fn shown(&self, phone: &Phone) -> Vec<PushEvent> {
        self.ward()
            .devices()
            .pending_push_events(&DeviceId::new(phone.id.clone()), self.now())
            .await
            .unwrap()
    }

    /// The recovery request titled `title` about `case_id` the phone shows now.
    async fn recovery_push(&self, phone: &Phone, case_id: &str, title: &str) -> PushEvent {
        let found: Vec<PushEvent> = self
            .shown(phone)
            .await
            .into_iter()
            .filter(|e| {
                e.title == title && e.details.contains(&("Case".to_owned(), case_id.to_owned()))
            })
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        found.into_iter().next().unwrap()
    }

    /// The phone answers `event`.
    async fn answer(
        &self,
        phone: &Phone,
        event: &PushEvent,
        decision: Decision,
    ) -> CoreResult<PushState> {
        self.ward()
            .devices()
            .answer_push(
                &phone.answer(event, decision, None, self.now().timestamp()),
                self.now(),
            )
            .await
    }
}

/// Someone who may approve recoveries, signed in to the portal.
struct Approver {
    id: String,
    key: Authr<SoftPasskey>,
    session: Session,
}

/// Runs `test` on a rig over a fresh PostgreSQL schema (dropped afterwards, even when the test
/// fails); skipped without `WARD_TEST_DATABASE_URL`.
async fn on_postgres<F, Fut>(recovery: RecoverySettings, test: F)
where
    F: FnOnce(Rig) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    Backend::Postgres
        .run("node-a", async |store| {
            test(rig_on(store, recovery).await).await;
        })
        .await;
}
