//! The hosted prompt (Duo Web SDK v4): `/oauth/v1/authorize` and the prompt pages it shows,
//! plus the small JSON calls the page script makes. The back channel (`health_check`,
//! `token`) is in [`crate::oauth`].

use askama::Template;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use ward_core::CoreError;
use ward_core::service::{
    AuthorizeParams, Completion, PromptNext, PromptPasscode, PromptPush, PromptView,
};

use crate::app::AppState;
use crate::web::{JsonError, Layout, WebError, render};

const MAX_BODY: usize = 16 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/v1/authorize", get(authorize))
        .route("/prompt/passcode", post(passcode))
        .route("/prompt/cancel", post(cancel))
        .route("/prompt/api/passkey/start", post(passkey_start))
        .route("/prompt/api/passkey/finish", post(passkey_finish))
        .route("/prompt/api/enrol/start", post(enrol_start))
        .route("/prompt/api/enrol/finish", post(enrol_finish))
        .route("/prompt/api/push/start", post(push_start))
        .route("/prompt/api/push/status", post(push_status))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// One method button or form on the prompt page.
#[derive(Debug)]
struct MethodView {
    method: &'static str,
    primary: bool,
}

#[derive(Template)]
#[template(path = "prompt/prompt.html")]
struct PromptPage {
    layout: Layout,
    app_name: String,
    username: String,
    context: String,
    methods: Vec<MethodView>,
    enrol: bool,
    error: Option<&'static str>,
}

/// The page's policy: like every page, but forms may also go back to the application.
fn prompt_csp(redirect_uri: &str) -> HeaderValue {
    let target = url::Url::parse(redirect_uri)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self' {target}; frame-ancestors 'none'; base-uri 'none'"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

fn show(state: &AppState, view: &PromptView, error: Option<&'static str>) -> Response {
    let request = &view.request;
    let (methods, enrol) = match &view.next {
        PromptNext::Choose(methods) => (
            methods
                .iter()
                .enumerate()
                .map(|(i, m)| MethodView {
                    method: m.as_str(),
                    primary: i == 0,
                })
                .collect(),
            false,
        ),
        PromptNext::Enrol => (Vec::new(), true),
        PromptNext::Done(done) => return redirect_to(done),
    };
    let mut response = render(&PromptPage {
        layout: Layout::new(state, format!("Sign in to {}", request.app_name), None),
        app_name: request.app_name.clone(),
        username: request.username.clone(),
        context: view.context.clone(),
        methods,
        enrol,
        error,
    });
    if error.is_some() {
        *response.status_mut() = StatusCode::UNAUTHORIZED;
    }
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        prompt_csp(&request.redirect_uri),
    );
    response
}

/// Back to the application (a 302, as the Web SDK expects).
fn redirect_to(done: &Completion) -> Response {
    let mut response = Redirect::to(&done.redirect).into_response();
    *response.status_mut() = StatusCode::FOUND;
    response
}

fn client_ip(state: &AppState, parts: &axum::http::request::Parts) -> String {
    crate::duo::signed::client_ip(parts, state.settings.trust_forwarded_for).to_string()
}

async fn authorize(
    State(state): State<AppState>,
    Query(params): Query<AuthorizeParams>,
    request: axum::extract::Request,
) -> Result<Response, WebError> {
    let (parts, _) = request.into_parts();
    let ip = client_ip(&state, &parts);
    let view = state
        .ward
        .prompt()
        .authorize(&params, Some(&ip), state.clock.now())
        .await
        .map_err(|e| match e {
            CoreError::InvalidInput { reason, .. } => WebError::new(
                StatusCode::BAD_REQUEST,
                "This sign-in link is not valid",
                format!(
                    "The application sent an invalid sign-in request ({reason}). Go back to the \
                     application and try again; if it keeps happening, tell its administrators."
                ),
            ),
            other => other.into(),
        })?;
    Ok(show(&state, &view, None))
}

#[derive(Debug, Deserialize)]
struct PasscodeForm {
    context: String,
    passcode: String,
}

async fn passcode(
    State(state): State<AppState>,
    Form(form): Form<PasscodeForm>,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    match state
        .ward
        .prompt()
        .passcode(&form.context, &form.passcode, now)
        .await?
    {
        PromptPasscode::Done(done) => Ok(redirect_to(&done)),
        PromptPasscode::Wrong => {
            let view = state.ward.prompt().resume(&form.context, now).await?;
            Ok(show(
                &state,
                &view,
                Some("That code did not work. Enter the code your app shows now."),
            ))
        }
    }
}

#[derive(Debug, Deserialize)]
struct ContextForm {
    context: String,
}

async fn cancel(
    State(state): State<AppState>,
    Form(form): Form<ContextForm>,
) -> Result<Response, WebError> {
    let url = state
        .ward
        .prompt()
        .cancel(&form.context, state.clock.now())
        .await?;
    Ok(redirect_to(&Completion {
        redirect: url,
        allowed: false,
    }))
}

#[derive(Debug, Deserialize)]
struct Answer {
    context: String,
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    credential: Value,
    #[serde(default)]
    txid: String,
}

fn done_json(done: &Completion) -> Json<Value> {
    Json(json!({ "redirect": done.redirect, "allowed": done.allowed }))
}

async fn passkey_start(
    State(state): State<AppState>,
    Json(answer): Json<Answer>,
) -> Result<Json<Value>, JsonError> {
    let start = state
        .ward
        .prompt()
        .passkey_start(&answer.context, state.clock.now())
        .await?;
    Ok(Json(json!(start)))
}

async fn passkey_finish(
    State(state): State<AppState>,
    Json(answer): Json<Answer>,
) -> Result<Json<Value>, JsonError> {
    let done = state
        .ward
        .prompt()
        .passkey_finish(
            &answer.context,
            &answer.ceremony,
            &answer.credential,
            state.clock.now(),
        )
        .await?;
    Ok(done_json(&done))
}

async fn enrol_start(
    State(state): State<AppState>,
    Json(answer): Json<Answer>,
) -> Result<Json<Value>, JsonError> {
    let start = state
        .ward
        .prompt()
        .enrol_start(&answer.context, state.clock.now())
        .await?;
    Ok(Json(json!(start)))
}

async fn enrol_finish(
    State(state): State<AppState>,
    Json(answer): Json<Answer>,
) -> Result<Json<Value>, JsonError> {
    let done = state
        .ward
        .prompt()
        .enrol_finish(
            &answer.context,
            &answer.ceremony,
            &answer.credential,
            state.clock.now(),
        )
        .await?;
    Ok(done_json(&done))
}

async fn push_start(
    State(state): State<AppState>,
    Json(answer): Json<Answer>,
) -> Result<Json<Value>, JsonError> {
    match state
        .ward
        .prompt()
        .push_start(&answer.context, state.clock.now())
        .await?
    {
        PromptPush::Started { txid, number } => Ok(Json(json!({ "txid": txid, "number": number }))),
        PromptPush::Done(done) => Ok(done_json(&done)),
    }
}

async fn push_status(
    State(state): State<AppState>,
    Json(answer): Json<Answer>,
) -> Result<Json<Value>, JsonError> {
    let done = state
        .ward
        .prompt()
        .push_status(&answer.context, &answer.txid, state.clock.now())
        .await?;
    Ok(done.map_or_else(|| Json(json!({ "waiting": true })), |d| done_json(&d)))
}
