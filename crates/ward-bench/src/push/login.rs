//! One worker: push logins one after another, each over its own devices, so no user ever has
//! two logins in flight.
//!
//! A login plays both sides. The application sends the asynchronous `/auth` and starts its
//! `auth_status` long-poll at once; meanwhile the device takes the event from its stream,
//! checks its context hash, signs an approval with the number the application was given, and
//! posts it. The login counts as allowed only when `auth_status` says `allow`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::StatusCode;
use hyper::body::Bytes;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};
use ward_core::clock::{Clock, SystemClock};
use ward_proto::device::{AnswerRequest, AnswerResponse, Decision, answer_signing_bytes};
use ward_proto::duo::auth::{AsyncAuthResponse, AuthResponse, AuthResult};
use ward_proto::duo::envelope::{Fail, Ok as DuoOk};
use ward_proto::duo::params::Params;

use super::Plan;
use super::stats::{PushStats, Timings};
use crate::channel::Conn;
use crate::channel::file::BenchDevice;
use crate::channel::stream::Delivered;

const AUTH_PATH: &str = "/auth/v2/auth";
const STATUS_PATH: &str = "/auth/v2/auth_status";
const ANSWER_PATH: &str = "/device/v1/answer";

/// A device this worker logs in with: its index in the devices file and its events.
#[derive(Debug)]
pub struct Slot {
    pub device: usize,
    pub events: mpsc::Receiver<Delivered>,
}

/// The tallies of one worker.
#[derive(Debug)]
pub struct WorkerStats {
    pub warmup: PushStats,
    pub measured: PushStats,
}

/// A worker: the application's two connections (`/auth`, and `auth_status` which waits),
/// one connection for its devices' answers, and its devices.
#[derive(Debug)]
pub struct Worker {
    plan: Arc<Plan>,
    app: Conn,
    poll: Conn,
    device_conn: Conn,
    slots: Vec<Slot>,
    stale_events: u64,
}

impl Worker {
    pub fn new(plan: Arc<Plan>, slots: Vec<Slot>) -> Self {
        let conn = || Conn::new(plan.target.clone());
        Self {
            app: conn(),
            poll: conn(),
            device_conn: conn(),
            plan,
            slots,
            stale_events: 0,
        }
    }

    /// Takes logins from the shared counter until all are done.
    pub async fn run(mut self) -> anyhow::Result<WorkerStats> {
        let mut stats = WorkerStats {
            warmup: PushStats::new()?,
            measured: PushStats::new()?,
        };
        let mut turn = 0usize;
        loop {
            let seq = self.plan.cursor.fetch_add(1, Ordering::Relaxed);
            if seq >= self.plan.warmup + self.plan.requests {
                break;
            }
            let slot = turn % self.slots.len().max(1);
            turn = turn.wrapping_add(1);
            let start = Instant::now();
            let before = self.stale_events;
            let result = self.login(slot).await;
            if result.is_err() {
                // A failed exchange may have been cut mid-request: start clean.
                self.reset();
            }
            let phase = if seq < self.plan.warmup {
                &mut stats.warmup
            } else {
                &mut stats.measured
            };
            phase.stale_events += self.stale_events - before;
            phase.record(result, start, Instant::now());
        }
        Ok(stats)
    }

    fn reset(&mut self) {
        for conn in [&mut self.app, &mut self.poll, &mut self.device_conn] {
            *conn = Conn::new(self.plan.target.clone());
        }
    }

    /// One login; `Err` is the failure's label.
    async fn login(&mut self, slot: usize) -> Result<Timings, String> {
        let plan = Arc::clone(&self.plan);
        let Some(Slot { device, events }) = self.slots.get_mut(slot) else {
            return Err("no device".to_owned());
        };
        let device = plan.devices.get(*device).ok_or("no device")?;
        let sent = Instant::now();
        let deadline = sent + plan.timeout;
        let (txid, code) = start_push(&plan, &mut self.app, &device.username).await?;
        let auth_answered = Instant::now();
        let Some(code) = code else {
            // Refused without asking the device: the status says why.
            let status = poll_decided(&plan, &mut self.poll, &txid, deadline)
                .await
                .map_or_else(|e| e, |(_, status)| status);
            return Err(format!("push not sent: {status}"));
        };
        let poll = async {
            let (at, status) = poll_decided(&plan, &mut self.poll, &txid, deadline).await?;
            if status == "allow" {
                Ok(at)
            } else {
                Err(format!("final status {status}"))
            }
        };
        let device_side = answer(
            &mut self.device_conn,
            events,
            device,
            &txid,
            &code,
            deadline,
            &mut self.stale_events,
        );
        let (allowed, (received, acknowledged)) = tokio::try_join!(poll, device_side)?;
        Ok(Timings {
            sent,
            auth_answered,
            received,
            acknowledged,
            allowed,
        })
    }
}

/// `POST /auth/v2/auth` with `factor=push&device=auto&async=1`: the transaction id, and the
/// Verified Push number (`None` when the push was refused).
async fn start_push(
    plan: &Plan,
    conn: &mut Conn,
    username: &str,
) -> Result<(String, Option<String>), String> {
    let params: BTreeMap<&str, &str> = [
        ("async", "1"),
        ("device", "auto"),
        ("factor", "push"),
        ("username", username),
    ]
    .into_iter()
    .collect();
    let request = plan
        .signer
        .post_json(AUTH_PATH, &params, SystemClock.now())
        .map_err(|e| format!("auth: {e}"))?;
    let (status, body) = conn
        .exchange(request, plan.timeout)
        .await
        .map_err(|e| format!("auth: {e}"))?;
    let started: AsyncAuthResponse = duo_response("auth", status, &body)?;
    Ok((started.txid, started.verified_push_code))
}

/// Long-polls `auth_status` until the transaction is decided: when, and its status.
async fn poll_decided(
    plan: &Plan,
    conn: &mut Conn,
    txid: &str,
    deadline: Instant,
) -> Result<(Instant, String), String> {
    let params: Params = [("txid", txid)].into_iter().collect();
    // Each call waits up to 25 s server-side; the deadline bounds the loop.
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err("auth_status: still waiting at the timeout".to_owned());
        }
        let request = plan
            .signer
            .get(STATUS_PATH, &params, SystemClock.now())
            .map_err(|e| format!("auth_status: {e}"))?;
        let (status, body) = conn
            .exchange(request, remaining)
            .await
            .map_err(|e| format!("auth_status: {e}"))?;
        let at = Instant::now();
        let view: AuthResponse = duo_response("auth_status", status, &body)?;
        if view.result != AuthResult::Waiting {
            return Ok((at, view.status));
        }
    }
}

/// The device's side: waits for the event of `txid`, checks it, approves with `code`. Returns
/// when the event arrived and when the answer was acknowledged.
async fn answer(
    conn: &mut Conn,
    events: &mut mpsc::Receiver<Delivered>,
    device: &BenchDevice,
    txid: &str,
    code: &str,
    deadline: Instant,
    stale_events: &mut u64,
) -> Result<(Instant, Instant), String> {
    let delivered = loop {
        let next = timeout_at(deadline, events.recv())
            .await
            .map_err(|_| "device: no event before the timeout".to_owned())?
            .ok_or("device: stream closed")?;
        if next.event.txid == txid {
            break next;
        }
        // An event of an earlier, failed login of this device.
        *stale_events += 1;
    };
    let event = &delivered.event;
    if event.computed_context_hash() != event.context_hash {
        return Err("device: context_hash does not match the event".to_owned());
    }
    if !event.number_required {
        return Err("device: event without number_required".to_owned());
    }
    let time = SystemClock.now().timestamp();
    let signature = device.sign_b64(&answer_signing_bytes(
        &device.device_id,
        txid,
        Decision::Approve,
        Some(code),
        &event.context_hash,
        time,
    ));
    let request = AnswerRequest {
        device_id: device.device_id.clone(),
        txid: txid.to_owned(),
        decision: Decision::Approve,
        number: Some(code.to_owned()),
        context_hash: event.context_hash.clone(),
        time,
        signature,
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    let answered: AnswerResponse = conn
        .post_device(ANSWER_PATH, &request, remaining)
        .await
        .map_err(|e| format!("answer: {e}"))?;
    let acknowledged = Instant::now();
    if answered.result != "approved" {
        return Err(format!("answer: {}", answered.result));
    }
    Ok((delivered.at, acknowledged))
}

/// The `response` of a Duo success envelope, or a label: `auth: HTTP 429 (42901)`.
fn duo_response<T: DeserializeOwned>(
    call: &str,
    status: StatusCode,
    body: &Bytes,
) -> Result<T, String> {
    if status != StatusCode::OK {
        return Err(match serde_json::from_slice::<Fail>(body) {
            Ok(fail) => format!("{call}: HTTP {} ({})", status.as_u16(), fail.code),
            Err(_) => format!("{call}: HTTP {}", status.as_u16()),
        });
    }
    serde_json::from_slice::<DuoOk<T>>(body)
        .map(|ok| ok.response)
        .map_err(|_| format!("{call}: unreadable answer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duo_answers_and_failures_are_read() {
        let ok = Bytes::from_static(
            br#"{"stat":"OK","response":{"txid":"t1","verified_push_code":"042"}}"#,
        );
        let started: AsyncAuthResponse = duo_response("auth", StatusCode::OK, &ok).unwrap();
        assert_eq!(started.txid, "t1");
        assert_eq!(started.verified_push_code.as_deref(), Some("042"));

        let fail =
            Bytes::from_static(br#"{"stat":"FAIL","code":42901,"message":"Too Many Requests"}"#);
        let err = duo_response::<AsyncAuthResponse>("auth", StatusCode::TOO_MANY_REQUESTS, &fail);
        assert_eq!(err.unwrap_err(), "auth: HTTP 429 (42901)");

        let waiting = Bytes::from_static(
            br#"{"stat":"OK","response":{"result":"waiting","status":"pushed","status_msg":"x"}}"#,
        );
        let view: AuthResponse = duo_response("auth_status", StatusCode::OK, &waiting).unwrap();
        assert_eq!(view.result, AuthResult::Waiting);
        assert!(duo_response::<AuthResponse>("auth_status", StatusCode::OK, &ok).is_err());
    }
}
