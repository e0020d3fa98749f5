//! Two organisations behind one router, for the cross-tenant tests of every front door.
//!
//! Organisations A (`org-a`) and B (`org-b`) both have `alice` (each with her own
//! authenticator-app seed) and `agent` (helpdesk role); only B has `bob`. Each has an Auth API
//! application (push mode `plain`, so that the legacy API may push too) and a Web SDK
//! application. A check names a user who exists only in the other organisation, or a
//! same-named user whose factors differ, so that a lookup in the wrong organisation changes
//! the answer; and it compares the whole reply with the one for a name nobody has.

use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use chrono::{DateTime, TimeDelta, Utc};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use ward_core::clock::{Clock, TestClock};
use ward_core::crypto::{Keyring, MasterKey};
use ward_core::model::{Actor, DeviceId, IntegrationId, IntegrationKind, OrgId, Role};
use ward_core::policy::{ApiPushMode, AuthPolicy, PortalSettings};
use ward_core::service::{AuthContext, Session, TxResult, Ward};
use ward_proto::device::{Decision, PushEvent};
use ward_server::app::router;
use ward_server::limits::Limits;
use ward_server::listener::PeerAddr;
use ward_store::Store;
use ward_testkit::org::{OrgBuilder, totp_code};

pub(crate) use ward_testkit::device::{DeviceKey, Phone};

/// The seed of A's users, and of B's: each Alice's codes are her own.
pub(crate) const SEED_A: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
pub(crate) const SEED_B: &str = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U";
/// The public origin of the test server.
pub(crate) const ORIGIN: &str = "https://localhost:8443";
/// Where the Web SDK applications send users back to.
pub(crate) const REDIRECT: &str = "https://app.example/callback";
/// Every request carries this id, so that pages that show it read the same.
const REQUEST_ID: &str = "0123456789abcdef";

/// One organisation of the pair.
pub(crate) struct Tenant {
    pub(crate) org: OrgId,
    /// Its name, as `?org=` names it.
    pub(crate) name: &'static str,
    pub(crate) seed: &'static str,
    /// Its Auth API application.
    pub(crate) ikey: String,
    pub(crate) skey: String,
    /// Its Web SDK application.
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
}

/// The router over one store holding both organisations.
pub(crate) struct Tenants {
    _dir: Option<ward_testkit::db::TempSqlite>,
    pub(crate) app: axum::Router,
    pub(crate) ward: Arc<Ward>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: TestClock,
    pub(crate) a: Tenant,
    pub(crate) b: Tenant,
}

/// Both organisations over a fresh SQLite database.
pub(crate) async fn sqlite_tenants() -> Tenants {
    let (dir, store) = ward_testkit::db::sqlite("t").await;
    build(store, Some(dir)).await
}

/// Runs `check` on both organisations over SQLite.
pub(crate) async fn on_sqlite<F, Fut>(check: F)
where
    F: FnOnce(Tenants) -> Fut,
    Fut: Future<Output = ()>,
{
    check(sqlite_tenants().await).await;
}

/// Runs `check` on both organisations over PostgreSQL (a private schema), or skips.
pub(crate) async fn on_postgres<F, Fut>(check: F)
where
    F: FnOnce(Tenants) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    ward_testkit::db::with_pg_schema(|schema| async move {
        let store = schema.store("t").await;
        check(build(store, None).await).await;
    })
    .await;
}

/// Both organisations over `store` (in `dir`, kept as long as they are).
async fn build(store: Arc<dyn Store>, dir: Option<ward_testkit::db::TempSqlite>) -> Tenants {
    let mut portal = PortalSettings::new(url::Url::parse(ORIGIN).unwrap(), "Example");
    // Codes may sign in to the portal, so that a refused code sign-in means something.
    portal.factors.default.totp_signin = true;
    let keys = Keyring::new(MasterKey::from_bytes([8; 32]), vec![]);
    let ward = Ward::new(Arc::clone(&store), keys, AuthPolicy::default(), "Ward")
        .await
        .unwrap()
        .with_portal(portal)
        .unwrap();
    let ward = Arc::new(ward);
    let clock = TestClock::at(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
    let now = clock.now();
    let a = tenant(&ward, "org-a", SEED_A, &["alice", "agent"], now).await;
    // B is a second younger, so that the oldest-first order is default, A, B.
    let later = now + TimeDelta::seconds(1);
    let b = tenant(&ward, "org-b", SEED_B, &["alice", "agent", "bob"], later).await;
    let state = ward_testkit::router::app_state(
        Arc::clone(&ward),
        clock.clone(),
        &["localhost:8443", "localhost"],
        true,
        Limits::new(10_000, 10_000, 10_000),
    );
    Tenants {
        _dir: dir,
        app: router(state),
        ward,
        store,
        clock,
        a,
        b,
    }
}

async fn tenant(
    ward: &Ward,
    name: &'static str,
    seed: &'static str,
    users: &[&str],
    now: DateTime<Utc>,
) -> Tenant {
    let mut builder = OrgBuilder::named(name);
    for user in users {
        builder = builder
            .user_with_email(user, &format!("{user}@{name}.example"))
            .totp(user, seed);
    }
    let org = builder
        .role("agent", Role::Helpdesk)
        .integration("VPN", IntegrationKind::AuthApi, Some(ApiPushMode::Plain))
        .web_sdk("Wiki")
        .build(ward, now)
        .await;
    let (api, web) = (org.app("VPN"), org.app("Wiki"));
    Tenant {
        org: org.id.clone(),
        name,
        seed,
        ikey: api.ikey().to_owned(),
        skey: api.skey.clone(),
        client_id: web.ikey().to_owned(),
        client_secret: web.skey.clone(),
    }
}

impl Tenants {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The current code of `seed`, after moving to a fresh time step (a code works once).
    pub(crate) fn code(&self, seed: &str) -> String {
        self.clock.advance(TimeDelta::seconds(30));
        totp_code(seed, self.now())
    }

    /// The user id of `username` in `org`.
    pub(crate) async fn user_id(&self, org: &OrgId, username: &str) -> String {
        self.ward
            .admin()
            .user(org, username)
            .await
            .unwrap()
            .id
            .into_string()
    }

    /// Approves the push waiting on `phone` (typing `number` where one is asked for) through
    /// the service, as the device would; the push's txid.
    pub(crate) async fn approve(&self, phone: &Phone, number: Option<&str>) -> String {
        let event = self.pending(phone).await.pop().unwrap();
        let answer = phone.answer(&event, Decision::Approve, number, event.time);
        self.ward
            .devices()
            .answer_push(&answer, self.now())
            .await
            .unwrap();
        event.txid
    }

    /// Activates a push device for `username` of `org`.
    pub(crate) async fn phone(&self, org: &OrgId, username: &str, seed: u8) -> Phone {
        let now = self.now();
        let code = self
            .ward
            .devices()
            .activation_code(org, &Actor::Cli, username, now)
            .await
            .unwrap();
        let key = DeviceKey::from_seed(seed);
        let activation = key.activate_request(code.code.as_ref(), "phone", "linux");
        let (device, _) = self
            .ward
            .devices()
            .activate(&activation, now)
            .await
            .unwrap();
        key.activated(device.id.into_string())
    }

    /// The state of `txid` as `tenant`'s Auth API application sees it, read without waiting
    /// (`auth_status` through the router waits for a decision).
    pub(crate) async fn tx_result(&self, tenant: &Tenant, txid: &str) -> TxResult {
        let creds = self
            .ward
            .auth()
            .integration_credentials(&IntegrationId::new(tenant.ikey.clone()), self.now())
            .await;
        let ctx = AuthContext {
            integration: creds.unwrap().unwrap().integration.clone(),
            user_ip: None,
            client_ip: None,
        };
        self.ward
            .auth()
            .status(&ctx, txid, self.now())
            .await
            .unwrap()
            .result
    }

    /// What a device would be sent now.
    pub(crate) async fn pending(&self, phone: &Phone) -> Vec<PushEvent> {
        self.ward
            .devices()
            .pending_push_events(&DeviceId::new(phone.id.clone()), self.now())
            .await
            .unwrap()
    }

    /// A portal session of `username` in `org`, signed in by `method`: its cookie value and
    /// the session.
    pub(crate) async fn session(
        &self,
        org: &OrgId,
        username: &str,
        method: &str,
    ) -> (String, Session) {
        let user = self.store.user_by_name(org.as_str(), username).await;
        let new = self
            .ward
            .portal()
            .open_session(&user.unwrap().unwrap(), method, None, self.now())
            .await
            .unwrap();
        (new.token.to_string(), new.session)
    }

    /// The response to `req` through the whole router, from a fixed address with a fixed
    /// request id; its body not read yet (an event stream does not end).
    pub(crate) async fn open(&self, mut req: Request<Body>) -> Response<Body> {
        req.extensions_mut()
            .insert(ConnectInfo(PeerAddr("192.0.2.40:5000".parse().unwrap())));
        req.headers_mut()
            .insert("x-request-id", REQUEST_ID.parse().unwrap());
        self.app.clone().oneshot(req).await.unwrap()
    }

    /// The whole reply to `req` (see [`Tenants::open`]).
    pub(crate) async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.open(req).await;
        let status = res.status();
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// A whole reply: status, headers in order, body.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name` this reply sets.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.headers
            .iter()
            .filter(|(k, _)| k == header::SET_COOKIE.as_str())
            .find_map(|(_, v)| v.strip_prefix(&prefix))
            .and_then(|rest| rest.split(';').next())
            .map(str::to_owned)
    }

    /// The reply with `value` (a random token, or a name it echoes) replaced by `with` in its
    /// headers and body (and `Content-Length` to match), so that replies that differ only
    /// there compare equal.
    pub(crate) fn replacing(mut self, value: &str, with: &str) -> Self {
        for (_, v) in &mut self.headers {
            *v = v.replace(value, with);
        }
        self.body = String::from_utf8_lossy(&self.body)
            .replace(value, with)
            .into_bytes();
        let length = self.body.len().to_string();
        for (name, v) in &mut self.headers {
            if name == header::CONTENT_LENGTH.as_str() {
                v.clone_from(&length);
            }
        }
        self
    }
}

/// `GET path`.
pub(crate) fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// `POST path` with a form.
pub(crate) fn form(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// `POST path` with a JSON body.
pub(crate) fn json(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// `req` with the cookie `name=value`.
pub(crate) fn with_cookie(mut req: Request<Body>, name: &str, value: &str) -> Request<Body> {
    req.headers_mut()
        .append(header::COOKIE, format!("{name}={value}").parse().unwrap());
    req
}
