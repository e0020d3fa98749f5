//! The application: shared state, routes and the middleware every request passes through.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use ward_core::clock::Clock;
use ward_core::service::Ward;
use ward_proto::duo::envelope::DuoErrorCode;

use crate::duo;
use crate::duo::signed::DuoSettings;
use crate::error::ApiError;
use crate::limits::Limits;

/// State shared by every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub ward: Arc<Ward>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<DuoSettings>,
    pub limits: Arc<Limits>,
    pub wakers: Arc<crate::device::DeviceWakers>,
    pub web: Arc<crate::web::WebSettings>,
    /// Tells long-polls that the server is shutting down.
    pub shutdown: Shutdown,
}

/// Whether the server is shutting down: long-polls answer at once instead of holding their
/// request open.
#[derive(Clone, Debug)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// A shutdown flag and the sender that raises it.
    pub fn new() -> (tokio::sync::watch::Sender<bool>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Self(rx))
    }

    /// Whether shutdown has begun.
    pub fn is_started(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes when shutdown begins (never, once the sender is gone without raising it).
    pub async fn started(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|started| *started).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Default for Shutdown {
    /// A flag that is never raised (tests that build the state themselves).
    fn default() -> Self {
        Self::new().1
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone, Copy, Debug, Default)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let mut b = [0u8; 8];
        rand::fill(&mut b);
        HeaderValue::from_str(&hex::encode(b))
            .ok()
            .map(RequestId::new)
    }
}

/// The whole router with its middleware.
pub fn router(state: AppState) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request| {
        let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
        // The path only: query strings can carry user names and transaction ids.
        tracing::info_span!("request", method = %req.method(), path = %loggable_path(req.uri().path()), request_id = %id)
    });
    let pages = Router::new()
        .merge(crate::portal::router())
        .merge(crate::prompt::router())
        .merge(crate::recovery::router())
        .merge(crate::helpdesk::router())
        .route("/static/{name}", axum::routing::get(crate::web::asset))
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to("/portal") }),
        )
        .route(
            "/favicon.ico",
            axum::routing::get(|| async { StatusCode::NO_CONTENT }),
        )
        // Inside error_pages, so that a refusal is rendered as a page.
        .layer(axum::middleware::from_fn_with_state(
            crate::input::Dialect::Page,
            crate::input::refuse_unstorable,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::web::same_origin,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::web::error_pages,
        ))
        .layer(axum::middleware::from_fn(crate::web::security_headers));
    Router::new()
        .merge(duo::router())
        .merge(crate::device::router())
        .merge(crate::oauth::router())
        .merge(pages)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::guard,
        ))
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(75),
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID, RandomRequestId))
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
        ]))
}

/// A request path for the logs: the capability some links carry in their path (a recovery
/// case handle, an enrolment or report token) is left out.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    ["/recovery/continue/", "/portal/enrol/", "/portal/report/"]
        .into_iter()
        .find(|prefix| path.starts_with(prefix))
        .map_or(std::borrow::Cow::Borrowed(path), |prefix| {
            std::borrow::Cow::Owned(format!("{prefix}…"))
        })
}

async fn not_found() -> impl IntoResponse {
    ApiError::code(DuoErrorCode::NotFound)
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::code(DuoErrorCode::MethodNotAllowed)
}
