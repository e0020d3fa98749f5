//! Translation of PostgreSQL's errors: nothing of sqlx crosses the store traits.

use sqlx::error::ErrorKind;
use ward_store::StoreError;
use ward_store_sql::{DbError, UniqueRule};

use crate::glue::decode_err;

/// General translation (see [`db_err`]).
pub(crate) fn store_err(err: sqlx::Error) -> StoreError {
    db_err(err).into()
}

/// A failed statement: constraint violations keep their meaning, a value refused as data
/// (SQLSTATE class 22, e.g. a NUL character) is `Unstorable`, undecodable data and a schema
/// this build does not expect (class 42) are `Corrupt`, everything else (I/O, pool, server
/// shutdown, deadlock or serialization failures) is `Unavailable`.
pub(crate) fn db_err(err: sqlx::Error) -> DbError {
    let sqlx::Error::Database(db) = err else {
        return DbError::Other(decode_err(err));
    };
    let message = db.message().to_owned();
    let class = db
        .code()
        .map(|code| code.chars().take(2).collect::<String>());
    match (db.kind(), class.as_deref()) {
        (ErrorKind::UniqueViolation, _) => {
            // The constraints are named in migrations/0001_initial.sql and 0006_recovery.sql.
            let rule = match db.constraint() {
                Some("users_org_username_key") => Some(UniqueRule::Username),
                Some("recovery_cases_one_open") => Some(UniqueRule::OpenRecoveryCase),
                _ => None,
            };
            DbError::Unique { rule, message }
        }
        (ErrorKind::ForeignKeyViolation, _) => DbError::ForeignKey(message),
        (ErrorKind::NotNullViolation | ErrorKind::CheckViolation, _) | (_, Some("42")) => {
            DbError::Other(StoreError::Corrupt(message))
        }
        (_, Some("22")) => DbError::Other(StoreError::Unstorable(message)),
        _ => DbError::Other(StoreError::Unavailable(message)),
    }
}
