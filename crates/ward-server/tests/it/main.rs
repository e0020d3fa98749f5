//! Router tests: the Auth API v2 over `tower::ServiceExt::oneshot`, with a real SQLite store.

mod auth_api;
