//! The user's factors: the home page that lists them, one factor's page (rename, remove),
//! and new recovery codes.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use ward_core::CoreError;
use ward_core::service::{FactorKind, Factors, Session};

use super::{CsrfForm, check_csrf, confirm_first};
use crate::app::AppState;
use crate::web::{Layout, SignedIn, WebError, render, when};

// ---------------------------------------------------------------------------------------------
// Home: the user's factors
// ---------------------------------------------------------------------------------------------

/// One row of the factors list.
#[derive(Debug)]
struct FactorRow {
    kind: &'static str,
    id: String,
    name: String,
    detail: String,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "portal/home.html")]
struct HomePage {
    layout: Layout,
    notice: Option<&'static str>,
    frozen: bool,
    passkeys: Vec<FactorRow>,
    totps: Vec<FactorRow>,
    devices: Vec<FactorRow>,
    recovery_total: usize,
    recovery_remaining: usize,
    recovery_created: String,
    needs_passkey: bool,
    /// The open recovery of this account, described for the warning banner.
    recovery_case: Option<String>,
    /// Colleagues' recoveries waiting for this user's approval.
    approvals_waiting: usize,
}

#[derive(Debug, Deserialize)]
pub(super) struct HomeQuery {
    done: Option<String>,
}

/// Messages shown after a change; only these fixed texts can appear.
fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "passkey" => "Your passkey was added.",
        "totp" => "Your authenticator app was added.",
        "renamed" => "The name was changed.",
        "removed" => "The sign-in method was removed.",
        "signed-out-elsewhere" => "You were signed out on every other device.",
        "enrolled" => "Welcome. Add a passkey to finish setting up your account.",
        "recovery-cancelled" => "The recovery of your account was cancelled. Nothing changed.",
        _ => return None,
    })
}

fn factor_rows(factors: &Factors) -> (Vec<FactorRow>, Vec<FactorRow>, Vec<FactorRow>) {
    let never = || "never".to_owned();
    let passkeys = factors
        .passkeys
        .iter()
        .map(|p| FactorRow {
            kind: "passkey",
            id: p.id.clone(),
            name: p.name.clone(),
            detail: match (p.kind.as_str(), p.backup_eligible) {
                ("security-key", _) => "Security key (this device only)".into(),
                (_, true) => "Passkey (synced across your devices)".into(),
                (_, false) => "Passkey (this device only)".into(),
            },
            created: when(p.created_ms),
            last_used: p.last_used_ms.map_or_else(never, when),
        })
        .collect();
    let totps = factors
        .totps
        .iter()
        .map(|t| FactorRow {
            kind: "totp",
            id: t.id.clone(),
            name: t.name.clone(),
            detail: "Authenticator app (6-digit codes)".into(),
            created: when(t.created_ms),
            last_used: String::new(),
        })
        .collect();
    let devices = factors
        .devices
        .iter()
        .map(|d| FactorRow {
            kind: "device",
            id: d.id.to_string(),
            name: d.name.clone(),
            detail: format!("Push approvals ({})", d.platform),
            created: when(d.created_ms),
            last_used: String::new(),
        })
        .collect();
    (passkeys, totps, devices)
}

pub(super) async fn home(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(q): Query<HomeQuery>,
) -> Result<Response, WebError> {
    let factors = state
        .ward
        .portal()
        .factors(&session.org(), &session.user_id())
        .await?;
    let (passkeys, totps, devices) = factor_rows(&factors);
    let recovery_case = state
        .ward
        .recovery()
        .open_case_for(&session.org(), &session.user_id())
        .await?
        .map(|(_, case_state, until)| super::recovery::state_label(case_state, until));
    let approvals_waiting = state
        .ward
        .recovery()
        .pending_approvals(&session)
        .await?
        .iter()
        .filter(|p| !p.approved)
        .count();
    Ok(render(&HomePage {
        layout: Layout::new(&state, "Your sign-in methods", Some(&session)),
        notice: notice(q.done.as_deref()),
        frozen: session.user.factors_frozen_ms.is_some(),
        needs_passkey: passkeys.is_empty(),
        passkeys,
        totps,
        devices,
        recovery_total: factors.recovery.total,
        recovery_remaining: factors.recovery.remaining,
        recovery_created: factors.recovery.created_ms.map_or_else(String::new, when),
        recovery_case,
        approvals_waiting,
    }))
}

// ---------------------------------------------------------------------------------------------
// Recovery codes
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/recovery_codes.html")]
struct RecoveryCodesPage {
    layout: Layout,
    codes: Vec<String>,
}

pub(super) async fn recovery_codes(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&state, &session, &form.csrf)?;
    if session.user.factors_frozen_ms.is_none()
        && state
            .ward
            .portal()
            .needs_step_up(&session, state.clock.now())
            .await?
    {
        return Ok(confirm_first("/portal"));
    }
    let codes = state
        .ward
        .portal()
        .regenerate_recovery_codes(&session, state.clock.now())
        .await?;
    Ok(render(&RecoveryCodesPage {
        layout: Layout::new(&state, "Your recovery codes", Some(&session)),
        codes: codes.iter().map(|c| c.to_string()).collect(),
    }))
}

// ---------------------------------------------------------------------------------------------
// Managing one factor
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/factor.html")]
struct FactorPage {
    layout: Layout,
    factor: FactorRow,
    kind_label: &'static str,
    stepped_up: bool,
    has_passkey: bool,
    error: Option<String>,
}

async fn find_factor(
    state: &AppState,
    session: &Session,
    kind: &str,
    id: &str,
) -> Result<(FactorRow, bool), WebError> {
    let factors = state
        .ward
        .portal()
        .factors(&session.org(), &session.user_id())
        .await?;
    let has_passkey = !factors.passkeys.is_empty();
    let (passkeys, totps, devices) = factor_rows(&factors);
    let list = match FactorKind::parse(kind)? {
        FactorKind::Passkey => passkeys,
        FactorKind::Totp => totps,
        FactorKind::Device => devices,
    };
    list.into_iter()
        .find(|f| f.id == id)
        .map(|f| (f, has_passkey))
        .ok_or_else(|| {
            WebError::new(
                StatusCode::NOT_FOUND,
                "Not found",
                "This sign-in method does not exist (it may have been removed).",
            )
            .next("/portal", "Back to your account")
        })
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "passkey" => "passkey",
        "totp" => "authenticator app",
        _ => "push device",
    }
}

pub(super) async fn factor_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let (factor, has_passkey) = find_factor(&state, &session, &kind, &id).await?;
    Ok(render(&FactorPage {
        layout: Layout::new(&state, factor.name.clone(), Some(&session)),
        kind_label: kind_label(&kind),
        factor,
        stepped_up: session.stepped_up(state.clock.now()),
        has_passkey,
        error: None,
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct RenameForm {
    csrf: String,
    name: String,
}

pub(super) async fn factor_rename(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path((kind, id)): Path<(String, String)>,
    Form(form): Form<RenameForm>,
) -> Result<Response, WebError> {
    check_csrf(&state, &session, &form.csrf)?;
    state
        .ward
        .portal()
        .rename_factor(
            &session,
            FactorKind::parse(&kind)?,
            &id,
            form.name.trim(),
            state.clock.now(),
        )
        .await?;
    Ok(Redirect::to("/portal?done=renamed").into_response())
}

pub(super) async fn factor_remove(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path((kind, id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&state, &session, &form.csrf)?;
    let now = state.clock.now();
    match state
        .ward
        .portal()
        .remove_factor(&session, FactorKind::parse(&kind)?, &id, now)
        .await
    {
        Ok(()) => Ok(Redirect::to("/portal?done=removed").into_response()),
        Err(
            CoreError::Forbidden(message)
            | CoreError::InvalidInput {
                reason: message, ..
            },
        ) => {
            let (factor, has_passkey) = find_factor(&state, &session, &kind, &id).await?;
            let mut page = render(&FactorPage {
                layout: Layout::new(&state, factor.name.clone(), Some(&session)),
                kind_label: kind_label(&kind),
                factor,
                stepped_up: session.stepped_up(now),
                has_passkey,
                error: Some(message),
            });
            *page.status_mut() = StatusCode::FORBIDDEN;
            Ok(page)
        }
        Err(e) => Err(e.into()),
    }
}
