//! Router tests over `tower::ServiceExt::oneshot`, with a real SQLite store (PostgreSQL too for
//! the edge tests): the Auth API v2, and the recovery pages. The state, the organisations and
//! the signed requests come from `ward-testkit`.

// Integration tests are always built with cfg(test); saying so lets the workspace's
// allow-unwrap-in-tests (and friends) cover the helpers, not only #[test] functions.
#![cfg(test)]

mod auth_api;
mod edge;
mod limits;
mod orgs;
mod recovery;
