//! The self-service portal: sign in, enrol through a link, manage passkeys, authenticator
//! apps, push devices and recovery codes, and answer "this wasn't me".
//!
//! Handlers check the session (and its CSRF token for changes), call one method of the core
//! service and render a page; the WebAuthn calls are small JSON endpoints under `/portal/api/`
//! used by `/static/ward.js`.

use askama::Template;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use ward_core::CoreError;
use ward_core::service::{
    FactorKind, Factors, LinkState, NewSession, Session, TotpConfirm, ceremony_purpose,
};

use crate::app::AppState;
use crate::web::{
    JsonError, Layout, MaybeSession, SignedIn, WebError, clear_session_cookie, render,
    set_session_cookie, when,
};

/// Largest form or JSON body the portal accepts.
const MAX_BODY: usize = 16 * 1024;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/", get(|| async { Redirect::to("/portal") }))
        .route("/portal/sign-in", get(sign_in_page))
        .route("/portal/sign-in/totp", post(sign_in_totp))
        .route("/portal/api/sign-in/start", post(sign_in_start))
        .route("/portal/api/sign-in/finish", post(sign_in_finish))
        .route("/portal/enrol/{token}", get(enrol_page).post(enrol_redeem))
        .route("/portal/passkeys/new", get(passkey_new_page))
        .route("/portal/confirm", get(confirm_page))
        .route("/portal/api/passkeys/start", post(passkey_start))
        .route("/portal/api/passkeys/finish", post(passkey_finish))
        .route("/portal/api/step-up/start", post(step_up_start))
        .route("/portal/api/step-up/finish", post(step_up_finish))
        .route("/portal/totp/new", get(totp_new_page).post(totp_confirm))
        .route("/portal/recovery-codes", post(recovery_codes))
        .route("/portal/factors/{kind}/{id}", get(factor_page))
        .route("/portal/factors/{kind}/{id}/rename", post(factor_rename))
        .route("/portal/factors/{kind}/{id}/remove", post(factor_remove))
        .route("/portal/sign-out", post(sign_out))
        .route("/portal/sign-out-everywhere", post(sign_out_everywhere))
        .route(
            "/portal/report/{token}",
            get(report_page).post(report_confirm),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::device::limit_by_ip,
        ))
}

/// Checks a form's CSRF token against the session.
fn check_csrf(state: &AppState, session: &Session, token: &str) -> Result<(), WebError> {
    if state.ward.csrf_ok(session, token) {
        Ok(())
    } else {
        Err(WebError::forbidden_origin())
    }
}

/// Checks the `X-CSRF-Token` header of a script call.
fn check_csrf_header(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
) -> Result<(), JsonError> {
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if state.ward.csrf_ok(session, token) {
        Ok(())
    } else {
        Err(JsonError(
            StatusCode::FORBIDDEN,
            "This page has expired. Reload it and try again.".into(),
        ))
    }
}

/// Sets the session cookie and redirects.
fn signed_in_redirect(new: &NewSession, to: &str, now_ms: i64) -> Response {
    let max_age = (new.session.expires_ms - now_ms).max(0) / 1000;
    let mut response = Redirect::to(to).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_session_cookie(&new.token, max_age));
    response
}

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
}

#[derive(Debug, Deserialize)]
struct HomeQuery {
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
            id: d.id.clone(),
            name: d.name.clone(),
            detail: format!("Push approvals ({})", d.platform),
            created: when(d.created_ms),
            last_used: String::new(),
        })
        .collect();
    (passkeys, totps, devices)
}

async fn home(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(q): Query<HomeQuery>,
) -> Result<Response, WebError> {
    let factors = state.ward.factors(&session.user.user_id).await?;
    let (passkeys, totps, devices) = factor_rows(&factors);
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
    }))
}

// ---------------------------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/sign_in.html")]
struct SignInPage {
    layout: Layout,
    totp_allowed: bool,
    error: Option<&'static str>,
}

fn totp_sign_in_allowed(state: &AppState) -> bool {
    state.ward.portal_settings().is_ok_and(|s| {
        s.factors.default.totp_signin || s.factors.groups.values().any(|g| g.totp_signin)
    })
}

async fn sign_in_page(
    State(state): State<AppState>,
    MaybeSession(session): MaybeSession,
) -> Response {
    if session.is_some() {
        return Redirect::to("/portal").into_response();
    }
    render(&SignInPage {
        layout: Layout::new(&state, "Sign in", None),
        totp_allowed: totp_sign_in_allowed(&state),
        error: None,
    })
}

#[derive(Debug, Deserialize)]
struct TotpSignInForm {
    username: String,
    code: String,
}

async fn sign_in_totp(
    State(state): State<AppState>,
    Form(form): Form<TotpSignInForm>,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    match state
        .ward
        .totp_sign_in(form.username.trim(), form.code.trim(), now)
        .await
    {
        Ok(new) => Ok(signed_in_redirect(&new, "/portal", now.timestamp_millis())),
        Err(CoreError::Unauthenticated) => {
            let mut page = render(&SignInPage {
                layout: Layout::new(&state, "Sign in", None),
                totp_allowed: totp_sign_in_allowed(&state),
                error: Some(
                    "That username and code did not work. Codes change every 30 seconds; \
                     use the current one.",
                ),
            });
            *page.status_mut() = StatusCode::UNAUTHORIZED;
            Ok(page)
        }
        Err(e) => Err(e.into()),
    }
}

async fn sign_in_start(State(state): State<AppState>) -> Result<Json<Value>, JsonError> {
    let start = state
        .ward
        .passkey_auth_start(ceremony_purpose::SIGN_IN, None, state.clock.now())
        .await?;
    Ok(Json(json!(start)))
}

#[derive(Debug, Deserialize)]
struct CeremonyAnswer {
    ceremony: String,
    credential: Value,
    #[serde(default)]
    name: Option<String>,
}

async fn sign_in_finish(
    State(state): State<AppState>,
    Json(answer): Json<CeremonyAnswer>,
) -> Result<Response, JsonError> {
    let now = state.clock.now();
    let new = state
        .ward
        .passkey_sign_in(&answer.ceremony, &answer.credential, now)
        .await?;
    let max_age = (new.session.expires_ms - now.timestamp_millis()).max(0) / 1000;
    let mut response = Json(json!({ "redirect": "/portal" })).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_session_cookie(&new.token, max_age));
    Ok(response)
}

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

async fn enrol_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    match state
        .ward
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

async fn enrol_redeem(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    match state.ward.redeem_enrol_link(&token, now).await {
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
// Passkeys and step-up
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/passkey_new.html")]
struct PasskeyNewPage {
    layout: Layout,
    frozen: bool,
}

async fn passkey_new_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Response, WebError> {
    let frozen = session.user.factors_frozen_ms.is_some();
    if !frozen
        && state
            .ward
            .needs_step_up(&session, state.clock.now())
            .await?
    {
        return Ok(confirm_first("/portal/passkeys/new"));
    }
    Ok(render(&PasskeyNewPage {
        layout: Layout::new(&state, "Add a passkey", Some(&session)),
        frozen,
    }))
}

/// Sends the user to confirm with a passkey, then on to `next`.
fn confirm_first(next: &str) -> Response {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    Redirect::to(&format!("/portal/confirm?{query}")).into_response()
}

#[derive(Template)]
#[template(path = "portal/confirm.html")]
struct ConfirmPage {
    layout: Layout,
    next: String,
    repeat: bool,
}

#[derive(Debug, Deserialize)]
struct ConfirmQuery {
    next: Option<String>,
}

async fn confirm_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(q): Query<ConfirmQuery>,
) -> Response {
    // Only pages of the portal itself: never an open redirect.
    let next = q
        .next
        .filter(|n| n.starts_with("/portal") && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/portal".into());
    render(&ConfirmPage {
        layout: Layout::new(&state, "Confirm it's you", Some(&session)),
        repeat: next == "/portal",
        next,
    })
}

async fn passkey_start(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
) -> Result<Json<Value>, JsonError> {
    check_csrf_header(&state, &session, &headers)?;
    let start = state
        .ward
        .passkey_register_start_for(&session, state.clock.now())
        .await?;
    Ok(Json(json!(start)))
}

async fn passkey_finish(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
    Json(answer): Json<CeremonyAnswer>,
) -> Result<Json<Value>, JsonError> {
    check_csrf_header(&state, &session, &headers)?;
    let name = answer
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("Passkey");
    state
        .ward
        .passkey_register_finish(
            &session.user.user_id,
            &answer.ceremony,
            &answer.credential,
            name,
            state.clock.now(),
        )
        .await?;
    Ok(Json(json!({ "redirect": "/portal?done=passkey" })))
}

async fn step_up_start(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
) -> Result<Json<Value>, JsonError> {
    check_csrf_header(&state, &session, &headers)?;
    let start = state
        .ward
        .step_up_start(&session, state.clock.now())
        .await
        .map_err(|e| match e {
            CoreError::NotFound(_) => JsonError(
                StatusCode::CONFLICT,
                "You have no passkey to confirm with. Add one first.".into(),
            ),
            other => other.into(),
        })?;
    Ok(Json(json!(start)))
}

async fn step_up_finish(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
    Json(answer): Json<CeremonyAnswer>,
) -> Result<Json<Value>, JsonError> {
    check_csrf_header(&state, &session, &headers)?;
    state
        .ward
        .step_up_finish(
            &session,
            &answer.ceremony,
            &answer.credential,
            state.clock.now(),
        )
        .await?;
    Ok(Json(json!({ "reload": true })))
}

// ---------------------------------------------------------------------------------------------
// Authenticator apps (TOTP)
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/totp_new.html")]
struct TotpNewPage {
    layout: Layout,
    ceremony: String,
    secret: String,
    uri: String,
    qr_data_uri: String,
    name: String,
    error: Option<&'static str>,
}

fn qr_svg_data_uri(text: &str) -> String {
    use base64::Engine as _;
    let svg = qrcode::QrCode::new(text.as_bytes()).map_or_else(
        |_| String::new(),
        |code| {
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(220, 220)
                .quiet_zone(true)
                .build()
        },
    );
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

/// Groups a Base32 secret in fours, for reading it off the screen.
fn grouped(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn totp_new_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Response, WebError> {
    if session.user.factors_frozen_ms.is_none()
        && state
            .ward
            .needs_step_up(&session, state.clock.now())
            .await?
    {
        return Ok(confirm_first("/portal/totp/new"));
    }
    let setup = state
        .ward
        .totp_setup_start(&session, state.clock.now())
        .await?;
    Ok(render(&TotpNewPage {
        layout: Layout::new(&state, "Add an authenticator app", Some(&session)),
        ceremony: setup.ceremony,
        secret: grouped(&setup.secret_base32),
        qr_data_uri: qr_svg_data_uri(&setup.otpauth_uri),
        uri: setup.otpauth_uri.to_string(),
        name: "Authenticator app".into(),
        error: None,
    }))
}

#[derive(Debug, Deserialize)]
struct TotpConfirmForm {
    csrf: String,
    ceremony: String,
    code: String,
    name: String,
    /// The secret and URI are re-shown after a wrong code (they are the user's own).
    secret: String,
    uri: String,
}

async fn totp_confirm(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Form(form): Form<TotpConfirmForm>,
) -> Result<Response, WebError> {
    check_csrf(&state, &session, &form.csrf)?;
    let name = form.name.trim();
    let result = state
        .ward
        .totp_setup_finish(
            &session,
            &form.ceremony,
            &form.code,
            name,
            state.clock.now(),
        )
        .await?;
    match result {
        TotpConfirm::Added(_) => Ok(Redirect::to("/portal?done=totp").into_response()),
        TotpConfirm::WrongCode { ceremony } => {
            let mut page = render(&TotpNewPage {
                layout: Layout::new(&state, "Add an authenticator app", Some(&session)),
                ceremony,
                qr_data_uri: qr_svg_data_uri(&form.uri),
                secret: form.secret,
                uri: form.uri,
                name: name.to_owned(),
                error: Some(
                    "That code did not match. Enter the code your app shows now (codes change \
                     every 30 seconds); if it still fails, check the time on your phone.",
                ),
            });
            *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(page)
        }
    }
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

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn recovery_codes(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&state, &session, &form.csrf)?;
    if session.user.factors_frozen_ms.is_none()
        && state
            .ward
            .needs_step_up(&session, state.clock.now())
            .await?
    {
        return Ok(confirm_first("/portal"));
    }
    let codes = state
        .ward
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
    let factors = state.ward.factors(&session.user.user_id).await?;
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

async fn factor_page(
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
struct RenameForm {
    csrf: String,
    name: String,
}

async fn factor_rename(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path((kind, id)): Path<(String, String)>,
    Form(form): Form<RenameForm>,
) -> Result<Response, WebError> {
    check_csrf(&state, &session, &form.csrf)?;
    state
        .ward
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

async fn factor_remove(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path((kind, id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&state, &session, &form.csrf)?;
    let now = state.clock.now();
    match state
        .ward
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

// ---------------------------------------------------------------------------------------------
// Sign-out
// ---------------------------------------------------------------------------------------------

async fn sign_out(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&state, &session, &form.csrf)?;
    state.ward.sign_out(&session, state.clock.now()).await?;
    let mut response = Redirect::to("/portal/sign-in").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_session_cookie());
    Ok(response)
}

async fn sign_out_everywhere(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    check_csrf(&state, &session, &form.csrf)?;
    let actor = ward_core::model::Actor::User(session.user.user_id.clone());
    state
        .ward
        .sign_out_everywhere(&actor, &session.user.user_id, state.clock.now())
        .await?;
    let mut response = Redirect::to("/portal/sign-in").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_session_cookie());
    Ok(response)
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

async fn report_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    match state
        .ward
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

async fn report_confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    match state.ward.report_not_me(&token, state.clock.now()).await {
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
