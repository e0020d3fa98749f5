//! The one mapping from core errors to HTTP responses in Duo's envelope.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ward_core::CoreError;
use ward_proto::duo::envelope::{DuoErrorCode, Fail};

/// How long a client is asked to wait (`Retry-After`) when the database is unavailable.
pub const RETRY_AFTER_SECS: &str = "5";

/// An error answered in Duo's `{"stat":"FAIL",…}` envelope, HTTP status = code / 100.
#[derive(Debug)]
pub struct ApiError(pub Fail);

impl ApiError {
    /// The code's standard message.
    pub fn code(code: DuoErrorCode) -> Self {
        Self(Fail::new(code))
    }

    /// The code's standard message, with a detail (usually the parameter's name).
    pub fn detail(code: DuoErrorCode, detail: impl Into<String>) -> Self {
        Self(Fail::with_detail(code, detail))
    }

    /// A custom message and detail.
    pub fn message(code: DuoErrorCode, message: impl Into<String>, detail: Option<&str>) -> Self {
        let mut fail = Fail::new(code);
        fail.message = message.into();
        fail.message_detail = detail.map(str::to_owned);
        Self(fail)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound(_) => Self::code(DuoErrorCode::NotFound),
            CoreError::Conflict(what) => Self::message(
                DuoErrorCode::InvalidParameters,
                "Invalid request parameters",
                Some(&what),
            ),
            CoreError::InvalidInput { field, reason } => {
                Self::message(DuoErrorCode::InvalidParameters, reason, Some(field))
            }
            CoreError::Unauthenticated => Self::code(DuoErrorCode::InvalidSignature),
            CoreError::Forbidden(_) => Self::code(DuoErrorCode::Forbidden),
            CoreError::RateLimited => Self::code(DuoErrorCode::TooManyRequests),
            CoreError::Expired(what) => Self::message(
                DuoErrorCode::InvalidParameters,
                format!("The {what} has expired"),
                None,
            ),
            CoreError::Unavailable(detail) => {
                tracing::error!(%detail, "database unavailable");
                Self::code(DuoErrorCode::Unavailable)
            }
            CoreError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Self::code(DuoErrorCode::Internal)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.0)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}
