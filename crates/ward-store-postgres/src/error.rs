//! Translation of sqlx errors into [`StoreError`]: nothing of sqlx crosses the store traits.

use sqlx::error::ErrorKind;
use ward_store::StoreError;

/// General translation: constraint violations keep their meaning, a value refused as data
/// (SQLSTATE class 22, e.g. a NUL character) is `Unstorable`, undecodable data and a schema
/// this build does not expect (class 42) are `Corrupt`, everything else (I/O, pool, server
/// shutdown, deadlock or serialization failures) is `Unavailable`.
pub(crate) fn store_err(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            let class = db
                .code()
                .map(|code| code.chars().take(2).collect::<String>());
            match (db.kind(), class.as_deref()) {
                (ErrorKind::UniqueViolation, _) => StoreError::Duplicate(message),
                (ErrorKind::ForeignKeyViolation, _) => StoreError::NotFound(message),
                (ErrorKind::NotNullViolation | ErrorKind::CheckViolation, _) | (_, Some("42")) => {
                    StoreError::Corrupt(message)
                }
                (_, Some("22")) => StoreError::Unstorable(message),
                _ => StoreError::Unavailable(message),
            }
        }
        sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
        err @ (sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }) => StoreError::Corrupt(err.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// For an INSERT: a unique violation means `duplicate` already exists, a foreign-key
/// violation means `missing` does not exist.
pub(crate) fn insert_err(err: sqlx::Error, duplicate: &str, missing: &str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Duplicate(duplicate.into())
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::NotFound(missing.into())
        }
        _ => store_err(err),
    }
}

/// For an INSERT into `users`: which of the two unique rules was hit.
pub(crate) fn user_insert_err(err: sqlx::Error) -> StoreError {
    // The constraint is named in migrations/0001_initial.sql.
    let username = matches!(&err, sqlx::Error::Database(db)
        if db.is_unique_violation() && db.constraint() == Some("users_org_username_key"));
    if username {
        StoreError::Duplicate("username".into())
    } else {
        insert_err(err, "user_id", "user")
    }
}

/// For an INSERT into `recovery_cases`: the user's one open case, or a case id or handle that
/// exists.
pub(crate) fn case_insert_err(err: sqlx::Error) -> StoreError {
    // The partial unique index is named in migrations/0006_recovery.sql.
    let open = matches!(&err, sqlx::Error::Database(db)
        if db.is_unique_violation() && db.constraint() == Some("recovery_cases_one_open"));
    if open {
        StoreError::Duplicate("open recovery case".into())
    } else {
        insert_err(err, "recovery case", "user")
    }
}

pub(crate) fn migrate_err(err: sqlx::migrate::MigrateError) -> StoreError {
    use sqlx::migrate::MigrateError;
    match err {
        MigrateError::Execute(err) | MigrateError::ExecuteMigration(err, _) => store_err(err),
        // The database knows migrations this build does not, or a released one was edited.
        other => StoreError::Corrupt(format!("migrations: {other}")),
    }
}
