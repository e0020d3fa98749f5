//! Router tests: the Auth API v2 over `tower::ServiceExt::oneshot`, with a real SQLite store.

// Integration tests are always built with cfg(test); saying so lets the workspace's
// allow-unwrap-in-tests (and friends) cover the helpers, not only #[test] functions.
#![cfg(test)]

mod auth_api;
