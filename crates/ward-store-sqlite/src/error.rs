//! Translation of SQLite's errors: nothing of sqlx crosses the store traits.

use sqlx::error::ErrorKind;
use ward_store::StoreError;
use ward_store_sql::{DbError, UniqueRule};

use crate::glue::decode_err;

/// General translation: constraint violations keep their meaning, undecodable data is
/// `Corrupt`, everything else (I/O, busy, pool) is `Unavailable`.
pub(crate) fn store_err(err: sqlx::Error) -> StoreError {
    db_err(err).into()
}

/// A failed statement. SQLite names the columns of a broken unique rule in its message,
/// e.g. `UNIQUE constraint failed: users.org_id, users.username`.
pub(crate) fn db_err(err: sqlx::Error) -> DbError {
    match err {
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            match db.kind() {
                ErrorKind::UniqueViolation => {
                    let rule = if message.contains("users.username") {
                        Some(UniqueRule::Username)
                    } else if message.contains("recovery_cases.user_id") {
                        // The partial index `recovery_cases_one_open` (org_id, user_id).
                        Some(UniqueRule::OpenRecoveryCase)
                    } else {
                        None
                    };
                    DbError::Unique { rule, message }
                }
                ErrorKind::ForeignKeyViolation => DbError::ForeignKey(message),
                ErrorKind::NotNullViolation | ErrorKind::CheckViolation => {
                    DbError::Other(StoreError::Corrupt(message))
                }
                _ => DbError::Other(StoreError::Unavailable(message)),
            }
        }
        other => DbError::Other(decode_err(other)),
    }
}
