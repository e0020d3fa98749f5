//! PostgreSQL store tests. They need a server: set `WARD_TEST_DATABASE_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/test`). Each test works in a fresh schema of that
//! database and drops it afterwards (`ward_testkit::db::on_postgres`). Without the variable the
//! tests are skipped, unless `WARD_TEST_STRICT=1` (CI), which turns the skip into a failure.

// Integration tests are always built with cfg(test); saying so lets the workspace's
// allow-unwrap-in-tests (and friends) cover the modules' helpers, not only #[test] functions.
#![cfg(test)]

mod conformance;
mod signals;
