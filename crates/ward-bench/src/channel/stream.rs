//! Devices' event streams: challenge, sign the nonce, `GET /device/v1/stream`, then one reader
//! task per stream that stamps each `push` event with the moment its bytes arrived.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, timeout};
use ward_proto::device::{ChallengeRequest, ChallengeResponse, PushEvent, stream_signing_bytes};
use ward_proto::duo::params::Params;

use super::file::BenchDevice;
use super::{CallError, Conn};
use crate::duo::BENCH_USER_AGENT;
use crate::load::target::{Sender, Target};
use ward_proto::sse::SseParser;

/// Events a stream buffers for its consumer (one login in flight per device needs one).
const EVENT_BUFFER: usize = 16;

/// A `push` event as a device received it.
#[derive(Debug)]
pub struct Delivered {
    pub event: PushEvent,
    /// When the bytes that completed it were read from the stream.
    pub at: Instant,
}

/// What every reader task counts.
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// Streams opened so far.
    pub opened: AtomicUsize,
    /// Streams whose open failed.
    pub failed: AtomicUsize,
    /// Streams the server ended (or that broke) while the harness held them.
    pub ended: AtomicU64,
    /// `push` events received.
    pub received: AtomicU64,
    /// `push` events whose data was not a `PushEvent`.
    pub unreadable: AtomicU64,
}

/// An open stream: its events, and the task reading it.
#[derive(Debug)]
pub struct OpenStream {
    pub events: mpsc::Receiver<Delivered>,
    pub reader: ReaderGuard,
}

/// Stops the reader task, which closes the stream's connection, when dropped.
#[derive(Debug)]
pub struct ReaderGuard(JoinHandle<()>);

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The streams of `devices[..count]`, opened `concurrency` at a time.
#[derive(Debug)]
pub struct Opened {
    /// By device index; `None` where opening failed.
    pub streams: Vec<Option<OpenStream>>,
    /// Why opens failed, by label.
    pub failures: BTreeMap<String, u64>,
}

/// Opens one stream per device of `devices[..count]`. Each opener keeps one connection for its
/// challenges; each stream gets its own connection.
pub async fn open_all(
    target: &Target,
    devices: &Arc<Vec<BenchDevice>>,
    count: usize,
    concurrency: usize,
    limit: Duration,
    counters: &Arc<StreamCounters>,
) -> anyhow::Result<Opened> {
    let cursor = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let target = target.clone();
        let devices = Arc::clone(devices);
        let cursor = Arc::clone(&cursor);
        let counters = Arc::clone(counters);
        tasks.spawn(async move {
            let mut conn = Conn::new(target.clone());
            let mut done = Vec::new();
            loop {
                let index = cursor.fetch_add(1, Ordering::Relaxed);
                let Some(device) = devices.get(index).filter(|_| index < count) else {
                    return done;
                };
                let result = open_one(&mut conn, &target, device, limit, &counters).await;
                let tally = if result.is_ok() {
                    &counters.opened
                } else {
                    &counters.failed
                };
                tally.fetch_add(1, Ordering::Relaxed);
                done.push((index, result));
            }
        });
    }
    let mut streams: Vec<Option<OpenStream>> = (0..count).map(|_| None).collect();
    let mut failures = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        for (index, result) in joined.context("stream opener failed")? {
            match result {
                Ok(stream) => {
                    if let Some(slot) = streams.get_mut(index) {
                        *slot = Some(stream);
                    }
                }
                Err(label) => *failures.entry(label).or_insert(0) += 1,
            }
        }
    }
    Ok(Opened { streams, failures })
}

/// Challenge, sign, open; `Err` is a label for the tally.
async fn open_one(
    conn: &mut Conn,
    target: &Target,
    device: &BenchDevice,
    limit: Duration,
    counters: &Arc<StreamCounters>,
) -> Result<OpenStream, String> {
    let challenge: ChallengeResponse = conn
        .post_device(
            "/device/v1/challenge",
            &ChallengeRequest {
                device_id: device.device_id.clone(),
            },
            limit,
        )
        .await
        .map_err(|e| format!("challenge: {e}"))?;
    let signature = device.sign_b64(&stream_signing_bytes(&device.device_id, &challenge.nonce));
    let query: Params = [
        ("device_id", device.device_id.as_str()),
        ("nonce", challenge.nonce.as_str()),
        ("signature", signature.as_str()),
    ]
    .into_iter()
    .collect();
    let request =
        stream_request(target, &query.to_urlencoded()).map_err(|e| format!("stream: {e}"))?;
    let (sender, body) = timeout(limit, connect_stream(target, request))
        .await
        .map_err(|_| "stream: timeout".to_owned())?
        .map_err(|e| format!("stream: {e}"))?;
    let (tx, events) = mpsc::channel(EVENT_BUFFER);
    let reader = tokio::spawn(read_events(body, sender, tx, Arc::clone(counters)));
    Ok(OpenStream {
        events,
        reader: ReaderGuard(reader),
    })
}

fn stream_request(target: &Target, query: &str) -> Result<Request<Full<Bytes>>, CallError> {
    Request::builder()
        .method(Method::GET)
        .uri(format!("/device/v1/stream?{query}"))
        .header(HOST, target.authority.as_str())
        .header(ACCEPT, "text/event-stream")
        .header(USER_AGENT, BENCH_USER_AGENT)
        .body(Full::new(Bytes::new()))
        .map_err(|_| CallError::Unreadable)
}

async fn connect_stream(
    target: &Target,
    request: Request<Full<Bytes>>,
) -> Result<(Sender, Incoming), CallError> {
    let mut sender = target
        .connect()
        .await
        .map_err(|_| CallError::Transport("connect"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| CallError::Transport("send"))?;
    if response.status() != StatusCode::OK {
        return Err(CallError::Status(response.status().as_u16(), None));
    }
    let is_sse = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return Err(CallError::Unreadable);
    }
    Ok((sender, response.into_body()))
}

/// Reads a stream until it ends (or the task is aborted), handing each `push` event on. The
/// sender is held only so the connection lives as long as the stream.
async fn read_events(
    mut body: Incoming,
    _sender: Sender,
    tx: mpsc::Sender<Delivered>,
    counters: Arc<StreamCounters>,
) {
    let mut parser = SseParser::new();
    while let Some(Ok(frame)) = body.frame().await {
        let at = Instant::now();
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if parser.feed(&data).is_err() {
            break;
        }
        while let Some(event) = parser.next_event() {
            if event.event != "push" {
                continue;
            }
            match serde_json::from_str::<PushEvent>(&event.data) {
                Ok(event) => {
                    counters.received.fetch_add(1, Ordering::Relaxed);
                    // A consumer that is gone wants nothing more from this stream.
                    let _ = tx.send(Delivered { event, at }).await;
                }
                Err(_) => {
                    counters.unreadable.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    counters.ended.fetch_add(1, Ordering::Relaxed);
}
