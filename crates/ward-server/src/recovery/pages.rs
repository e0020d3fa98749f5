//! The recovery pages: start, the page that follows (the same for every username), the link
//! e-mailed when the helpdesk opened a case, and the case page for each stage.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use ward_core::CoreError;
use ward_core::recovery::Opener;
use ward_core::service::CaseStatus;

use super::{clear_handle_cookie, client_ip, handle_of, is_handle, set_handle_cookie};
use crate::app::AppState;
use crate::web::{Layout, OrgQuery, WebError, render, when};

#[derive(Template)]
#[template(path = "recovery/start.html")]
struct StartPage {
    layout: Layout,
    /// `?org=…` for the form and links, or empty.
    org_query: String,
}

pub(super) async fn start_page(
    State(state): State<AppState>,
    Query(org): Query<OrgQuery>,
) -> Response {
    render(&StartPage {
        layout: Layout::new(&state, "Recover your account", None),
        org_query: org.suffix(),
    })
}

#[derive(Template)]
#[template(path = "recovery/started.html")]
struct StartedPage {
    layout: Layout,
}

#[derive(Debug, Deserialize)]
pub(super) struct StartForm {
    username: String,
}

/// Opens a case (a phantom one for an unknown account) and hands the browser its handle.
///
/// # Security
/// The body is the same bytes whatever the username: it never echoes it, and the layout is
/// rendered without a session.
pub(super) async fn start(
    State(state): State<AppState>,
    Query(org): Query<OrgQuery>,
    parts: Parts,
    Form(form): Form<StartForm>,
) -> Result<Response, WebError> {
    let ip = client_ip(&state, &parts);
    let org = org.resolve(&state).await?;
    let (handle, _case_id) = super::uniform(
        super::UNIFORM_START,
        state.ward.recovery().start(
            &org,
            &form.username,
            Opener::User,
            Some(&ip),
            state.clock.now(),
        ),
    )
    .await?;
    let mut response = render(&StartedPage {
        layout: Layout::new(&state, "Recovery started", None),
    });
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_handle_cookie(&handle));
    Ok(response)
}

#[derive(Template)]
#[template(path = "recovery/continue.html")]
struct ContinuePage {
    layout: Layout,
}

#[derive(Template)]
#[template(path = "recovery/link_used.html")]
struct LinkUsedPage {
    layout: Layout,
}

/// The link sent to the user when a helpdesk agent opened a case: a page with one button, so
/// that a mail scanner following the link does not use it up. The token stays in the path
/// (the form posts back to it); it is not written into the page.
pub(super) async fn continue_page(State(state): State<AppState>) -> Response {
    render(&ContinuePage {
        layout: Layout::new(&state, "Continue your account recovery", None),
    })
}

/// Adopts the case in this browser with the link's token: this browser gets a new handle and
/// the link is used up.
///
/// # Security
/// Only a case a helpdesk agent opened, not yet adopted, can be adopted, once: a handle of a
/// self-service start is no link, so nobody can fix their own case on someone else's browser.
/// A link that cannot be used leaves this browser's cookie alone.
pub(super) async fn adopt(
    State(state): State<AppState>,
    Path(link): Path<String>,
    parts: Parts,
) -> Result<Response, WebError> {
    let unusable = || {
        let mut page = render(&LinkUsedPage {
            layout: Layout::new(&state, "This link cannot be used", None),
        });
        *page.status_mut() = StatusCode::NOT_FOUND;
        page
    };
    if !is_handle(&link) {
        return Ok(unusable());
    }
    let ip = client_ip(&state, &parts);
    match state
        .ward
        .recovery()
        .adopt(&link, Some(&ip), state.clock.now())
        .await
    {
        Ok(handle) => {
            let mut response = Redirect::to("/recovery/case").into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, set_handle_cookie(&handle));
            Ok(response)
        }
        Err(CoreError::NotFound(_)) => Ok(unusable()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "recovery/none.html")]
struct NoCasePage {
    layout: Layout,
}

/// The page for a browser without a (known) case; an unknown handle is also forgotten.
fn no_case(state: &AppState, unknown: bool) -> Response {
    let mut response = render(&NoCasePage {
        layout: Layout::new(state, "No recovery in progress", None),
    });
    if unknown {
        *response.status_mut() = StatusCode::NOT_FOUND;
        response
            .headers_mut()
            .insert(header::SET_COOKIE, clear_handle_cookie());
    }
    response
}

/// A result shown after a submission; only these fixed texts can appear.
#[derive(Debug)]
struct Notice {
    text: &'static str,
    refused: bool,
}

fn notice(done: Option<&str>) -> Option<Notice> {
    const REFUSED: &str = "That code was not accepted. Check it and try again, or use another \
                           way below.";
    let (text, refused) = match done? {
        "code-accepted" => ("Your recovery code was accepted.", false),
        "email-accepted" => ("The code from your e-mail was accepted.", false),
        "email-sent" => (
            "If your account has a verified e-mail address, a code is on its way to it. It \
             works once, for a limited time.",
            false,
        ),
        "code-refused" | "email-refused" => (REFUSED, true),
        _ => return None,
    };
    Some(Notice { text, refused })
}

#[derive(Template)]
#[template(path = "recovery/case.html")]
struct CasePage {
    layout: Layout,
    status: CaseStatus,
    /// When and from where the case was started, e.g. "on 6 Dec 2026, 02:34 UTC from …".
    started: String,
    cooling_until: String,
    notice: Option<Notice>,
}

#[derive(Debug, Deserialize)]
pub(super) struct DoneQuery {
    done: Option<String>,
}

pub(super) async fn case_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let Some(handle) = handle_of(&headers) else {
        return Ok(no_case(&state, false));
    };
    let status = match super::uniform(
        super::UNIFORM_PAGE,
        state.ward.recovery().status(&handle, state.clock.now()),
    )
    .await
    {
        Ok(status) => status,
        Err(CoreError::NotFound(_)) => return Ok(no_case(&state, true)),
        Err(e) => return Err(e.into()),
    };
    Ok(render(&CasePage {
        layout: Layout::new(&state, "Recover your account", None),
        started: started(&status),
        cooling_until: status.cooling_until_ms.map_or_else(String::new, when),
        notice: notice(q.done.as_deref()),
        status,
    }))
}

/// When and from where a case was started, as the case page says it.
fn started(status: &CaseStatus) -> String {
    let from = match (&status.opened_from, status.by_helpdesk) {
        (_, true) => "by the helpdesk, at a caller's request".to_owned(),
        (Some(ip), false) => format!("from the address {ip}"),
        (None, false) => "from an unknown address".to_owned(),
    };
    format!("on {} {from}", when(status.opened_ms))
}
