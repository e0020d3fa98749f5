//! The helpdesk console: look a user up, verify a caller on the user's own device, open a
//! recovery case for them, flag fraud, add a note.
//!
//! # Security
//! Only helpdesk agents signed in with a passkey may use it (the core checks every call; pages
//! check first to explain). It has no control that approves a recovery, shortens its waiting
//! period or finishes it, and never shows evidence or a case handle.

use askama::Template;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use ward_core::CoreError;
use ward_core::service::{HelpdeskView, PushState, Session};

use crate::app::AppState;
use crate::portal::{CsrfForm, check_csrf, state_label};
use crate::web::{JsonError, Layout, SignedIn, WebError, render, when};

const MAX_BODY: usize = 16 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/helpdesk", get(console))
        .route("/helpdesk/lookup", get(lookup))
        .route("/helpdesk/users/{username}", get(user_page))
        .route("/helpdesk/users/{username}/verify", post(verify))
        .route("/helpdesk/users/{username}/open-case", post(open_case))
        .route("/helpdesk/users/{username}/fraud", post(flag_fraud))
        .route("/helpdesk/users/{username}/note", post(note))
        .route("/helpdesk/api/verify/{txid}", get(verify_status))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

const NOT_AGENT: &str = "The helpdesk console needs the helpdesk role and a sign-in with a \
                         passkey.";

/// Why a console page cannot be shown: an error page, or the page for non-agents.
#[derive(Debug)]
enum ConsoleError {
    Page(WebError),
    NotAgent(Response),
}

impl From<WebError> for ConsoleError {
    fn from(e: WebError) -> Self {
        Self::Page(e)
    }
}

impl From<CoreError> for ConsoleError {
    fn from(e: CoreError) -> Self {
        Self::Page(e.into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            Self::Page(e) => e.into_response(),
            Self::NotAgent(page) => page,
        }
    }
}

#[derive(Template)]
#[template(path = "helpdesk/not_agent.html")]
struct NotAgentPage {
    layout: Layout,
}

/// Refuses anyone the console is not for, with a page that says why and how to sign in again.
async fn require_agent(state: &AppState, session: &Session) -> Result<(), ConsoleError> {
    if state.ward.recovery().is_agent(session).await? {
        return Ok(());
    }
    let mut page = render(&NotAgentPage {
        layout: Layout::new(state, "Helpdesk console", Some(session)),
    });
    *page.status_mut() = StatusCode::FORBIDDEN;
    Err(ConsoleError::NotAgent(page))
}

/// A username as one path segment.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn user_path(username: &str) -> String {
    format!("/helpdesk/users/{}", segment(username))
}

fn user_url(username: &str, done: &str) -> String {
    format!("{}?done={done}", user_path(username))
}

#[derive(Template)]
#[template(path = "helpdesk/console.html")]
struct ConsolePage {
    layout: Layout,
}

async fn console(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Response, ConsoleError> {
    require_agent(&state, &session).await?;
    Ok(render(&ConsolePage {
        layout: Layout::new(&state, "Helpdesk", Some(&session)),
    }))
}

#[derive(Debug, Deserialize)]
struct LookupQuery {
    #[serde(default)]
    username: String,
}

async fn lookup(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(q): Query<LookupQuery>,
) -> Result<Response, ConsoleError> {
    require_agent(&state, &session).await?;
    let username = q.username.trim();
    if username.is_empty() {
        return Ok(Redirect::to("/helpdesk").into_response());
    }
    Ok(Redirect::to(&user_path(username)).into_response())
}

/// The fixed messages shown after an action.
fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "case-opened" => {
            "A recovery case was requested. The user is told on every channel, with a link to \
             continue that only reaches their own address: ask the caller to follow it."
        }
        "fraud-flagged" => "The open recovery case is frozen for review by the security team.",
        "no-case" => {
            "There is no open recovery case to freeze. If you suspect fraud, tell the security \
             team and add a note."
        }
        "note-added" => "Your note was added to the user's record.",
        _ => return None,
    })
}

#[derive(Template)]
#[template(path = "helpdesk/user.html")]
struct UserPage {
    layout: Layout,
    username: String,
    path: String,
    user: Option<HelpdeskView>,
    case_state: String,
    cooling_until: String,
    notice: Option<&'static str>,
}

#[derive(Debug, Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn user_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(username): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, ConsoleError> {
    require_agent(&state, &session).await?;
    let user = state
        .ward
        .recovery()
        .helpdesk_lookup(&session, &username, state.clock.now())
        .await?;
    let case = user.as_ref().and_then(|u| u.case.as_ref());
    let case_state = case.map_or_else(String::new, |c| state_label(c.state, None));
    let cooling_until = case
        .and_then(|c| c.cooling_until_ms)
        .map_or_else(String::new, when);
    Ok(render(&UserPage {
        layout: Layout::new(&state, format!("Helpdesk: {username}"), Some(&session)),
        path: user_path(&username),
        username,
        user,
        case_state,
        cooling_until,
        notice: notice(q.done.as_deref()),
    }))
}

#[derive(Template)]
#[template(path = "helpdesk/verify.html")]
struct VerifyPage {
    layout: Layout,
    username: String,
    path: String,
    number: String,
    txid: String,
}

async fn verify(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(username): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    check_csrf(&state, &session, &form.csrf)?;
    require_agent(&state, &session).await?;
    let check = state
        .ward
        .recovery()
        .helpdesk_verify_caller(&session, &username, state.clock.now())
        .await
        .map_err(|e| match e {
            // No device, or none that can answer: say so plainly.
            CoreError::InvalidInput { .. } | CoreError::Conflict(_) => WebError::new(
                StatusCode::CONFLICT,
                "No device to verify with",
                format!(
                    "{username} has no push device that can answer a verification, so the \
                     caller cannot be verified this way. Do not act on the caller's request \
                     without another check."
                ),
            ),
            other => WebError::from(other),
        })
        .map_err(|e| e.next(&user_path(&username), "Back to the user"))?;
    Ok(render(&VerifyPage {
        layout: Layout::new(&state, "Verify the caller", Some(&session)),
        path: user_path(&username),
        username,
        number: check.number,
        txid: check.txid,
    }))
}

/// What the agent is told about a verification.
fn verify_message(state: PushState) -> &'static str {
    match state {
        PushState::Pending => "Waiting for the caller to enter the number on the user's device…",
        PushState::Approved => "Verified: the number was entered on the user's enrolled device.",
        PushState::Denied => "Denied on the user's device. Do not act on the caller's request.",
        PushState::Fraud => {
            "The user reported this request as fraud. Do not act on it; flag fraud."
        }
        PushState::Timeout => {
            "No answer in time. Send a new verification if the caller is still there."
        }
    }
}

async fn verify_status(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(txid): Path<String>,
) -> Result<Json<Value>, JsonError> {
    if !state.ward.recovery().is_agent(&session).await? {
        return Err(JsonError(StatusCode::FORBIDDEN, NOT_AGENT.into()));
    }
    let verification = state
        .ward
        .recovery()
        .helpdesk_verify_status(&session, &txid, state.clock.now())
        .await?;
    let message = verify_message(verification);
    Ok(Json(
        json!({ "status": verification.as_str(), "message": message }),
    ))
}

async fn open_case(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(username): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    check_csrf(&state, &session, &form.csrf)?;
    require_agent(&state, &session).await?;
    state
        .ward
        .recovery()
        .helpdesk_open_case(&session, &username, state.clock.now())
        .await?;
    Ok(Redirect::to(&user_url(&username, "case-opened")).into_response())
}

#[derive(Debug, Deserialize)]
struct FraudForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn flag_fraud(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(username): Path<String>,
    Form(form): Form<FraudForm>,
) -> Result<Response, ConsoleError> {
    check_csrf(&state, &session, &form.csrf)?;
    require_agent(&state, &session).await?;
    let frozen = state
        .ward
        .recovery()
        .helpdesk_flag_fraud(&session, &username, &form.reason, state.clock.now())
        .await?;
    let done = if frozen { "fraud-flagged" } else { "no-case" };
    Ok(Redirect::to(&user_url(&username, done)).into_response())
}

#[derive(Debug, Deserialize)]
struct NoteForm {
    csrf: String,
    #[serde(default)]
    note: String,
}

async fn note(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(username): Path<String>,
    Form(form): Form<NoteForm>,
) -> Result<Response, ConsoleError> {
    check_csrf(&state, &session, &form.csrf)?;
    require_agent(&state, &session).await?;
    state
        .ward
        .recovery()
        .helpdesk_note(&session, &username, &form.note, state.clock.now())
        .await
        .map_err(|e| WebError::from(e).next(&user_path(&username), "Back to the user"))?;
    Ok(Redirect::to(&user_url(&username, "note-added")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11: every state of a verification has its own sentence (no catch-all).
    #[test]
    fn every_verification_state_has_its_own_message() {
        let messages: std::collections::HashSet<&str> =
            PushState::ALL.into_iter().map(verify_message).collect();
        assert_eq!(messages.len(), PushState::ALL.len(), "{messages:?}");
    }
}
