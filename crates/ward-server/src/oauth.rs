//! The back channel of the hosted prompt (Duo Web SDK v4): `POST /oauth/v1/health_check` and
//! `POST /oauth/v1/token`, both authenticated by a client assertion. Parameters may come in the
//! query string (the Python client) or a form body (Go, Java); both are merged.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use ward_core::service::{OAuthError, OAuthErrorCode, TokenParams};
use ward_proto::duo::envelope::DuoErrorCode;

use crate::app::AppState;

const MAX_BODY: usize = 16 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/v1/health_check", post(health_check))
        .route("/oauth/v1/token", post(token))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .route_layer(axum::middleware::from_fn_with_state(
            crate::input::Dialect::OAuth,
            crate::input::refuse_unstorable,
        ))
}

/// Query and form fields, the form winning on conflicts.
fn merged(query: Option<&str>, body: &[u8]) -> HashMap<String, String> {
    let mut fields: HashMap<String, String> = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    fields.extend(form_urlencoded::parse(body).into_owned());
    fields
}

async fn health_check(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let now = state.clock.now();
    let fields = merged(query.as_deref(), &body);
    match state
        .ward
        .prompt()
        .health_check(
            fields.get("client_id").map(String::as_str),
            fields.get("client_assertion").map_or("", String::as_str),
            now,
        )
        .await
    {
        Ok(timestamp) => (
            StatusCode::OK,
            axum::Json(json!({ "stat": "OK", "response": { "timestamp": timestamp } })),
        )
            .into_response(),
        Err(e) if e.error == OAuthErrorCode::TemporarilyUnavailable => {
            crate::error::ApiError::code(DuoErrorCode::Unavailable).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "stat": "FAIL",
                "code": 40002,
                "message": e.error.as_str(),
                "message_detail": e.description,
                "timestamp": now.timestamp(),
            })),
        )
            .into_response(),
    }
}

async fn token(State(state): State<AppState>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let mut fields = merged(query.as_deref(), &body);
    let params = TokenParams {
        grant_type: fields.remove("grant_type"),
        code: fields.remove("code"),
        redirect_uri: fields.remove("redirect_uri"),
        client_id: fields.remove("client_id"),
        client_assertion_type: fields.remove("client_assertion_type"),
        client_assertion: fields.remove("client_assertion"),
    };
    match state.ward.prompt().token(&params, state.clock.now()).await {
        Ok(tokens) => {
            let mut response = axum::Json(tokens).into_response();
            response.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(OAuthError { error, description }) => {
            let status = match error {
                // Duo answers a bad client assertion with 400 too; its clients expect that.
                OAuthErrorCode::InvalidRequest
                | OAuthErrorCode::InvalidClient
                | OAuthErrorCode::InvalidGrant
                | OAuthErrorCode::UnsupportedGrantType => StatusCode::BAD_REQUEST,
                OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let body = json!({ "error": error.as_str(), "error_description": description });
            (status, axum::Json(body)).into_response()
        }
    }
}
