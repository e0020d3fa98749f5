//! Recovery as the signed-in portal sees it: cancelling a recovery of one's own account, and
//! approving colleagues' recoveries with one's own passkey.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde_json::{Value, json};
use ward_core::service::PendingApproval;

use super::{CeremonyAnswer, CsrfForm, check_csrf, check_csrf_header};
use crate::app::AppState;
use crate::web::{JsonError, Layout, SignedIn, WebError, render, when};

/// How the portal names a case's state (the banner and the approvals page).
pub(crate) fn state_label(state: &str, cooling_until_ms: Option<i64>) -> String {
    match state {
        "collecting" => "collecting proof".into(),
        "cooling" => cooling_until_ms.map_or_else(
            || "in its waiting period".into(),
            |t| format!("waiting period until {}", when(t)),
        ),
        "ready" => "ready to set up a new passkey".into(),
        "token_issued" => "a new passkey is being set up".into(),
        "bound" => "a new passkey is being confirmed".into(),
        "frozen" => "held for review by the security team".into(),
        other => other.replace('_', " "),
    }
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&state, &session, &form.csrf)?;
    let cancelled = state
        .ward
        .recovery()
        .cancel_by_user(
            &session.org(),
            &session.user_id(),
            "portal session",
            state.clock.now(),
        )
        .await?;
    let to = if cancelled {
        "/portal?done=recovery-cancelled"
    } else {
        "/portal"
    };
    Ok(Redirect::to(to).into_response())
}

/// One case on the approvals page.
#[derive(Debug)]
struct ApprovalRow {
    case_id: String,
    username: String,
    opened_by: String,
    opened: String,
    state: String,
    accepted: String,
    approvals: usize,
    approved: bool,
}

impl From<PendingApproval> for ApprovalRow {
    fn from(p: PendingApproval) -> Self {
        Self {
            opened_by: match p.opened_by.strip_prefix("agent:") {
                Some(agent) => format!("a helpdesk agent ({agent})"),
                None => "the user, on the recovery page".into(),
            },
            opened: when(p.opened_ms),
            state: state_label(p.state, None),
            accepted: if p.accepted.is_empty() {
                "nothing yet".into()
            } else {
                p.accepted.join(", ")
            },
            case_id: p.case_id,
            username: p.username,
            approvals: p.approvals,
            approved: p.approved,
        }
    }
}

#[derive(Template)]
#[template(path = "portal/approvals.html")]
struct ApprovalsPage {
    layout: Layout,
    cases: Vec<ApprovalRow>,
}

pub(super) async fn approvals_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Response, WebError> {
    let cases = state.ward.recovery().pending_approvals(&session).await?;
    Ok(render(&ApprovalsPage {
        layout: Layout::new(&state, "Recovery approvals", Some(&session)),
        cases: cases.into_iter().map(ApprovalRow::from).collect(),
    }))
}

pub(super) async fn approval_start(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(case_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, JsonError> {
    check_csrf_header(&state, &session, &headers)?;
    let start = state
        .ward
        .recovery()
        .approval_start(&session, &case_id, state.clock.now())
        .await?;
    Ok(Json(json!(start)))
}

pub(super) async fn approval_finish(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(case_id): Path<String>,
    headers: HeaderMap,
    Json(answer): Json<CeremonyAnswer>,
) -> Result<Json<Value>, JsonError> {
    check_csrf_header(&state, &session, &headers)?;
    state
        .ward
        .recovery()
        .approval_finish(
            &session,
            &case_id,
            &answer.ceremony,
            &answer.credential,
            state.clock.now(),
        )
        .await?;
    Ok(Json(json!({ "reload": true })))
}
