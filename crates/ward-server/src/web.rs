//! What every HTML page shares: the branded layout, security headers, the session cookie,
//! CSRF and origin checks, error pages with a request id, and the static assets.
//!
//! # Security
//! Pages carry a strict Content-Security-Policy (scripts and styles from this origin only, no
//! inline code, no framing), HSTS, `no-store` caching and a `same-origin` referrer policy (links
//! carry tokens in their paths). The session cookie is `__Host-` prefixed, `Secure`, `HttpOnly` and
//! `SameSite=Strict`, and names server-side state only. Every state-changing request must come
//! from this origin (`Origin`/`Sec-Fetch-Site`), and signed-in forms also carry a CSRF token
//! bound to the session.

use std::sync::Arc;

use askama::Template;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use ward_core::CoreError;
use ward_core::service::Session;

use crate::app::AppState;
use crate::config::Branding;

/// The session cookie (the `__Host-` prefix pins it to this host, path `/`, and HTTPS).
pub const SESSION_COOKIE: &str = "__Host-ward_session";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What pages need to know about the deployment.
#[derive(Debug)]
pub struct WebSettings {
    pub branding: Branding,
    /// `https://host[:port]`, the only origin state-changing requests may come from.
    pub origin: String,
    /// `:root { --accent: … }`, served as `/static/brand.css`.
    brand_css: String,
}

impl WebSettings {
    pub fn new(branding: Branding, public_host: &str) -> Arc<Self> {
        let brand_css = format!(":root {{ --accent: {}; }}\n", branding.accent_colour);
        Arc::new(Self {
            branding,
            origin: format!("https://{public_host}"),
            brand_css,
        })
    }
}

/// The parts of the layout every page fills in.
#[derive(Clone, Debug)]
pub struct Layout {
    pub organisation: String,
    pub has_logo: bool,
    pub title: String,
    /// Set when signed in: the user's name and the CSRF token of their session.
    pub username: Option<String>,
    pub csrf: Option<String>,
}

impl Layout {
    pub fn new(state: &AppState, title: impl Into<String>, session: Option<&Session>) -> Self {
        Self {
            organisation: state.web.branding.organisation.clone(),
            has_logo: state.web.branding.logo.is_some(),
            title: title.into(),
            username: session.map(|s| s.user.username.clone()),
            csrf: session.map(|s| s.csrf.clone()),
        }
    }
}

/// Renders a template into an HTML response.
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            WebError::internal().into_response()
        }
    }
}

/// An error shown as a page: what happened and what to do next. The request id is added
/// by [`error_pages`].
#[derive(Clone, Debug)]
pub struct WebError {
    pub status: StatusCode,
    pub title: String,
    pub message: String,
    /// A link to the next step: `(href, label)`.
    pub next: Option<(String, String)>,
}

impl WebError {
    pub fn new(status: StatusCode, title: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            title: title.into(),
            message: message.into(),
            next: None,
        }
    }

    #[must_use]
    pub fn next(mut self, href: &str, label: &str) -> Self {
        self.next = Some((href.into(), label.into()));
        self
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "Ward could not complete this request. Try again in a moment; if it keeps \
             happening, give your administrators the request id below.",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "Ward cannot reach its database right now. Nothing was changed; try again in a \
             moment.",
        )
    }

    pub fn forbidden_origin() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form was sent from another site, or its security token has expired. Go \
             back, reload the page and try again.",
        )
        .next("/portal", "Back to your account")
    }
}

impl From<CoreError> for WebError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound(what) => Self::new(
                StatusCode::NOT_FOUND,
                "Not found",
                format!("{} was not found.", capitalise(&what)),
            ),
            CoreError::Conflict(m) => {
                Self::new(StatusCode::CONFLICT, "Not possible", capitalise(&m))
            }
            CoreError::InvalidInput { reason, .. } => Self::new(
                StatusCode::BAD_REQUEST,
                "Please check your input",
                capitalise(&reason),
            ),
            CoreError::Unauthenticated => Self::new(
                StatusCode::UNAUTHORIZED,
                "Sign-in failed",
                "That did not work. Check what you entered and try again.",
            ),
            CoreError::Forbidden(m) => {
                Self::new(StatusCode::FORBIDDEN, "Not allowed", capitalise(&m))
            }
            CoreError::RateLimited => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Wait a few minutes, then try again.",
            ),
            CoreError::Expired(what) => Self::new(
                StatusCode::GONE,
                "Expired",
                format!("{} has expired.", capitalise(&what)),
            ),
            CoreError::Unavailable(detail) => {
                tracing::error!(%detail, "database unavailable");
                Self::unavailable()
            }
            CoreError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Self::internal()
            }
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().chain(chars).collect::<String>()
    })
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    error: &'a WebError,
    request_id: &'a str,
}

/// Renders [`WebError`]s as branded pages carrying the request id.
pub async fn error_pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let response = next.run(request).await;
    let Some(error) = response.extensions().get::<WebError>().cloned() else {
        return response;
    };
    let page = ErrorPage {
        layout: Layout::new(&state, error.title.clone(), None),
        error: &error,
        request_id: &request_id,
    };
    let mut rendered = match page.render() {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(_) => "error".into_response(),
    };
    *rendered.status_mut() = error.status;
    rendered
}

/// Security headers on every page and asset.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let is_static = request.uri().path().starts_with("/static/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    // A page may narrow or extend its policy (the prompt lets forms return to the
    // application); otherwise the strict default applies.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    if is_static {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
    } else {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Refuses state-changing requests that come from another origin (CSRF defence for forms
/// that have no session yet; signed-in forms also carry a token).
pub async fn same_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let headers = request.headers();
        let site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
        let origin = headers.get(header::ORIGIN).map(HeaderValue::as_bytes);
        // Fetch metadata decides where browsers send it; `Origin` covers older browsers.
        // Requests without either (command-line clients) carry no ambient credentials.
        let allowed = match (site, origin) {
            (Some(site), _) => site == b"same-origin" || site == b"none",
            (None, Some(origin)) => origin == state.web.origin.as_bytes(),
            (None, None) => true,
        };
        if !allowed {
            tracing::warn!(path = %request.uri().path(), "cross-origin request refused");
            return WebError::forbidden_origin().into_response();
        }
    }
    next.run(request).await
}

/// The session cookie's value, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// A cookie's value, if the request has it.
pub fn cookie(headers: &HeaderMap, wanted: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.to_owned())
}

/// `Set-Cookie` for a new session.
pub fn set_session_cookie(token: &str, max_age_secs: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}"
    ))
    .unwrap_or_else(|_| clear_session_cookie())
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-ward_session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
    )
}

/// The signed-in session, when there is one (an extractor that never fails).
#[derive(Clone, Debug)]
pub struct MaybeSession(pub Option<Session>);

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let Some(token) = session_cookie(&parts.headers) else {
            return Ok(Self(None));
        };
        Ok(Self(
            state
                .ward
                .portal()
                .session(&token, state.clock.now())
                .await?,
        ))
    }
}

/// A signed-in session; pages redirect to the sign-in page without one, JSON calls get 401.
#[derive(Clone, Debug)]
pub struct SignedIn(pub Session);

/// What a request without a valid session gets.
#[derive(Debug)]
pub enum NoSession {
    Page,
    Api,
    Error(WebError),
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            Self::Page => Redirect::to("/portal/sign-in").into_response(),
            Self::Api => (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({
                    "error": "Your session has ended. Sign in again."
                })),
            )
                .into_response(),
            Self::Error(e) => e.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = NoSession;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NoSession> {
        let path = parts.uri.path();
        let api = path.starts_with("/portal/api/") || path.starts_with("/helpdesk/api/");
        let MaybeSession(session) = MaybeSession::from_request_parts(parts, state)
            .await
            .map_err(NoSession::Error)?;
        match session {
            Some(s) => Ok(Self(s)),
            None if api => Err(NoSession::Api),
            None => Err(NoSession::Page),
        }
    }
}

/// Static assets: the stylesheet, the page script, the brand colours and the logo.
pub async fn asset(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let (body, content_type): (Vec<u8>, &str) = match name.as_str() {
        "ward.css" => (
            include_bytes!("../static/ward.css").to_vec(),
            "text/css; charset=utf-8",
        ),
        "ward.js" => (
            include_bytes!("../static/ward.js").to_vec(),
            "text/javascript; charset=utf-8",
        ),
        "brand.css" => (
            state.web.brand_css.clone().into_bytes(),
            "text/css; charset=utf-8",
        ),
        "logo" => match &state.web.branding.logo {
            Some((bytes, content_type)) => (bytes.clone(), content_type),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A JSON error for the script's calls: `{ "error": message }`.
#[derive(Debug)]
pub struct JsonError(pub StatusCode, pub String);

impl From<CoreError> for JsonError {
    fn from(e: CoreError) -> Self {
        let page = WebError::from(e);
        Self(page.status, page.message)
    }
}

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// Formats a UTC millisecond timestamp for pages.
pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || "-".into(),
        |t| t.format("%-d %b %Y, %H:%M UTC").to_string(),
    )
}

/// The `org` query parameter of a page nobody is signed in to yet (sign-in, recovery, a
/// report): the organisation (by name or id) a username is looked up in. Without it, the only
/// organisation there is; a deployment with several names one in its portal links.
#[derive(Debug, Default, serde::Deserialize)]
pub struct OrgQuery {
    #[serde(default)]
    pub org: Option<String>,
}

impl OrgQuery {
    /// The organisation this request names (or the only one).
    pub async fn resolve(&self, state: &AppState) -> Result<ward_core::model::OrgId, CoreError> {
        let named = self.org.as_deref().map(str::trim).filter(|o| !o.is_empty());
        state.ward.admin().resolve_org(named).await
    }

    /// The query this page's forms and links keep, so that the organisation it names survives
    /// without JavaScript: `?org=NAME` (form-encoded; escaped again by the template), or
    /// nothing. A value longer than any organisation name is not kept.
    pub fn suffix(&self) -> String {
        match self.org.as_deref().map(str::trim) {
            Some(org) if !org.is_empty() && org.len() <= MAX_ORG_QUERY => {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("org", org)
                    .finish();
                format!("?{query}")
            }
            _ => String::new(),
        }
    }
}

/// The longest `org` a page passes on (organisation names and ids are far shorter).
const MAX_ORG_QUERY: usize = 200;
