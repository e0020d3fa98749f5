//! The hosted prompt: Duo Web SDK v4 (Universal Prompt), an OIDC authorization-code flow.
//!
//! An application sends the user to `/oauth/v1/authorize` with a request object signed with
//! its client secret; Ward checks it, lets the user authenticate with what policy allows
//! (passkey first, then Verified Push, then a code), and sends the browser back with a
//! single-use code. The application trades the code at `/oauth/v1/token`, authenticating with a
//! client assertion, for an HS512 `id_token` that carries the result.
//!
//! # Security
//! The prompt's state travels with the browser sealed (AES-GCM) and expires; nothing in it is
//! trusted unless it opens. Codes are 256-bit, stored hashed with their result sealed, bound to
//! the client, redirect URI, user and nonce, valid five minutes and consumed once (any node).
//! Client assertions are checked for signature, issuer, audience, expiry and a fresh `jti`.
//! A request object that fails any check is never redirected: the user gets an error page.

mod factors;
mod token;
mod types;

use crate::service::Prompt;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ward_proto::jws;
use ward_store::{CeremonyRow, Change, ChangeSet, UserRow};

pub use token::{OAuthError, OAuthErrorCode, TokenParams, TokenResponse};
pub use types::{
    AuthorizeParams, Completion, PromptMethod, PromptNext, PromptPasscode, PromptPush,
    PromptRequest, PromptView,
};

use super::{AuthContext, Ward};
use crate::audit::{Action, Event};
use crate::crypto::{Purpose, new_token};
use crate::error::{CoreError, CoreResult};
use crate::gate::{self, Enrolled, Refusal, Subject};
use crate::model::{Actor, IntegrationId, IntegrationKind, OrgId, UserId};

/// How long a user may take in the prompt.
const PROMPT_TTL: TimeDelta = TimeDelta::minutes(15);
/// How long the code handed back to the application is valid.
const CODE_TTL: TimeDelta = TimeDelta::minutes(5);
/// Clock skew tolerated on `exp` of request objects and client assertions.
const LEEWAY_SECS: f64 = 60.0;
const CODE_PURPOSE: &str = "oidc-code";
const PASSKEY_PURPOSE: &str = "prompt-passkey";
const PUSH_DONE_PURPOSE: &str = "prompt-push-done";

/// What policy lets the prompt's user do, before anything is recorded.
enum Offer {
    Choose(Vec<PromptMethod>),
    Enrol(UserRow),
    Deny {
        user: Option<UserRow>,
        status: &'static str,
        reason: &'static str,
    },
}

impl Offer {
    fn deny(user: Option<UserRow>, status: &'static str, reason: &'static str) -> Self {
        Self::Deny {
            user,
            status,
            reason,
        }
    }
}

/// The result of a decision, as the application receives it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Decision {
    allowed: bool,
    status: String,
    status_msg: String,
    factor: Option<String>,
    reason: String,
    device: Option<String>,
    txid: String,
}

/// What a code stands for (sealed in the database until the application trades it).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CodeGrant {
    request: PromptRequest,
    user_id: Option<String>,
    email: Option<String>,
    decision: Decision,
    auth_time: i64,
}

fn invalid(reason: impl Into<String>) -> CoreError {
    CoreError::invalid("request", reason)
}

fn str_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// Checks a redirect URI: absolute `https` (or `http` on localhost), no fragment, and on the
/// allow-list when there is one.
pub(crate) fn check_redirect_uri(uri: &str, allowed: &[String]) -> Result<(), String> {
    let url = url::Url::parse(uri).map_err(|_| "redirect_uri is not an absolute URL".to_owned())?;
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if local => {}
        _ => return Err("redirect_uri must be https (http only on localhost)".into()),
    }
    if url.fragment().is_some() || uri.len() > 2048 {
        return Err("redirect_uri must not have a fragment and must be under 2 KiB".into());
    }
    if !allowed.is_empty() && !allowed.iter().any(|a| a == uri) {
        return Err("redirect_uri is not registered for this application".into());
    }
    Ok(())
}

impl Ward {
    fn origin(&self) -> CoreResult<String> {
        Ok(self
            .passkeys()?
            .settings
            .origin
            .as_str()
            .trim_end_matches('/')
            .to_owned())
    }

    async fn web_sdk_client(
        &self,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Option<std::sync::Arc<super::IntegrationCredentials>>> {
        if client_id.len() != 20 {
            return Ok(None);
        }
        Ok(self
            .auth()
            .integration_credentials(&IntegrationId::new(client_id), now)
            .await?
            .filter(|c| c.integration.kind == IntegrationKind::WebSdk))
    }

    async fn check_authorize(
        &self,
        params: &AuthorizeParams,
        user_ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> CoreResult<PromptRequest> {
        if params.response_type.as_deref() != Some("code") {
            return Err(invalid("response_type must be code"));
        }
        let client_id = params.client_id.as_deref().unwrap_or_default();
        let creds = self
            .web_sdk_client(client_id, now)
            .await?
            .ok_or_else(|| invalid("unknown client_id"))?;
        let token = params.request.as_deref().unwrap_or_default();
        let claims = jws::verify_hs512(token, creds.skey.as_bytes())
            .map_err(|e| invalid(format!("request object: {e}")))?;
        let expect = |name: &str, want: &str| -> CoreResult<()> {
            if str_claim(&claims, name) == Some(want) {
                Ok(())
            } else {
                Err(invalid(format!("request object: {name} is wrong")))
            }
        };
        expect("iss", client_id)?;
        expect("client_id", client_id)?;
        expect("aud", &self.origin()?)?;
        expect("response_type", "code")?;
        check_exp(&claims, now).map_err(|e| invalid(format!("request object: {e}")))?;
        if !str_claim(&claims, "scope").is_some_and(|s| s.split(' ').any(|x| x == "openid")) {
            return Err(invalid("request object: scope must include openid"));
        }
        let redirect_uri = str_claim(&claims, "redirect_uri").unwrap_or_default();
        check_redirect_uri(redirect_uri, &creds.integration.prompt_policy.redirect_uris)
            .map_err(invalid)?;
        let state = str_claim(&claims, "state").unwrap_or_default();
        if !(16..=1024).contains(&state.len()) {
            return Err(invalid("state must be 16 to 1024 characters"));
        }
        let username = str_claim(&claims, "duo_uname").unwrap_or_default();
        if username.is_empty() || username.len() > 100 {
            return Err(invalid("duo_uname is missing"));
        }
        let nonce = params
            .nonce
            .as_deref()
            .or_else(|| str_claim(&claims, "nonce"))
            .map(str::to_owned);
        if nonce
            .as_ref()
            .is_some_and(|n| n.is_empty() || n.len() > 1024)
        {
            return Err(invalid("nonce must be 1 to 1024 characters"));
        }
        Ok(PromptRequest {
            client_id: client_id.to_owned(),
            app_name: creds.integration.name.clone(),
            redirect_uri: redirect_uri.to_owned(),
            state: state.to_owned(),
            nonce,
            username: username.to_owned(),
            duo_code_attribute: claims
                .get("use_duo_code_attribute")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            user_ip: user_ip.map(str::to_owned),
            expires_ms: (now + PROMPT_TTL).timestamp_millis(),
        })
    }

    /// Seals a prompt request for the browser to carry.
    pub(super) fn seal_prompt(&self, request: &PromptRequest) -> CoreResult<String> {
        let json = serde_json::to_vec(request)
            .map_err(|e| CoreError::Internal(format!("prompt state: {e}")))?;
        self.keys.seal(Purpose::Prompt, "prompt", &json)
    }

    /// What the prompt offers this user, or the decision when there is nothing to ask.
    async fn prompt_view(
        &self,
        request: PromptRequest,
        now: DateTime<Utc>,
    ) -> CoreResult<PromptView> {
        let context = self.seal_prompt(&request)?;
        let next = match self.prompt_offer(&request, now).await? {
            Offer::Choose(methods) => PromptNext::Choose(methods),
            Offer::Enrol(_) => PromptNext::Enrol,
            Offer::Deny {
                user,
                status,
                reason,
            } => PromptNext::Done(
                self.prompt_deny(&request, user.as_ref(), status, reason, now)
                    .await?,
            ),
        };
        Ok(PromptView {
            request,
            context,
            next,
        })
    }

    /// What policy lets this user do, without recording anything (the caller decides whether
    /// a deny ends the prompt).
    async fn prompt_offer(&self, request: &PromptRequest, now: DateTime<Utc>) -> CoreResult<Offer> {
        let creds = self
            .web_sdk_client(&request.client_id, now)
            .await?
            .ok_or_else(|| invalid("unknown client_id"))?;
        let policy = &creds.integration.prompt_policy;
        let org = &creds.integration.org_id;
        let user = self
            .store
            .user_by_name(org.as_str(), &request.username)
            .await?;
        let subject = user.as_ref().map(Subject::of).transpose()?;
        let enrolled = match &user {
            Some(user) => {
                let factors = self.portal().factors(org, &UserId::of(user)).await?;
                Enrolled {
                    passkey: !factors.passkeys.is_empty(),
                    push: !factors.devices.is_empty(),
                    passcode: !factors.totps.is_empty(),
                }
            }
            None => Enrolled::default(),
        };
        let offer = gate::offer(
            self.org_state(org.as_str(), now).await?,
            subject.as_ref(),
            enrolled,
            policy.allowed(),
            now.timestamp_millis(),
        );
        Ok(match (offer, user) {
            (gate::Offer::Methods { methods, .. }, Some(user)) => {
                let mut methods: Vec<PromptMethod> =
                    methods.into_iter().map(PromptMethod::from).collect();
                if let Some(i) = user
                    .last_prompt_method
                    .as_deref()
                    .and_then(|last| methods.iter().position(|m| m.as_str() == last))
                {
                    let m = methods.remove(i);
                    methods.insert(0, m);
                }
                Offer::Choose(methods)
            }
            (gate::Offer::NothingEnrolled, Some(user))
                if policy.new_users == crate::policy::NewUsers::Enrol =>
            {
                Offer::Enrol(user)
            }
            (gate::Offer::NothingEnrolled, user) => Offer::deny(user, "deny", "no factor enrolled"),
            (gate::Offer::Refused(refusal), user) => {
                let status = match refusal {
                    Refusal::LockedOut => "locked_out",
                    Refusal::OrgDisabled
                    | Refusal::UnknownUser
                    | Refusal::Disabled
                    | Refusal::NotAllowed
                    | Refusal::PushMuted
                    | Refusal::PushStorm => "deny",
                };
                Offer::deny(user, status, refusal.as_str())
            }
            (gate::Offer::Methods { .. }, None) => Offer::deny(None, "deny", "unknown_user"),
        })
    }

    /// The prompt's organisation: its Web SDK client's.
    async fn prompt_org(&self, request: &PromptRequest, now: DateTime<Utc>) -> CoreResult<OrgId> {
        let creds = self
            .web_sdk_client(&request.client_id, now)
            .await?
            .ok_or_else(|| invalid("unknown client_id"))?;
        Ok(creds.integration.org_id.clone())
    }

    async fn prompt_user(
        &self,
        request: &PromptRequest,
        now: DateTime<Utc>,
    ) -> CoreResult<UserRow> {
        let org = self.prompt_org(request, now).await?;
        self.store
            .user_by_name(org.as_str(), &request.username)
            .await?
            .ok_or_else(|| CoreError::NotFound("user".into()))
    }

    async fn prompt_ctx(
        &self,
        request: &PromptRequest,
        now: DateTime<Utc>,
    ) -> CoreResult<AuthContext> {
        let creds = self
            .web_sdk_client(&request.client_id, now)
            .await?
            .ok_or_else(|| invalid("unknown client_id"))?;
        Ok(AuthContext {
            integration: creds.integration.clone(),
            user_ip: request.user_ip.clone(),
            client_ip: request.user_ip.clone(),
        })
    }

    async fn prompt_deny(
        &self,
        request: &PromptRequest,
        user: Option<&UserRow>,
        status: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Completion> {
        let decision = Decision {
            allowed: false,
            status: status.into(),
            status_msg: "Login denied".into(),
            factor: None,
            reason: reason.into(),
            device: None,
            txid: crate::ids::txid(),
        };
        self.complete(request, user, decision, now).await
    }

    /// Records the decision, issues the code and builds the redirect back to the application.
    async fn complete(
        &self,
        request: &PromptRequest,
        user: Option<&UserRow>,
        decision: Decision,
        now: DateTime<Utc>,
    ) -> CoreResult<Completion> {
        let org = self.prompt_org(request, now).await?;
        let code = new_token();
        let hash = token::code_hash(&request.client_id, &code);
        let grant = CodeGrant {
            request: request.clone(),
            user_id: user.map(|u| u.user_id.clone()),
            email: user.and_then(|u| u.email.clone()),
            decision: decision.clone(),
            auth_time: now.timestamp(),
        };
        let json = serde_json::to_vec(&grant)
            .map_err(|e| CoreError::Internal(format!("code grant: {e}")))?;
        let mut set = ChangeSet::new().with(Change::InsertCeremony(CeremonyRow {
            state_sealed: self.keys.seal(Purpose::Ceremony, &hash, &json)?,
            ceremony_hash: hash,
            org_id: org.to_string(),
            user_id: grant.user_id.clone(),
            purpose: CODE_PURPOSE.into(),
            created_ms: now.timestamp_millis(),
            expires_ms: (now + CODE_TTL).timestamp_millis(),
        }));
        if let (Some(user), true, Some(factor)) = (user, decision.allowed, &decision.factor) {
            set.push(Change::SetLastPromptMethod {
                org_id: org.to_string(),
                user_id: user.user_id.clone(),
                method: factor.clone(),
            });
        }
        let outcome = if decision.allowed { "allow" } else { "deny" };
        let target = user.map_or(request.username.as_str(), |u| u.user_id.as_str());
        set.push(
            Event::new(
                org.as_str(),
                now,
                &Actor::Integration(request.client_id.clone()),
                Action::PromptAuth,
                target,
                outcome,
            )
            .detail("txid", decision.txid.as_str())
            .detail_opt("factor", decision.factor.clone())
            .detail("reason", decision.reason.as_str())
            .detail_opt("device", decision.device.clone())
            .detail_opt("ip", request.user_ip.clone())
            .into_change(),
        );
        self.store.commit(set).await?;
        let param = if request.duo_code_attribute {
            "duo_code"
        } else {
            "code"
        };
        let mut url = url::Url::parse(&request.redirect_uri)
            .map_err(|_| invalid("redirect_uri is not an absolute URL"))?;
        url.query_pairs_mut()
            .append_pair(param, &code)
            .append_pair("state", &request.state);
        Ok(Completion {
            redirect: url.into(),
            allowed: decision.allowed,
        })
    }

    fn allowed(
        method: PromptMethod,
        reason: &str,
        device: Option<String>,
        txid: String,
    ) -> Decision {
        Decision {
            allowed: true,
            status: "allow".into(),
            status_msg: "Login Successful".into(),
            factor: Some(method.as_str().into()),
            reason: reason.into(),
            device,
            txid,
        }
    }
}

impl Prompt<'_> {
    /// Checks an authorization request and prepares the prompt. An error here must be shown
    /// to the user as a page, never redirected.
    pub async fn authorize(
        self,
        params: &AuthorizeParams,
        user_ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> CoreResult<PromptView> {
        let request = match self.check_authorize(params, user_ip, now).await {
            Ok(r) => r,
            Err(e) => {
                // A refused request object is worth knowing about (forgery, a misconfigured
                // application); it is recorded without its content.
                let client = params.client_id.as_deref().unwrap_or("-");
                let client: String = client.chars().take(40).collect();
                // Recorded in the client's organisation, when the client is known.
                let log_org = match self.web_sdk_client(&client, now).await {
                    Ok(Some(creds)) => creds.integration.org_id.clone(),
                    _ => self.unattributed_org().await?,
                };
                let event = Event::new(
                    log_org.as_str(),
                    now,
                    &Actor::Anonymous,
                    Action::PromptRefused,
                    &client,
                    "deny",
                )
                .detail("reason", e.to_string())
                .detail_opt("ip", user_ip.map(str::to_owned));
                self.store
                    .commit(ChangeSet::new().with(event.into_change()))
                    .await?;
                return Err(e);
            }
        };
        let org = self.prompt_org(&request, now).await?;
        let event = Event::new(
            org.as_str(),
            now,
            &Actor::Integration(request.client_id.clone()),
            Action::PromptStart,
            &request.username,
            "ok",
        )
        .detail_opt("ip", request.user_ip.clone());
        self.store
            .commit(ChangeSet::new().with(event.into_change()))
            .await?;
        self.prompt_view(request, now).await
    }

    /// Opens a prompt the browser carried.
    pub fn open(self, context: &str, now: DateTime<Utc>) -> CoreResult<PromptRequest> {
        if context.len() > 8192 {
            return Err(invalid("prompt state is too long"));
        }
        let json = self
            .keys
            .open(Purpose::Prompt, "prompt", context)
            .map_err(|_| {
                invalid("this sign-in page is not valid; start again from the application")
            })?;
        let request: PromptRequest = serde_json::from_slice(&json)
            .map_err(|e| CoreError::Internal(format!("prompt state: {e}")))?;
        if request.expires_ms <= now.timestamp_millis() {
            return Err(CoreError::Expired(
                "this sign-in page (start again from the application)".into(),
            ));
        }
        Ok(request)
    }

    /// Shows the prompt again for a carried request (after an error, or a reload).
    pub async fn resume(self, context: &str, now: DateTime<Utc>) -> CoreResult<PromptView> {
        let request = self.prompt().open(context, now)?;
        self.prompt_view(request, now).await
    }
}

/// Checks `exp` (a number, possibly fractional) with leeway.
fn check_exp(claims: &Map<String, Value>, now: DateTime<Utc>) -> Result<(), &'static str> {
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or("exp is missing")?;
    #[allow(clippy::cast_precision_loss)] // seconds since 1970 fit an f64 exactly
    let now_secs = now.timestamp_millis() as f64 / 1000.0;
    if exp + LEEWAY_SECS < now_secs {
        return Err("it has expired");
    }
    if exp > now_secs + 3600.0 {
        return Err("exp is too far in the future");
    }
    Ok(())
}
