//! The Duo public API wire protocol (Auth API v2, Admin API, the legacy v1 clients).
//!
//! See `docs/specs/duo-protocol.md` §1 (signing), §2 (envelope) and §3 (Auth API v2).

pub mod auth;
pub mod envelope;
pub mod params;
pub mod signature;
