//! The device channel (`/device/v1/*`): activation, the signed event stream, signed answers.
//! Wire types and signing rules: `ward_proto::device`.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use ward_core::model::DeviceId;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use tokio::sync::{Notify, broadcast};
use ward_core::CoreError;
use ward_proto::device::{
    ActivateRequest, ActivateResponse, AnswerRequest, AnswerResponse, ChallengeRequest,
    ChallengeResponse, DeviceError, PushEvent, StreamQuery,
};
use ward_store::Signal;

use crate::app::AppState;

/// Routes of the device channel, behind the per-address limits of [`crate::limits::guard`]
/// and the input gate ([`crate::input`]: no NUL character in any field).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/device/v1/activate", post(activate))
        .route("/device/v1/challenge", post(challenge))
        .route("/device/v1/stream", get(stream))
        .route("/device/v1/answer", post(answer))
        // Inside the limits: refused input never costs more than the limiter allows.
        .route_layer(axum::middleware::from_fn_with_state(
            crate::input::Dialect::Device,
            crate::input::refuse_unstorable,
        ))
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
            CoreError::Unavailable(detail) => {
                tracing::error!(%detail, "database unavailable");
                Self(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "service temporarily unavailable; try again later".into(),
                )
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
        let mut response = (
            self.0,
            Json(DeviceError {
                error: self.1.into(),
                message: self.2,
            }),
        )
            .into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(crate::error::RETRY_AFTER_SECS),
            );
        }
        response
    }
}

/// `POST /device/v1/activate`.
async fn activate(
    State(state): State<AppState>,
    Json(req): Json<ActivateRequest>,
) -> Result<Json<ActivateResponse>, DeviceApiError> {
    let (device, username) = state
        .ward
        .devices()
        .activate(&req, state.clock.now())
        .await?;
    Ok(Json(ActivateResponse {
        device_id: device.id.into_string(),
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
        .devices()
        .challenge(&DeviceId::new(req.device_id.clone()), state.clock.now())
        .await?;
    Ok(Json(ChallengeResponse { nonce, expires }))
}

/// `POST /device/v1/answer`.
async fn answer(
    State(state): State<AppState>,
    Json(req): Json<AnswerRequest>,
) -> Result<Json<AnswerResponse>, DeviceApiError> {
    let decided = state
        .ward
        .devices()
        .answer_push(&req, state.clock.now())
        .await?;
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
        .devices()
        .open_stream(
            &DeviceId::new(q.device_id.clone()),
            &q.nonce,
            &q.signature,
            now,
        )
        .await?;
    // Register before the first read, so nothing created in between is missed.
    let wake = state.wakers.register(device.id.as_str());
    tracing::info!(device_id = %device.id, "device connected");
    let feed = Feed {
        state,
        device_id: device.id.into_string(),
        wake,
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
    wake: Arc<Notify>,
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
            if !self.first {
                self.wake.notified().await;
            }
            if self.state.wakers.is_closed() {
                return None;
            }
            self.first = false;
            let now = self.state.clock.now();
            let pending = match self
                .state
                .ward
                .devices()
                .pending_push_events(&DeviceId::new(self.device_id.clone()), now)
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
}

/// Wakes the event streams of the devices connected to this node: one task reads the store's
/// signals and wakes only the streams of the device named, so a new request costs the same
/// whether ten or ten thousand devices are connected.
#[derive(Debug, Default)]
pub struct DeviceWakers {
    streams: Mutex<HashMap<String, Vec<Weak<Notify>>>>,
    closed: AtomicBool,
}

impl DeviceWakers {
    /// A wake-up for one stream of `device_id` (a device may hold several streams). A wake-up
    /// that comes while the stream is busy is kept until it next waits.
    pub fn register(&self, device_id: &str) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        if let Ok(mut streams) = self.streams.lock() {
            let list = streams.entry(device_id.to_owned()).or_default();
            list.retain(|w| w.strong_count() > 0);
            list.push(Arc::downgrade(&notify));
        }
        notify
    }

    fn wake(&self, device_id: &str) {
        let Ok(mut streams) = self.streams.lock() else {
            return;
        };
        if let Some(list) = streams.get_mut(device_id) {
            list.retain(|w| w.upgrade().map(|n| n.notify_one()).is_some());
            if list.is_empty() {
                streams.remove(device_id);
            }
        }
    }

    fn wake_all(&self) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.retain(|_, list| {
                list.retain(|w| w.upgrade().map(|n| n.notify_one()).is_some());
                !list.is_empty()
            });
        }
    }

    /// Ends every stream (the server is shutting down).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Forwards the store's signals to the streams, until the store closes.
    pub fn spawn(
        self: &Arc<Self>,
        mut signals: broadcast::Receiver<Signal>,
    ) -> tokio::task::JoinHandle<()> {
        let wakers = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                match signals.recv().await {
                    Ok(Signal::Device(id)) => wakers.wake(&id),
                    Ok(Signal::Tx(_)) => {}
                    // Missed signals: every stream looks again.
                    Err(broadcast::error::RecvError::Lagged(_)) => wakers.wake_all(),
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_named_device_is_woken() {
        let wakers = Arc::new(DeviceWakers::default());
        let (tx, rx) = broadcast::channel(16);
        let task = wakers.spawn(rx);
        let a = wakers.register("DPA");
        let b = wakers.register("DPB");
        tx.send(Signal::Device("DPA".into())).unwrap();
        tokio::time::timeout(Duration::from_secs(5), a.notified())
            .await
            .expect("DPA woken");
        let b_woken = tokio::time::timeout(Duration::from_millis(100), b.notified()).await;
        assert!(b_woken.is_err(), "DPB must not be woken for DPA");
        // A wake-up while nobody waits is kept for the next wait.
        tx.send(Signal::Device("DPB".into())).unwrap();
        tokio::time::timeout(Duration::from_secs(5), b.notified())
            .await
            .expect("DPB woken");
        drop(tx);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn closing_wakes_every_stream_and_forgets_dropped_ones() {
        let wakers = DeviceWakers::default();
        let a = wakers.register("DPA");
        drop(wakers.register("DPB"));
        wakers.close();
        assert!(wakers.is_closed());
        tokio::time::timeout(Duration::from_secs(5), a.notified())
            .await
            .expect("woken on close");
        assert!(!wakers.streams.lock().unwrap().contains_key("DPB"));
    }
}
