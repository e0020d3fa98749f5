//! Wire types and protocol primitives for Ward's Duo-compatible APIs.
//!
//! This crate owns everything that is a fact of the Duo wire protocol rather than a decision of
//! Ward's: how requests are signed and verified (`duo::signature`), how query strings and bodies
//! become parameters (`duo::params`), the `{"stat": ...}` response envelope and its error codes
//! (`duo::envelope`), and the Auth API v2 response shapes (`duo::auth`). The reference for all of
//! it is `docs/specs/duo-protocol.md`.
//!
//! `jws` is the HS512 compact JWS of Duo's Web SDK v4 (request objects, client assertions and
//! `id_token`s).
//!
//! It also holds Ward's own device-channel protocol (`device`: activation, signed stream access
//! and signed answers) and the incremental `text/event-stream` parser its clients use (`sse`).
//!
//! It is deliberately free of I/O: no HTTP framework, no database, no async runtime, and no
//! dependency on `ward-core`. The server extracts raw request parts and hands them in; domain
//! types are converted to the `*Response` types here at the edge, never serialised directly.
//! Nothing here reads the clock: date checks take `now` from the caller.

pub mod device;
pub mod duo;
pub mod jws;
pub mod sse;
