//! The back channel of the hosted prompt: `health_check` and `token`, both authenticated by a
//! client assertion (an HS512 JWT signed with the client secret).

use crate::service::Prompt;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use ward_proto::jws;
use ward_store::{CeremonyRow, Change, ChangeSet, Outcome, StoreError};

use super::{CODE_PURPOSE, CodeGrant, PromptMethod, check_exp, str_claim};
use crate::crypto::{Purpose, new_token, token_hash};
use crate::error::CoreError;
use crate::service::{IntegrationCredentials, Ward};

const JTI_PURPOSE: &str = "oidc-jti";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of the `id_token`.
const ID_TOKEN_TTL: TimeDelta = TimeDelta::minutes(5);

/// An OAuth error: `{"error": …, "error_description": …}` with HTTP 400.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub error: OAuthErrorCode,
    pub description: String,
}

/// The `error` of an OAuth 2.0 token-endpoint answer (RFC 6749 §5.2), plus the two codes for
/// a refusal that is not the client's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnsupportedGrantType,
    /// Too many requests, or the database is out of reach: try again later.
    TemporarilyUnavailable,
    ServerError,
}

impl OAuthErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }
}

impl OAuthError {
    fn client(description: impl Into<String>) -> Self {
        Self {
            error: OAuthErrorCode::InvalidClient,
            description: description.into(),
        }
    }

    fn grant(description: impl Into<String>) -> Self {
        Self {
            error: OAuthErrorCode::InvalidGrant,
            description: description.into(),
        }
    }

    fn request(description: impl Into<String>) -> Self {
        Self {
            error: OAuthErrorCode::InvalidRequest,
            description: description.into(),
        }
    }
}

impl From<CoreError> for OAuthError {
    /// Every kind has its own answer; the description is a fixed sentence, never the error's
    /// text (that goes to the log).
    fn from(e: CoreError) -> Self {
        let (error, description) = match &e {
            CoreError::NotFound(_) | CoreError::Conflict(_) | CoreError::Expired(_) => (
                OAuthErrorCode::InvalidGrant,
                "The code is invalid, expired or already used.",
            ),
            CoreError::InvalidInput { .. } => (
                OAuthErrorCode::InvalidRequest,
                "The request is missing a parameter or has an invalid one.",
            ),
            CoreError::Unauthenticated | CoreError::Forbidden(_) => (
                OAuthErrorCode::InvalidClient,
                "The provided client_assertion was invalid.",
            ),
            CoreError::RateLimited => (
                OAuthErrorCode::TemporarilyUnavailable,
                "Too many requests; try again later.",
            ),
            CoreError::Unavailable(_) => (
                OAuthErrorCode::TemporarilyUnavailable,
                "Service temporarily unavailable; try again in a moment.",
            ),
            CoreError::Internal(_) => (
                OAuthErrorCode::ServerError,
                "Ward could not complete this request.",
            ),
        };
        tracing::warn!(error = %e, code = error.as_str(), "token endpoint refused a request");
        Self {
            error,
            description: description.into(),
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        CoreError::from(e).into()
    }
}

/// The fields of `POST /oauth/v1/token` (query string and form merged).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TokenParams {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub client_id: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
}

/// A successful token response.
#[derive(Clone, Debug, Serialize)]
pub struct TokenResponse {
    pub id_token: String,
    pub access_token: String,
    pub expires_in: i64,
    pub token_type: &'static str,
}

impl Ward {
    /// Checks a client assertion made for `endpoint` (its full public URL) and returns the
    /// client. Each assertion is accepted once.
    async fn client_from_assertion(
        &self,
        client_id: Option<&str>,
        assertion: &str,
        endpoint: &str,
        now: DateTime<Utc>,
    ) -> Result<std::sync::Arc<IntegrationCredentials>, OAuthError> {
        let bad = || OAuthError::client("The provided client_assertion was invalid.");
        let unverified = jws::unverified_claims(assertion).map_err(|_| bad())?;
        let client_id = client_id
            .filter(|c| !c.is_empty())
            .or_else(|| str_claim(&unverified, "iss"))
            .ok_or_else(bad)?;
        let creds = self.web_sdk_client(client_id, now).await?.ok_or_else(bad)?;
        let claims = jws::verify_hs512(assertion, creds.skey.as_bytes()).map_err(|_| bad())?;
        let ok = str_claim(&claims, "iss") == Some(client_id)
            && str_claim(&claims, "sub") == Some(client_id)
            && audience_is(&claims, endpoint)
            && check_exp(&claims, now).is_ok();
        let jti = str_claim(&claims, "jti").unwrap_or_default();
        if !ok || jti.is_empty() || jti.len() > 256 {
            return Err(bad());
        }
        let exp_ms = claims
            .get("exp")
            .and_then(Value::as_f64)
            .map_or(0, |e| (e * 1000.0) as i64);
        let seen = CeremonyRow {
            ceremony_hash: token_hash(&format!("jti:{client_id}:{jti}")),
            org_id: creds.integration.org_id.to_string(),
            user_id: None,
            purpose: JTI_PURPOSE.into(),
            state_sealed: String::new(),
            created_ms: now.timestamp_millis(),
            expires_ms: exp_ms.max(now.timestamp_millis()) + 120_000,
        };
        match self
            .store
            .commit(ChangeSet::new().with(Change::InsertCeremony(seen)))
            .await
        {
            Ok(_) => Ok(creds),
            Err(StoreError::Duplicate(_)) => Err(OAuthError::client(
                "The provided client_assertion was already used.",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Consumes a code issued to `client_id` (once, on any node) and opens what it stands for.
    /// Another client's code is as unknown as a made-up one, and is left for its own client.
    async fn take_code(
        &self,
        client_id: &str,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<CodeGrant, OAuthError> {
        let bad = || OAuthError::grant("The code is invalid, expired or already used.");
        if code.is_empty() || code.len() > 128 {
            return Err(bad());
        }
        let hash = code_hash(client_id, code);
        let receipt = match self
            .store
            .commit(ChangeSet::new().with(Change::ConsumeCeremony {
                ceremony_hash: hash.clone(),
                purpose: CODE_PURPOSE.into(),
                now_ms: now.timestamp_millis(),
            }))
            .await
        {
            Ok(r) => r,
            Err(StoreError::ConditionFailed(_)) => return Err(bad()),
            Err(e) => return Err(e.into()),
        };
        let Some(Outcome::Ceremony(row)) = receipt.outcomes.into_iter().next() else {
            return Err(bad());
        };
        let json = self
            .keys
            .open(Purpose::Ceremony, &hash, &row.state_sealed)
            .map_err(OAuthError::from)?;
        serde_json::from_slice(&json)
            .map_err(|e| CoreError::Internal(format!("code grant: {e}")).into())
    }
}

impl Prompt<'_> {
    /// `POST /oauth/v1/health_check`: the client's credentials work. Returns the time.
    pub async fn health_check(
        self,
        client_id: Option<&str>,
        assertion: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, OAuthError> {
        let endpoint = format!("{}/oauth/v1/health_check", self.origin()?);
        self.client_from_assertion(client_id, assertion, &endpoint, now)
            .await?;
        Ok(now.timestamp())
    }

    /// `POST /oauth/v1/token`: trades a code for the signed result.
    pub async fn token(
        self,
        params: &TokenParams,
        now: DateTime<Utc>,
    ) -> Result<TokenResponse, OAuthError> {
        if params.grant_type.as_deref() != Some("authorization_code") {
            return Err(OAuthError {
                error: OAuthErrorCode::UnsupportedGrantType,
                description: "grant_type must be authorization_code".into(),
            });
        }
        if params.client_assertion_type.as_deref() != Some(ASSERTION_TYPE) {
            return Err(OAuthError::request(format!(
                "client_assertion_type must be {ASSERTION_TYPE}"
            )));
        }
        let origin = self.origin()?;
        let endpoint = format!("{origin}/oauth/v1/token");
        let creds = self
            .client_from_assertion(
                params.client_id.as_deref(),
                params.client_assertion.as_deref().unwrap_or_default(),
                &endpoint,
                now,
            )
            .await?;
        let client_id = creds.integration.ikey.as_str();
        let code = params.code.as_deref().unwrap_or_default();
        let grant = self.take_code(client_id, code, now).await?;
        if params.redirect_uri.as_deref() != Some(grant.request.redirect_uri.as_str()) {
            return Err(OAuthError::grant(
                "redirect_uri does not match the authorization request.",
            ));
        }
        let claims = id_token_claims(&grant, &endpoint, now);
        Ok(TokenResponse {
            id_token: jws::sign_hs512(&claims, creds.skey.as_bytes()).map_err(|e| {
                OAuthError::from(CoreError::Internal(format!("signing the id_token: {e}")))
            })?,
            access_token: new_token(),
            expires_in: ID_TOKEN_TTL.num_seconds(),
            token_type: "Bearer",
        })
    }
}

/// How a code is stored: hashed together with the client it was issued to, so that a code is
/// found only when its own client trades it.
pub(super) fn code_hash(client_id: &str, code: &str) -> String {
    token_hash(&format!("{client_id}:{code}"))
}

fn audience_is(claims: &Map<String, Value>, expected: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == expected,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(expected)),
        _ => false,
    }
}

/// The `id_token`: what the official clients check (`iss`, `aud`, `exp`, `iat`,
/// `preferred_username`, `nonce`) and what applications read (`auth_result`, `auth_context`).
fn id_token_claims(grant: &CodeGrant, issuer: &str, now: DateTime<Utc>) -> Map<String, Value> {
    let request = &grant.request;
    let decision = &grant.decision;
    let factor = decision.factor.as_deref().and_then(|f| match f {
        "passkey" => Some(PromptMethod::Passkey.duo_factor()),
        "push" => Some(PromptMethod::Push.duo_factor()),
        "passcode" => Some(PromptMethod::Passcode.duo_factor()),
        _ => None,
    });
    let iso = DateTime::from_timestamp(grant.auth_time, 0).map(|t| t.to_rfc3339());
    let auth_context = json!({
        "txid": decision.txid,
        "timestamp": grant.auth_time,
        "isotimestamp": iso,
        "event_type": "authentication",
        "factor": factor,
        "reason": decision.reason,
        "result": if decision.allowed { "success" } else { "denied" },
        "user": {
            "name": request.username,
            "key": grant.user_id,
            "groups": [],
        },
        "application": { "key": request.client_id, "name": request.app_name },
        "access_device": {
            "ip": request.user_ip,
            "hostname": Value::Null,
            "location": {},
        },
        "auth_device": {
            "name": decision.device,
            "ip": Value::Null,
            "location": {},
        },
        "email": grant.email.clone().unwrap_or_default(),
        "alias": "",
        "ood_software": Value::Null,
    });
    let mut claims = Map::new();
    let iat = now.timestamp();
    for (key, value) in [
        ("iss", json!(issuer)),
        ("aud", json!(request.client_id)),
        ("sub", json!(request.username)),
        ("preferred_username", json!(request.username)),
        ("iat", json!(iat)),
        ("exp", json!(iat + ID_TOKEN_TTL.num_seconds())),
        ("auth_time", json!(grant.auth_time)),
        ("jti", json!(new_token())),
        (
            "auth_result",
            json!({
                "result": if decision.allowed { "allow" } else { "deny" },
                "status": decision.status,
                "status_msg": decision.status_msg,
            }),
        ),
        ("auth_context", auth_context),
    ] {
        claims.insert(key.into(), value);
    }
    if let Some(nonce) = &request.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    claims
}
