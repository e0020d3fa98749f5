//! The subcommands, and what they share: opening an account's event stream, merging the
//! streams of several accounts, and showing server-supplied text safely.

pub mod activate;
pub mod answer;
pub mod list;
pub mod pending;
pub mod totp;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use ward_proto::device::{
    AnswerRequest, AnswerResponse, ChallengeRequest, ChallengeResponse, Decision, PushEvent,
    answer_signing_bytes, stream_signing_bytes,
};

use crate::client::{Client, ClientError, EventStream, Received};
use crate::keys::DeviceKey;
use crate::state::{Account, State};

/// How long a stream may stay silent (not even a keep-alive comment) before it counts as
/// dropped.
const STREAM_IDLE: Duration = Duration::from_mins(2);

/// An account ready to talk to its server.
#[derive(Debug)]
pub struct Device {
    /// 1-based, as `list` numbers accounts.
    pub number: usize,
    pub account: Account,
    key: DeviceKey,
    client: Client,
}

impl Device {
    pub fn open(number: usize, account: &Account) -> anyhow::Result<Self> {
        let context = || format!("account {number} ({})", account.device_id);
        let client = Client::new(
            account.server_url().with_context(context)?,
            &account.trust()?,
        )
        .with_context(context)?;
        Ok(Self {
            number,
            account: account.clone(),
            key: account.key()?,
            client,
        })
    }

    /// `alice on https://ward.example`.
    pub fn label(&self) -> String {
        format!("{} on {}", self.account.username, self.account.server)
    }

    /// Challenge, sign the nonce, open the stream.
    pub async fn open_stream(&self) -> Result<EventStream, ClientError> {
        let device_id = self.account.device_id.as_str();
        let challenge: ChallengeResponse = self
            .client
            .post_json(
                "/device/v1/challenge",
                &ChallengeRequest {
                    device_id: device_id.to_owned(),
                },
            )
            .await?;
        let signature = self
            .key
            .sign_b64(&stream_signing_bytes(device_id, &challenge.nonce));
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("device_id", device_id)
            .append_pair("nonce", &challenge.nonce)
            .append_pair("signature", &signature)
            .finish();
        self.client
            .event_stream(&format!("/device/v1/stream?{query}"), STREAM_IDLE)
            .await
    }

    /// Signs and sends the answer to an event this device received (and checked).
    pub async fn answer(
        &self,
        event: &PushEvent,
        decision: Decision,
        number: Option<&str>,
        now: i64,
    ) -> Result<AnswerResponse, ClientError> {
        let device_id = self.account.device_id.as_str();
        let signature = self.key.sign_b64(&answer_signing_bytes(
            device_id,
            &event.txid,
            decision,
            number,
            &event.context_hash,
            now,
        ));
        let request = AnswerRequest {
            device_id: device_id.to_owned(),
            txid: event.txid.clone(),
            decision,
            number: number.map(str::to_owned),
            context_hash: event.context_hash.clone(),
            time: now,
            signature,
        };
        self.client.post_json("/device/v1/answer", &request).await
    }
}

/// Whether the event's `context_hash` is the hash of what it shows. An event that fails this is
/// never answered: the signature would vouch for something other than what was displayed.
pub fn context_matches(event: &PushEvent) -> bool {
    event.context_hash == event.computed_context_hash()
}

/// The accounts a command acts on: `--account N` (a number from `list`, or a device id), else
/// all of them.
pub fn select_devices(state: &State, choice: Option<&str>) -> anyhow::Result<Vec<Arc<Device>>> {
    if state.accounts.is_empty() {
        bail!("no account yet; activate one with: ward-authenticator activate URL");
    }
    let numbered = state.accounts.iter().enumerate().map(|(i, a)| (i + 1, a));
    let chosen: Vec<(usize, &Account)> = match choice {
        None => numbered.collect(),
        Some(choice) => {
            let found = numbered
                .filter(|(n, a)| choice.parse::<usize>().ok() == Some(*n) || a.device_id == choice)
                .collect::<Vec<_>>();
            if found.is_empty() {
                bail!("no account {choice:?} (see: ward-authenticator list)");
            }
            found
        }
    };
    chosen
        .into_iter()
        .map(|(n, a)| Device::open(n, a).map(Arc::new))
        .collect()
}

/// What a stream task reports.
#[derive(Debug)]
pub enum StreamMsg {
    Connected(usize),
    Event(usize, Received),
    /// The stream dropped or could not be opened; a reconnecting task tries again.
    Dropped(usize, ClientError),
    /// The server ended the stream (single-shot tasks only).
    Ended(usize),
}

/// The merged streams of several devices; dropping it stops them.
#[derive(Debug)]
pub struct Streams {
    pub rx: mpsc::Receiver<StreamMsg>,
    _tasks: JoinSet<()>,
}

impl Streams {
    /// Opens each device's stream in its own task. With `reconnect`, a dropped stream is
    /// reopened (fresh nonce each time) after a growing pause, unless the failure is permanent.
    pub fn spawn(devices: &[Arc<Device>], reconnect: bool) -> Self {
        let (tx, rx) = mpsc::channel(64);
        let mut tasks = JoinSet::new();
        for device in devices {
            let (device, tx) = (device.clone(), tx.clone());
            if reconnect {
                tasks.spawn(run_reconnecting(device, tx));
            } else {
                tasks.spawn(run_once(device, tx));
            }
        }
        Self { rx, _tasks: tasks }
    }
}

async fn forward(
    device: &Device,
    stream: &mut EventStream,
    tx: &mpsc::Sender<StreamMsg>,
) -> StreamMsg {
    let n = device.number;
    loop {
        match stream.next().await {
            Ok(Some(received)) => {
                if tx.send(StreamMsg::Event(n, received)).await.is_err() {
                    return StreamMsg::Ended(n);
                }
            }
            Ok(None) => return StreamMsg::Ended(n),
            Err(e) => return StreamMsg::Dropped(n, e),
        }
    }
}

async fn run_once(device: Arc<Device>, tx: mpsc::Sender<StreamMsg>) {
    let n = device.number;
    let last = match device.open_stream().await {
        Ok(mut stream) => {
            drop(tx.send(StreamMsg::Connected(n)).await);
            forward(&device, &mut stream, &tx).await
        }
        Err(e) => StreamMsg::Dropped(n, e),
    };
    drop(tx.send(last).await);
}

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_mins(1);
/// A stream that stayed up this long resets the back-off.
const STABLE: Duration = Duration::from_secs(30);

async fn run_reconnecting(device: Arc<Device>, tx: mpsc::Sender<StreamMsg>) {
    let n = device.number;
    let mut backoff = BACKOFF_MIN;
    loop {
        let opened = tokio::time::Instant::now();
        let last = match device.open_stream().await {
            Ok(mut stream) => {
                if tx.send(StreamMsg::Connected(n)).await.is_err() {
                    return;
                }
                forward(&device, &mut stream, &tx).await
            }
            Err(e) => StreamMsg::Dropped(n, e),
        };
        let permanent = matches!(&last, StreamMsg::Dropped(_, e) if e.is_permanent());
        if tx.send(last).await.is_err() || permanent {
            return;
        }
        if opened.elapsed() >= STABLE {
            backoff = BACKOFF_MIN;
        }
        // Up to a quarter more, so that many devices do not come back in step.
        let jitter = backoff.mul_f64(rand::random_range(0.0..0.25));
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Server-supplied text made safe for a terminal: control characters (escape sequences could
/// rewrite what the user sees) and bidirectional overrides (which could reorder it) are shown
/// escaped.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// A unix time as local date and time.
pub fn local_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(
        || unix.to_string(),
        |t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        },
    )
}

/// Checks a typed number: digits only, at most 12.
pub fn check_number(number: &str) -> anyhow::Result<&str> {
    let number = number.trim();
    if number.is_empty() || number.len() > 12 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(anyhow!("the number must be digits only"));
    }
    Ok(number)
}

/// What the server records for each decision.
pub fn expected_result(decision: Decision) -> &'static str {
    match decision {
        Decision::Approve => "approved",
        Decision::Deny => "denied",
        Decision::Fraud => "fraud",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn event(txid: &str) -> PushEvent {
        let mut event = PushEvent {
            txid: txid.into(),
            title: "Login request".into(),
            application: "VPN".into(),
            username: "alice".into(),
            ip: Some("203.0.113.5".into()),
            location: Some("Paris, FR".into()),
            details: vec![("Device".into(), "Firefox".into())],
            time: 1_700_000_000,
            expires: 1_700_000_060,
            number_required: true,
            context_hash: String::new(),
        };
        event.context_hash = event.computed_context_hash();
        event
    }

    #[test]
    fn context_check_catches_any_changed_field() {
        let good = event("tx1");
        assert!(context_matches(&good));
        let mut bad = good.clone();
        bad.application = "Payroll".into();
        assert!(!context_matches(&bad));
        let mut bad = good.clone();
        bad.details.push(("x".into(), "y".into()));
        assert!(!context_matches(&bad));
        let mut bad = good;
        bad.context_hash = "0".repeat(64);
        assert!(!context_matches(&bad));
    }

    #[test]
    fn sanitize_escapes_terminal_controls() {
        assert_eq!(sanitize("VPN"), "VPN");
        assert_eq!(sanitize("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\u{a}");
        assert_eq!(sanitize("Zürich"), "Zürich");
        assert_eq!(sanitize("abc\u{202e}fed"), "abc\\u{202e}fed");
    }

    #[test]
    fn numbers_are_digits() {
        assert_eq!(check_number(" 42 ").unwrap(), "42");
        assert!(check_number("").is_err());
        assert!(check_number("4a").is_err());
        assert!(check_number("1234567890123").is_err());
    }

    #[test]
    fn selection_by_number_or_device_id() {
        let key = DeviceKey::generate(ward_proto::device::KeyAlgorithm::Ed25519);
        let account = |id: &str| Account {
            server: "https://ward.example".into(),
            username: "alice".into(),
            device_id: id.into(),
            name: "n".into(),
            algorithm: ward_proto::device::KeyAlgorithm::Ed25519,
            private_key: crate::state::Secret::new(key.secret_b64()),
            pin: None,
            ca_file: Some("/nonexistent-ca.pem".into()),
            activated: 0,
        };
        let empty = State::default();
        assert!(select_devices(&empty, None).is_err());
        let state = State {
            accounts: vec![account("DA"), account("DB")],
            ..State::default()
        };
        // The CA file does not exist, so opening fails after selection: selection itself is
        // what is checked through the error text.
        let err = select_devices(&state, Some("2")).unwrap_err().to_string();
        assert!(err.contains("account 2 (DB)"), "{err}");
        let err = select_devices(&state, Some("DA")).unwrap_err().to_string();
        assert!(err.contains("account 1 (DA)"), "{err}");
        let err = select_devices(&state, Some("3")).unwrap_err().to_string();
        assert!(err.contains("no account"), "{err}");
    }
}
