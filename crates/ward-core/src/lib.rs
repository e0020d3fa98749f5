//! Ward's domain: accounts, factors, authentication decisions, policy, audit and key handling.
//!
//! Every entry point (Duo Auth API, admin CLI, later the portal and the device channel) turns a
//! request into one call of the [`service::Ward`] service, which decides, records an audit event
//! in the same atomic change set, and returns a domain result that the entry point renders in
//! its own dialect.
//!
//! This crate depends on the storage traits of `ward-store` only — never on a web framework or
//! a database driver — and never reads the clock or the environment itself: `now` is passed in
//! by the caller (see [`clock`]).

pub mod argon;
pub mod audit;
pub mod clock;
pub mod crypto;
pub mod device_key;
mod error;
pub mod gate;
pub mod ids;
pub mod model;
pub mod notify;
pub mod policy;
pub mod recovery;
pub mod service;
pub mod totp;

pub use error::{CoreError, CoreResult};
