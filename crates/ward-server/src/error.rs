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

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use crate::web::WebError;

    /// Database outage: the Duo answer is 503 / 50301 with `Retry-After`, and says nothing of
    /// the cause; pages get a 503 page.
    #[tokio::test]
    async fn database_outage_is_503_with_retry_after_and_no_internals() {
        let cause = "connection refused to db.internal:5432";
        let response = ApiError::from(CoreError::Unavailable(cause.into())).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER).unwrap(),
            RETRY_AFTER_SECS
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"stat": "FAIL", "code": 50301,
                               "message": "Service temporarily unavailable"})
        );
        let page = WebError::from(CoreError::Unavailable(cause.into()));
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!page.message.contains("db.internal"));
        // Other server errors keep their 500 and no Retry-After.
        let response = ApiError::from(CoreError::Internal("bug".into())).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
