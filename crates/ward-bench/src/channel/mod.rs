//! The push device channel (`ward_proto::device`) as the harness speaks it: JSON calls over
//! persistent HTTPS connections, and event streams held open one connection each.
//!
//! Wire types and signing bytes come from `ward-proto`; the flow follows `ward-authenticator`
//! (challenge, sign the nonce, `GET /device/v1/stream`; sign and post answers), except that the
//! harness keeps its JSON connections alive, so TLS handshakes stay out of what it measures.

pub mod file;
pub mod stream;

use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use ward_proto::device::DeviceError;

use crate::duo::BENCH_USER_AGENT;
use crate::load::target::{Sender, Target};

/// The largest JSON answer read.
const MAX_BODY: usize = 1 << 20;

/// Why a call failed, in a form that can be tallied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No HTTP answer: `connect`, `send`, `body` or `timeout`.
    Transport(&'static str),
    /// An HTTP answer other than 200: the status and the error code of the body, if any.
    Status(u16, Option<String>),
    /// A 200 answer whose body was not what the endpoint answers.
    Unreadable,
}

impl CallError {
    /// A short label: `timeout`, `HTTP 410 expired`, `unreadable answer`.
    pub fn label(&self) -> String {
        match self {
            Self::Transport(kind) => (*kind).to_owned(),
            Self::Status(status, Some(code)) => format!("HTTP {status} {code}"),
            Self::Status(status, None) => format!("HTTP {status}"),
            Self::Unreadable => "unreadable answer".to_owned(),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl std::error::Error for CallError {}

/// One persistent connection for request–response calls, reopened when the server closed it
/// or a call on it failed.
#[derive(Debug)]
pub struct Conn {
    target: Target,
    sender: Option<Sender>,
}

impl Conn {
    /// A connection opened on first use.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            sender: None,
        }
    }

    /// Sends `request` and reads the whole answer, all within `limit`.
    pub async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
        limit: Duration,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let result = tokio::time::timeout(limit, self.exchange_inner(request)).await;
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                // The connection still carries the late answer: drop it.
                self.sender = None;
                Err(CallError::Transport("timeout"))
            }
        }
    }

    async fn exchange_inner(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), CallError> {
        if self.sender.as_ref().is_none_or(Sender::is_closed) {
            self.sender = None;
            let sender = self
                .target
                .connect()
                .await
                .map_err(|_| CallError::Transport("connect"))?;
            self.sender = Some(sender);
        }
        let sender = self
            .sender
            .as_mut()
            .ok_or(CallError::Transport("connect"))?;
        sender
            .ready()
            .await
            .map_err(|_| CallError::Transport("send"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| CallError::Transport("send"))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|_| CallError::Transport("body"))?;
        Ok((parts.status, body.to_bytes()))
    }

    /// `POST path` with a JSON body to a device endpoint; decodes a 200 answer.
    pub async fn post_device<Q: Serialize, R: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &Q,
        limit: Duration,
    ) -> Result<R, CallError> {
        let request = device_request(&self.target, path, body)?;
        let (status, bytes) = self.exchange(request, limit).await?;
        if status != StatusCode::OK {
            let code = serde_json::from_slice::<DeviceError>(&bytes)
                .ok()
                .map(|e| e.error);
            return Err(CallError::Status(status.as_u16(), code));
        }
        serde_json::from_slice(&bytes).map_err(|_| CallError::Unreadable)
    }
}

fn device_request<Q: Serialize>(
    target: &Target,
    path: &str,
    body: &Q,
) -> Result<Request<Full<Bytes>>, CallError> {
    let json = serde_json::to_vec(body).map_err(|_| CallError::Unreadable)?;
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(HOST, target.authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json")
        .header(USER_AGENT, BENCH_USER_AGENT)
        .body(Full::new(Bytes::from(json)))
        .map_err(|_| CallError::Unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short_and_stable() {
        assert_eq!(CallError::Transport("timeout").label(), "timeout");
        assert_eq!(
            CallError::Status(410, Some("expired".into())).label(),
            "HTTP 410 expired"
        );
        assert_eq!(CallError::Status(502, None).label(), "HTTP 502");
    }
}
