//! Signing in (a passkey, or a TOTP code where policy allows it) and signing out.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use ward_core::CoreError;
use ward_core::service::ceremony_purpose;

use super::{CeremonyAnswer, CsrfForm, check_csrf, signed_in_redirect};
use crate::app::AppState;
use crate::web::{
    JsonError, Layout, MaybeSession, OrgQuery, SignedIn, WebError, clear_session_cookie, render,
    set_session_cookie,
};

// ---------------------------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/sign_in.html")]
struct SignInPage {
    layout: Layout,
    totp_allowed: bool,
    error: Option<&'static str>,
    /// `?org=…` for the form and links, or empty.
    org_query: String,
}

fn totp_sign_in_allowed(state: &AppState) -> bool {
    state.ward.portal_settings().is_ok_and(|s| {
        s.factors.default.totp_signin || s.factors.groups.values().any(|g| g.totp_signin)
    })
}

pub(super) async fn sign_in_page(
    State(state): State<AppState>,
    Query(org): Query<OrgQuery>,
    MaybeSession(session): MaybeSession,
) -> Response {
    if session.is_some() {
        return Redirect::to("/portal").into_response();
    }
    render(&SignInPage {
        layout: Layout::new(&state, "Sign in", None),
        totp_allowed: totp_sign_in_allowed(&state),
        error: None,
        org_query: org.suffix(),
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct TotpSignInForm {
    username: String,
    code: String,
}

pub(super) async fn sign_in_totp(
    State(state): State<AppState>,
    Query(org): Query<OrgQuery>,
    Form(form): Form<TotpSignInForm>,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let org_query = org.suffix();
    let org = org.resolve(&state).await?;
    match state
        .ward
        .portal()
        .totp_sign_in(&org, form.username.trim(), form.code.trim(), now)
        .await
    {
        Ok(new) => Ok(signed_in_redirect(&new, "/portal", now.timestamp_millis())),
        Err(CoreError::Unauthenticated) => {
            let mut page = render(&SignInPage {
                layout: Layout::new(&state, "Sign in", None),
                totp_allowed: totp_sign_in_allowed(&state),
                error: Some(
                    "That username and code did not work. Codes change every 30 seconds; \
                     use the current one.",
                ),
                org_query,
            });
            *page.status_mut() = StatusCode::UNAUTHORIZED;
            Ok(page)
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn sign_in_start(
    State(state): State<AppState>,
    Query(org): Query<OrgQuery>,
) -> Result<Json<Value>, JsonError> {
    let org = org.resolve(&state).await?;
    let start = state
        .ward
        .portal()
        .passkey_auth_start(&org, ceremony_purpose::SIGN_IN, None, state.clock.now())
        .await?;
    Ok(Json(json!(start)))
}

pub(super) async fn sign_in_finish(
    State(state): State<AppState>,
    Query(org): Query<OrgQuery>,
    Json(answer): Json<CeremonyAnswer>,
) -> Result<Response, JsonError> {
    let now = state.clock.now();
    let org = org.resolve(&state).await?;
    let new = state
        .ward
        .portal()
        .passkey_sign_in(&org, &answer.ceremony, &answer.credential, now)
        .await?;
    let max_age = (new.session.expires_ms - now.timestamp_millis()).max(0) / 1000;
    let mut response = Json(json!({ "redirect": "/portal" })).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_session_cookie(&new.token, max_age));
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Sign-out
// ---------------------------------------------------------------------------------------------

pub(super) async fn sign_out(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&state, &session, &form.csrf)?;
    state
        .ward
        .portal()
        .sign_out(&session, state.clock.now())
        .await?;
    let mut response = Redirect::to("/portal/sign-in").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_session_cookie());
    Ok(response)
}

pub(super) async fn sign_out_everywhere(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&state, &session, &form.csrf)?;
    let actor = ward_core::model::Actor::User(session.user.user_id.clone());
    state
        .ward
        .portal()
        .sign_out_everywhere(
            &session.org(),
            &actor,
            &session.user_id(),
            state.clock.now(),
        )
        .await?;
    let mut response = Redirect::to("/portal/sign-in").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_session_cookie());
    Ok(response)
}
