//! The driver glue every sqlx backend needs, written once: [`sqlx_glue!`](crate::sqlx_glue).

/// Defines, in a backend crate that depends on sqlx, `Connection` (a pooled connection
/// implementing [`Conn`](crate::Conn)) and `acquire` (one from a pool), `ResultRow` (implementing [`Row`](crate::Row)) and
/// `decode_err` (a sqlx error that is not the database's answer, as a `StoreError`), for the
/// sqlx database type `$db` with the row type `$row`. `$db_err` translates the database's
/// errors (`fn(sqlx::Error) -> DbError`): that mapping differs by backend.
///
/// A macro rather than generic code: it is expanded against one concrete sqlx database, so no
/// bounds bundle over `sqlx::Database` is needed and the compiler checks each backend's types.
#[macro_export]
macro_rules! sqlx_glue {
    (db: $db:ty, row: $row:ty, dialect: $dialect:expr, db_err: $db_err:path $(,)?) => {
        /// A pooled connection.
        pub struct Connection(::sqlx::pool::PoolConnection<$db>);

        impl ::std::fmt::Debug for Connection {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(::std::stringify!($db))
            }
        }

        /// A connection from `pool`.
        pub(crate) async fn acquire(
            pool: &::sqlx::Pool<$db>,
        ) -> Result<Connection, ::ward_store::StoreError> {
            let conn = pool.acquire().await;
            Ok(Connection(conn.map_err(|err| {
                ::ward_store::StoreError::from($db_err(err))
            })?))
        }

        type SqlxQuery<'q> = ::sqlx::query::Query<'q, $db, <$db as ::sqlx::Database>::Arguments>;

        fn prepare<'q>(query: $crate::Query<'_>) -> SqlxQuery<'q> {
            let (text, binds) = query.into_parts();
            let statement = match text {
                ::std::borrow::Cow::Borrowed(text) => ::sqlx::query(text),
                // Assembled from fixed fragments and placeholders only (see `built_query`).
                ::std::borrow::Cow::Owned(text) => ::sqlx::query(::sqlx::AssertSqlSafe(text)),
            };
            binds
                .into_iter()
                .fold(statement, |statement, value| match value {
                    $crate::Value::Int(int) => statement.bind(int),
                    $crate::Value::Text(text) => statement.bind(text),
                })
        }

        impl $crate::Conn for Connection {
            const DIALECT: $crate::Dialect = $dialect;
            type Row = ResultRow;

            async fn execute(&mut self, query: $crate::Query<'_>) -> Result<u64, $crate::DbError> {
                let done = prepare(query).execute(&mut *self.0).await;
                Ok(done.map_err($db_err)?.rows_affected())
            }

            async fn fetch_optional(
                &mut self,
                query: $crate::Query<'_>,
            ) -> Result<Option<ResultRow>, $crate::DbError> {
                let row = prepare(query).fetch_optional(&mut *self.0).await;
                Ok(row.map_err($db_err)?.map(ResultRow))
            }

            async fn fetch_all(
                &mut self,
                query: $crate::Query<'_>,
            ) -> Result<Vec<ResultRow>, $crate::DbError> {
                let rows = prepare(query).fetch_all(&mut *self.0).await;
                Ok(rows.map_err($db_err)?.into_iter().map(ResultRow).collect())
            }

            async fn control(&mut self, sql: &'static str) -> Result<(), $crate::DbError> {
                let done = ::sqlx::raw_sql(sql).execute(&mut *self.0).await;
                done.map(drop).map_err($db_err)
            }

            fn close_on_drop(&mut self) {
                self.0.close_on_drop();
            }
        }

        /// A result row.
        #[derive(Debug)]
        pub struct ResultRow($row);

        impl $crate::Row for ResultRow {
            fn int(&self, column: &str) -> Result<i64, ::ward_store::StoreError> {
                ::sqlx::Row::try_get(&self.0, column).map_err(decode_err)
            }

            fn opt_int(&self, column: &str) -> Result<Option<i64>, ::ward_store::StoreError> {
                ::sqlx::Row::try_get(&self.0, column).map_err(decode_err)
            }

            fn text(&self, column: &str) -> Result<String, ::ward_store::StoreError> {
                ::sqlx::Row::try_get(&self.0, column).map_err(decode_err)
            }

            fn opt_text(&self, column: &str) -> Result<Option<String>, ::ward_store::StoreError> {
                ::sqlx::Row::try_get(&self.0, column).map_err(decode_err)
            }
        }

        /// A column that could not be read, or a failure that is not the database's answer.
        pub(crate) fn decode_err(err: ::sqlx::Error) -> ::ward_store::StoreError {
            use ::ward_store::StoreError;
            match err {
                ::sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
                err @ (::sqlx::Error::ColumnDecode { .. }
                | ::sqlx::Error::Decode(_)
                | ::sqlx::Error::ColumnNotFound(_)
                | ::sqlx::Error::ColumnIndexOutOfBounds { .. }
                | ::sqlx::Error::TypeNotFound { .. }) => StoreError::Corrupt(err.to_string()),
                other => StoreError::Unavailable(other.to_string()),
            }
        }

        /// A failed migration.
        pub(crate) fn migrate_err(err: ::sqlx::migrate::MigrateError) -> ::ward_store::StoreError {
            match err {
                ::sqlx::migrate::MigrateError::Execute(err)
                | ::sqlx::migrate::MigrateError::ExecuteMigration(err, _) => $db_err(err).into(),
                // The database knows migrations this build does not, or a released one was
                // edited.
                other => ::ward_store::StoreError::Corrupt(format!("migrations: {other}")),
            }
        }
    };
}
