//! Auth API v2 handlers: each extracts, calls one core method, and renders Duo's JSON.

use axum::Json;
use axum::extract::State;
use ward_core::CoreError;
use ward_core::model::UserRef;
use ward_core::service::{AuthDecision, Capability, DenyReason, PreauthOutcome};
use ward_proto::duo::auth::{
    AsyncAuthResponse, AuthResponse, AuthResult, Device, PreauthResponse, PreauthResult,
    TimeResponse,
};
use ward_proto::duo::envelope::{DuoErrorCode, Ok as DuoOk};
use ward_proto::duo::params::Params;

use super::push;
use super::signed::DuoCall;
use crate::app::AppState;
use crate::error::ApiError;

type DuoResult<T> = Result<Json<DuoOk<T>>, ApiError>;

#[allow(clippy::unnecessary_wraps)] // keeps handlers' success path as short as their errors
fn ok<T>(response: T) -> DuoResult<T> {
    Ok(Json(DuoOk::new(response)))
}

/// `/auth/v2/ping`: unsigned liveness and clock.
pub async fn ping(State(state): State<AppState>) -> Json<DuoOk<TimeResponse>> {
    Json(DuoOk::new(TimeResponse {
        time: state.clock.now().timestamp(),
    }))
}

/// `/auth/v2/check`: signed liveness.
pub async fn check(call: DuoCall) -> DuoResult<TimeResponse> {
    ok(TimeResponse {
        time: call.now.timestamp(),
    })
}

/// `/auth/v2/logo`: Ward serves no logo through the Auth API.
pub async fn logo(_call: DuoCall) -> ApiError {
    ApiError::code(DuoErrorCode::NotFound)
}

/// Exactly one of `username` and `user_id`.
fn user_ref(params: &Params) -> Result<UserRef, ApiError> {
    match (params.get("username"), params.get("user_id")) {
        (Some(name), None) if !name.is_empty() && name.len() <= 256 => {
            Ok(UserRef::Name(name.to_owned()))
        }
        (None, Some(id)) if !id.is_empty() && id.len() <= 64 => Ok(UserRef::Id(id.to_owned())),
        (None, None) => Err(ApiError::detail(
            DuoErrorCode::MissingParameters,
            "username",
        )),
        // Both given, or a value out of range.
        _ => Err(ApiError::detail(
            DuoErrorCode::InvalidParameters,
            "username",
        )),
    }
}

/// `/auth/v2/preauth`.
pub async fn preauth(State(state): State<AppState>, call: DuoCall) -> DuoResult<PreauthResponse> {
    let user = user_ref(&call.params)?;
    let outcome = state
        .ward
        .auth()
        .preauth(&call.context(), &user, call.now)
        .await?;
    ok(render_preauth(outcome))
}

fn render_preauth(outcome: PreauthOutcome) -> PreauthResponse {
    let (result, status_msg, devices, enroll_portal_url) = match outcome {
        PreauthOutcome::Auth {
            devices,
            push_muted,
        } => {
            let devices = devices.into_iter().map(render_device).collect();
            (
                PreauthResult::Auth,
                if push_muted {
                    "Account is active. Push login requests are paused after a fraud report; \
                     use a passcode."
                } else {
                    "Account is active"
                },
                Some(devices),
                None,
            )
        }
        PreauthOutcome::Enroll { portal_url } => (
            PreauthResult::Enroll,
            "Enroll an authentication device to proceed",
            None,
            Some(portal_url),
        ),
        PreauthOutcome::Deny { reason } => {
            let msg = match reason {
                DenyReason::UnknownUser | DenyReason::NoFactors => "Login request denied.",
                DenyReason::Disabled => "Your account is disabled.",
                DenyReason::LockedOut => {
                    "Your account is locked out after too many failed attempts. Try again later."
                }
            };
            (PreauthResult::Deny, msg, None, None)
        }
    };
    PreauthResponse {
        result,
        status_msg: status_msg.to_owned(),
        devices,
        enroll_portal_url,
    }
}

fn render_device(d: ward_core::service::Device) -> Device {
    let capabilities = d
        .capabilities
        .iter()
        .flat_map(|c| match c {
            Capability::MobileOtp => vec!["mobile_otp"],
            Capability::Push => vec!["auto", "push"],
        })
        .map(str::to_owned)
        .collect();
    Device {
        device: d.id,
        type_: "phone".into(),
        display_name: d.name.clone(),
        name: d.name,
        number: String::new(),
        capabilities,
    }
}

/// `/auth/v2/auth`.
pub async fn auth(
    State(state): State<AppState>,
    call: DuoCall,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let user = user_ref(&call.params)?;
    let factor = call
        .params
        .get("factor")
        .ok_or_else(|| ApiError::detail(DuoErrorCode::MissingParameters, "factor"))?;
    let want_txid = call.params.get_bool("async").unwrap_or(false);
    let ctx = call.context();
    let decision = match factor {
        "passcode" => {
            let passcode = call
                .params
                .get("passcode")
                .ok_or_else(|| ApiError::detail(DuoErrorCode::MissingParameters, "passcode"))?;
            state
                .ward
                .auth()
                .passcode(&ctx, &user, passcode, want_txid, call.now)
                .await?
        }
        "sms" | "phone" => {
            return Err(state
                .ward
                .auth()
                .refuse_factor(&ctx, &user, factor, call.now)
                .await
                .into());
        }
        "push" | "auto" => return push::auth_push(&state, &call, &user, want_txid).await,
        _ => return Err(ApiError::detail(DuoErrorCode::InvalidParameters, "factor")),
    };
    Ok(match &decision.txid {
        Some(txid) => Json(DuoOk::new(AsyncAuthResponse {
            txid: txid.clone(),
            verified_push_code: None,
        }))
        .into_response(),
        None => Json(DuoOk::new(render_decision(&decision))).into_response(),
    })
}

pub(super) fn render_decision(d: &AuthDecision) -> AuthResponse {
    AuthResponse {
        result: if d.allowed {
            AuthResult::Allow
        } else {
            AuthResult::Deny
        },
        status: d.status.as_str().to_owned(),
        status_msg: d.status_msg.to_owned(),
        txid: None,
    }
}

/// `/auth/v2/auth_status`.
pub async fn auth_status(State(state): State<AppState>, call: DuoCall) -> DuoResult<AuthResponse> {
    let txid = call
        .params
        .get("txid")
        .ok_or_else(|| ApiError::detail(DuoErrorCode::MissingParameters, "txid"))?;
    let view = push::wait_decided(&state, &call.context(), txid, push::POLL_MAX)
        .await
        .map_err(|e| match e {
            CoreError::NotFound(_) | CoreError::Expired(_) => {
                ApiError::detail(DuoErrorCode::InvalidParameters, "txid")
            }
            other => other.into(),
        })?;
    ok(push::render_view(view))
}
