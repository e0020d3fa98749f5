//! Fixtures shared by Ward's tests, so that the core, store and server tests set up databases,
//! devices, passkeys and routers the same way instead of each keeping a copy.
//!
//! - [`db`]: a temporary SQLite database and a private PostgreSQL schema (skipped without
//!   `WARD_TEST_DATABASE_URL`, a failure when `WARD_TEST_STRICT=1`), and [`db::Backend`] to run
//!   one test body on either.
//! - [`device`]: a signed push device (its key, its activation request, its signed answers).
//! - [`passkey`]: software passkeys and security keys driven through the JSON a browser carries.
//! - `clock`, `org`, `router` (feature `server`): the test clock, an organisation builder and
//!   the router state for `tower::ServiceExt::oneshot` tests.
//!
//! # The cycle rule
//!
//! `ward-core`'s unit tests are compiled as part of `ward-core` itself. Any `ward-core` type
//! reached through this crate comes from a second copy of `ward-core` and does not match the
//! crate under test. So the modules above the line (`db`, `device`, `passkey`) speak only
//! `ward-store`, `ward-proto`, webauthn and plain types, and everything that names a
//! `ward-core` or `ward-server` type sits behind the `server` feature, which `ward-core` does
//! not turn on.
//!
//! This crate is for tests only (`publish = false`, a dev-dependency everywhere): its helpers
//! fail the calling test by panicking (a missing JSON field included), which is why the
//! panicking lints are allowed here.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fixture fails the test that calls it by panicking"
)]

pub mod db;
pub mod device;
pub mod passkey;

#[cfg(feature = "server")]
pub mod clock;
#[cfg(feature = "server")]
pub mod org;
#[cfg(feature = "server")]
pub mod router;

/// The moment every test clock starts at (2027-01-15T08:00:00Z), far from any boundary.
pub fn epoch() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(EPOCH_SECS, 0).expect("a valid timestamp")
}

/// [`epoch`] in seconds since 1970.
pub const EPOCH_SECS: i64 = 1_800_000_000;
