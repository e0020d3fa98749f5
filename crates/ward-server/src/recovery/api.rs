//! The JSON calls the case page's script makes once a case is ready: receive the enrolment
//! token, register a new passkey with it, then sign in once with that passkey to finish.
//!
//! # Security
//! The token travels only between this origin's script and these calls; the case handle stays
//! in its `HttpOnly` cookie.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api_handle;
use crate::app::AppState;
use crate::web::JsonError;

#[derive(Debug, Deserialize)]
pub(super) struct TokenBody {
    token: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct EnrolAnswer {
    token: String,
    ceremony: String,
    credential: Value,
}

#[derive(Debug, Deserialize)]
pub(super) struct ConfirmAnswer {
    ceremony: String,
    credential: Value,
}

pub(super) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, JsonError> {
    let handle = api_handle(&headers)?;
    let token = state
        .ward
        .recovery()
        .issue_token(&handle, state.clock.now())
        .await?;
    Ok(Json(json!({ "token": token.as_str() })))
}

pub(super) async fn enrol_start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<TokenBody>,
) -> Result<Json<Value>, JsonError> {
    let handle = api_handle(&headers)?;
    let start = state
        .ward
        .recovery()
        .enrol_start(&handle, &body.token, state.clock.now())
        .await?;
    Ok(Json(json!(start)))
}

pub(super) async fn enrol_finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(answer): Json<EnrolAnswer>,
) -> Result<Json<Value>, JsonError> {
    let handle = api_handle(&headers)?;
    state
        .ward
        .recovery()
        .enrol_finish(
            &handle,
            &answer.token,
            &answer.ceremony,
            &answer.credential,
            state.clock.now(),
        )
        .await?;
    Ok(Json(json!({ "reload": true })))
}

pub(super) async fn confirm_start(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, JsonError> {
    let handle = api_handle(&headers)?;
    let start = state
        .ward
        .recovery()
        .confirm_start(&handle, state.clock.now())
        .await?;
    Ok(Json(json!(start)))
}

/// The new passkey signed in: the recovery completes and the new recovery codes are shown once.
pub(super) async fn confirm_finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(answer): Json<ConfirmAnswer>,
) -> Result<Json<Value>, JsonError> {
    let handle = api_handle(&headers)?;
    let codes = state
        .ward
        .recovery()
        .confirm_finish(
            &handle,
            &answer.ceremony,
            &answer.credential,
            state.clock.now(),
        )
        .await?;
    let codes: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    Ok(Json(json!({ "codes": codes })))
}
