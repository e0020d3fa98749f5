//! A fake Ward device endpoint over real TLS, strict about what it accepts: it checks every
//! signature, nonce and context hash the way the protocol requires, so the binary's requests are
//! tested for what they are on the wire. (The real server's end-to-end tests live elsewhere.)

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use ward_proto::device::{
    ActivateRequest, ActivateResponse, AnswerRequest, AnswerResponse, ChallengeRequest,
    ChallengeResponse, Decision, DeviceError, KeyAlgorithm, PushEvent, answer_signing_bytes,
    stream_signing_bytes,
};

pub const CODE: &str = "ACT-1234";
pub const DEVICE_ID: &str = "DTEST0001";
pub const NUMBER: &str = "42";

type Body = BoxBody<Bytes, Infallible>;

#[derive(Debug, Default)]
pub struct Recorded {
    pub device: Option<(KeyAlgorithm, String)>,
    pub activation: Option<ActivateRequest>,
    pub nonces: HashSet<String>,
    pub streams_opened: usize,
    pub pending: Vec<PushEvent>,
    pub answers: Vec<AnswerRequest>,
}

pub struct FakeWard {
    pub addr: SocketAddr,
    pub ca_pem: String,
    /// `sha256:` pin of the CA's public key, computed by rcgen (independently of the binary).
    pub pin: String,
    pub state: Arc<Mutex<Recorded>>,
}

impl FakeWard {
    pub async fn start() -> Self {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pin = format!(
            "sha256:{}",
            URL_SAFE_NO_PAD.encode(Sha256::digest(ca_key.subject_public_key_info()))
        );
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Fake Ward CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf_params.subject_alt_names = vec![SanType::DnsName("localhost".try_into().unwrap())];
        leaf_params.is_ca = IsCa::ExplicitNoCa;
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

        let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone(), ca_cert.der().clone()];
        let key = PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(Recorded::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, state) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(route(req, state).await) }
                    });
                    drop(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await,
                    );
                });
            }
        });
        Self {
            addr,
            ca_pem: ca_cert.pem(),
            pin,
            state,
        }
    }

    pub fn link(&self, pin: Option<&str>) -> String {
        let base = format!(
            "https://localhost:{}/device/v1/activate?code={CODE}",
            self.addr.port()
        );
        match pin {
            Some(pin) => format!("{base}&pin={pin}"),
            None => base,
        }
    }

    /// Queues a request for the device; `tamper` breaks its context hash.
    pub fn push(&self, txid: &str, number_required: bool, tamper: bool) {
        let mut event = PushEvent {
            txid: txid.to_owned(),
            title: "Login request".to_owned(),
            application: "VPN".to_owned(),
            username: "alice".to_owned(),
            ip: Some("203.0.113.5".to_owned()),
            location: None,
            details: vec![("Browser".to_owned(), "Firefox".to_owned())],
            time: 1_700_000_000,
            expires: i64::MAX / 2,
            number_required,
            context_hash: String::new(),
        };
        event.context_hash = event.computed_context_hash();
        if tamper {
            event.application = "Something else".to_owned();
        }
        self.state.lock().unwrap().pending.push(event);
    }
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())).boxed())
        .unwrap()
}

fn refuse(status: StatusCode, error: &str, message: &str) -> Response<Body> {
    json(
        status,
        &DeviceError {
            error: error.to_owned(),
            message: message.to_owned(),
        },
    )
}

async fn body_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Option<T> {
    let bytes = req.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&bytes).ok()
}

fn verify(algorithm: KeyAlgorithm, public: &str, message: &[u8], signature: &str) -> bool {
    let (Ok(public), Ok(signature)) = (
        URL_SAFE_NO_PAD.decode(public),
        URL_SAFE_NO_PAD.decode(signature),
    ) else {
        return false;
    };
    match algorithm {
        KeyAlgorithm::Ed25519 => {
            use ed25519_dalek::Verifier as _;
            let (Ok(public), Ok(signature)) = (
                <[u8; 32]>::try_from(public.as_slice()),
                <[u8; 64]>::try_from(signature.as_slice()),
            ) else {
                return false;
            };
            ed25519_dalek::VerifyingKey::from_bytes(&public).is_ok_and(|key| {
                key.verify(message, &ed25519_dalek::Signature::from_bytes(&signature))
                    .is_ok()
            })
        }
        KeyAlgorithm::P256 => {
            use p256::ecdsa::signature::Verifier as _;
            let (Ok(key), Ok(signature)) = (
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&public),
                p256::ecdsa::Signature::from_slice(&signature),
            ) else {
                return false;
            };
            key.verify(message, &signature).is_ok()
        }
    }
}

async fn route(req: Request<Incoming>, state: Arc<Mutex<Recorded>>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    match (req.method().as_str(), path.as_str()) {
        ("POST", "/device/v1/activate") => activate(req, &state).await,
        ("POST", "/device/v1/challenge") => {
            let Some(body) = body_json::<ChallengeRequest>(req).await else {
                return refuse(StatusCode::BAD_REQUEST, "bad_request", "bad JSON");
            };
            if body.device_id != DEVICE_ID {
                return refuse(StatusCode::NOT_FOUND, "unknown_device", "unknown device");
            }
            let nonce = format!("n+/{}", rand::random::<u64>());
            state.lock().unwrap().nonces.insert(nonce.clone());
            json(
                StatusCode::OK,
                &ChallengeResponse {
                    nonce,
                    expires: i64::MAX / 2,
                },
            )
        }
        ("GET", "/device/v1/stream") => stream(&req, &state),
        ("POST", "/device/v1/answer") => answer(req, &state).await,
        _ => refuse(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
    }
}

async fn activate(req: Request<Incoming>, state: &Mutex<Recorded>) -> Response<Body> {
    let Some(body) = body_json::<ActivateRequest>(req).await else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "bad JSON");
    };
    if body.code != CODE {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_code",
            "the activation code is invalid or used",
        );
    }
    let mut state = state.lock().unwrap();
    state.device = Some((body.algorithm, body.public_key.clone()));
    state.activation = Some(body);
    json(
        StatusCode::OK,
        &ActivateResponse {
            device_id: DEVICE_ID.to_owned(),
            username: "alice".to_owned(),
        },
    )
}

fn stream(req: &Request<Incoming>, state: &Mutex<Recorded>) -> Response<Body> {
    let query: HashMap<String, String> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let (Some(device_id), Some(nonce), Some(signature)) = (
        query.get("device_id"),
        query.get("nonce"),
        query.get("signature"),
    ) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "missing fields");
    };
    let mut guard = state.lock().unwrap();
    let Some((algorithm, public)) = guard.device.clone() else {
        return refuse(StatusCode::NOT_FOUND, "unknown_device", "unknown device");
    };
    if !guard.nonces.remove(nonce)
        || !verify(
            algorithm,
            &public,
            &stream_signing_bytes(device_id, nonce),
            signature,
        )
    {
        return refuse(StatusCode::UNAUTHORIZED, "unauthenticated", "bad signature");
    }
    guard.streams_opened += 1;
    let events = guard.pending.clone();
    drop(guard);

    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(8);
    tokio::spawn(async move {
        let _ = tx.send_data(Bytes::from_static(b": welcome\r\n\r\n")).await;
        for event in events {
            let text = format!(
                "event: push\r\ndata: {}\r\n\r\n",
                serde_json::to_string(&event).unwrap()
            );
            // Two frames per event, split mid-line, as a proxy might.
            let (a, b) = text.split_at(text.len() / 2);
            let _ = tx.send_data(Bytes::from(a.to_owned())).await;
            let _ = tx.send_data(Bytes::from(b.to_owned())).await;
        }
        while tx.send_data(Bytes::from_static(b":\n\n")).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body.boxed())
        .unwrap()
}

async fn answer(req: Request<Incoming>, state: &Mutex<Recorded>) -> Response<Body> {
    let Some(body) = body_json::<AnswerRequest>(req).await else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "bad JSON");
    };
    let mut state = state.lock().unwrap();
    let Some((algorithm, public)) = state.device.clone() else {
        return refuse(StatusCode::NOT_FOUND, "unknown_device", "unknown device");
    };
    let signed = answer_signing_bytes(
        &body.device_id,
        &body.txid,
        body.decision,
        body.number.as_deref(),
        &body.context_hash,
        body.time,
    );
    if !verify(algorithm, &public, &signed, &body.signature) {
        return refuse(StatusCode::UNAUTHORIZED, "unauthenticated", "bad signature");
    }
    if state.answers.iter().any(|a| a.txid == body.txid) {
        return refuse(StatusCode::CONFLICT, "conflict", "request already answered");
    }
    let Some(index) = state.pending.iter().position(|e| e.txid == body.txid) else {
        return refuse(StatusCode::NOT_FOUND, "not_found", "no such request");
    };
    let event = state.pending.remove(index);
    if body.context_hash != event.computed_context_hash() {
        state.pending.insert(index, event);
        return refuse(StatusCode::CONFLICT, "context_mismatch", "context mismatch");
    }
    // As Ward does: a wrong number turns an approval into a denial.
    let result = match body.decision {
        Decision::Approve if event.number_required && body.number.as_deref() != Some(NUMBER) => {
            "denied"
        }
        Decision::Approve => "approved",
        Decision::Deny => "denied",
        Decision::Fraud => "fraud",
    };
    state.answers.push(body);
    json(
        StatusCode::OK,
        &AnswerResponse {
            result: result.to_owned(),
        },
    )
}
