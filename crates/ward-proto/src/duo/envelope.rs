//! The Duo response envelope and error codes (duo-protocol §2).
//!
//! Success is HTTP 200 with `{"stat":"OK","response":...}`; failure is HTTP `code / 100` with
//! `{"stat":"FAIL","code":NNNNN,"message":"...","message_detail":"..."}`.
//!
//! The success type is named `Ok` after the wire's `stat`; refer to it as `envelope::Ok` so it
//! does not shadow `Result::Ok`.

use serde::{Deserialize, Serialize};

/// The `stat` of a success envelope: always the string `"OK"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OkStat {
    /// `"OK"`.
    #[default]
    #[serde(rename = "OK")]
    Ok,
}

/// The `stat` of a failure envelope: always the string `"FAIL"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailStat {
    /// `"FAIL"`.
    #[default]
    #[serde(rename = "FAIL")]
    Fail,
}

/// A success envelope: `{"stat":"OK","response":...}`.
///
/// `response` may be an object, an array or a bare string (`""` for deletes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ok<T> {
    /// Always `"OK"`.
    pub stat: OkStat,
    /// The payload.
    pub response: T,
}

impl<T> Ok<T> {
    /// Wraps a payload.
    pub fn new(response: T) -> Self {
        Self {
            stat: OkStat::Ok,
            response,
        }
    }
}

/// A failure envelope: `{"stat":"FAIL","code":...,"message":...,"message_detail":...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fail {
    /// Always `"FAIL"`.
    pub stat: FailStat,
    /// The five-digit Duo code; the HTTP status is `code / 100`.
    pub code: u32,
    /// The human-readable message, shown by clients.
    pub message: String,
    /// Usually the offending parameter's name; omitted when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_detail: Option<String>,
}

impl Fail {
    /// A failure with the code's standard message and no detail.
    pub fn new(code: DuoErrorCode) -> Self {
        Self {
            stat: FailStat::Fail,
            code: code.code(),
            message: code.default_message().to_owned(),
            message_detail: None,
        }
    }

    /// A failure with the code's standard message and a detail (usually a parameter name).
    pub fn with_detail(code: DuoErrorCode, detail: impl Into<String>) -> Self {
        Self {
            message_detail: Some(detail.into()),
            ..Self::new(code)
        }
    }

    /// The HTTP status this failure is sent with.
    pub fn http_status(&self) -> u16 {
        (self.code / 100) as u16
    }
}

impl From<DuoErrorCode> for Fail {
    fn from(code: DuoErrorCode) -> Self {
        Self::new(code)
    }
}

/// The error codes Ward sends (duo-protocol §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DuoErrorCode {
    /// 40001: a required parameter is absent.
    MissingParameters,
    /// 40002: a parameter has a bad value.
    InvalidParameters,
    /// 40101: no or malformed `Authorization`.
    MissingCredentials,
    /// 40102: unknown integration key.
    InvalidIntegrationKey,
    /// 40103: the signature does not match.
    InvalidSignature,
    /// 40105: the date is missing, unparsable or outside the allowed window.
    InvalidDate,
    /// 40301: wrong integration type or permission.
    Forbidden,
    /// 40401: unknown id or path.
    NotFound,
    /// 40501: method not allowed.
    MethodNotAllowed,
    /// 42901: rate limited. Every official client backs off for up to ~65 s.
    TooManyRequests,
    /// 50000: internal error.
    Internal,
    /// 50301: the service (its database) is unavailable for now; sent with `Retry-After`.
    Unavailable,
}

impl DuoErrorCode {
    /// Every code, in table order.
    pub const ALL: [Self; 12] = [
        Self::MissingParameters,
        Self::InvalidParameters,
        Self::MissingCredentials,
        Self::InvalidIntegrationKey,
        Self::InvalidSignature,
        Self::InvalidDate,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::TooManyRequests,
        Self::Internal,
        Self::Unavailable,
    ];

    /// The five-digit code.
    pub const fn code(self) -> u32 {
        match self {
            Self::MissingParameters => 40001,
            Self::InvalidParameters => 40002,
            Self::MissingCredentials => 40101,
            Self::InvalidIntegrationKey => 40102,
            Self::InvalidSignature => 40103,
            Self::InvalidDate => 40105,
            Self::Forbidden => 40301,
            Self::NotFound => 40401,
            Self::MethodNotAllowed => 40501,
            Self::TooManyRequests => 42901,
            Self::Internal => 50000,
            Self::Unavailable => 50301,
        }
    }

    /// The HTTP status: `code / 100`.
    pub const fn http_status(self) -> u16 {
        (self.code() / 100) as u16
    }

    /// The standard `message` for this code.
    pub const fn default_message(self) -> &'static str {
        match self {
            Self::MissingParameters => "Missing required request parameters",
            Self::InvalidParameters => "Invalid request parameters",
            Self::MissingCredentials => "Missing request credentials",
            Self::InvalidIntegrationKey => "Invalid integration key in request credentials",
            Self::InvalidSignature => "Invalid signature in request credentials",
            // The spec leaves this message unverified; no client branches on it.
            Self::InvalidDate => "Invalid or expired request date",
            Self::Forbidden => "Access forbidden",
            Self::NotFound => "Resource not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::TooManyRequests => "Too Many Requests",
            Self::Internal => "Internal server error",
            Self::Unavailable => "Service temporarily unavailable",
        }
    }

    /// The variant for a five-digit code, if Ward knows it.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ok_serialises_with_literal_stat() {
        let body = serde_json::to_value(Ok::new(json!({"time": 1}))).unwrap();
        assert_eq!(body, json!({"stat": "OK", "response": {"time": 1}}));
        let empty = serde_json::to_string(&Ok::new("")).unwrap();
        assert_eq!(empty, r#"{"stat":"OK","response":""}"#);
    }

    #[test]
    fn ok_deserialises_only_ok() {
        let parsed: Ok<String> = serde_json::from_str(r#"{"stat":"OK","response":"x"}"#).unwrap();
        assert_eq!(parsed, Ok::new("x".to_owned()));
        assert!(serde_json::from_str::<Ok<String>>(r#"{"stat":"FAIL","response":"x"}"#).is_err());
        assert!(serde_json::from_str::<Ok<String>>(r#"{"stat":"OK"}"#).is_err());
    }

    #[test]
    fn fail_serialises_and_skips_missing_detail() {
        let fail = Fail::with_detail(DuoErrorCode::InvalidParameters, "username");
        assert_eq!(
            serde_json::to_value(&fail).unwrap(),
            json!({"stat": "FAIL", "code": 40002, "message": "Invalid request parameters",
                   "message_detail": "username"})
        );
        assert_eq!(fail.http_status(), 400);
        let fail = Fail::from(DuoErrorCode::NotFound);
        assert_eq!(
            serde_json::to_string(&fail).unwrap(),
            r#"{"stat":"FAIL","code":40401,"message":"Resource not found"}"#
        );
        let parsed: Fail =
            serde_json::from_str(r#"{"stat":"FAIL","code":40401,"message":"Resource not found"}"#)
                .unwrap();
        assert_eq!(parsed, fail);
    }

    #[test]
    fn codes_statuses_and_messages_match_the_table() {
        let table = [
            (40001, 400, "Missing required request parameters"),
            (40002, 400, "Invalid request parameters"),
            (40101, 401, "Missing request credentials"),
            (40102, 401, "Invalid integration key in request credentials"),
            (40103, 401, "Invalid signature in request credentials"),
            (40105, 401, "Invalid or expired request date"),
            (40301, 403, "Access forbidden"),
            (40401, 404, "Resource not found"),
            (40501, 405, "Method not allowed"),
            (42901, 429, "Too Many Requests"),
            (50000, 500, "Internal server error"),
            (50301, 503, "Service temporarily unavailable"),
        ];
        for (code, (number, status, message)) in DuoErrorCode::ALL.into_iter().zip(table) {
            assert_eq!(code.code(), number);
            assert_eq!(code.http_status(), status);
            assert_eq!(code.default_message(), message);
            assert_eq!(DuoErrorCode::from_code(number), Some(code));
            assert_eq!(Fail::new(code).http_status(), status);
        }
        assert_eq!(DuoErrorCode::from_code(40104), None);
    }
}
