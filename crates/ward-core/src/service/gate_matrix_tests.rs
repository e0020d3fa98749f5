//! The decision matrix: for every account state, every door gives the verdict the one gate
//! gives, with the same audited reason — on SQLite and on PostgreSQL.
//!
//! Doors: the Auth API (passcode, push, preauth), the older `/rest/v1` API (passcode, push),
//! the hosted prompt (what it offers, passcode, push, passkey) and the portal (TOTP sign-in,
//! passkey sign-in). States: active, unknown, disabled, locked out, push muted after a fraud
//! report, over the push storm limit, an active account whose applications' policies do not
//! allow the method (an Auth API integration with push turned off, a prompt that requires a
//! phishing-resistant factor, a portal group without TOTP sign-in), and an active account of a
//! disabled organisation. Each door's verdict is the gate's under that door's own policy.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use ward_store::{Change, ChangeSet, DEFAULT_ORG, Store};
use ward_testkit::db::Backend;
use ward_testkit::device::DeviceKey;
use ward_testkit::passkey::{Authr, passkey};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use super::passkey_tests::{audit_of, settings};
use super::*;
use crate::clock::{Clock, TestClock};
use crate::crypto::MasterKey;
use crate::gate::{self, Allowed, Door, Method, OrgState, Subject};
use crate::model::{Actor, IntegrationKind, UserRef, UserStatus};
use crate::policy::{ApiPushMode, FactorPolicy, PromptPolicy, PushPolicy};
use crate::totp::{Algorithm, Totp};

const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const STORM_LIMIT: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Active,
    Unknown,
    Disabled,
    Locked,
    Muted,
    Storm,
    /// Active, but asked for through applications (and in a portal group) whose policies do
    /// not allow push or codes.
    NotAllowed,
    /// Active, but its organisation is disabled (last: it disables the matrix's organisation).
    OrgDisabled,
}

const STATES: [State; 8] = [
    State::Active,
    State::Unknown,
    State::Disabled,
    State::Locked,
    State::Muted,
    State::Storm,
    State::NotAllowed,
    State::OrgDisabled,
];

/// What a door answered: let in, or refused with the reason it audited.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    Admit,
    Refuse(String),
}

struct Matrix {
    store: Arc<dyn Store>,
    ward: Ward,
    clock: TestClock,
    api: AuthContext,
    web: crate::model::Integration,
    /// An Auth API integration with push turned off.
    strict_api: AuthContext,
    /// A hosted prompt that requires a phishing-resistant factor (no push, no codes).
    strict_web: crate::model::Integration,
}

async fn matrix_on(store: Arc<dyn Store>) -> Matrix {
    let mut portal = settings();
    portal.factors.groups.insert(
        "codes".into(),
        FactorPolicy {
            totp_signin: true,
            ..FactorPolicy::default()
        },
    );
    portal.factors.groups.insert(
        STRICT_GROUP.into(),
        FactorPolicy {
            totp_signin: false,
            ..FactorPolicy::default()
        },
    );
    let policy = AuthPolicy {
        push: PushPolicy {
            storm_limit: STORM_LIMIT,
            storm_window: TimeDelta::hours(2),
            ..PushPolicy::default()
        },
        ..AuthPolicy::default()
    };
    let keys = Keyring::new(MasterKey::from_bytes([5; 32]), vec![]);
    let ward = Ward::new(Arc::clone(&store), keys, policy, "Ward")
        .await
        .unwrap()
        .with_portal(portal)
        .unwrap();
    let clock = TestClock::at(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
    let now = clock.now();
    let (integration, _) = ward
        .admin()
        .create_integration(
            default_org(),
            &Actor::Cli,
            "VPN",
            IntegrationKind::AuthApi,
            Some(ApiPushMode::Plain),
            now,
        )
        .await
        .unwrap();
    let (web, _) = ward
        .admin()
        .create_integration(
            default_org(),
            &Actor::Cli,
            "Web",
            IntegrationKind::WebSdk,
            None,
            now,
        )
        .await
        .unwrap();
    let (strict_api, _) = ward
        .admin()
        .create_integration(
            default_org(),
            &Actor::Cli,
            "VPN without push",
            IntegrationKind::AuthApi,
            Some(ApiPushMode::Refuse),
            now,
        )
        .await
        .unwrap();
    let phishing_resistant = PromptPolicy {
        require_phishing_resistant: true,
        ..PromptPolicy::default()
    };
    let (strict_web, _) = ward
        .admin()
        .create_web_sdk_integration(
            default_org(),
            &Actor::Cli,
            "Web, passkeys only",
            &phishing_resistant,
            now,
        )
        .await
        .unwrap();
    let api = |integration| AuthContext {
        integration,
        user_ip: Some("192.0.2.1".into()),
        client_ip: None,
    };
    Matrix {
        store,
        ward,
        clock,
        api: api(integration),
        web,
        strict_api: api(strict_api),
        strict_web,
    }
}

/// The portal group of the accounts in [`State::NotAllowed`]: no TOTP sign-in.
const STRICT_GROUP: &str = "passkeys-only";

/// One account in one state, with every factor enrolled (except the unknown one).
struct Account {
    name: String,
    key: Authr<SoftPasskey>,
    /// Asked for through the strict applications (and in the strict portal group).
    strict: bool,
}

impl Matrix {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A fresh TOTP code: the clock moves to the next time step first.
    fn code(&self) -> String {
        self.clock.advance(TimeDelta::seconds(30));
        let t = Totp::new(
            crate::totp::base32_decode(SECRET).unwrap(),
            Algorithm::Sha1,
            6,
            30,
        )
        .unwrap();
        t.code(u64::try_from(t.step_at(self.now().timestamp())).unwrap())
            .to_string()
    }

    async fn account(&self, state: State) -> Account {
        let name = format!("{state:?}").to_lowercase();
        let mut key = passkey();
        let strict = state == State::NotAllowed;
        if state == State::Unknown {
            return Account { name, key, strict };
        }
        let now = self.now();
        let group = if strict { STRICT_GROUP } else { "codes" };
        let user = self
            .ward
            .admin()
            .create_user(default_org(), &Actor::Cli, &name, None, now)
            .await
            .unwrap();
        self.ward
            .admin()
            .add_totp(
                default_org(),
                &Actor::Cli,
                &name,
                Some(SECRET),
                Algorithm::Sha1,
                6,
                now,
            )
            .await
            .unwrap();
        self.ward
            .portal()
            .set_policy_group(default_org(), &Actor::Cli, &name, Some(group), now)
            .await
            .unwrap();
        let code = self
            .ward
            .devices()
            .activation_code(default_org(), &Actor::Cli, &name, now)
            .await
            .unwrap();
        let req = DeviceKey::from_seed(7).activate_request(&code.code, "phone", "linux");
        self.ward.devices().activate(&req, now).await.unwrap();
        let start = self
            .ward
            .portal()
            .passkey_register_start(default_org(), &user.id, now)
            .await
            .unwrap();
        let answer = key.register(&start.options).unwrap();
        self.ward
            .portal()
            .passkey_register_finish(
                default_org(),
                &user.id,
                &start.ceremony,
                &answer,
                "Key",
                now,
            )
            .await
            .unwrap();
        self.put_in(state, user.id.as_str(), &name).await;
        Account { name, key, strict }
    }

    async fn put_in(&self, state: State, user_id: &str, name: &str) {
        let now = self.now();
        let later = (now + TimeDelta::hours(1)).timestamp_millis();
        let change = match state {
            State::Active | State::Unknown | State::NotAllowed => return,
            State::Disabled => {
                self.ward
                    .admin()
                    .set_user_status(default_org(), &Actor::Cli, name, UserStatus::Disabled, now)
                    .await
                    .unwrap();
                return;
            }
            State::Locked => Change::RecordAuthFailure {
                org_id: DEFAULT_ORG.into(),
                user_id: user_id.into(),
                threshold: 1,
                lock_until_ms: later,
                now_ms: now.timestamp_millis(),
            },
            State::Muted => Change::MutePush {
                org_id: DEFAULT_ORG.into(),
                user_id: user_id.into(),
                until_ms: later,
            },
            State::OrgDisabled => {
                self.ward
                    .admin()
                    .set_org_disabled(&Actor::Cli, DEFAULT_ORG, true, now)
                    .await
                    .unwrap();
                return;
            }
            State::Storm => {
                for _ in 0..STORM_LIMIT {
                    let sent = self.api_push(&self.api, name).await;
                    assert!(matches!(sent, Ok(PushOutcome::Started(_))), "{sent:?}");
                }
                return;
            }
        };
        self.store
            .commit(ChangeSet::new().with(change))
            .await
            .unwrap();
    }

    /// What the door's policy allows: the integration's push mode at the Duo APIs, the
    /// application's prompt policy, the account's portal group.
    fn allowed_at(&self, door: &str, strict: bool) -> Allowed {
        let (api, web) = if strict {
            (&self.strict_api, &self.strict_web)
        } else {
            (&self.api, &self.web)
        };
        let group = if strict { STRICT_GROUP } else { "codes" };
        match door.split('.').next().unwrap() {
            "auth_api" => api.allowed(Door::AuthApi, &self.ward.policy),
            "legacy" => api.allowed(Door::Legacy, &self.ward.policy),
            "prompt" => web.prompt_policy.allowed(),
            "portal" => {
                self.ward.passkeys().unwrap().settings.factors.groups[group].portal_allowed()
            }
            other => panic!("no door {other}"),
        }
    }

    /// What the gate itself says for this account and method under the door's policy.
    async fn expected(&self, name: &str, method: Method, allowed: Allowed, storm: bool) -> Verdict {
        let row = self.store.user_by_name(DEFAULT_ORG, name).await.unwrap();
        let subject = row.as_ref().map(|r| Subject::of(r).unwrap());
        let org = self.store.org(DEFAULT_ORG).await.unwrap();
        match gate::admit(
            OrgState::of(org.as_ref()),
            subject.as_ref(),
            method,
            allowed,
            self.now().timestamp_millis(),
        ) {
            Ok(()) if storm && method == Method::Push => Verdict::Refuse("push_storm".into()),
            Ok(()) => Verdict::Admit,
            Err(refusal) => Verdict::Refuse(refusal.as_str().into()),
        }
    }

    async fn api_push(&self, api: &AuthContext, name: &str) -> CoreResult<PushOutcome> {
        let user = UserRef::Name(name.into());
        self.ward
            .auth()
            .start_api_push(api, &user, PushRequest::default(), true, self.now())
            .await
    }

    fn prompt(&self, account: &Account) -> String {
        let web = if account.strict {
            &self.strict_web
        } else {
            &self.web
        };
        let name = account.name.clone();
        let request = PromptRequest {
            client_id: web.ikey.to_string(),
            app_name: "Web".into(),
            redirect_uri: "https://app.example/callback".into(),
            state: "s".repeat(22),
            nonce: None,
            username: name,
            duo_code_attribute: true,
            user_ip: Some("192.0.2.2".into()),
            expires_ms: (self.now() + TimeDelta::hours(3)).timestamp_millis(),
        };
        self.ward.seal_prompt(&request).unwrap()
    }

    /// Runs one door, and reads its verdict: admitted, or the reason of the first refusal it
    /// audited.
    async fn door(&self, door: &str, account: &mut Account) -> Verdict {
        let before = audit_of(self.store.as_ref()).await.len();
        let admitted = self.run(door, account).await;
        let audit = audit_of(self.store.as_ref()).await;
        let refused = audit
            .get(before..)
            .unwrap_or_default()
            .iter()
            .find(|e| e["outcome"] == "deny" && e["details"]["reason"].is_string());
        match (admitted, refused) {
            (true, None) => Verdict::Admit,
            (false, Some(event)) => {
                Verdict::Refuse(event["details"]["reason"].as_str().unwrap().into())
            }
            (admitted, event) => panic!("{door}: admitted {admitted} but audited {event:?}"),
        }
    }

    async fn run(&self, door: &str, account: &mut Account) -> bool {
        let name = account.name.clone();
        let user = UserRef::Name(name.clone());
        let api = if account.strict {
            &self.strict_api
        } else {
            &self.api
        };
        match door {
            "auth_api.passcode" => {
                let code = self.code();
                let d = self
                    .ward
                    .auth()
                    .passcode(api, &user, &code, false, self.now());
                d.await.is_ok_and(|d| d.allowed)
            }
            "legacy.passcode" => {
                let code = LegacyFactor::Passcode(self.code());
                let d = self.ward.auth().legacy_auth(
                    api,
                    &user,
                    code,
                    PushRequest::default(),
                    false,
                    self.now(),
                );
                matches!(d.await, Ok(LegacyAuth::Decided(d)) if d.allowed)
            }
            "prompt.passcode" => {
                let code = self.code();
                let context = self.prompt(account);
                let d = self.ward.prompt().passcode(&context, &code, self.now());
                matches!(d.await, Ok(PromptPasscode::Done(c)) if c.allowed)
            }
            "portal.totp" => {
                let code = self.code();
                self.ward
                    .portal()
                    .totp_sign_in(default_org(), &name, &code, self.now())
                    .await
                    .is_ok()
            }
            "auth_api.push" => {
                let d = self.api_push(api, &name).await;
                matches!(d, Ok(PushOutcome::Started(_)))
            }
            "legacy.push" => {
                let push = LegacyFactor::Push { index: None };
                let d = self.ward.auth().legacy_auth(
                    api,
                    &user,
                    push,
                    PushRequest::default(),
                    true,
                    self.now(),
                );
                matches!(d.await, Ok(LegacyAuth::Push(PushOutcome::Started(_))))
            }
            "prompt.push" => {
                let context = self.prompt(account);
                let d = self.ward.prompt().push_start(&context, self.now());
                matches!(d.await, Ok(PromptPush::Started { .. }))
            }
            "portal.passkey" => self.passkey(None, account).await,
            "prompt.passkey" => self.passkey(Some(self.prompt(account)), account).await,
            other => panic!("no door {other}"),
        }
    }

    async fn passkey(&self, prompt: Option<String>, account: &mut Account) -> bool {
        let now = self.now();
        let start = match &prompt {
            Some(context) => self
                .ward
                .prompt()
                .passkey_start(context, now)
                .await
                .unwrap(),
            None => self
                .ward
                .portal()
                .passkey_auth_start(default_org(), ceremony_purpose::SIGN_IN, None, now)
                .await
                .unwrap(),
        };
        let answer: Value = account.key.authenticate(&start.options).unwrap();
        match &prompt {
            Some(context) => self
                .ward
                .prompt()
                .passkey_finish(context, &start.ceremony, &answer, now)
                .await
                .is_ok_and(|c| c.allowed),
            None => self
                .ward
                .portal()
                .passkey_auth_finish(
                    default_org(),
                    ceremony_purpose::SIGN_IN,
                    &start.ceremony,
                    &answer,
                    now,
                )
                .await
                .is_ok(),
        }
    }

    /// What the Auth API's preauth and the prompt offer, as methods.
    async fn offers(&self, account: &Account) -> (Vec<Method>, Vec<Method>) {
        let user = UserRef::Name(account.name.clone());
        let api = if account.strict {
            &self.strict_api
        } else {
            &self.api
        };
        let preauth = self
            .ward
            .auth()
            .preauth(api, &user, self.now())
            .await
            .unwrap();
        let api = match preauth {
            PreauthOutcome::Auth { devices, .. } => {
                let has = |c| devices.iter().any(|d| d.capabilities.contains(&c));
                let mut m = Vec::new();
                if has(Capability::Push) {
                    m.push(Method::Push);
                }
                if has(Capability::MobileOtp) {
                    m.push(Method::Passcode);
                }
                m
            }
            PreauthOutcome::Deny { .. } | PreauthOutcome::Enroll { .. } => Vec::new(),
        };
        let context = self.prompt(account);
        let view = self.ward.prompt().resume(&context, self.now());
        let prompt = match view.await.unwrap().next {
            PromptNext::Choose(methods) => methods
                .into_iter()
                .map(|m| match m {
                    PromptMethod::Passkey => Method::Passkey,
                    PromptMethod::Push => Method::Push,
                    PromptMethod::Passcode => Method::Passcode,
                })
                .filter(|m| *m != Method::Passkey)
                .collect(),
            PromptNext::Enrol | PromptNext::Done(_) => Vec::new(),
        };
        (api, prompt)
    }
}

const PASSCODE_DOORS: [&str; 4] = [
    "auth_api.passcode",
    "legacy.passcode",
    "prompt.passcode",
    "portal.totp",
];
const PUSH_DOORS: [&str; 3] = ["auth_api.push", "legacy.push", "prompt.push"];
const PASSKEY_DOORS: [&str; 2] = ["portal.passkey", "prompt.passkey"];

async fn run_matrix(store: Arc<dyn Store>) {
    let m = matrix_on(store).await;
    let mut table = Vec::new();
    for state in STATES {
        let mut account = m.account(state).await;
        let over_limit = state == State::Storm;
        // What is offered before a choice: the same at the Auth API and the prompt, and
        // exactly the methods the gate admits.
        let (api, prompt) = m.offers(&account).await;
        let mut admitted = [Vec::new(), Vec::new()];
        for (door, admitted) in ["auth_api", "prompt"].iter().zip(&mut admitted) {
            let allowed = m.allowed_at(door, account.strict);
            for method in [Method::Push, Method::Passcode] {
                if m.expected(&account.name, method, allowed, false).await == Verdict::Admit {
                    admitted.push(method);
                }
            }
        }
        let [api_admits, prompt_admits] = admitted;
        assert_eq!(api, api_admits, "{state:?}: Auth API preauth");
        assert_eq!(prompt, prompt_admits, "{state:?}: prompt offer");
        let doors = [
            (Method::Passcode, &PASSCODE_DOORS[..]),
            (Method::Push, &PUSH_DOORS[..]),
            (Method::Passkey, &PASSKEY_DOORS[..]),
        ];
        for (method, names) in doors {
            // A passkey names its own account: there is no passkey of an unknown one.
            if method == Method::Passkey && state == State::Unknown {
                continue;
            }
            for door in names {
                let allowed = m.allowed_at(door, account.strict);
                let expected = m.expected(&account.name, method, allowed, over_limit).await;
                let got = m.door(door, &mut account).await;
                assert_eq!(got, expected, "{state:?} at {door}");
                table.push((state, *door, got));
            }
        }
    }
    // Not vacuous: every kind of verdict occurs.
    for reason in [
        "unknown_user",
        "disabled",
        "locked_out",
        "muted_after_fraud",
        "push_storm",
        "not_allowed_by_policy",
        "org_disabled",
    ] {
        assert!(
            table
                .iter()
                .any(|(_, _, v)| *v == Verdict::Refuse(reason.into())),
            "{reason} never seen: {table:?}"
        );
    }
    assert!(table.iter().any(|(_, _, v)| *v == Verdict::Admit));
}

#[tokio::test]
async fn every_door_gives_the_gates_verdict_on_sqlite() {
    Backend::Sqlite.run("test", run_matrix).await;
}

#[tokio::test]
async fn every_door_gives_the_gates_verdict_on_postgres() {
    Backend::Postgres.run("node-a", run_matrix).await;
}
