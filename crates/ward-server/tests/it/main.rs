//! Router tests over `tower::ServiceExt::oneshot`, with a real SQLite store: the Auth API v2,
//! and the recovery pages.

// Integration tests are always built with cfg(test); saying so lets the workspace's
// allow-unwrap-in-tests (and friends) cover the helpers, not only #[test] functions.
#![cfg(test)]

mod auth_api;
mod edge;
mod limits;
mod recovery;
