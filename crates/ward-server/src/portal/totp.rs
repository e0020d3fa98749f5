//! Adding an authenticator app (TOTP): the QR code page and the first code that confirms it.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use ward_core::service::TotpConfirm;

use super::{check_csrf, confirm_first};
use crate::app::AppState;
use crate::web::{Layout, SignedIn, WebError, render};

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

pub(super) async fn totp_new_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Response, WebError> {
    if session.user.factors_frozen_ms.is_none()
        && state
            .ward
            .portal()
            .needs_step_up(&session, state.clock.now())
            .await?
    {
        return Ok(confirm_first("/portal/totp/new"));
    }
    let setup = state
        .ward
        .portal()
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
pub(super) struct TotpConfirmForm {
    csrf: String,
    ceremony: String,
    code: String,
    name: String,
    /// The secret and URI are re-shown after a wrong code (they are the user's own).
    secret: String,
    uri: String,
}

pub(super) async fn totp_confirm(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Form(form): Form<TotpConfirmForm>,
) -> Result<Response, WebError> {
    check_csrf(&state, &session, &form.csrf)?;
    let name = form.name.trim();
    let result = state
        .ward
        .portal()
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
