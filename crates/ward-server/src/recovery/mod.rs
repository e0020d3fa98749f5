//! Account recovery for people who lost every sign-in method: the public recovery pages, the
//! small JSON calls their script makes to set up and confirm a new passkey, and the
//! "someone contacted me" report.
//!
//! # Security
//! Nobody is signed in here. The capability is the case handle, kept in the `__Host-` prefixed,
//! `HttpOnly`, `Secure`, `SameSite=Lax` cookie [`RECOVERY_COOKIE`]; it is never put in a page.
//! The start answers with the same bytes whatever the username (the core opens a phantom case
//! for unknown accounts), and a refused code reads the same whatever went wrong. Forms carry no
//! session token: the same-origin check on every page refuses posts from other sites.

mod api;
mod contact;
mod evidence;
mod flood;
mod pages;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};

use crate::app::AppState;
use crate::web::{JsonError, cookie};

/// The cookie naming the browser's recovery case.
pub const RECOVERY_COOKIE: &str = "__Host-ward_recovery";

/// How long the browser keeps the case handle (the longest a case can take to collect).
const COOKIE_MAX_AGE_SECS: i64 = 72 * 3600;

/// The least time a start or an evidence submission takes to answer. The work behind a real
/// account (notices, pushes, Argon2 checks) is longer than a phantom's; both answer at the
/// same moment when they finish within this time, so timing does not tell them apart.
const UNIFORM_START: std::time::Duration = std::time::Duration::from_millis(500);
const UNIFORM_EVIDENCE: std::time::Duration = std::time::Duration::from_millis(800);
/// The case page reads the account's roles and approvers; a phantom's reads nothing.
const UNIFORM_PAGE: std::time::Duration = std::time::Duration::from_millis(150);

/// Runs `work`, then waits until at least `min` has passed since it began.
async fn uniform<T>(min: std::time::Duration, work: impl Future<Output = T>) -> T {
    let deadline = tokio::time::Instant::now() + min;
    let out = work.await;
    tokio::time::sleep_until(deadline).await;
    out
}

/// Largest form or JSON body these pages accept.
const MAX_BODY: usize = 16 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/recovery", get(pages::start_page))
        .route("/recovery/", get(pages::start_page))
        .route("/recovery/start", post(pages::start))
        .route(
            "/recovery/continue/{link}",
            get(pages::continue_page).post(pages::adopt),
        )
        .route("/recovery/case", get(pages::case_page))
        .route("/recovery/code", post(evidence::submit_code))
        .route("/recovery/email/send", post(evidence::send_email))
        .route("/recovery/email", post(evidence::submit_email_code))
        .route("/recovery/api/token", post(api::token))
        .route("/recovery/api/enrol/start", post(api::enrol_start))
        .route("/recovery/api/enrol/finish", post(api::enrol_finish))
        .route("/recovery/api/confirm/start", post(api::confirm_start))
        .route("/recovery/api/confirm/finish", post(api::confirm_finish))
        .route(
            "/report-contact",
            get(contact::contact_page).post(contact::contact_submit),
        )
        .layer(axum::Extension(std::sync::Arc::new(
            flood::ContactLimits::default(),
        )))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// Whether a string can be a case handle (URL-safe base64); anything else is refused before it
/// reaches a cookie or the store.
fn is_handle(s: &str) -> bool {
    (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The case handle from the request's cookie.
fn handle_of(headers: &HeaderMap) -> Option<String> {
    cookie(headers, RECOVERY_COOKIE).filter(|h| is_handle(h))
}

/// The case handle, or the JSON answer a script gets without one.
fn api_handle(headers: &HeaderMap) -> Result<String, JsonError> {
    handle_of(headers).ok_or_else(|| {
        JsonError(
            StatusCode::NOT_FOUND,
            "This recovery is no longer open in this browser. Start again.".into(),
        )
    })
}

/// `Set-Cookie` that hands the browser a case.
fn set_handle_cookie(handle: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{RECOVERY_COOKIE}={handle}; Path=/; Secure; HttpOnly; SameSite=Lax; \
         Max-Age={COOKIE_MAX_AGE_SECS}"
    ))
    .unwrap_or_else(|_| clear_handle_cookie())
}

/// `Set-Cookie` that forgets the case.
fn clear_handle_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-ward_recovery=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
    )
}

/// The client's address, for the audit log and the user's notice.
fn client_ip(state: &AppState, parts: &axum::http::request::Parts) -> String {
    crate::duo::signed::client_ip(parts, state.settings.trust_forwarded_for).to_string()
}
