//! Duo's older Auth API with BSON bodies (`/rest/v1/{preauth,auth,status}.bson`), for Debian's
//! `login_duo` and `pam_duo` (`duo_unix` 1.11.3, duo-protocol §8).
//!
//! Same signature checks as the Auth API v2 ([`DuoCall`]; these clients sign v1 with HMAC-SHA1)
//! and the same core decisions; only the parameters (`user`, `factor=auto&auto=X`) and the
//! rendering differ.
//!
//! # Security
//! `duo_unix` 1.x lets the user in after 20 status replies without a `result`, and on a 401 or a
//! 5xx at preauth when `failmode = safe`. So `status.bson` answers only on a decision or at the
//! push's deadline (then with a final deny), and refusals after preauth are answered at HTTP 200
//! as a `FAIL` envelope, which the clients count as a failed attempt.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bson::{Bson, Document, doc};
use ward_core::CoreError;
use ward_core::model::UserRef;
use ward_core::service::{
    AuthDecision, DenyReason, LegacyAuth, LegacyFactor, LegacyMenu, PreauthOutcome, PushOutcome,
    PushRequest, TxResult, TxView,
};
use ward_proto::duo::envelope::{DuoErrorCode, Fail};

use super::push::{self, wait_decided};
use super::signed::DuoCall;
use crate::app::AppState;
use crate::error::ApiError;

/// A BSON envelope with its HTTP status.
pub struct Bsonic(StatusCode, Document);

impl IntoResponse for Bsonic {
    fn into_response(self) -> Response {
        let mut body = Vec::new();
        match self.1.to_writer(&mut body) {
            Ok(()) => (self.0, [(header::CONTENT_TYPE, "application/bson")], body).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "BSON encoding failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

type LegacyResult = Result<Bsonic, Bsonic>;

#[allow(clippy::unnecessary_wraps)] // keeps handlers' success path as short as their errors
fn ok(response: Document) -> LegacyResult {
    Ok(Bsonic(
        StatusCode::OK,
        doc! { "stat": "OK", "response": response },
    ))
}

/// Duo's `FAIL` envelope in BSON. Credentials, rate and server errors keep their HTTP status
/// (so `failmode` applies at preauth); a refused request is a `FAIL` at 200 with its message.
impl From<ApiError> for Bsonic {
    fn from(ApiError(fail): ApiError) -> Self {
        let status = match fail.http_status() {
            400 => StatusCode::OK,
            other => StatusCode::from_u16(other).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        };
        Bsonic(status, fail_doc(&fail))
    }
}

impl From<CoreError> for Bsonic {
    fn from(e: CoreError) -> Self {
        ApiError::from(e).into()
    }
}

fn fail_doc(fail: &Fail) -> Document {
    let mut message = fail.message.clone();
    if let Some(detail) = &fail.message_detail {
        message = format!("{message} ({detail})");
    }
    doc! { "stat": "FAIL", "code": Bson::Int32(i32::try_from(fail.code).unwrap_or(50000)), "message": message }
}

/// `user`: required, 1–256 bytes.
fn user(call: &DuoCall) -> Result<(UserRef, String), Bsonic> {
    match call.params.get("user") {
        Some(name) if !name.is_empty() && name.len() <= 256 => {
            Ok((UserRef::Name(name.to_owned()), name.to_owned()))
        }
        Some(_) => Err(ApiError::detail(DuoErrorCode::InvalidParameters, "user").into()),
        None => Err(ApiError::detail(DuoErrorCode::MissingParameters, "user").into()),
    }
}

/// `POST /rest/v1/preauth.bson`.
pub async fn preauth(
    State(state): State<AppState>,
    call: Result<DuoCall, ApiError>,
) -> LegacyResult {
    let call = call?;
    let (user_ref, name) = user(&call)?;
    let (outcome, menu) = state
        .ward
        .auth()
        .legacy_preauth(&call.context(), &user_ref, &name, call.now)
        .await?;
    ok(render_preauth(outcome, menu))
}

fn render_preauth(outcome: PreauthOutcome, menu: Option<LegacyMenu>) -> Document {
    match (outcome, menu) {
        (PreauthOutcome::Auth { .. }, Some(menu)) => {
            let factors: Document = menu
                .factors
                .into_iter()
                .map(|(k, v)| (k, Bson::String(v)))
                .collect();
            doc! { "result": "auth", "prompt": menu.prompt, "factors": factors }
        }
        (PreauthOutcome::Enroll { portal_url }, _) => doc! {
            "result": "enroll",
            "status": format!("Enroll an authentication device first: {portal_url}"),
        },
        (PreauthOutcome::Deny { reason }, _) => doc! {
            "result": "deny",
            "status": match reason {
                DenyReason::UnknownUser | DenyReason::NoFactors => "Login request denied.",
                DenyReason::Disabled => "Your account is disabled.",
                DenyReason::LockedOut => "Your account is locked out. Try again later.",
            },
        },
        // The core gives a menu with every `Auth`; deny should it ever not.
        (PreauthOutcome::Auth { .. }, None) => {
            doc! { "result": "deny", "status": "Login request denied." }
        }
    }
}

/// `POST /rest/v1/auth.bson`: `factor=auto&auto=X` (also `factor=passcode&code=…`,
/// `factor=push`), `async=0|1`, `ipaddr`, `hostname`, `pushinfo`.
pub async fn auth(State(state): State<AppState>, call: Result<DuoCall, ApiError>) -> LegacyResult {
    let call = call?;
    let (user_ref, _) = user(&call)?;
    let factor = legacy_factor(&call)?;
    let is_async = call.params.get_bool("async").unwrap_or(false);
    let p = &call.params;
    let req = PushRequest {
        details: push::pushinfo(p.get("pushinfo")),
        hostname: p.get("hostname").map(str::to_owned),
        ..PushRequest::default()
    };
    let ctx = call.context();
    let started = match state
        .ward
        .auth()
        .legacy_auth(&ctx, &user_ref, factor, req, is_async, call.now)
        .await?
    {
        LegacyAuth::Decided(decision) | LegacyAuth::Push(PushOutcome::Decided(decision)) => {
            return ok(render_decision(&decision));
        }
        LegacyAuth::Push(PushOutcome::Started(started)) => started,
    };
    if is_async {
        return ok(doc! { "txid": started.txid });
    }
    let view = wait_decided(&state, &ctx, &started.txid, push::push_wait(&state)).await?;
    ok(render_view(&view))
}

fn legacy_factor(call: &DuoCall) -> Result<LegacyFactor, Bsonic> {
    let p = &call.params;
    let required = |name: &'static str| {
        p.get(name)
            .filter(|v| !v.is_empty() && v.len() <= 256)
            .ok_or_else(|| Bsonic::from(ApiError::detail(DuoErrorCode::MissingParameters, name)))
    };
    match p.get("factor") {
        Some("auto") => Ok(LegacyFactor::parse(required("auto")?)),
        Some("passcode") => Ok(LegacyFactor::Passcode(required("code")?.to_owned())),
        Some("push") => Ok(LegacyFactor::parse(p.get("phone").unwrap_or("push"))),
        Some("phone") => Ok(LegacyFactor::Refused("phone")),
        Some("sms") => Ok(LegacyFactor::Refused("sms")),
        Some(_) => Err(ApiError::detail(DuoErrorCode::InvalidParameters, "factor").into()),
        None => Err(ApiError::detail(DuoErrorCode::MissingParameters, "factor").into()),
    }
}

/// `GET /rest/v1/status.bson?txid=`: answers on a decision, or at the push's deadline with the
/// final deny; never an early result-less reply.
pub async fn status(
    State(state): State<AppState>,
    call: Result<DuoCall, ApiError>,
) -> LegacyResult {
    let call = call?;
    let txid = call
        .params
        .get("txid")
        .filter(|t| !t.is_empty() && t.len() <= 128)
        .ok_or_else(|| Bsonic::from(ApiError::detail(DuoErrorCode::MissingParameters, "txid")))?;
    let view = wait_decided(&state, &call.context(), txid, push::push_wait(&state))
        .await
        .map_err(|e| match e {
            CoreError::NotFound(_) | CoreError::Expired(_) => {
                Bsonic::from(ApiError::detail(DuoErrorCode::InvalidParameters, "txid"))
            }
            other => other.into(),
        })?;
    ok(render_view(&view))
}

fn render_decision(d: &AuthDecision) -> Document {
    // An async caller gets its transaction, already decided: its first status call ends it.
    if let Some(txid) = &d.txid {
        return doc! { "txid": txid.as_str() };
    }
    doc! {
        "result": if d.allowed { "allow" } else { "deny" },
        "status": d.status_msg,
    }
}

/// A decided transaction carries `result`; a waiting one only `status` (the client polls again).
fn render_view(view: &TxView) -> Document {
    match view.result {
        TxResult::Waiting => doc! { "status": view.status_msg.as_str() },
        TxResult::Allow => doc! { "result": "allow", "status": view.status_msg.as_str() },
        TxResult::Deny => doc! { "result": "deny", "status": view.status_msg.as_str() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_core::service::TxStatus;

    fn decode(b: &Bsonic) -> Document {
        let mut body = Vec::new();
        b.1.to_writer(&mut body).unwrap();
        Document::from_reader(body.as_slice()).unwrap()
    }

    #[test]
    fn fail_code_is_int32_and_refusals_are_http_200() {
        let refused = Bsonic::from(ApiError::detail(DuoErrorCode::InvalidParameters, "user"));
        assert_eq!(refused.0, StatusCode::OK);
        let doc = decode(&refused);
        assert_eq!(doc.get("code"), Some(&Bson::Int32(40002)));
        assert_eq!(doc.get_str("stat").unwrap(), "FAIL");
        let bad_sig = Bsonic::from(ApiError::code(DuoErrorCode::InvalidSignature));
        assert_eq!(bad_sig.0, StatusCode::UNAUTHORIZED);
        assert_eq!(decode(&bad_sig).get("code"), Some(&Bson::Int32(40103)));
    }

    #[test]
    fn waiting_has_no_result() {
        let view = TxView {
            result: TxResult::Waiting,
            status: TxStatus::Pushed,
            status_msg: "Pushed".into(),
        };
        assert!(render_view(&view).get("result").is_none());
        let timeout = TxView {
            result: TxResult::Deny,
            status: TxStatus::Timeout,
            status_msg: "Login timed out.".into(),
        };
        assert_eq!(render_view(&timeout).get_str("result").unwrap(), "deny");
    }
}
