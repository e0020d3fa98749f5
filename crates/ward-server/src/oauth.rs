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
        Err(e) => health_check_refusal(&e, now.timestamp()),
    }
}

/// A refused health check, in the Duo envelope its clients read: a failure of Ward or its
/// database is a 5xx, never a client's 400.
fn health_check_refusal(e: &OAuthError, timestamp: i64) -> Response {
    let server_side = match e.error {
        OAuthErrorCode::TemporarilyUnavailable => Some(DuoErrorCode::Unavailable),
        OAuthErrorCode::ServerError => Some(DuoErrorCode::Internal),
        OAuthErrorCode::InvalidRequest
        | OAuthErrorCode::InvalidClient
        | OAuthErrorCode::InvalidGrant
        | OAuthErrorCode::UnsupportedGrantType => None,
    };
    if let Some(code) = server_side {
        return crate::error::ApiError::code(code).into_response();
    }
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "stat": "FAIL",
            "code": 40002,
            "message": e.error.as_str(),
            "message_detail": e.description,
            "timestamp": timestamp,
        })),
    )
        .into_response()
}

/// The HTTP status of a token-endpoint error.
fn token_error_status(error: OAuthErrorCode) -> StatusCode {
    match error {
        // Duo answers a bad client assertion with 400 too; its clients expect that.
        OAuthErrorCode::InvalidRequest
        | OAuthErrorCode::InvalidClient
        | OAuthErrorCode::InvalidGrant
        | OAuthErrorCode::UnsupportedGrantType => StatusCode::BAD_REQUEST,
        OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
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
            let body = json!({ "error": error.as_str(), "error_description": description });
            (token_error_status(error), axum::Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use ward_core::CoreError;

    use super::*;

    /// The index of a core error's kind; a new kind does not compile here until the table
    /// below says how the OAuth endpoints answer it.
    fn kind(e: &CoreError) -> usize {
        match e {
            CoreError::NotFound(_) => 0,
            CoreError::Conflict(_) => 1,
            CoreError::InvalidInput { .. } => 2,
            CoreError::Unauthenticated => 3,
            CoreError::Forbidden(_) => 4,
            CoreError::RateLimited => 5,
            CoreError::Expired(_) => 6,
            CoreError::Unavailable(_) => 7,
            CoreError::Internal(_) => 8,
        }
    }

    const KINDS: usize = 9;
    const INSIDE: &str = "inside-detail";

    /// Issue 11: every kind of core error has its own OAuth `error` and HTTP status at the
    /// token endpoint and the health check (none is a `server_error` by default), and the
    /// description is a fixed sentence, never the error's own text.
    #[test]
    fn every_core_error_kind_has_its_oauth_error_and_status() {
        let table = [
            (
                CoreError::NotFound(INSIDE.into()),
                "invalid_grant",
                400,
                400,
            ),
            (
                CoreError::Conflict(INSIDE.into()),
                "invalid_grant",
                400,
                400,
            ),
            (
                CoreError::InvalidInput {
                    field: "code",
                    reason: INSIDE.into(),
                },
                "invalid_request",
                400,
                400,
            ),
            (CoreError::Unauthenticated, "invalid_client", 400, 400),
            (
                CoreError::Forbidden(INSIDE.into()),
                "invalid_client",
                400,
                400,
            ),
            (CoreError::RateLimited, "temporarily_unavailable", 503, 503),
            (CoreError::Expired(INSIDE.into()), "invalid_grant", 400, 400),
            (
                CoreError::Unavailable(INSIDE.into()),
                "temporarily_unavailable",
                503,
                503,
            ),
            (CoreError::Internal(INSIDE.into()), "server_error", 500, 500),
        ];
        let mut covered = [false; KINDS];
        for (e, error, token_status, health_status) in table {
            covered[kind(&e)] = true;
            let name = e.code();
            let answer = OAuthError::from(e);
            assert_eq!(answer.error.as_str(), error, "{name}");
            assert!(!answer.description.contains(INSIDE), "{name}");
            let status = token_error_status(answer.error);
            assert_eq!(
                status.as_u16(),
                token_status,
                "{name} at the token endpoint"
            );
            let status = health_check_refusal(&answer, 0).status();
            assert_eq!(status.as_u16(), health_status, "{name} at the health check");
        }
        assert_eq!(covered, [true; KINDS], "a kind has no row");
    }
}
