//! The device channel: how a push authenticator activates, receives requests and answers them.
//!
//! Keys never leave the device. Activation binds a public key to a user with a one-time code;
//! from then on the device proves itself by signing: the server's single-use nonce to open the
//! event stream, and each answer over the exact transaction, decision, typed number, context it
//! was shown and time. There is no bearer secret to steal.
//!
//! Endpoints (all under the server's HTTPS listener):
//!
//! | method | path | body / query | answer |
//! |---|---|---|---|
//! | POST | `/device/v1/activate` | [`ActivateRequest`] | [`ActivateResponse`] |
//! | POST | `/device/v1/challenge` | [`ChallengeRequest`] | [`ChallengeResponse`] |
//! | GET | `/device/v1/stream` | [`StreamQuery`] | `text/event-stream` of [`PushEvent`]s (`event: push`) |
//! | POST | `/device/v1/answer` | [`AnswerRequest`] | [`AnswerResponse`] |
//!
//! Errors are JSON [`DeviceError`] bodies with a 4xx/5xx status.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Signature algorithms a device key may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlgorithm {
    /// Ed25519 (RFC 8032); public key: the 32 raw bytes; signature: 64 bytes.
    Ed25519,
    /// ECDSA P-256 with SHA-256; public key: SEC1 (compressed or not); signature: 64-byte r‖s.
    P256,
}

impl KeyAlgorithm {
    /// The lowercase name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::P256 => "p256",
        }
    }
}

/// `POST /device/v1/activate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateRequest {
    /// The one-time activation code from the activation link.
    pub code: String,
    pub algorithm: KeyAlgorithm,
    /// The device's public key, base64url without padding.
    pub public_key: String,
    /// A name the user recognises ("Alice's laptop").
    pub name: String,
    /// e.g. "linux", "macos", "android".
    pub platform: String,
}

/// The answer to an activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateResponse {
    pub device_id: String,
    pub username: String,
}

/// `POST /device/v1/challenge`: asks for a nonce to open the event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRequest {
    pub device_id: String,
}

/// A single-use nonce, valid until `expires` (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    pub nonce: String,
    pub expires: i64,
}

/// `GET /device/v1/stream` query: the nonce signed with the device key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamQuery {
    pub device_id: String,
    pub nonce: String,
    /// base64url signature over [`stream_signing_bytes`].
    pub signature: String,
}

/// A login request waiting for the user's answer, as the device shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushEvent {
    pub txid: String,
    /// The request's title (Duo's `type`, default "Login request").
    pub title: String,
    /// The application (integration name).
    pub application: String,
    /// The user name shown (Duo's `display_username`, else the username).
    pub username: String,
    /// The address the login comes from, when the application gave it.
    pub ip: Option<String>,
    /// Coarse location, when known.
    pub location: Option<String>,
    /// Extra facts from the application (Duo's `pushinfo`), in order.
    pub details: Vec<(String, String)>,
    /// When the request was made (unix seconds).
    pub time: i64,
    /// When it stops accepting answers (unix seconds).
    pub expires: i64,
    /// Whether the user must type the number shown on the login screen.
    pub number_required: bool,
    /// [`context_hash`] of this event: the answer must repeat it.
    pub context_hash: String,
}

/// The user's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Deny,
    /// Deny and report: "I did not try to log in".
    Fraud,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Deny => "deny",
            Self::Fraud => "fraud",
        }
    }
}

/// `POST /device/v1/answer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRequest {
    pub device_id: String,
    pub txid: String,
    pub decision: Decision,
    /// The number the user typed, when one was required.
    pub number: Option<String>,
    /// The context hash of the event the user saw.
    pub context_hash: String,
    /// When the user answered (unix seconds).
    pub time: i64,
    /// base64url signature over [`answer_signing_bytes`].
    pub signature: String,
}

/// What became of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerResponse {
    /// `approved`, `denied` or `fraud`.
    pub result: String,
}

/// An error body of the device endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceError {
    pub error: String,
    pub message: String,
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u64).to_be_bytes());
    out.extend_from_slice(field);
}

/// The bytes a device signs to open its event stream.
pub fn stream_signing_bytes(device_id: &str, nonce: &str) -> Vec<u8> {
    let mut out = b"ward-device-stream-v1".to_vec();
    push_field(&mut out, device_id.as_bytes());
    push_field(&mut out, nonce.as_bytes());
    out
}

/// The bytes a device signs to answer: every field length-prefixed, so no two answers share
/// an encoding.
pub fn answer_signing_bytes(
    device_id: &str,
    txid: &str,
    decision: Decision,
    number: Option<&str>,
    context_hash: &str,
    time: i64,
) -> Vec<u8> {
    let mut out = b"ward-push-answer-v1".to_vec();
    push_field(&mut out, device_id.as_bytes());
    push_field(&mut out, txid.as_bytes());
    push_field(&mut out, decision.as_str().as_bytes());
    push_field(&mut out, number.unwrap_or("").as_bytes());
    push_field(&mut out, context_hash.as_bytes());
    push_field(&mut out, &time.to_be_bytes());
    out
}

/// The hash binding an answer to what the device showed: SHA-256 (hex) over every shown field,
/// length-prefixed.
#[allow(clippy::too_many_arguments)] // one argument per shown field
pub fn context_hash(
    txid: &str,
    title: &str,
    application: &str,
    username: &str,
    ip: Option<&str>,
    location: Option<&str>,
    details: &[(String, String)],
    time: i64,
) -> String {
    let mut out = b"ward-push-context-v1".to_vec();
    for field in [
        txid,
        title,
        application,
        username,
        ip.unwrap_or(""),
        location.unwrap_or(""),
    ] {
        push_field(&mut out, field.as_bytes());
    }
    push_field(&mut out, &(details.len() as u64).to_be_bytes());
    for (k, v) in details {
        push_field(&mut out, k.as_bytes());
        push_field(&mut out, v.as_bytes());
    }
    push_field(&mut out, &time.to_be_bytes());
    hex::encode(Sha256::digest(&out))
}

impl PushEvent {
    /// The [`context_hash`] of this event's fields (the server sets `context_hash` with it; a
    /// device can check it).
    pub fn computed_context_hash(&self) -> String {
        context_hash(
            &self.txid,
            &self.title,
            &self.application,
            &self.username,
            self.ip.as_deref(),
            self.location.as_deref(),
            &self.details,
            self.time,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_bytes_differ_for_every_field() {
        let base = answer_signing_bytes("DD1", "tx", Decision::Approve, Some("42"), "h", 1);
        assert_ne!(
            base,
            answer_signing_bytes("DD2", "tx", Decision::Approve, Some("42"), "h", 1)
        );
        assert_ne!(
            base,
            answer_signing_bytes("DD1", "tx2", Decision::Approve, Some("42"), "h", 1)
        );
        assert_ne!(
            base,
            answer_signing_bytes("DD1", "tx", Decision::Deny, Some("42"), "h", 1)
        );
        assert_ne!(
            base,
            answer_signing_bytes("DD1", "tx", Decision::Approve, Some("43"), "h", 1)
        );
        assert_ne!(
            base,
            answer_signing_bytes("DD1", "tx", Decision::Approve, None, "h", 1)
        );
        assert_ne!(
            base,
            answer_signing_bytes("DD1", "tx", Decision::Approve, Some("42"), "i", 1)
        );
        assert_ne!(
            base,
            answer_signing_bytes("DD1", "tx", Decision::Approve, Some("42"), "h", 2)
        );
    }

    #[test]
    fn context_hash_covers_details_and_boundaries() {
        let d = vec![("a".to_owned(), "b".to_owned())];
        let h = context_hash("t", "Login", "App", "alice", Some("1.2.3.4"), None, &d, 5);
        assert_eq!(h.len(), 64);
        let d2 = vec![("ab".to_owned(), String::new())];
        assert_ne!(
            h,
            context_hash("t", "Login", "App", "alice", Some("1.2.3.4"), None, &d2, 5)
        );
        assert_ne!(
            h,
            context_hash("t", "Login", "App", "alice", None, None, &d, 5)
        );
    }

    #[test]
    fn wire_names() {
        let json = serde_json::to_string(&Decision::Fraud).unwrap();
        assert_eq!(json, "\"fraud\"");
        assert_eq!(
            serde_json::to_string(&KeyAlgorithm::P256).unwrap(),
            "\"p256\""
        );
    }
}
