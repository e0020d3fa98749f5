//! HTTPS to Ward's device endpoints: JSON requests and the `text/event-stream` of requests.
//!
//! One TCP + TLS connection per request, HTTP/1.1 through hyper's low-level client: a device
//! makes a handful of requests an hour, and the event stream holds its own connection.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use ward_proto::device::{DeviceError, PushEvent};

use crate::tls::{SpkiPin, Trust};

pub use ward_proto::sse::{SseError, SseParser};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_JSON_BODY: usize = 1 << 20;
const USER_AGENT: &str = concat!("ward-authenticator/", env!("CARGO_PKG_VERSION"));
/// The path of the activation endpoint, which activation links also point at.
pub const ACTIVATE_PATH: &str = "/device/v1/activate";

/// A Ward server's base URL: always `https`, host and port only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// As written in the URL, e.g. `ward.example:8443` or `[::1]:8443`.
    authority: String,
    /// Without IPv6 brackets, for DNS and the TLS server name.
    host: String,
    port: u16,
}

impl ServerUrl {
    fn from_uri(uri: &Uri) -> anyhow::Result<Self> {
        match uri.scheme_str() {
            Some("https") => {}
            Some(other) => bail!("only https URLs are supported, not {other}://"),
            None => bail!("the URL must start with https://"),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("the URL has no host"))?;
        if authority.as_str().contains('@') {
            bail!("the URL must not carry a user name or password");
        }
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            bail!("the URL has no host");
        }
        Ok(Self {
            authority: authority.as_str().to_ascii_lowercase(),
            host: host.to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(443),
        })
    }

    /// Parses a stored base URL (`https://host[:port]`).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let uri: Uri = text
            .parse()
            .with_context(|| format!("invalid server URL {text:?}"))?;
        Self::from_uri(&uri)
    }

    /// `https://authority`, the form kept in the state file.
    pub fn base(&self) -> String {
        format!("https://{}", self.authority)
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base())
    }
}

/// What an activation link carries.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationLink {
    pub server: ServerUrl,
    /// The one-time activation code (not shown in `Debug`).
    pub code: String,
    pub pin: Option<SpkiPin>,
}

impl std::fmt::Debug for ActivationLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationLink")
            .field("server", &self.server)
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

impl ActivationLink {
    /// Parses `https://HOST[:PORT]/device/v1/activate?code=CODE[&pin=sha256:B64URL]`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let uri: Uri = text
            .trim()
            .parse()
            .context("the activation link is not a valid URL")?;
        let server = ServerUrl::from_uri(&uri)?;
        if uri.path() != ACTIVATE_PATH {
            bail!("not an activation link: the path must be {ACTIVATE_PATH}");
        }
        let mut code = None;
        let mut pin = None;
        for (key, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "code" if !value.is_empty() => code = Some(value.into_owned()),
                "pin" => pin = Some(SpkiPin::parse(&value)?),
                _ => {}
            }
        }
        let code = code.ok_or_else(|| anyhow!("the activation link has no code"))?;
        Ok(Self { server, code, pin })
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("TLS with {authority} failed: {source}")]
    Tls {
        authority: String,
        source: std::io::Error,
    },
    #[error("{authority} did not answer in time")]
    Timeout { authority: String },
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    /// The server refused with a [`DeviceError`] body.
    #[error("{message} ({code}, HTTP {status})")]
    Refused {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    #[error(transparent)]
    Sse(#[from] SseError),
    #[error("the event stream went silent for {0:?}")]
    Idle(Duration),
}

impl ClientError {
    /// Whether trying again later cannot help: the server refused us (bad signature, device
    /// revoked) or its certificate failed verification.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Refused { status, .. } => {
                status.is_client_error()
                    && *status != StatusCode::REQUEST_TIMEOUT
                    && *status != StatusCode::TOO_MANY_REQUESTS
            }
            Self::Tls { source, .. } => source.kind() == std::io::ErrorKind::InvalidData,
            Self::Connect { .. }
            | Self::Timeout { .. }
            | Self::Http(_)
            | Self::Protocol(_)
            | Self::Sse(_)
            | Self::Idle(_) => false,
        }
    }
}

/// An HTTPS client for one Ward server.
#[derive(Clone)]
pub struct Client {
    url: ServerUrl,
    name: ServerName<'static>,
    tls: TlsConnector,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

impl Client {
    pub fn new(url: ServerUrl, trust: &Trust) -> anyhow::Result<Self> {
        let name = ServerName::try_from(url.host.clone())
            .with_context(|| format!("{:?} is not a valid server name", url.host))?;
        Ok(Self {
            url,
            name,
            tls: TlsConnector::from(trust.client_config()?),
        })
    }

    fn timeout(&self) -> ClientError {
        ClientError::Timeout {
            authority: self.url.authority.clone(),
        }
    }

    async fn connect(&self) -> Result<(Sender, JoinHandle<()>), ClientError> {
        let authority = || self.url.authority.clone();
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.url.host.as_str(), self.url.port)),
        )
        .await
        .map_err(|_| self.timeout())?
        .map_err(|source| ClientError::Connect {
            authority: authority(),
            source,
        })?;
        tcp.set_nodelay(true)
            .map_err(|source| ClientError::Connect {
                authority: authority(),
                source,
            })?;
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, self.tls.connect(self.name.clone(), tcp))
            .await
            .map_err(|_| self.timeout())?
            .map_err(|source| ClientError::Tls {
                authority: authority(),
                source,
            })?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        // The connection ends by itself once the response is read and the sender dropped.
        let task = tokio::spawn(async move {
            drop(connection.await);
        });
        Ok((sender, task))
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.url.authority.as_str())
            .header(header::USER_AGENT, USER_AGENT);
        let builder = if body.is_empty() {
            builder.header(header::ACCEPT, "text/event-stream")
        } else {
            builder
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, "application/json")
                .header(header::CONNECTION, "close")
        };
        builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Protocol(format!("cannot build the request: {e}")))
    }

    /// POSTs `body` as JSON and decodes a 2xx JSON answer; a 4xx/5xx becomes
    /// [`ClientError::Refused`] with the server's message.
    pub async fn post_json<Q: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &Q,
    ) -> Result<R, ClientError> {
        let json = serde_json::to_vec(body)
            .map_err(|e| ClientError::Protocol(format!("cannot encode the request: {e}")))?;
        let exchange = async {
            let (mut sender, _connection) = self.connect().await?;
            let response = sender
                .send_request(self.request(Method::POST, path, json)?)
                .await?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_JSON_BODY)
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(format!("cannot read the answer: {e}")))?
                .to_bytes();
            Ok::<_, ClientError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| self.timeout())??;
        if !status.is_success() {
            return Err(refusal(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Protocol(format!("HTTP {status} with an unreadable body: {e}"))
        })
    }

    /// GETs `path_and_query` as a `text/event-stream`.
    pub async fn event_stream(
        &self,
        path_and_query: &str,
        idle: Duration,
    ) -> Result<EventStream, ClientError> {
        let open = async {
            let (mut sender, connection) = self.connect().await?;
            let response = sender
                .send_request(self.request(Method::GET, path_and_query, Vec::new())?)
                .await?;
            Ok::<_, ClientError>((response, connection))
        };
        let (response, connection) = tokio::time::timeout(REQUEST_TIMEOUT, open)
            .await
            .map_err(|_| self.timeout())??;
        let status = response.status();
        if !status.is_success() {
            let bytes = Limited::new(response.into_body(), MAX_JSON_BODY)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            return Err(refusal(status, &bytes));
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("text/event-stream") {
            return Err(ClientError::Protocol(format!(
                "expected text/event-stream, got {content_type:?}"
            )));
        }
        Ok(EventStream {
            body: response.into_body(),
            parser: SseParser::new(),
            queue: VecDeque::new(),
            idle,
            connection,
        })
    }
}

fn refusal(status: StatusCode, body: &[u8]) -> ClientError {
    if let Ok(err) = serde_json::from_slice::<DeviceError>(body) {
        ClientError::Refused {
            status,
            code: err.error,
            message: err.message,
        }
    } else {
        let text = String::from_utf8_lossy(body);
        let text: String = text.chars().take(200).filter(|c| !c.is_control()).collect();
        ClientError::Refused {
            status,
            code: "http".to_owned(),
            message: if text.trim().is_empty() {
                format!("the server answered HTTP {status}")
            } else {
                text
            },
        }
    }
}

/// What the stream delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Push(Box<PushEvent>),
    /// An `event: push` whose data was not a readable [`PushEvent`].
    Unreadable(String),
}

/// An open event stream; [`Self::next`] yields its `push` events.
#[derive(Debug)]
pub struct EventStream {
    body: Incoming,
    parser: SseParser,
    queue: VecDeque<Received>,
    idle: Duration,
    connection: JoinHandle<()>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl EventStream {
    /// The next push event; `Ok(None)` when the server ends the stream. Keep-alive comments
    /// only reset the idle timer.
    pub async fn next(&mut self) -> Result<Option<Received>, ClientError> {
        loop {
            if let Some(received) = self.queue.pop_front() {
                return Ok(Some(received));
            }
            let frame = tokio::time::timeout(self.idle, self.body.frame())
                .await
                .map_err(|_| ClientError::Idle(self.idle))?;
            let Some(frame) = frame else {
                return Ok(None);
            };
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            self.parser.feed(&data)?;
            while let Some(event) = self.parser.next_event() {
                if event.event == "push" {
                    self.queue.push_back(decode_push(&event.data));
                }
            }
        }
    }
}

fn decode_push(data: &str) -> Received {
    match serde_json::from_str::<PushEvent>(data) {
        Ok(event) => Received::Push(Box::new(event)),
        Err(e) => Received::Unreadable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_links_parse() {
        let link = ActivationLink::parse(
            "https://Ward.Example:8443/device/v1/activate?code=AbC-123&pin=sha256:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
        )
        .unwrap();
        assert_eq!(link.server.base(), "https://ward.example:8443");
        assert_eq!(link.code, "AbC-123");
        assert!(link.pin.is_some());
        assert!(!format!("{link:?}").contains("AbC-123"));

        let link = ActivationLink::parse("https://[::1]/device/v1/activate?code=x").unwrap();
        assert_eq!(link.server.host, "::1");
        assert_eq!(link.server.port, 443);
        assert_eq!(link.server.base(), "https://[::1]");
        assert!(link.pin.is_none());
    }

    #[test]
    fn bad_activation_links_are_refused() {
        for bad in [
            "http://ward.example/device/v1/activate?code=x",
            "https://ward.example/other?code=x",
            "https://ward.example/device/v1/activate",
            "https://ward.example/device/v1/activate?code=",
            "https://u:p@ward.example/device/v1/activate?code=x",
            "https://ward.example/device/v1/activate?code=x&pin=md5:abc",
            "ward.example/device/v1/activate?code=x",
        ] {
            assert!(ActivationLink::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_errors_keep_the_message() {
        let body = br#"{"error":"expired","message":"the request has expired"}"#;
        let err = refusal(StatusCode::GONE, body);
        assert_eq!(
            err.to_string(),
            "the request has expired (expired, HTTP 410 Gone)"
        );
        assert!(err.is_permanent());
        let err = refusal(StatusCode::BAD_GATEWAY, b"<html>\n</html>");
        assert!(!err.is_permanent());
        assert!(!err.to_string().contains('\n'));
        assert!(!refusal(StatusCode::TOO_MANY_REQUESTS, b"").is_permanent());
    }

    #[test]
    fn push_data_decodes_or_is_reported() {
        let event = PushEvent {
            txid: "t".into(),
            title: "Login request".into(),
            application: "VPN".into(),
            username: "alice".into(),
            ip: None,
            location: None,
            details: vec![],
            time: 1,
            expires: 61,
            number_required: false,
            context_hash: "h".into(),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(decode_push(&json), Received::Push(Box::new(event)));
        assert!(matches!(decode_push("{"), Received::Unreadable(_)));
    }
}
