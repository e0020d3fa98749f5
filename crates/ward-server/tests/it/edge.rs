//! What the front doors refuse before anything reaches a store, and how the Duo APIs answer
//! while the database is unreachable. Each test runs on SQLite and on PostgreSQL (a private
//! schema per test; see [`crate::databases`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::DateTime;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;
use ward_core::clock::{Clock, TestClock};
use ward_core::crypto::{Keyring, MasterKey};
use ward_core::model::{Actor, IntegrationKind};
use ward_core::policy::AuthPolicy;
use ward_core::service::Ward;
use ward_proto::duo::params::Params;
use ward_proto::duo::signature::{SigDigest, SigVersion, sign_request};
use ward_server::app::router;
use ward_server::limits::Limits;
use ward_store::Store;

use crate::databases::{Schema, sqlite};

const HOST: &str = "localhost";

struct Edge {
    app: axum::Router,
    store: Arc<dyn Store>,
    clock: TestClock,
    ikey: String,
    skey: String,
}

async fn edge(store: Arc<dyn Store>) -> Edge {
    let keys = Keyring::new(MasterKey::from_bytes([6; 32]), vec![]);
    let ward = Arc::new(
        Ward::new(Arc::clone(&store), keys, AuthPolicy::default(), "Ward")
            .await
            .unwrap(),
    );
    let clock = TestClock::at(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
    let now = clock.now();
    let (integration, skey) = ward
        .create_integration(
            crate::default_org(),
            &Actor::Cli,
            "app",
            IntegrationKind::AuthApi,
            None,
            now,
        )
        .await
        .unwrap();
    ward.create_user(crate::default_org(), &Actor::Cli, "alice", None, now)
        .await
        .unwrap();
    let state = crate::app_state(
        ward,
        clock.clone(),
        &["localhost:8443", HOST],
        true,
        Limits::new(10_000, 10_000, 10_000),
    );
    Edge {
        app: router(state),
        store,
        clock,
        ikey: integration.ikey,
        skey: skey.to_string(),
    }
}

fn peer() -> axum::extract::ConnectInfo<ward_server::listener::PeerAddr> {
    axum::extract::ConnectInfo(ward_server::listener::PeerAddr(
        "192.0.2.20:5000".parse().unwrap(),
    ))
}

impl Edge {
    /// A v5-signed JSON POST, as `duo_client` 5 sends it.
    fn signed(&self, path: &str, body: &Value) -> Request<Body> {
        let body = body.to_string();
        let date = self
            .clock
            .now()
            .format("%a, %d %b %Y %H:%M:%S -0000")
            .to_string();
        let auth = sign_request(
            &self.ikey,
            self.skey.as_bytes(),
            SigVersion::V5,
            SigDigest::Sha512,
            &date,
            "POST",
            HOST,
            path,
            &Params::new(),
            body.as_bytes(),
        );
        let mut req = Request::post(path)
            .header("host", "localhost:8443")
            .header("date", date)
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        req.extensions_mut().insert(peer());
        req
    }

    fn preauth(&self, username: &str) -> Request<Body> {
        self.signed("/auth/v2/preauth", &json!({ "username": username }))
    }

    /// An unauthenticated device answer.
    fn answer(txid: &str, device_id: &str) -> Request<Body> {
        let body = json!({
            "device_id": device_id, "txid": txid, "decision": "approve", "number": null,
            "context_hash": "00", "time": 1_800_000_000, "signature": "AAAA",
        });
        let mut req = Request::post("/device/v1/answer")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        req.extensions_mut().insert(peer());
        req
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, Option<String>, Value) {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let retry = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, retry, body)
    }
}

/// Poisoned write batch: unauthenticated device answers with NUL in the txid or the device id,
/// sent among 100 concurrent signed preauths, get a 400 each, and every preauth succeeds.
async fn poisoned_answers_fail_alone(edge: &Edge) {
    let (start, _) = chain_head(edge).await;
    let preauths = (0..100).map(|_| edge.call(edge.preauth("alice")));
    let answers = (0..100).map(|i| {
        let req = if i % 2 == 0 {
            Edge::answer("TX\0poison", "DPunknown")
        } else {
            Edge::answer("TXunknown", "DP\0poison")
        };
        edge.call(req)
    });
    let (preauths, answers) = futures::join!(
        futures::future::join_all(preauths),
        futures::future::join_all(answers)
    );
    for (status, _, body) in answers {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_input", "{body}");
    }
    for (status, _, body) in preauths {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["stat"], "OK", "{body}");
    }
    let (end, _) = chain_head(edge).await;
    assert!(
        end >= start + 100,
        "each preauth was audited: {start} → {end}"
    );
}

/// A signed preauth with NUL in the username gets a 400 Duo envelope naming the parameter.
async fn nul_username_gets_a_duo_400(edge: &Edge) {
    let (status, _, body) = edge.call(edge.preauth("ali\0ce")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["stat"], "FAIL");
    assert_eq!(body["code"], 40002);
    assert_eq!(body["message_detail"], "username");
}

async fn chain_head(edge: &Edge) -> (i64, String) {
    let chains = edge.store.audit_chains().await.unwrap();
    chains
        .into_iter()
        .find(|c| c.chain_id == "edge")
        .map_or((0, String::new()), |c| (c.head_seq, c.head_hash))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisoned_write_batch_on_sqlite() {
    let (_dir, store) = sqlite("edge").await;
    let edge = edge(store).await;
    poisoned_answers_fail_alone(&edge).await;
    nul_username_gets_a_duo_400(&edge).await;
    edge.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisoned_write_batch_on_postgres() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let edge = edge(schema.store(None, "edge").await).await;
    poisoned_answers_fail_alone(&edge).await;
    nul_username_gets_a_duo_400(&edge).await;
    edge.store.close().await;
    schema.drop_schema().await;
}

/// A TCP relay to PostgreSQL that can be cut (existing connections dropped, new ones closed
/// at once) and restored, as a network or database outage looks to Ward.
struct Relay {
    addr: String,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let up = Arc::new(AtomicBool::new(true));
        let links = Arc::new(Mutex::new(Vec::new()));
        let (up2, links2) = (Arc::clone(&up), Arc::clone(&links));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let target = target.clone();
                links2.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Self { addr, up, links }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Database outage: while PostgreSQL cannot be reached, a Duo client gets 503 with a Duo
/// envelope (50301) and `Retry-After`; once it is back, the same call succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_then_recovers() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let server = url::Url::parse(&schema.admin_url).unwrap();
    let target = format!(
        "{}:{}",
        server.host_str().unwrap(),
        server.port().unwrap_or(5432)
    );
    let relay = Relay::start(target).await;
    let edge = edge(schema.store(Some(&relay.addr), "edge").await).await;
    let (status, _, body) = edge.call(edge.preauth("alice")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    relay.cut();
    for username in ["alice", "nobody"] {
        let (status, retry, body) = edge.call(edge.preauth(username)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["stat"], "FAIL");
        assert_eq!(body["code"], 50301);
        assert_eq!(body["message"], "Service temporarily unavailable");
        assert_eq!(retry.as_deref(), Some("5"));
    }
    let (status, _, body) = edge.call(Edge::answer("TX1", "DP1")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    relay.restore();
    // Connections broken by the cut are found and replaced as they are used: a request may
    // still get 503 until then (clients retry), but Ward recovers within a few requests.
    let mut answers = Vec::new();
    for _ in 0..20 {
        let (status, _, body) = edge.call(edge.preauth("alice")).await;
        answers.push(status);
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answers.last(), Some(&StatusCode::OK), "{answers:?}");
    edge.store.close().await;
    schema.drop_schema().await;
}
