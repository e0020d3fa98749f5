//! The gate every page, OAuth and device-channel request passes before a handler reads it:
//! input holding a NUL character — in the path, the query string, a form field or a JSON
//! string — is refused with a 400 in the caller's dialect, so nothing a store cannot hold
//! reaches one (PostgreSQL refuses NUL in text).
//!
//! The Duo APIs check their parameters in [`ward_proto::duo::params`] instead, where they are
//! parsed, so that the refusal is a Duo envelope naming the parameter.
//!
//! # Security
//! One refused value used to fail every other request of its write batch. The store refuses
//! such sets as well ([`ward_store::ChangeSet::check_storable`]); this gate answers first, with
//! a clear error, before any work is done.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use ward_proto::duo::envelope::DuoErrorCode;
use ward_store::is_storable;

use crate::error::ApiError;
use crate::web::{JsonError, WebError};

/// The largest body a page, OAuth or device request may have (the pages' own limit).
pub const MAX_BODY: usize = 16 * 1024;

/// Longest field name echoed back in a refusal.
const MAX_ECHOED_NAME: usize = 64;

/// How refusals are written for the routes behind the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// HTML pages (an error page) and their script's `/api/` calls (`{"error": …}`).
    Page,
    /// The device channel (`{"error": …, "message": …}`).
    Device,
    /// The OAuth endpoints of the hosted prompt.
    OAuth,
}

/// Why the gate refused a request.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    TooLarge,
    /// A NUL character in the named field (`path`, `query`, `body` or a parameter's name).
    Unstorable(String),
}

/// Middleware: refuses requests holding input no store can hold.
pub async fn refuse_unstorable(
    State(dialect): State<Dialect>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return refusal(dialect, parts.uri.path(), &Refusal::TooLarge);
    };
    if let Some(field) = unstorable_field(&parts, &bytes) {
        tracing::info!(field, "request refused: it holds a NUL character");
        return refusal(dialect, parts.uri.path(), &Refusal::Unstorable(field));
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Where the request holds a NUL character, if it does.
fn unstorable_field(parts: &Parts, body: &Bytes) -> Option<String> {
    // A NUL cannot appear raw in a URI; percent-encoded it is `%00`.
    if parts.uri.path().contains("%00") {
        return Some("path".into());
    }
    if let Some(field) = parts.uri.query().and_then(|q| form_field(q.as_bytes())) {
        return Some(field);
    }
    if body.is_empty() {
        return None;
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        // Not JSON at all: the handler's extractor refuses it in its own words.
        let value: Value = serde_json::from_slice(body).ok()?;
        json_field(&value, "body")
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        form_field(body)
    } else {
        body.contains(&0).then(|| "body".into())
    }
}

/// The first form field (query string or form body) holding NUL in its name or value.
fn form_field(input: &[u8]) -> Option<String> {
    form_urlencoded::parse(input)
        .find(|(key, value)| !is_storable(key) || !is_storable(value))
        .map(|(key, _)| echoed(&key, "query"))
}

/// The first JSON string (or member name) holding NUL, named by its member.
fn json_field(value: &Value, name: &str) -> Option<String> {
    match value {
        Value::String(text) => (!is_storable(text)).then(|| name.to_owned()),
        Value::Array(items) => items.iter().find_map(|item| json_field(item, name)),
        Value::Object(members) => members.iter().find_map(|(key, item)| {
            if is_storable(key) {
                json_field(item, &echoed(key, name))
            } else {
                Some(name.to_owned())
            }
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// A field name safe to echo back, or `fallback`.
fn echoed(name: &str, fallback: &str) -> String {
    if is_storable(name) && !name.is_empty() && name.len() <= MAX_ECHOED_NAME {
        name.to_owned()
    } else {
        fallback.to_owned()
    }
}

fn refusal(dialect: Dialect, path: &str, why: &Refusal) -> Response {
    let (status, message, field) = match why {
        Refusal::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request is too large.",
            "body",
        ),
        Refusal::Unstorable(field) => (
            StatusCode::BAD_REQUEST,
            "The request holds a character Ward cannot accept (NUL).",
            field.as_str(),
        ),
    };
    match dialect {
        Dialect::Device => (
            status,
            axum::Json(json!({
                "error": "invalid_input",
                "message": format!("{field}: {message}"),
            })),
        )
            .into_response(),
        Dialect::OAuth if path == "/oauth/v1/token" => (
            status,
            axum::Json(json!({ "error": "invalid_request", "error_description": message })),
        )
            .into_response(),
        Dialect::OAuth => {
            ApiError::message(DuoErrorCode::InvalidParameters, message, Some(field)).into_response()
        }
        Dialect::Page if path.contains("/api/") => {
            JsonError(status, message.into()).into_response()
        }
        Dialect::Page => WebError::new(status, "Please check your input", message).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    fn app(dialect: Dialect) -> Router {
        Router::new()
            .route(
                "/{*rest}",
                post(|| async { "reached" }).get(|| async { "reached" }),
            )
            .layer(axum::middleware::from_fn_with_state(
                dialect,
                refuse_unstorable,
            ))
    }

    async fn send(dialect: Dialect, uri: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        let request = axum::http::Request::post(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_vec()))
            .unwrap();
        let response = app(dialect).oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Poisoned write batch: NUL anywhere in a device, page or OAuth request is refused with
    /// a 400 naming the field, before the handler runs.
    #[tokio::test]
    async fn poisoned_write_batch_nul_input_is_refused_at_the_edge() {
        let json = "application/json";
        let form = "application/x-www-form-urlencoded";
        let (status, body) = send(
            Dialect::Device,
            "/device/v1/answer",
            json,
            br#"{"txid":"a\u0000b","device_id":"DP1"}"#,
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body.contains("invalid_input") && body.contains("txid"),
            "{body}"
        );
        let nested = br#"{"outer":{"device_id":["ok","\u0000"]}}"#;
        let (status, body) = send(Dialect::Device, "/device/v1/x", json, nested).await;
        assert_eq!((status, body.contains("device_id")), (400, true), "{body}");
        let (status, body) = send(Dialect::Page, "/recovery/start", form, b"username=a%00b").await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = send(Dialect::Page, "/portal/api/x", json, br#"{"\u0000":1}"#).await;
        assert!(status == 400 && body.contains("\"error\""), "{body}");
        let (status, _) = send(Dialect::Page, "/helpdesk/users/a%00b/note", form, b"").await;
        assert_eq!(status, 400);
        let (status, _) = send(Dialect::Page, "/oauth/v1/authorize?state=%00", form, b"").await;
        assert_eq!(status, 400);
        let (status, body) = send(Dialect::OAuth, "/oauth/v1/token", form, b"code=x\0y").await;
        assert!(status == 400 && body.contains("invalid_request"), "{body}");
        let (status, body) = send(
            Dialect::OAuth,
            "/oauth/v1/health_check",
            form,
            b"client_id=%00",
        )
        .await;
        assert!(status == 400 && body.contains("40002"), "{body}");
        let (status, _) = send(Dialect::Device, "/device/v1/x", "text/plain", b"a\0").await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn clean_input_passes_and_oversized_bodies_are_refused() {
        let json = "application/json";
        let ok = br#"{"txid":"T1","name":"J\u00f6rg\n","n":[1,null,true]}"#;
        assert_eq!(
            send(Dialect::Device, "/d", json, ok).await,
            (200, "reached".into())
        );
        // Not JSON: the handler's extractor answers, not the gate.
        assert_eq!(send(Dialect::Device, "/d", json, b"{").await.0, 200);
        let form = "application/x-www-form-urlencoded";
        assert_eq!(send(Dialect::Page, "/p?a=%0a", form, b"b=%01").await.0, 200);
        let big = vec![b'a'; MAX_BODY + 1];
        assert_eq!(send(Dialect::Device, "/d", "text/plain", &big).await.0, 413);
    }
}
