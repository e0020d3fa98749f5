//! The self-service portal: sign in, enrol through a link, manage passkeys, authenticator
//! apps, push devices and recovery codes, answer "this wasn't me", cancel a recovery of one's
//! account and approve colleagues' recoveries.
//!
//! Handlers check the session (and its CSRF token for changes), call one method of the core
//! service and render a page; the WebAuthn calls are small JSON endpoints under `/portal/api/`
//! used by `/static/ward.js`.

mod factors;
mod links;
mod passkeys;
mod recovery;
mod sign_in;
mod totp;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;
use ward_core::service::{NewSession, Session};

use crate::app::AppState;
use crate::web::{JsonError, WebError, set_session_cookie};

pub(crate) use recovery::state_label;

use factors::{factor_page, factor_remove, factor_rename, home, recovery_codes};
use links::{enrol_page, enrol_redeem, report_confirm, report_page};
use passkeys::{
    confirm_page, passkey_finish, passkey_new_page, passkey_start, step_up_finish, step_up_start,
};
use sign_in::{
    sign_in_finish, sign_in_page, sign_in_start, sign_in_totp, sign_out, sign_out_everywhere,
};
use totp::{totp_confirm, totp_new_page};

/// Largest form or JSON body the portal accepts.
const MAX_BODY: usize = 16 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/", get(|| async { Redirect::to("/portal") }))
        .route("/portal/sign-in", get(sign_in_page))
        .route("/portal/sign-in/totp", post(sign_in_totp))
        .route("/portal/api/sign-in/start", post(sign_in_start))
        .route("/portal/api/sign-in/finish", post(sign_in_finish))
        .route("/portal/enrol/{token}", get(enrol_page).post(enrol_redeem))
        .route("/portal/passkeys/new", get(passkey_new_page))
        .route("/portal/confirm", get(confirm_page))
        .route("/portal/api/passkeys/start", post(passkey_start))
        .route("/portal/api/passkeys/finish", post(passkey_finish))
        .route("/portal/api/step-up/start", post(step_up_start))
        .route("/portal/api/step-up/finish", post(step_up_finish))
        .route("/portal/totp/new", get(totp_new_page).post(totp_confirm))
        .route("/portal/recovery-codes", post(recovery_codes))
        .route("/portal/recovery/cancel", post(recovery::cancel))
        .route("/portal/approvals", get(recovery::approvals_page))
        .route(
            "/portal/api/approvals/{case_id}/start",
            post(recovery::approval_start),
        )
        .route(
            "/portal/api/approvals/{case_id}/finish",
            post(recovery::approval_finish),
        )
        .route("/portal/factors/{kind}/{id}", get(factor_page))
        .route("/portal/factors/{kind}/{id}/rename", post(factor_rename))
        .route("/portal/factors/{kind}/{id}/remove", post(factor_remove))
        .route("/portal/sign-out", post(sign_out))
        .route("/portal/sign-out-everywhere", post(sign_out_everywhere))
        .route(
            "/portal/report/{token}",
            get(report_page).post(report_confirm),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// Checks a form's CSRF token against the session.
pub(crate) fn check_csrf(state: &AppState, session: &Session, token: &str) -> Result<(), WebError> {
    if state.ward.portal().csrf_ok(session, token) {
        Ok(())
    } else {
        Err(WebError::forbidden_origin())
    }
}

/// Checks the `X-CSRF-Token` header of a script call.
pub(crate) fn check_csrf_header(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
) -> Result<(), JsonError> {
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if state.ward.portal().csrf_ok(session, token) {
        Ok(())
    } else {
        Err(JsonError(
            StatusCode::FORBIDDEN,
            "This page has expired. Reload it and try again.".into(),
        ))
    }
}

/// Sets the session cookie and redirects.
fn signed_in_redirect(new: &NewSession, to: &str, now_ms: i64) -> Response {
    let max_age = (new.session.expires_ms - now_ms).max(0) / 1000;
    let mut response = Redirect::to(to).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_session_cookie(&new.token, max_age));
    response
}

/// Sends the user to confirm with a passkey, then on to `next`.
fn confirm_first(next: &str) -> Response {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    Redirect::to(&format!("/portal/confirm?{query}")).into_response()
}

/// A WebAuthn answer from `/static/ward.js`.
#[derive(Debug, Deserialize)]
struct CeremonyAnswer {
    ceremony: String,
    credential: Value,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    pub(crate) csrf: String,
}
