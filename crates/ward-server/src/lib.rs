//! Ward's HTTP server: configuration, start-up, TLS, the Duo-compatible APIs and their
//! middleware (request ids, tracing, limits), the portal, the hosted prompt, account recovery
//! and the helpdesk console.
//!
//! Handlers extract input, call one method of the core service and render the result in their
//! API's dialect; no policy and no SQL live here.

pub mod alerts;
pub mod app;
pub mod bootstrap;
pub mod config;
pub mod connections;
pub mod device;
pub mod duo;
pub mod error;
pub mod helpdesk;
pub mod input;
pub mod limits;
pub mod listener;
pub mod mail;
pub mod oauth;
pub mod portal;
pub mod prompt;
pub mod recovery;
pub mod serve;
pub mod tls;
pub mod web;
