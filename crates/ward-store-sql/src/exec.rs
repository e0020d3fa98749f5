//! The statement layer the shared code is written against: a statement with its bound values
//! ([`Query`]), a connection that runs it ([`Conn`]), a result row ([`Row`]) and the database
//! errors that carry meaning ([`DbError`]). Each backend crate implements [`Conn`] and [`Row`]
//! for its driver in a few lines; nothing here knows a driver.

use std::borrow::Cow;

use ward_store::StoreError;

/// One bound value. Values borrow from the caller (no copy until the driver encodes them), and
/// a NULL keeps its type, which PostgreSQL needs to infer the parameter's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// A `BIGINT` (flags are stored as 0/1).
    Int(Option<i64>),
    /// A `TEXT`.
    Text(Option<&'a str>),
}

impl From<i64> for Value<'_> {
    fn from(value: i64) -> Self {
        Value::Int(Some(value))
    }
}

impl From<&i64> for Value<'_> {
    fn from(value: &i64) -> Self {
        Value::Int(Some(*value))
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(value: Option<i64>) -> Self {
        Value::Int(value)
    }
}

impl From<&Option<i64>> for Value<'_> {
    fn from(value: &Option<i64>) -> Self {
        Value::Int(*value)
    }
}

/// A flag, stored as BIGINT 0/1 (portable across both backends).
impl From<bool> for Value<'_> {
    fn from(value: bool) -> Self {
        Value::Int(Some(i64::from(value)))
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(value: &'a str) -> Self {
        Value::Text(Some(value))
    }
}

impl<'a> From<&'a &str> for Value<'a> {
    fn from(value: &'a &str) -> Self {
        Value::Text(Some(value))
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(value: &'a String) -> Self {
        Value::Text(Some(value))
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Value::Text(value)
    }
}

impl<'a> From<&'a Option<String>> for Value<'a> {
    fn from(value: &'a Option<String>) -> Self {
        Value::Text(value.as_deref())
    }
}

/// A statement and its bound values. The text uses `$1`, `$2`, … placeholders, which both
/// PostgreSQL and SQLite (through sqlx) understand; a number may be used more than once.
#[derive(Debug)]
pub struct Query<'a> {
    text: Cow<'static, str>,
    binds: Vec<Value<'a>>,
}

/// Most statements bind fewer values than this; reserving it up front saves regrowing.
const USUAL_BINDS: usize = 8;

/// Starts a statement with fixed text.
pub fn query<'a>(text: &'static str) -> Query<'a> {
    Query {
        text: Cow::Borrowed(text),
        binds: Vec::with_capacity(USUAL_BINDS),
    }
}

/// Starts a statement whose text was assembled at run time (multi-row inserts). The text must
/// be built from fixed fragments and placeholders only, never from a value.
pub fn built_query<'a>(text: String, binds: usize) -> Query<'a> {
    Query {
        text: Cow::Owned(text),
        binds: Vec::with_capacity(binds),
    }
}

impl<'a> Query<'a> {
    /// Binds the next placeholder.
    #[must_use]
    pub fn bind(mut self, value: impl Into<Value<'a>>) -> Self {
        self.binds.push(value.into());
        self
    }

    /// Binds the next placeholder, in place (for statements built in a loop).
    pub fn push_bind(&mut self, value: impl Into<Value<'a>>) {
        self.binds.push(value.into());
    }

    /// The statement's text and its bound values in placeholder order, for the backend to
    /// hand to its driver.
    pub fn into_parts(self) -> (Cow<'static, str>, Vec<Value<'a>>) {
        (self.text, self.binds)
    }

    /// Runs the statement; returns how many rows it changed.
    pub async fn execute(self, conn: &mut impl Conn) -> Result<u64, DbError> {
        conn.execute(self).await
    }

    /// Runs the statement; returns its first row, if any.
    pub async fn fetch_optional<C: Conn>(self, conn: &mut C) -> Result<Option<C::Row>, DbError> {
        conn.fetch_optional(self).await
    }

    /// Runs the statement; returns every row.
    pub async fn fetch_all<C: Conn>(self, conn: &mut C) -> Result<Vec<C::Row>, DbError> {
        conn.fetch_all(self).await
    }
}

/// A database connection of one backend, as the shared statements use it.
pub trait Conn: Send {
    /// Which statement variants this backend needs.
    const DIALECT: crate::Dialect;
    /// A result row.
    type Row: Row + Send;

    /// Runs a statement; returns how many rows it changed.
    fn execute(&mut self, query: Query<'_>) -> impl Future<Output = Result<u64, DbError>> + Send;
    /// Runs a statement; returns its first row, if any.
    fn fetch_optional(
        &mut self,
        query: Query<'_>,
    ) -> impl Future<Output = Result<Option<Self::Row>, DbError>> + Send;
    /// Runs a statement; returns every row.
    fn fetch_all(
        &mut self,
        query: Query<'_>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, DbError>> + Send;
    /// Runs a transaction-control statement (`BEGIN`, `SAVEPOINT …`, `COMMIT`) as it is,
    /// without preparing it.
    fn control(&mut self, sql: &'static str) -> impl Future<Output = Result<(), DbError>> + Send;
    /// Makes sure this connection is closed, never handed back to the pool, when dropped (it
    /// may be in the middle of a transaction).
    fn close_on_drop(&mut self);
}

/// A result row of one backend. A column that is missing or holds another type is
/// [`StoreError::Corrupt`].
pub trait Row {
    /// A `BIGINT NOT NULL` column.
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    /// A nullable `BIGINT` column.
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    /// A `TEXT NOT NULL` column.
    fn text(&self, column: &str) -> Result<String, StoreError>;
    /// A nullable `TEXT` column.
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;

    /// A column of whatever type the caller expects (see [`Column`]).
    fn get<T: Column>(&self, column: &str) -> Result<T, StoreError>
    where
        Self: Sized,
    {
        T::read(self, column)
    }

    /// A flag stored as BIGINT 0/1 (portable across both backends).
    fn flag(&self, column: &str) -> Result<bool, StoreError>
    where
        Self: Sized,
    {
        match self.int(column)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(StoreError::Corrupt(format!(
                "{column} is {other}, expected 0 or 1"
            ))),
        }
    }
}

/// The Rust types a column is read as.
pub trait Column: Sized {
    /// Reads `column` of `row` as this type.
    fn read<R: Row + ?Sized>(row: &R, column: &str) -> Result<Self, StoreError>;
}

impl Column for i64 {
    fn read<R: Row + ?Sized>(row: &R, column: &str) -> Result<Self, StoreError> {
        row.int(column)
    }
}

impl Column for Option<i64> {
    fn read<R: Row + ?Sized>(row: &R, column: &str) -> Result<Self, StoreError> {
        row.opt_int(column)
    }
}

impl Column for String {
    fn read<R: Row + ?Sized>(row: &R, column: &str) -> Result<Self, StoreError> {
        row.text(column)
    }
}

impl Column for Option<String> {
    fn read<R: Row + ?Sized>(row: &R, column: &str) -> Result<Self, StoreError> {
        row.opt_text(column)
    }
}

/// A unique rule whose violation means something more precise than "duplicate". Each backend
/// recognises them in its own error messages (see its `error.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UniqueRule {
    /// `users (org_id, username)`.
    Username,
    /// A user's one open recovery case (`recovery_cases_one_open`).
    OpenRecoveryCase,
}

/// A failed statement, as the backend reports it.
#[derive(Debug)]
pub enum DbError {
    /// A unique rule was broken; `rule` says which when it is one the shared code asks about.
    Unique {
        rule: Option<UniqueRule>,
        message: String,
    },
    /// A foreign key pointed at nothing.
    ForeignKey(String),
    /// Anything else, already translated.
    Other(StoreError),
}

impl From<DbError> for StoreError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unique { message, .. } => StoreError::Duplicate(message),
            DbError::ForeignKey(message) => StoreError::NotFound(message),
            DbError::Other(err) => err,
        }
    }
}

impl From<StoreError> for DbError {
    fn from(err: StoreError) -> Self {
        DbError::Other(err)
    }
}

/// For an INSERT: a unique violation means `duplicate` already exists, a foreign-key
/// violation means `missing` does not exist.
pub(crate) fn insert_err(err: DbError, duplicate: &str, missing: &str) -> StoreError {
    match err {
        DbError::Unique { .. } => StoreError::Duplicate(duplicate.into()),
        DbError::ForeignKey(_) => StoreError::NotFound(missing.into()),
        DbError::Other(err) => err,
    }
}

/// For an INSERT into `users`: which of the two unique rules was hit.
pub(crate) fn user_insert_err(err: DbError) -> StoreError {
    match err {
        DbError::Unique {
            rule: Some(UniqueRule::Username),
            ..
        } => StoreError::Duplicate("username".into()),
        other => insert_err(other, "user_id", "user"),
    }
}

/// For an INSERT into `recovery_cases`: the user's one open case, or a case id or handle that
/// exists.
pub(crate) fn case_insert_err(err: DbError) -> StoreError {
    match err {
        DbError::Unique {
            rule: Some(UniqueRule::OpenRecoveryCase),
            ..
        } => StoreError::Duplicate("open recovery case".into()),
        other => insert_err(other, "recovery case", "user"),
    }
}
