//! The device key pair: generated here, stored only in the state file, never sent anywhere.
//!
//! Encodings follow `ward_proto::device`: public keys and signatures are base64url without
//! padding; an Ed25519 public key is its 32 raw bytes, a P-256 one the compressed SEC1 point; an
//! Ed25519 signature is 64 bytes, a P-256 one the 64-byte fixed `r‖s` form of ECDSA/SHA-256.
//! The private key is kept as the base64url of its 32 secret bytes (the Ed25519 seed, or the
//! P-256 scalar).

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use p256::elliptic_curve::Generate;
use ward_proto::device::KeyAlgorithm;
use zeroize::Zeroizing;

/// A device's signing key.
///
/// # Security
/// Both inner key types wipe themselves on drop; `Debug` shows only the algorithm and the public
/// key.
pub enum DeviceKey {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKey")
            .field("algorithm", &self.algorithm())
            .field("public_key", &self.public_key_b64())
            .finish_non_exhaustive()
    }
}

impl DeviceKey {
    /// A fresh key pair from the operating system's CSPRNG (through `rand`'s thread RNG).
    pub fn generate(algorithm: KeyAlgorithm) -> Self {
        let mut rng = rand::rng();
        match algorithm {
            KeyAlgorithm::Ed25519 => Self::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng)),
            KeyAlgorithm::P256 => Self::P256(p256::ecdsa::SigningKey::generate_from_rng(&mut rng)),
        }
    }

    /// Restores a key from [`Self::secret_b64`]'s encoding.
    pub fn from_secret_b64(algorithm: KeyAlgorithm, secret: &str) -> anyhow::Result<Self> {
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(secret.trim())
                .context("the stored private key is not base64url")?,
        );
        let Ok(raw) = <&[u8; 32]>::try_from(bytes.as_slice()) else {
            bail!("the stored private key is not 32 bytes long");
        };
        Ok(match algorithm {
            KeyAlgorithm::Ed25519 => Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(raw)),
            KeyAlgorithm::P256 => Self::P256(
                p256::ecdsa::SigningKey::from_slice(raw)
                    .map_err(|_| anyhow!("the stored P-256 private key is invalid"))?,
            ),
        })
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            Self::Ed25519(_) => KeyAlgorithm::Ed25519,
            Self::P256(_) => KeyAlgorithm::P256,
        }
    }

    /// The private key for the state file.
    pub fn secret_b64(&self) -> Zeroizing<String> {
        let raw: Zeroizing<[u8; 32]> = match self {
            Self::Ed25519(key) => Zeroizing::new(key.to_bytes()),
            Self::P256(key) => Zeroizing::new(key.to_bytes().into()),
        };
        Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_slice()))
    }

    /// The public key as `ActivateRequest::public_key` carries it.
    pub fn public_key_b64(&self) -> String {
        match self {
            Self::Ed25519(key) => URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
            Self::P256(key) => {
                URL_SAFE_NO_PAD.encode(key.verifying_key().to_sec1_point(true).as_bytes())
            }
        }
    }

    /// Signs `message` (the proto's signing bytes) and encodes the signature for the wire.
    pub fn sign_b64(&self, message: &[u8]) -> String {
        match self {
            Self::Ed25519(key) => URL_SAFE_NO_PAD.encode(key.sign(message).to_bytes()),
            Self::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                URL_SAFE_NO_PAD.encode(signature.to_bytes())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier as _;
    use ward_proto::device::{Decision, answer_signing_bytes, stream_signing_bytes};

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    #[test]
    fn ed25519_signatures_verify_over_the_proto_bytes() {
        let key = DeviceKey::generate(KeyAlgorithm::Ed25519);
        let public: [u8; 32] = b64(&key.public_key_b64()).try_into().unwrap();
        let verifying = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();

        let msg = answer_signing_bytes("DD1", "tx1", Decision::Approve, Some("42"), "h", 7);
        let sig: [u8; 64] = b64(&key.sign_b64(&msg)).try_into().unwrap();
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        verifying.verify(&msg, &sig).unwrap();
        let other = answer_signing_bytes("DD1", "tx1", Decision::Deny, Some("42"), "h", 7);
        assert!(verifying.verify(&other, &sig).is_err());
    }

    #[test]
    fn p256_signatures_verify_over_the_proto_bytes() {
        use p256::ecdsa::signature::Verifier as _;
        let key = DeviceKey::generate(KeyAlgorithm::P256);
        let public = b64(&key.public_key_b64());
        assert_eq!(public.len(), 33, "compressed SEC1 point");
        assert!(matches!(public[0], 2 | 3));
        let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public).unwrap();

        let msg = stream_signing_bytes("DD1", "nonce");
        let sig = b64(&key.sign_b64(&msg));
        assert_eq!(sig.len(), 64, "fixed r||s");
        let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
        verifying.verify(&msg, &sig).unwrap();
        assert!(
            verifying
                .verify(&stream_signing_bytes("DD1", "other"), &sig)
                .is_err()
        );
    }

    #[test]
    fn secrets_round_trip_for_both_algorithms() {
        for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::P256] {
            let key = DeviceKey::generate(algorithm);
            let restored = DeviceKey::from_secret_b64(algorithm, &key.secret_b64()).unwrap();
            assert_eq!(restored.algorithm(), algorithm);
            assert_eq!(restored.public_key_b64(), key.public_key_b64());
        }
    }

    #[test]
    fn keys_differ_and_debug_hides_the_secret() {
        let a = DeviceKey::generate(KeyAlgorithm::Ed25519);
        let b = DeviceKey::generate(KeyAlgorithm::Ed25519);
        assert_ne!(a.public_key_b64(), b.public_key_b64());
        let shown = format!("{a:?}");
        assert!(!shown.contains(a.secret_b64().as_str()));
        assert!(shown.contains(&a.public_key_b64()));
    }

    #[test]
    fn bad_stored_secrets_are_refused() {
        assert!(DeviceKey::from_secret_b64(KeyAlgorithm::Ed25519, "!!").is_err());
        assert!(DeviceKey::from_secret_b64(KeyAlgorithm::Ed25519, "AAAA").is_err());
        // The P-256 scalar must be in 1..n; all-zero is not.
        let zero = URL_SAFE_NO_PAD.encode([0u8; 32]);
        assert!(DeviceKey::from_secret_b64(KeyAlgorithm::P256, &zero).is_err());
    }
}
