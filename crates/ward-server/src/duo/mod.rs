//! Duo-compatible APIs: Auth API v2 (`/auth/v2/*`) and the older BSON API of `duo_unix` 1.x
//! (`/rest/v1/*.bson`).

mod auth_api;
mod legacy;
mod push;
pub mod signed;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;

/// Routes of the Auth API v2 and of the legacy BSON API.
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
        .route("/rest/v1/preauth.bson", post(legacy::preauth))
        .route("/rest/v1/auth.bson", post(legacy::auth))
        .route("/rest/v1/status.bson", get(legacy::status))
}
