//! A push device as a test plays it: an Ed25519 key made from a one-byte seed, the activation
//! request it sends, and the signed answers and stream requests it makes once Ward has given it
//! an id.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer as _, SigningKey};
use ward_proto::device::{
    ActivateRequest, AnswerRequest, Decision, KeyAlgorithm, PushEvent, answer_signing_bytes,
    stream_signing_bytes,
};

/// A device's key before activation. The same seed makes the same key.
#[derive(Debug)]
pub struct DeviceKey(SigningKey);

impl DeviceKey {
    /// The key whose secret is 32 bytes of `seed`.
    pub fn from_seed(seed: u8) -> Self {
        Self(SigningKey::from_bytes(&[seed; 32]))
    }

    /// The public key as activation carries it (base64url, no padding).
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.verifying_key().as_bytes())
    }

    /// The request that activates this key with the one-time `code`.
    pub fn activate_request(&self, code: &str, name: &str, platform: &str) -> ActivateRequest {
        ActivateRequest {
            code: code.to_owned(),
            algorithm: KeyAlgorithm::Ed25519,
            public_key: self.public_key(),
            name: name.to_owned(),
            platform: platform.to_owned(),
        }
    }

    /// The device, once activation has given it `id`.
    pub fn activated(self, id: String) -> Phone {
        Phone { key: self.0, id }
    }
}

/// An activated device: its signing key and the id Ward gave it.
#[derive(Debug)]
pub struct Phone {
    pub key: SigningKey,
    pub id: String,
}

impl Phone {
    /// Signs `msg` with the device key (base64url, no padding).
    pub fn sign(&self, msg: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.key.sign(msg).to_bytes())
    }

    /// Signs an answer to `event` made at `time` (seconds since 1970), as a device does.
    pub fn answer(
        &self,
        event: &PushEvent,
        decision: Decision,
        number: Option<&str>,
        time: i64,
    ) -> AnswerRequest {
        self.answer_to(&event.txid, &event.context_hash, decision, number, time)
    }

    /// Signs an answer to transaction `txid` showing `context_hash`, whether or not such an
    /// event was sent (for forged, misdirected and unknown answers).
    pub fn answer_to(
        &self,
        txid: &str,
        context_hash: &str,
        decision: Decision,
        number: Option<&str>,
        time: i64,
    ) -> AnswerRequest {
        let msg = answer_signing_bytes(&self.id, txid, decision, number, context_hash, time);
        AnswerRequest {
            device_id: self.id.clone(),
            txid: txid.to_owned(),
            decision,
            number: number.map(str::to_owned),
            context_hash: context_hash.to_owned(),
            time,
            signature: self.sign(&msg),
        }
    }

    /// The signature that opens the device's event stream with the server's `nonce`.
    pub fn stream_signature(&self, nonce: &str) -> String {
        self.sign(&stream_signing_bytes(&self.id, nonce))
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signature, Verifier as _};

    use super::*;

    fn event() -> PushEvent {
        PushEvent {
            txid: "TX1".into(),
            title: "Login request".into(),
            application: "VPN".into(),
            username: "alice".into(),
            ip: None,
            location: None,
            details: Vec::new(),
            time: 1_800_000_000,
            expires: 1_800_000_060,
            number_required: false,
            context_hash: "00ff".into(),
        }
    }

    fn verifies(phone: &Phone, msg: &[u8], signature: &str) -> bool {
        let bytes: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap()
            .try_into()
            .unwrap();
        phone
            .key
            .verifying_key()
            .verify(msg, &Signature::from_bytes(&bytes))
            .is_ok()
    }

    #[test]
    fn a_seed_makes_one_key_and_its_activation_carries_it() {
        let key = DeviceKey::from_seed(3);
        assert_eq!(key.public_key(), DeviceKey::from_seed(3).public_key());
        assert_ne!(key.public_key(), DeviceKey::from_seed(4).public_key());
        let req = key.activate_request("123456", "laptop", "linux");
        assert_eq!(req.code, "123456");
        assert_eq!(req.algorithm, KeyAlgorithm::Ed25519);
        assert_eq!(req.public_key, key.public_key());
        assert_eq!(
            (req.name.as_str(), req.platform.as_str()),
            ("laptop", "linux")
        );
    }

    #[test]
    fn answers_and_stream_requests_are_signed_by_the_device_key() {
        let phone = DeviceKey::from_seed(1).activated("DP1".into());
        let event = event();
        let answer = phone.answer(&event, Decision::Approve, Some("42"), 1_800_000_005);
        assert_eq!(answer.device_id, "DP1");
        assert_eq!(answer.number.as_deref(), Some("42"));
        let signed = answer_signing_bytes(
            "DP1",
            "TX1",
            Decision::Approve,
            Some("42"),
            "00ff",
            1_800_000_005,
        );
        assert!(verifies(&phone, &signed, &answer.signature));
        let other = answer_signing_bytes("DP1", "TX1", Decision::Deny, Some("42"), "00ff", 1);
        assert!(!verifies(&phone, &other, &answer.signature));
        let stream = phone.stream_signature("nonce");
        assert!(verifies(
            &phone,
            &stream_signing_bytes("DP1", "nonce"),
            &stream
        ));
    }
}
