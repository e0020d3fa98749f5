//! HOTP (RFC 4226) and TOTP (RFC 6238).
//!
//! Pure functions: the caller passes the time and the last step ever accepted, and persists
//! the step this module returns with a conditional update, so that each step is accepted at
//! most once per authenticator even across nodes.

use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{CoreError, CoreResult};

/// The HMAC hash of an authenticator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The lowercase name used in storage and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// The upper-case name used in `otpauth://` URIs.
    pub fn uri_name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

impl std::str::FromStr for Algorithm {
    type Err = CoreError;

    fn from_str(s: &str) -> CoreResult<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sha1" => Ok(Self::Sha1),
            "sha256" => Ok(Self::Sha256),
            "sha512" => Ok(Self::Sha512),
            _ => Err(CoreError::invalid(
                "algorithm",
                "must be sha1, sha256 or sha512",
            )),
        }
    }
}

/// A TOTP authenticator's parameters and secret.
#[derive(Clone)]
pub struct Totp {
    secret: Zeroizing<Vec<u8>>,
    algorithm: Algorithm,
    digits: u32,
    step_secs: u64,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Totp")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("step_secs", &self.step_secs)
            .finish_non_exhaustive()
    }
}

impl Totp {
    /// Checks the parameters: 6 or 8 digits, a step of 1..=300 s, a secret of 10..=128 bytes.
    pub fn new(
        secret: Zeroizing<Vec<u8>>,
        algorithm: Algorithm,
        digits: u32,
        step_secs: u64,
    ) -> CoreResult<Self> {
        if digits != 6 && digits != 8 {
            return Err(CoreError::invalid("digits", "must be 6 or 8"));
        }
        if !(1..=300).contains(&step_secs) {
            return Err(CoreError::invalid(
                "step",
                "must be between 1 and 300 seconds",
            ));
        }
        if !(10..=128).contains(&secret.len()) {
            return Err(CoreError::invalid(
                "secret",
                "must be 10 to 128 bytes (80 to 1024 bits)",
            ));
        }
        Ok(Self {
            secret,
            algorithm,
            digits,
            step_secs,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn digits(&self) -> u32 {
        self.digits
    }

    pub fn step_secs(&self) -> u64 {
        self.step_secs
    }

    /// The secret bytes (for sealing at enrolment).
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The HOTP value for a counter (RFC 4226 §5.3, dynamic truncation).
    pub fn hotp(&self, counter: u64) -> u32 {
        let msg = counter.to_be_bytes();
        let mac = match self.algorithm {
            Algorithm::Sha1 => hmac_of::<Hmac<sha1::Sha1>>(&self.secret, &msg),
            Algorithm::Sha256 => hmac_of::<Hmac<sha2::Sha256>>(&self.secret, &msg),
            Algorithm::Sha512 => hmac_of::<Hmac<sha2::Sha512>>(&self.secret, &msg),
        };
        let offset = mac.last().map_or(0, |b| usize::from(b & 0x0f));
        let word = mac
            .get(offset..offset + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map_or(0, u32::from_be_bytes);
        (word & 0x7fff_ffff) % 10u32.pow(self.digits)
    }

    /// The code for a counter, zero-padded to the configured number of digits.
    pub fn code(&self, counter: u64) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{:0width$}",
            self.hotp(counter),
            width = self.digits as usize
        ))
    }

    /// The time step containing `unix_secs`.
    pub fn step_at(&self, unix_secs: i64) -> i64 {
        unix_secs.div_euclid(self.step_secs as i64)
    }

    /// Verifies `code` at time `unix_secs`, accepting steps within `window` of the current one
    /// that are later than `last_step`. Returns the matched step, which the caller must record.
    ///
    /// # Security
    /// Every candidate is compared in constant time and all candidates are always compared,
    /// so timing reveals neither which step matched nor how many digits were right.
    pub fn verify(
        &self,
        code: &str,
        unix_secs: i64,
        last_step: Option<i64>,
        window: u32,
    ) -> Option<i64> {
        if code.len() != self.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = self.step_at(unix_secs);
        let mut matched = None;
        for delta in -i64::from(window)..=i64::from(window) {
            let step = now + delta;
            let Ok(counter) = u64::try_from(step) else {
                continue;
            };
            let candidate = self.code(counter);
            let equal: bool = candidate.as_bytes().ct_eq(code.as_bytes()).into();
            let fresh = last_step.is_none_or(|last| step > last);
            if equal && fresh && matched.is_none() {
                matched = Some(step);
            }
        }
        matched
    }

    /// The `otpauth://totp/…` URI for authenticator apps.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
            enc(issuer),
            enc(account),
            base32_encode(&self.secret),
            enc(issuer),
            self.algorithm.uri_name(),
            self.digits,
            self.step_secs
        )
    }
}

fn hmac_of<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    match <M as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(msg);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Base32 (RFC 4648, no padding) as authenticator apps expect.
pub fn base32_encode(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(bytes)
}

/// Parses a Base32 secret, ignoring case, spaces, dashes and padding.
pub fn base32_decode(text: &str) -> CoreResult<Zeroizing<Vec<u8>>> {
    let cleaned: Zeroizing<String> = Zeroizing::new(
        text.chars()
            .filter(|c| !matches!(c, ' ' | '-' | '='))
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    data_encoding::BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| CoreError::invalid("secret", "not valid Base32"))
}

/// A new random 160-bit secret (RFC 4226 §4 recommends at least 160 bits).
pub fn generate_secret() -> Zeroizing<Vec<u8>> {
    let mut s = Zeroizing::new(vec![0u8; 20]);
    rand::fill(s.as_mut_slice());
    s
}

#[cfg(test)]
mod tests;
