//! Device public keys and the signatures made with them.
//!
//! # Security
//! Ed25519 signatures are checked with `verify_strict` (no malleable or small-order keys);
//! P-256 signatures are ECDSA over SHA-256 in the fixed 64-byte form, low-S not required
//! (devices use common libraries). Keys are parsed when a device is activated, so a malformed
//! key is refused before it is stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ward_proto::device::KeyAlgorithm;

use crate::error::{CoreError, CoreResult};

/// A device's public key, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceKey {
    algorithm: KeyAlgorithm,
    bytes: Vec<u8>,
}

impl DeviceKey {
    /// Parses a base64url public key of the given algorithm.
    pub fn parse(algorithm: KeyAlgorithm, public_key_b64: &str) -> CoreResult<Self> {
        let bytes = URL_SAFE_NO_PAD
            .decode(public_key_b64)
            .map_err(|_| CoreError::invalid("public_key", "is not base64url"))?;
        let valid = match algorithm {
            KeyAlgorithm::Ed25519 => <[u8; 32]>::try_from(bytes.as_slice())
                .ok()
                .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
                .is_some_and(|k| !k.is_weak()),
            KeyAlgorithm::P256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(&bytes).is_ok(),
        };
        if valid {
            Ok(Self { algorithm, bytes })
        } else {
            Err(CoreError::invalid(
                "public_key",
                "is not a valid key for its algorithm",
            ))
        }
    }

    /// Parses a stored key (`key_alg`, base64url).
    pub fn from_stored(key_alg: &str, public_key_b64: &str) -> CoreResult<Self> {
        let algorithm = match key_alg {
            "ed25519" => KeyAlgorithm::Ed25519,
            "p256" => KeyAlgorithm::P256,
            other => {
                return Err(CoreError::Internal(format!(
                    "unknown device key algorithm {other}"
                )));
            }
        };
        Self::parse(algorithm, public_key_b64)
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The key in its stored form (base64url).
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.bytes)
    }

    /// Whether `signature_b64` (base64url) is a valid signature of `message` by this key.
    pub fn verifies(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(sig) = URL_SAFE_NO_PAD.decode(signature_b64) else {
            return false;
        };
        match self.algorithm {
            KeyAlgorithm::Ed25519 => {
                let Ok(key_bytes) = <[u8; 32]>::try_from(self.bytes.as_slice()) else {
                    return false;
                };
                let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes) else {
                    return false;
                };
                let Ok(sig) = ed25519_dalek::Signature::from_slice(&sig) else {
                    return false;
                };
                key.verify_strict(message, &sig).is_ok()
            }
            KeyAlgorithm::P256 => {
                use p256::ecdsa::signature::Verifier;
                let Ok(key) = p256::ecdsa::VerifyingKey::from_sec1_bytes(&self.bytes) else {
                    return false;
                };
                let Ok(sig) = p256::ecdsa::Signature::from_slice(&sig) else {
                    return false;
                };
                key.verify(message, &sig).is_ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;

    #[test]
    fn ed25519_sign_and_verify() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let pk = URL_SAFE_NO_PAD.encode(sk.verifying_key().as_bytes());
        let key = DeviceKey::parse(KeyAlgorithm::Ed25519, &pk).unwrap();
        let sig = URL_SAFE_NO_PAD.encode(sk.sign(b"hello").to_bytes());
        assert!(key.verifies(b"hello", &sig));
        assert!(!key.verifies(b"hellp", &sig));
        assert!(!key.verifies(b"hello", "AAAA"));
        let other = ed25519_dalek::SigningKey::from_bytes(&[8u8; 32]);
        let forged = URL_SAFE_NO_PAD.encode(other.sign(b"hello").to_bytes());
        assert!(!key.verifies(b"hello", &forged));
        assert_eq!(
            DeviceKey::from_stored("ed25519", &key.to_base64()).unwrap(),
            key
        );
    }

    #[test]
    fn p256_sign_and_verify() {
        use p256::ecdsa::signature::Signer as _;
        let sk = p256::ecdsa::SigningKey::from_slice(&[3u8; 32]).unwrap();
        let point = sk.verifying_key().to_sec1_point(true);
        let pk = URL_SAFE_NO_PAD.encode(point.as_bytes());
        let key = DeviceKey::parse(KeyAlgorithm::P256, &pk).unwrap();
        let sig: p256::ecdsa::Signature = sk.sign(b"msg");
        let sig = URL_SAFE_NO_PAD.encode(sig.to_bytes());
        assert!(key.verifies(b"msg", &sig));
        assert!(!key.verifies(b"msh", &sig));
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(DeviceKey::parse(KeyAlgorithm::Ed25519, "not base64!").is_err());
        assert!(
            DeviceKey::parse(KeyAlgorithm::Ed25519, &URL_SAFE_NO_PAD.encode([1u8; 31])).is_err()
        );
        assert!(DeviceKey::parse(KeyAlgorithm::P256, &URL_SAFE_NO_PAD.encode([4u8; 65])).is_err());
        // The identity point is a weak Ed25519 key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(
            DeviceKey::parse(KeyAlgorithm::Ed25519, &URL_SAFE_NO_PAD.encode(identity)).is_err()
        );
    }
}
