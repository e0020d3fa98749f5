//! Single-use links: enrolment links, and "this wasn't me" report links.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use ward_core::CoreError;
use ward_core::service::LinkState;

use super::signed_in_redirect;
use crate::app::AppState;
use crate::web::{Layout, WebError, clear_session_cookie, render, when};

// ---------------------------------------------------------------------------------------------
// Enrolment links
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/enrol.html")]
struct EnrolPage {
    layout: Layout,
    username: String,
    expires: String,
    token: String,
}

fn link_refusal(state: &LinkState, what: &str) -> WebError {
    match state {
        LinkState::Used => WebError::new(
            StatusCode::GONE,
            "Link already used",
            format!(
                "This {what} link has already been used, and each link works only once. If \
                 you did not use it yourself, tell your administrators now. Otherwise ask them \
                 for a new link."
            ),
        ),
        LinkState::Expired => WebError::new(
            StatusCode::GONE,
            "Link expired",
            format!("This {what} link has expired. Ask your administrators for a new one."),
        ),
        LinkState::Unknown | LinkState::Valid { .. } => WebError::new(
            StatusCode::NOT_FOUND,
            "Link not recognised",
            format!(
                "This {what} link is not valid. Check that you opened the whole link from \
                 the message, or ask your administrators for a new one."
            ),
        ),
    }
    .next("/portal/sign-in", "Go to sign-in")
}

pub(super) async fn enrol_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    match state
        .ward
        .portal()
        .enrol_link_state(&token, state.clock.now())
        .await?
    {
        LinkState::Valid {
            username,
            expires_ms,
        } => Ok(render(&EnrolPage {
            layout: Layout::new(&state, "Set up your sign-in", None),
            username,
            expires: when(expires_ms),
            token,
        })),
        other => Err(link_refusal(&other, "enrolment")),
    }
}

pub(super) async fn enrol_redeem(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    match state.ward.portal().redeem_enrol_link(&token, now).await {
        Ok(new) => Ok(signed_in_redirect(
            &new,
            "/portal?done=enrolled",
            now.timestamp_millis(),
        )),
        Err(CoreError::Conflict(_)) => Err(link_refusal(&LinkState::Used, "enrolment")),
        Err(CoreError::Expired(_)) => Err(link_refusal(&LinkState::Expired, "enrolment")),
        Err(CoreError::NotFound(_)) => Err(link_refusal(&LinkState::Unknown, "enrolment")),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// "This wasn't me"
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/report.html")]
struct ReportPage {
    layout: Layout,
    token: String,
    done: bool,
}

pub(super) async fn report_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    match state
        .ward
        .portal()
        .report_link_state(&token, state.clock.now())
        .await?
    {
        LinkState::Valid { .. } => Ok(render(&ReportPage {
            layout: Layout::new(&state, "This wasn't me", None),
            token,
            done: false,
        })),
        other => Err(link_refusal(&other, "report")),
    }
}

pub(super) async fn report_confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    match state
        .ward
        .portal()
        .report_not_me(&token, state.clock.now())
        .await
    {
        Ok(_) => {
            let mut response = render(&ReportPage {
                layout: Layout::new(&state, "Your account is protected", None),
                token: String::new(),
                done: true,
            });
            response
                .headers_mut()
                .insert(header::SET_COOKIE, clear_session_cookie());
            Ok(response)
        }
        Err(CoreError::Conflict(_)) => Err(link_refusal(&LinkState::Used, "report")),
        Err(CoreError::NotFound(_)) => Err(link_refusal(&LinkState::Unknown, "report")),
        Err(e) => Err(e.into()),
    }
}
