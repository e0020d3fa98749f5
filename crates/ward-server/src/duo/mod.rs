//! Duo-compatible APIs: Auth API v2 (`/auth/v2/*`).

mod auth_api;
mod push;
pub mod signed;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

/// Routes of the Auth API v2.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/v2/ping", get(auth_api::ping).post(auth_api::ping))
        .route("/auth/v2/check", get(auth_api::check).post(auth_api::check))
        .route("/auth/v2/logo", get(auth_api::logo))
        .route(
            "/auth/v2/preauth",
            get(auth_api::preauth).post(auth_api::preauth),
        )
        .route("/auth/v2/auth", get(auth_api::auth).post(auth_api::auth))
        .route("/auth/v2/auth_status", get(auth_api::auth_status))
}
