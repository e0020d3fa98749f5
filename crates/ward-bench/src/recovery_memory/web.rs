//! The few browser-like calls the recovery scenario makes: form posts and page reads over a
//! fresh HTTPS connection each, with the answer's status, redirect target and cookies.

use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, COOKIE, HOST, LOCATION, SET_COOKIE, USER_AGENT};
use hyper::{Method, Request, StatusCode};

use crate::duo::BENCH_USER_AGENT;
use crate::load::target::Target;

/// The largest page read.
const MAX_BODY: usize = 1 << 20;

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// `Location`, if any.
    pub location: Option<String>,
    /// `name=value` of every `Set-Cookie`.
    pub cookies: Vec<String>,
    pub body: Bytes,
}

impl Answer {
    /// The `name=value` pair of cookie `name`, if the answer set it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|c| c.split_once('=').is_some_and(|(n, _)| n == name))
            .cloned()
    }
}

/// `GET path` (with `form`: `POST` of that urlencoded form), sending `cookie`, within `limit`.
pub async fn call(
    target: &Target,
    path: &str,
    cookie: Option<&str>,
    form: Option<String>,
    limit: Duration,
) -> anyhow::Result<Answer> {
    tokio::time::timeout(limit, call_inner(target, path, cookie, form))
        .await
        .with_context(|| format!("no answer from {path} within {limit:?}"))?
}

async fn call_inner(
    target: &Target,
    path: &str,
    cookie: Option<&str>,
    form: Option<String>,
) -> anyhow::Result<Answer> {
    let mut sender = target.connect().await?;
    let method = if form.is_some() {
        Method::POST
    } else {
        Method::GET
    };
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, &target.authority)
        .header(USER_AGENT, BENCH_USER_AGENT);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    if form.is_some() {
        request = request.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let request = request.body(Full::new(Bytes::from(form.unwrap_or_default())))?;
    let response = sender.send_request(request).await.context("send")?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the body of {path}: {e}"))?
        .to_bytes();
    let location = parts
        .headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let cookies = parts
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::to_owned)
        .collect();
    Ok(Answer {
        status: parts.status,
        location,
        cookies,
        body,
    })
}

/// The `content` of the page's `<meta name="csrf-token">`.
pub fn csrf_token(page: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(page).ok()?;
    let (_, rest) = text.split_once(r#"name="csrf-token" content=""#)?;
    rest.split_once('"').map(|(token, _)| token.to_owned())
}

/// `application/x-www-form-urlencoded` of `pairs` (values are letters, digits and `-`).
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_token_is_read_from_the_meta_tag() {
        let page = br#"<head><meta name="csrf-token" content="abc_-1"></head>"#;
        assert_eq!(csrf_token(page).as_deref(), Some("abc_-1"));
        assert_eq!(csrf_token(b"<head></head>"), None);
    }
}
