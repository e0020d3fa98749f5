//! The extractor that authenticates a Duo-signed request and parses its parameters.
//!
//! Order of checks: parameters well-formed (40002: parsable, within limits, no NUL character,
//! so nothing a store cannot hold goes further) → then Duo's: credentials present (40101) →
//! integration known (40102) → signature (40103) → rate limit of the integration → date fresh
//! (40105) → integration kind (40301).
//!
//! A request whose signature verifies is charged to its integration, not to its address (see
//! [`crate::limits::guard`]), so even an address that is over its failure budget has its
//! signatures checked: that costs a cached credential lookup and one HMAC per request.

use std::net::IpAddr;
use std::sync::Arc;
use ward_core::model::IntegrationId;

use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use chrono::{DateTime, Utc};
use ward_core::model::{Integration, IntegrationKind};
use ward_core::service::AuthContext;
use ward_proto::duo::envelope::DuoErrorCode;
use ward_proto::duo::params::{Params, ParamsError};
use ward_proto::duo::signature::{self, SigVersion, SignedRequest};

use crate::app::AppState;
use crate::error::ApiError;
use crate::limits::Verified;
use crate::listener::PeerAddr;

/// An authenticated call from an integration, with its parameters.
#[derive(Debug)]
pub struct DuoCall {
    pub integration: Integration,
    pub params: Params,
    pub client_ip: IpAddr,
    pub now: DateTime<Utc>,
}

impl DuoCall {
    /// The context the core needs for a decision.
    pub fn context(&self) -> AuthContext {
        AuthContext {
            integration: self.integration.clone(),
            user_ip: self.params.get("ipaddr").map(str::to_owned),
            client_ip: Some(self.client_ip.to_string()),
        }
    }
}

/// The address a request came from: the peer, or the proxy-reported client when configured.
pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<PeerAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(PeerAddr(addr))| {
            addr.ip()
        });
    if !trust_forwarded_for {
        return peer;
    }
    parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

impl FromRequest<AppState> for DuoCall {
    type Rejection = ApiError;

    /// Address limits are applied by [`crate::limits::guard`]: this only marks a request whose
    /// signature verifies, which is then charged to its integration instead of its address.
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let ip = client_ip(&parts, state.settings.trust_forwarded_for);
        let body = axum::body::to_bytes(body, state.settings.max_body_bytes)
            .await
            .map_err(|_| {
                ApiError::message(
                    DuoErrorCode::InvalidParameters,
                    "Request body too large",
                    None,
                )
            })?;
        let params = parse_params(&parts, &body)?;
        let now = state.clock.now();
        let (integration, version) = verify_signature(&parts, &body, state, now).await?;
        if let Some(verified) = parts.extensions.get::<Verified>() {
            verified.mark();
        }
        if !state.limits.admit_integration(integration.ikey.as_str()) {
            return Err(ApiError::code(DuoErrorCode::TooManyRequests));
        }
        check_date_and_kind(&parts, &integration, version, state, now)?;
        if let Some(key) = params.repeated_key(LIST_PARAMETERS) {
            return Err(refuse_repeated(state, &integration, ip, key, now).await);
        }
        Ok(Self {
            integration,
            params,
            client_ip: ip,
            now,
        })
    }
}

/// Credentials present, integration known, signature valid: the request comes from the
/// integration.
async fn verify_signature(
    parts: &Parts,
    body: &[u8],
    state: &AppState,
    now: DateTime<Utc>,
) -> Result<(Integration, SigVersion), ApiError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let creds = signature::parse_authorization(header).map_err(|e| match e {
        signature::SigError::MissingCredentials => ApiError::code(DuoErrorCode::MissingCredentials),
        signature::SigError::MalformedSignature { .. } => {
            ApiError::code(DuoErrorCode::InvalidSignature)
        }
    })?;
    let ip = client_ip(parts, state.settings.trust_forwarded_for);
    let found = state
        .ward
        .auth()
        .integration_credentials_admitted(&IntegrationId::new(creds.ikey.clone()), now, || {
            state.limits.admit_lookup(ip)
        })
        .await?
        .ok_or_else(|| ApiError::code(DuoErrorCode::InvalidIntegrationKey))?;
    let x_duo = x_duo_headers(&parts.headers);
    let hosts =
        signature::host_candidates(&state.settings.hosts, header_str(&parts.headers, "host"));
    let signed = SignedRequest {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        content_type: header_str(&parts.headers, "content-type"),
        body,
        date: request_date(&parts.headers),
        x_duo_headers: &x_duo,
        hosts: &hosts,
    };
    let version = signature::verify(
        &signed,
        found.skey.as_bytes(),
        &creds.signature_hex,
        state.settings.allow_v1,
    )
    .ok_or_else(|| ApiError::code(DuoErrorCode::InvalidSignature))?;
    Ok((found.integration.clone(), version))
}

fn request_date(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, "x-duo-date").or_else(|| header_str(headers, "date"))
}

/// The checks after the signature: a fresh date, and an integration of the Auth API kind.
/// Parameters of the Duo APIs Ward serves that carry lists as repeated keys: none so far.
const LIST_PARAMETERS: &[&str] = &[];

/// Longest parameter name echoed back in a refusal.
const MAX_ECHOED_KEY: usize = 64;

/// Refuses (and audits) a signed request that gives a single-valued parameter twice.
async fn refuse_repeated(
    state: &AppState,
    integration: &Integration,
    ip: IpAddr,
    key: &str,
    now: DateTime<Utc>,
) -> ApiError {
    let key: String = key.chars().take(MAX_ECHOED_KEY).collect();
    let ctx = AuthContext {
        integration: integration.clone(),
        user_ip: None,
        client_ip: Some(ip.to_string()),
    };
    if let Err(e) = state
        .ward
        .auth()
        .refuse_repeated_parameter(&ctx, &key, now)
        .await
    {
        return e.into();
    }
    ApiError::message(
        DuoErrorCode::InvalidParameters,
        "Invalid request parameters: a parameter was given more than once",
        Some(&key),
    )
}

fn check_date_and_kind(
    parts: &Parts,
    integration: &Integration,
    version: SigVersion,
    state: &AppState,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let date_required = version != SigVersion::V1;
    match request_date(&parts.headers) {
        Some(d) if !signature::date_is_fresh(d, now.timestamp(), state.settings.skew_secs) => {
            return Err(ApiError::code(DuoErrorCode::InvalidDate));
        }
        None if date_required => return Err(ApiError::code(DuoErrorCode::InvalidDate)),
        _ => {}
    }
    if integration.kind != IntegrationKind::AuthApi {
        return Err(ApiError::code(DuoErrorCode::Forbidden));
    }
    Ok(())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn x_duo_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-duo-"))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

fn parse_params(parts: &Parts, body: &[u8]) -> Result<Params, ApiError> {
    let bad = |e: ParamsError| {
        let detail = match e {
            ParamsError::Unstorable { key } if !key.is_empty() => Some(key),
            _ => None,
        };
        ApiError::message(
            DuoErrorCode::InvalidParameters,
            "Invalid request parameters",
            detail.as_deref(),
        )
    };
    let has_body = matches!(parts.method, Method::POST | Method::PUT | Method::PATCH);
    if !has_body {
        return Params::from_urlencoded(parts.uri.query().unwrap_or("").as_bytes()).map_err(bad);
    }
    let is_json = header_str(&parts.headers, "content-type")
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
    if is_json {
        Params::from_json(body).map_err(bad)
    } else {
        Params::from_urlencoded(body).map_err(bad)
    }
}

/// Shared settings of the Duo endpoints.
#[derive(Debug, Clone)]
pub struct DuoSettings {
    /// Host names clients may sign with (configured public host, with and without port).
    pub hosts: Vec<String>,
    pub skew_secs: i64,
    pub allow_v1: bool,
    pub trust_forwarded_for: bool,
    pub max_body_bytes: usize,
}

impl DuoSettings {
    /// Settings from configuration.
    pub fn from_config(config: &crate::config::Config) -> Arc<Self> {
        let mut hosts = vec![
            config.public_host.clone(),
            config.public_hostname().to_owned(),
        ];
        hosts.dedup();
        Arc::new(Self {
            hosts,
            skew_secs: i64::try_from(config.signature_skew_seconds).unwrap_or(300),
            allow_v1: config.allow_v1_signatures,
            trust_forwarded_for: config.trust_forwarded_for,
            max_body_bytes: config.max_body_bytes,
        })
    }
}
