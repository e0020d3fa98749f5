//! Adding a passkey, and the step-up (a fresh passkey check) before sensitive changes.

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use ward_core::CoreError;

use super::{CeremonyAnswer, check_csrf_header, confirm_first};
use crate::app::AppState;
use crate::web::{JsonError, Layout, SignedIn, WebError, render};

#[derive(Template)]
#[template(path = "portal/passkey_new.html")]
struct PasskeyNewPage {
    layout: Layout,
    frozen: bool,
}

pub(super) async fn passkey_new_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Response, WebError> {
    let frozen = session.user.factors_frozen_ms.is_some();
    if !frozen
        && state
            .ward
            .portal()
            .needs_step_up(&session, state.clock.now())
            .await?
    {
        return Ok(confirm_first("/portal/passkeys/new"));
    }
    Ok(render(&PasskeyNewPage {
        layout: Layout::new(&state, "Add a passkey", Some(&session)),
        frozen,
    }))
}

#[derive(Template)]
#[template(path = "portal/confirm.html")]
struct ConfirmPage {
    layout: Layout,
    next: String,
    repeat: bool,
}

#[derive(Debug, Deserialize)]
pub(super) struct ConfirmQuery {
    next: Option<String>,
}

pub(super) async fn confirm_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(q): Query<ConfirmQuery>,
) -> Response {
    // Only pages of the portal itself: never an open redirect.
    let next = q
        .next
        .filter(|n| n.starts_with("/portal") && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/portal".into());
    render(&ConfirmPage {
        layout: Layout::new(&state, "Confirm it's you", Some(&session)),
        repeat: next == "/portal",
        next,
    })
}

pub(super) async fn passkey_start(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
) -> Result<Json<Value>, JsonError> {
    check_csrf_header(&state, &session, &headers)?;
    let start = state
        .ward
        .portal()
        .passkey_register_start_for(&session, state.clock.now())
        .await?;
    Ok(Json(json!(start)))
}

pub(super) async fn passkey_finish(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
    Json(answer): Json<CeremonyAnswer>,
) -> Result<Json<Value>, JsonError> {
    check_csrf_header(&state, &session, &headers)?;
    let name = answer
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("Passkey");
    state
        .ward
        .portal()
        .passkey_register_finish(
            &session.org(),
            &session.user_id(),
            &answer.ceremony,
            &answer.credential,
            name,
            state.clock.now(),
        )
        .await?;
    Ok(Json(json!({ "redirect": "/portal?done=passkey" })))
}

pub(super) async fn step_up_start(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
) -> Result<Json<Value>, JsonError> {
    check_csrf_header(&state, &session, &headers)?;
    let start = state
        .ward
        .portal()
        .step_up_start(&session, state.clock.now())
        .await
        .map_err(|e| match e {
            CoreError::NotFound(_) => JsonError(
                StatusCode::CONFLICT,
                "You have no passkey to confirm with. Add one first.".into(),
            ),
            other => other.into(),
        })?;
    Ok(Json(json!(start)))
}

pub(super) async fn step_up_finish(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
    Json(answer): Json<CeremonyAnswer>,
) -> Result<Json<Value>, JsonError> {
    check_csrf_header(&state, &session, &headers)?;
    state
        .ward
        .portal()
        .step_up_finish(
            &session,
            &answer.ceremony,
            &answer.credential,
            state.clock.now(),
        )
        .await?;
    Ok(Json(json!({ "reload": true })))
}
