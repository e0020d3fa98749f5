//! Secrets at rest: a master key, per-purpose keys derived from it, and sealed values.
//!
//! # Security
//! The master key (32 bytes) never encrypts data itself. HKDF-SHA-256 derives one key per
//! purpose ([`Purpose`]); values are sealed with AES-256-GCM under a fresh random 96-bit nonce,
//! with associated data binding the ciphertext to its purpose and record id, so a sealed value
//! copied into another row or column fails to open. Each sealed value names the key id it was
//! sealed under, so older master keys can still open values after a rotation.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{CoreError, CoreResult};

/// The prefix of every sealed value (format version 1).
const SEALED_PREFIX: &str = "v1";

/// What a derived key is for. Each purpose gets its own key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// TOTP/HOTP seeds.
    TotpSeed,
    /// Integration secret keys (`skey`).
    IntegrationSecret,
    /// WebAuthn credentials (public key, counter, flags).
    WebauthnCredential,
    /// Server-side state of a ceremony in progress.
    Ceremony,
    /// MACs binding a CSRF token to its session.
    SessionCsrf,
    /// The hosted prompt's state, carried by the browser.
    Prompt,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Self::TotpSeed => "ward/v1/totp-seed",
            Self::IntegrationSecret => "ward/v1/integration-secret",
            Self::WebauthnCredential => "ward/v1/webauthn-credential",
            Self::Ceremony => "ward/v1/ceremony",
            Self::SessionCsrf => "ward/v1/session-csrf",
            Self::Prompt => "ward/v1/prompt",
        }
    }
}

/// The 32-byte master key. Its `Debug` output is redacted and it is zeroed on drop.
#[derive(Clone, zeroize::ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

impl MasterKey {
    /// Wraps 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Generates a new random key.
    pub fn generate() -> Self {
        let mut b = [0u8; 32];
        rand::fill(&mut b);
        Self(b)
    }

    /// Parses a key file's contents: 32 raw bytes, or their base64 (standard or URL-safe,
    /// padded or not), surrounded by optional whitespace.
    pub fn parse(contents: &[u8]) -> CoreResult<Self> {
        if let Ok(raw) = <[u8; 32]>::try_from(contents) {
            return Ok(Self(raw));
        }
        let text = std::str::from_utf8(contents)
            .map_err(|_| CoreError::invalid("master key", "neither 32 bytes nor base64 text"))?
            .trim();
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        for engine in engines {
            if let Ok(mut bytes) = engine.decode(text) {
                let key = <[u8; 32]>::try_from(bytes.as_slice()).ok().map(Self);
                bytes.zeroize();
                if let Some(key) = key {
                    return Ok(key);
                }
            }
        }
        Err(CoreError::invalid(
            "master key",
            "must be 32 bytes, or their base64",
        ))
    }

    /// The key in the text form written to key files.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.0))
    }

    /// A short public identifier of this key (not secret: a one-way fingerprint).
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"ward/v1/key-id");
        h.update(self.0);
        let digest = h.finalize();
        hex::encode(digest.get(..6).unwrap_or_default())
    }

    fn derive(&self, purpose: Purpose) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(b"ward-master-key"), &self.0);
        let mut okm = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA-256's output limit, so expand cannot fail.
        if hk.expand(purpose.label().as_bytes(), okm.as_mut()).is_err() {
            okm.zeroize();
        }
        okm
    }
}

/// The master key in use plus older ones kept to open values sealed before a rotation.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring sealing with `current`, and opening with `current` or any of `previous`.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self { current, previous }
    }

    /// The id of the key new values are sealed under.
    pub fn current_id(&self) -> String {
        self.current.id()
    }

    /// Whether a key with this id is in the ring.
    pub fn knows(&self, key_id: &str) -> bool {
        self.key(key_id).is_some()
    }

    fn key(&self, key_id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == key_id)
    }

    /// Seals `plaintext` for `purpose`, bound to `record_id`.
    pub fn seal(&self, purpose: Purpose, record_id: &str, plaintext: &[u8]) -> CoreResult<String> {
        let key = self.current.derive(purpose);
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
        let mut nonce_bytes = [0u8; 12];
        rand::fill(&mut nonce_bytes);
        let nonce = Nonce::from(nonce_bytes);
        let aad = associated_data(purpose, record_id);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CoreError::Internal("sealing failed".into()))?;
        let mut blob = Vec::with_capacity(12 + ct.len());
        blob.extend_from_slice(&nonce_bytes);
        blob.extend_from_slice(&ct);
        Ok(format!(
            "{SEALED_PREFIX}.{}.{}",
            self.current.id(),
            URL_SAFE_NO_PAD.encode(blob)
        ))
    }

    /// HMAC-SHA-256 of `data` under the current key for `purpose`, base64url.
    pub fn mac(&self, purpose: Purpose, data: &[u8]) -> String {
        use hmac::{KeyInit as _, Mac as _};
        let key = self.current.derive(purpose);
        // HMAC accepts keys of any length, so this cannot fail.
        match hmac::Hmac::<Sha256>::new_from_slice(key.as_ref()) {
            Ok(mut mac) => {
                mac.update(data);
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        }
    }

    /// Opens a value sealed by [`Keyring::seal`] for the same purpose and record id.
    pub fn open(
        &self,
        purpose: Purpose,
        record_id: &str,
        sealed: &str,
    ) -> CoreResult<Zeroizing<Vec<u8>>> {
        let corrupt =
            || CoreError::Internal(format!("sealed value of {record_id} cannot be opened"));
        let mut parts = sealed.splitn(3, '.');
        let (Some(SEALED_PREFIX), Some(key_id), Some(body)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(corrupt());
        };
        let master = self.key(key_id).ok_or_else(|| {
            CoreError::Internal(format!(
                "{record_id} is sealed under master key {key_id}, which is not configured"
            ))
        })?;
        let blob = URL_SAFE_NO_PAD.decode(body).map_err(|_| corrupt())?;
        let (nonce_bytes, ct) = blob.split_at_checked(12).ok_or_else(corrupt)?;
        let nonce_arr: [u8; 12] = nonce_bytes.try_into().map_err(|_| corrupt())?;
        let key = master.derive(purpose);
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
        let aad = associated_data(purpose, record_id);
        cipher
            .decrypt(&Nonce::from(nonce_arr), Payload { msg: ct, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| corrupt())
    }
}

fn associated_data(purpose: Purpose, record_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64);
    aad.extend_from_slice(purpose.label().as_bytes());
    aad.push(0);
    aad.extend_from_slice(record_id.as_bytes());
    aad
}

/// A new random bearer token: 32 bytes (256 bits), base64url without padding.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::fill(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Compares two strings in constant time (for tokens and MACs).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// SHA-256 of a one-time token, as stored (tokens themselves are never stored).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::new(MasterKey::from_bytes([7; 32]), vec![])
    }

    #[test]
    fn seal_then_open_round_trips() {
        let r = ring();
        let s = r.seal(Purpose::TotpSeed, "DT1", b"seed bytes").unwrap();
        assert!(s.starts_with("v1."));
        assert!(!s.contains("seed"));
        assert_eq!(
            r.open(Purpose::TotpSeed, "DT1", &s).unwrap().as_slice(),
            b"seed bytes"
        );
    }

    #[test]
    fn sealing_twice_differs() {
        let r = ring();
        assert_ne!(
            r.seal(Purpose::TotpSeed, "DT1", b"x").unwrap(),
            r.seal(Purpose::TotpSeed, "DT1", b"x").unwrap()
        );
    }

    #[test]
    fn wrong_record_purpose_or_key_fails() {
        let r = ring();
        let s = r.seal(Purpose::TotpSeed, "DT1", b"seed").unwrap();
        assert!(r.open(Purpose::TotpSeed, "DT2", &s).is_err());
        assert!(r.open(Purpose::IntegrationSecret, "DT1", &s).is_err());
        let other = Keyring::new(MasterKey::from_bytes([8; 32]), vec![]);
        assert!(other.open(Purpose::TotpSeed, "DT1", &s).is_err());
        let mut tampered = s.clone();
        tampered.pop();
        tampered.push(if s.ends_with('A') { 'B' } else { 'A' });
        assert!(r.open(Purpose::TotpSeed, "DT1", &tampered).is_err());
    }

    #[test]
    fn previous_keys_still_open_after_rotation() {
        let old = MasterKey::from_bytes([1; 32]);
        let sealed = Keyring::new(old.clone(), vec![])
            .seal(Purpose::TotpSeed, "DT1", b"s")
            .unwrap();
        let rotated = Keyring::new(MasterKey::from_bytes([2; 32]), vec![old]);
        assert_eq!(
            rotated
                .open(Purpose::TotpSeed, "DT1", &sealed)
                .unwrap()
                .as_slice(),
            b"s"
        );
        assert_ne!(rotated.current_id(), MasterKey::from_bytes([1; 32]).id());
    }

    #[test]
    fn master_key_parses_raw_and_base64() {
        let k = MasterKey::generate();
        let text = k.to_base64();
        assert_eq!(MasterKey::parse(text.as_bytes()).unwrap().id(), k.id());
        assert_eq!(
            MasterKey::parse(format!("{}\n", *text).as_bytes())
                .unwrap()
                .id(),
            k.id()
        );
        assert_eq!(
            MasterKey::parse(&[3u8; 32]).unwrap().id(),
            MasterKey::from_bytes([3; 32]).id()
        );
        assert!(MasterKey::parse(b"short").is_err());
        assert!(!format!("{k:?}").contains(&*text));
    }
}
