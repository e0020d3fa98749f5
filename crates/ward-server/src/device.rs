//! The device channel (`/device/v1/*`): activation, the signed event stream, signed answers.
//! Wire types and signing rules: `ward_proto::device`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use tokio::sync::broadcast;
use ward_core::CoreError;
use ward_proto::device::{
    ActivateRequest, ActivateResponse, AnswerRequest, AnswerResponse, ChallengeRequest,
    ChallengeResponse, DeviceError, PushEvent, StreamQuery,
};
use ward_store::Signal;

use crate::app::AppState;

/// Routes of the device channel, behind the per-address limits.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/device/v1/activate", post(activate))
        .route("/device/v1/challenge", post(challenge))
        .route("/device/v1/stream", get(stream))
        .route("/device/v1/answer", post(answer))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), limit))
}

/// Refuses addresses over their request rate or with too many recent failures, and counts
/// this request's failure (a refused signature, code or answer) against its address.
async fn limit(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let ip = crate::duo::signed::client_ip(&parts, state.settings.trust_forwarded_for);
    if !state.limits.admit_ip(ip) {
        return DeviceApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; try again later".into(),
        )
        .into_response();
    }
    let response = next
        .run(axum::extract::Request::from_parts(parts, body))
        .await;
    let status = response.status();
    if matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::GONE | StatusCode::NOT_FOUND
    ) {
        state.limits.note_failure(ip);
    }
    response
}

/// An error of the device endpoints, as JSON.
#[derive(Debug)]
pub struct DeviceApiError(StatusCode, &'static str, String);

impl From<CoreError> for DeviceApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound(what) => Self(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            CoreError::Conflict(what) => Self(StatusCode::CONFLICT, "conflict", what),
            CoreError::InvalidInput { field, reason } => Self(
                StatusCode::BAD_REQUEST,
                "invalid_input",
                format!("{field}: {reason}"),
            ),
            CoreError::Unauthenticated => Self(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "device signature not accepted".into(),
            ),
            CoreError::Forbidden(why) => Self(StatusCode::FORBIDDEN, "forbidden", why),
            CoreError::RateLimited => Self(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "slow down".into(),
            ),
            CoreError::Expired(what) => {
                Self(StatusCode::GONE, "expired", format!("{what} expired"))
            }
            CoreError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Self(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".into(),
                )
            }
        }
    }
}

impl IntoResponse for DeviceApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(DeviceError {
                error: self.1.into(),
                message: self.2,
            }),
        )
            .into_response()
    }
}

/// `POST /device/v1/activate`.
async fn activate(
    State(state): State<AppState>,
    Json(req): Json<ActivateRequest>,
) -> Result<Json<ActivateResponse>, DeviceApiError> {
    let (device, username) = state.ward.activate_device(&req, state.clock.now()).await?;
    Ok(Json(ActivateResponse {
        device_id: device.id,
        username,
    }))
}

/// `POST /device/v1/challenge`.
async fn challenge(
    State(state): State<AppState>,
    Json(req): Json<ChallengeRequest>,
) -> Result<Json<ChallengeResponse>, DeviceApiError> {
    let (nonce, expires) = state
        .ward
        .device_challenge(&req.device_id, state.clock.now())
        .await?;
    Ok(Json(ChallengeResponse { nonce, expires }))
}

/// `POST /device/v1/answer`.
async fn answer(
    State(state): State<AppState>,
    Json(req): Json<AnswerRequest>,
) -> Result<Json<AnswerResponse>, DeviceApiError> {
    let decided = state.ward.answer_push(&req, state.clock.now()).await?;
    Ok(Json(AnswerResponse {
        result: decided.as_str().into(),
    }))
}

/// `GET /device/v1/stream`: pending requests at once, then each new one as it is created.
async fn stream(
    State(state): State<AppState>,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, DeviceApiError> {
    let now = state.clock.now();
    let device = state
        .ward
        .open_device_stream(&q.device_id, &q.nonce, &q.signature, now)
        .await?;
    // Subscribe before the first read, so nothing created in between is missed.
    let signals = state.ward.store().signals().subscribe();
    tracing::info!(device_id = %device.id, "device connected");
    let feed = Feed {
        state,
        device_id: device.id,
        signals,
        sent: HashSet::new(),
        queue: Vec::new(),
        first: true,
    };
    let events = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        let sse = Event::default().event("push").json_data(&event).ok()?;
        Some((Ok(sse), feed))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// What one connected device has been sent, and what it is waiting for.
struct Feed {
    state: AppState,
    device_id: String,
    signals: broadcast::Receiver<Signal>,
    sent: HashSet<String>,
    queue: Vec<PushEvent>,
    first: bool,
}

impl Feed {
    /// The next request to deliver; `None` ends the stream.
    async fn next(&mut self) -> Option<PushEvent> {
        loop {
            if let Some(event) = self.queue.pop() {
                return Some(event);
            }
            if !self.first && !self.wait_for_signal().await {
                return None;
            }
            self.first = false;
            let now = self.state.clock.now();
            let pending = match self
                .state
                .ward
                .pending_push_events(&self.device_id, now)
                .await
            {
                Ok(pending) => pending,
                Err(e) => {
                    tracing::warn!(device_id = %self.device_id, error = %e, "device stream read failed");
                    return None;
                }
            };
            // Oldest first: the queue pops from the end.
            self.queue = pending
                .into_iter()
                .filter(|e| self.sent.insert(e.txid.clone()))
                .rev()
                .collect();
        }
    }

    /// Waits until something about this device may have changed. `false`: the server is
    /// shutting down.
    async fn wait_for_signal(&mut self) -> bool {
        loop {
            match self.signals.recv().await {
                Ok(Signal::Device(id)) if id == self.device_id => return true,
                Ok(_) => {}
                // Missed signals: look again.
                Err(broadcast::error::RecvError::Lagged(_)) => return true,
                Err(broadcast::error::RecvError::Closed) => return false,
            }
        }
    }
}
