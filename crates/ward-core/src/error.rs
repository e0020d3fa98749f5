//! The kinds of failure the core reports. Entry points map each kind to their own dialect.

use ward_store::StoreError;

/// A failure of a core operation. The message is safe to show to an administrator; it never
/// contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The change conflicts with existing state (e.g. a duplicate username).
    #[error("{0}")]
    Conflict(String),
    /// The input is malformed or out of range; `field` names the offending input.
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    /// The caller could not be authenticated.
    #[error("unauthenticated")]
    Unauthenticated,
    /// The caller is authenticated but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Too many requests; try again later.
    #[error("rate limited")]
    RateLimited,
    /// The thing asked for has expired.
    #[error("{0} expired")]
    Expired(String),
    /// The database cannot be reached for now (connection refused or lost, pool exhausted,
    /// store closing); the request may be tried again. Details are in the server log.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Something failed inside Ward or its database; details are in the server log.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// A stable machine-readable code for each kind.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::InvalidInput { .. } => "invalid_input",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::Expired(_) => "expired",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate(what) => Self::Conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::ConditionFailed(what) => Self::Conflict(what),
            StoreError::Unstorable(_) => Self::InvalidInput {
                field: "input",
                reason: "contains characters that cannot be accepted".into(),
            },
            StoreError::Unavailable(_) => Self::Unavailable(e.to_string()),
            StoreError::Corrupt(_) => Self::Internal(e.to_string()),
        }
    }
}

/// Result alias for core operations.
pub type CoreResult<T> = Result<T, CoreError>;
