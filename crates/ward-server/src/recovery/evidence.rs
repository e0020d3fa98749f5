//! The evidence forms of the case page: a saved recovery code, and a code sent by e-mail. Each
//! answers with a redirect to the case page and a fixed message.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use ward_core::CoreError;
use ward_core::service::{Submission, Submitted};

use super::handle_of;
use crate::app::AppState;
use crate::web::WebError;

/// Codes are short; anything longer is refused before it reaches the service.
const MAX_CODE: usize = 64;

#[derive(Debug, Deserialize)]
pub(super) struct CodeForm {
    code: String,
}

fn no_recovery() -> WebError {
    WebError::new(
        StatusCode::NOT_FOUND,
        "No recovery in progress",
        "This browser has no account recovery in progress (it may have ended, or cookies \
         were cleared). Start again from the recovery page.",
    )
    .next("/recovery", "Start a recovery")
}

/// The handle, or the page explaining that this browser has no recovery.
fn required_handle(headers: &HeaderMap) -> Result<String, WebError> {
    handle_of(headers).ok_or_else(no_recovery)
}

/// An error of a submission as a page (a case that has moved on just shows its stage).
fn refusal(e: CoreError) -> Response {
    match e {
        CoreError::Conflict(_) => Redirect::to("/recovery/case").into_response(),
        CoreError::NotFound(_) => no_recovery().into_response(),
        other => WebError::from(other)
            .next("/recovery/case", "Back to your recovery")
            .into_response(),
    }
}

/// Back to the case page with the submission's result, and the case's new handle: this
/// browser keeps the case, any other holder of the old handle has lost it.
fn outcome(result: Result<Submission, CoreError>, accepted: &str, refused: &str) -> Response {
    let submission = match result {
        Ok(s) => s,
        Err(e) => return refusal(e),
    };
    let to = match submission.outcome {
        Submitted::Accepted => format!("/recovery/case?done={accepted}"),
        Submitted::Refused => format!("/recovery/case?done={refused}"),
    };
    let mut response = Redirect::to(&to).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        super::set_handle_cookie(&submission.handle),
    );
    response
}

pub(super) async fn submit_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Result<Response, WebError> {
    let handle = required_handle(&headers)?;
    let code: String = form.code.trim().chars().take(MAX_CODE).collect();
    let result = super::uniform(
        super::UNIFORM_EVIDENCE,
        state
            .ward
            .recovery()
            .submit_code(&handle, &code, state.clock.now()),
    )
    .await;
    Ok(outcome(result, "code-accepted", "code-refused"))
}

pub(super) async fn send_email(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let handle = required_handle(&headers)?;
    match super::uniform(
        super::UNIFORM_EVIDENCE,
        state.ward.recovery().send_email(&handle, state.clock.now()),
    )
    .await
    {
        Ok(()) => Ok(Redirect::to("/recovery/case?done=email-sent").into_response()),
        Err(e) => Ok(refusal(e)),
    }
}

pub(super) async fn submit_email_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Result<Response, WebError> {
    let handle = required_handle(&headers)?;
    let code: String = form.code.trim().chars().take(MAX_CODE).collect();
    let result = super::uniform(
        super::UNIFORM_EVIDENCE,
        state
            .ward
            .recovery()
            .submit_email_code(&handle, &code, state.clock.now()),
    )
    .await;
    Ok(outcome(result, "email-accepted", "email-refused"))
}
