//! "Someone claiming to be IT contacted me": a report to the security contacts, signed in or
//! not. Signed in, the user may also block recovery of their account for a week.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;

use super::client_ip;
use crate::app::AppState;
use crate::web::{Layout, MaybeSession, OrgQuery, WebError, render};

/// How long the checkbox blocks recovery of the account.
const BLOCK_DAYS: u32 = 7;

#[derive(Template)]
#[template(path = "portal/contact.html")]
struct ContactPage {
    layout: Layout,
    signed_in: bool,
    done: bool,
    blocked: bool,
    block_days: u32,
    /// `?org=…` for the form and links, or empty.
    org_query: String,
}

pub(super) async fn contact_page(
    State(state): State<AppState>,
    Query(org): Query<OrgQuery>,
    MaybeSession(session): MaybeSession,
) -> Response {
    render(&ContactPage {
        layout: Layout::new(&state, "Report a suspicious contact", session.as_ref()),
        signed_in: session.is_some(),
        done: false,
        blocked: false,
        block_days: BLOCK_DAYS,
        org_query: org.suffix(),
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct ContactForm {
    /// Defaulted so a missing choice gets the service's clear refusal.
    #[serde(default)]
    kind: String,
    #[serde(default)]
    description: String,
    /// Present (any value) when the box is ticked.
    block: Option<String>,
    /// Only on the signed-in form.
    csrf: Option<String>,
}

/// What a report over the limits gets (nothing of it is recorded).
fn too_many() -> WebError {
    WebError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many reports",
        "Too many reports were sent just now. Wait a few minutes and send yours again, or \
         call your IT or security team directly.",
    )
    .next("/report-contact", "Back to the form")
}

pub(super) async fn contact_submit(
    State(state): State<AppState>,
    Extension(limits): Extension<Arc<super::flood::ContactLimits>>,
    MaybeSession(session): MaybeSession,
    Query(org): Query<OrgQuery>,
    parts: Parts,
    Form(form): Form<ContactForm>,
) -> Result<Response, WebError> {
    if let Some(session) = &session {
        crate::portal::check_csrf(&state, session, form.csrf.as_deref().unwrap_or(""))?;
    }
    let address = crate::duo::signed::client_ip(&parts, state.settings.trust_forwarded_for);
    if !limits.admit(address) {
        return Err(too_many());
    }
    let user_id = session.as_ref().map(|s| s.user.user_id.as_str());
    // A signed-in user reports in their own organisation; anyone else in the one named.
    let org = match &session {
        Some(session) => session.org(),
        None => org.resolve(&state).await?,
    };
    let block_days = form.block.is_some().then_some(BLOCK_DAYS);
    let ip = client_ip(&state, &parts);
    state
        .ward
        .recovery()
        .report_contact(
            &org,
            user_id,
            &form.kind,
            &form.description,
            block_days,
            Some(&ip),
            state.clock.now(),
        )
        .await
        .map_err(|e| WebError::from(e).next("/report-contact", "Back to the form"))?;
    Ok(render(&ContactPage {
        layout: Layout::new(&state, "Thank you for telling us", session.as_ref()),
        signed_in: session.is_some(),
        done: true,
        blocked: user_id.is_some() && block_days.is_some(),
        block_days: BLOCK_DAYS,
        org_query: String::new(),
    }))
}
