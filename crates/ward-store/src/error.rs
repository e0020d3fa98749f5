//! Storage errors, already translated from the driver's.

/// What went wrong in the store. Drivers' errors never cross this boundary as such.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (e.g. a username that exists).
    #[error("already exists: {0}")]
    Duplicate(String),
    /// A conditional change found the record in another state (e.g. a TOTP step already
    /// used, a transaction already decided). The whole change set was rolled back.
    #[error("conditional change did not apply: {0}")]
    ConditionFailed(String),
    /// A change referred to a record that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A value holds data no store can hold (a NUL character, or a value the database
    /// refused as data). Only the change set (or read) holding it failed; nothing was changed.
    #[error("value cannot be stored: {0}")]
    Unstorable(String),
    /// The database could not be reached or failed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Stored data is not what this version of Ward expects.
    #[error("corrupt or unexpected stored data: {0}")]
    Corrupt(String),
}
