//! Duo request signing ("HMAC auth", duo-protocol §1): the `Authorization` header, the canonical
//! strings of signature versions 1, 2, 4 and 5, the server-side verifier and a client-side
//! signer.
//!
//! # Security
//!
//! Signatures are compared in constant time (`hmac`'s `verify_slice`). The verifier tries
//! several candidate canonical strings because the server cannot know which host spelling,
//! parameter order or extra headers the client signed; each candidate is a full HMAC over
//! request data the client committed to, so trying more of them does not weaken the check in
//! any practical sense. v1 signatures do not cover the date: only allow them where replay
//! within the date window is acceptable.

mod client;
mod verify;

#[cfg(test)]
mod tests;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::DateTime;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha512};

use crate::duo::envelope::DuoErrorCode;

pub use client::{authorization_header, sign_request};
pub use verify::{SignedRequest, host_candidates, verify};

/// `SHA512HEX("")`: the body line of bodiless v4/v5 requests and the header line of v5
/// requests that sign no extra headers.
pub const EMPTY_SHA512_HEX: &str = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce\
                                    47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";

/// Longest `Authorization` header value worth decoding; real ones are under 250 bytes.
const MAX_AUTHORIZATION_LEN: usize = 1024;

/// A canonical-string layout (duo-protocol §1.3). v3 does not exist on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigVersion {
    /// `METHOD`, `host`, `path`, params: no date (`duo_openvpn`, `duo_unix` 1.x).
    V1,
    /// `date`, `METHOD`, `host`, `path`, params (Go, libduo 2.x, `Net::Duo`, Python v2).
    V2,
    /// v2 plus the SHA-512 of the body.
    V4,
    /// v4 plus the SHA-512 of the signed `X-Duo-*` headers (Python's default).
    V5,
}

/// The HMAC digest, told apart by the length of the hex signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigDigest {
    /// HMAC-SHA1: 40 hex characters.
    Sha1,
    /// HMAC-SHA512: 128 hex characters, every current client's default.
    Sha512,
}

impl SigDigest {
    /// The digest whose hex signature has `len` characters.
    pub fn from_hex_len(len: usize) -> Option<Self> {
        match len {
            40 => Some(Self::Sha1),
            128 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Length of this digest's hex signature.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha1 => 40,
            Self::Sha512 => 128,
        }
    }
}

/// The contents of a well-formed `Authorization: Basic` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The integration key, as sent.
    pub ikey: String,
    /// The signature: 40 or 128 hex characters.
    pub signature_hex: String,
}

impl Credentials {
    /// The digest the signature's length implies.
    pub fn digest(&self) -> Option<SigDigest> {
        SigDigest::from_hex_len(self.signature_hex.len())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("ikey", &self.ikey)
            .field("signature_hex", &"<redacted>")
            .finish()
    }
}

/// Why an `Authorization` header was refused before any HMAC was computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No header, not `Basic`, bad base64, no `:` or an empty ikey (code 40101).
    #[error("missing or malformed request credentials")]
    MissingCredentials,
    /// The signature part is not 40 or 128 hex characters (code 40103). The ikey is kept so
    /// the server can report an unknown ikey (40102) first, as duo-protocol §1.5 orders the checks.
    #[error("malformed signature in request credentials")]
    MalformedSignature {
        /// The integration key the header named.
        ikey: String,
    },
}

impl SigError {
    /// The Duo error code this failure is reported as.
    pub fn code(&self) -> DuoErrorCode {
        match self {
            Self::MissingCredentials => DuoErrorCode::MissingCredentials,
            Self::MalformedSignature { .. } => DuoErrorCode::InvalidSignature,
        }
    }
}

/// Parses `Basic base64(ikey ":" hex)`, splitting at the first `:` (duo-protocol §1.1).
pub fn parse_authorization(header: &str) -> Result<Credentials, SigError> {
    let header = header.trim();
    if header.len() > MAX_AUTHORIZATION_LEN {
        return Err(SigError::MissingCredentials);
    }
    let (scheme, encoded) = header.split_once(' ').ok_or(SigError::MissingCredentials)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(SigError::MissingCredentials);
    }
    let decoded = BASE64
        .decode(encoded.trim())
        .map_err(|_| SigError::MissingCredentials)?;
    let decoded = String::from_utf8(decoded).map_err(|_| SigError::MissingCredentials)?;
    let (ikey, signature) = decoded
        .split_once(':')
        .ok_or(SigError::MissingCredentials)?;
    if ikey.is_empty() {
        return Err(SigError::MissingCredentials);
    }
    let well_formed = SigDigest::from_hex_len(signature.len()).is_some()
        && signature.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(SigError::MalformedSignature {
            ikey: ikey.to_owned(),
        });
    }
    Ok(Credentials {
        ikey: ikey.to_owned(),
        signature_hex: signature.to_owned(),
    })
}

/// The v1 canonical string: `METHOD\nhost\npath\nparams`.
///
/// `method` is uppercased and `host` lowercased, as every client but `duo_unix` 1.x does (the
/// verifier also tries the host as given). `params` is a canonical line from
/// [`Params::canonical`](crate::duo::params::Params::canonical).
pub fn canon_v1(method: &str, host: &str, path: &str, params: &str) -> String {
    [&method.to_uppercase(), &host.to_lowercase(), path, params].join("\n")
}

/// The v2 canonical string: `date\nMETHOD\nhost\npath\nparams`.
pub fn canon_v2(date: &str, method: &str, host: &str, path: &str, params: &str) -> String {
    [
        date,
        &method.to_uppercase(),
        &host.to_lowercase(),
        path,
        params,
    ]
    .join("\n")
}

/// The v4 canonical string: v2 plus `SHA512HEX(body)`.
pub fn canon_v4(
    date: &str,
    method: &str,
    host: &str,
    path: &str,
    params: &str,
    body_sha512_hex: &str,
) -> String {
    [
        date,
        &method.to_uppercase(),
        &host.to_lowercase(),
        path,
        params,
        body_sha512_hex,
    ]
    .join("\n")
}

/// The v5 canonical string: v4 plus `SHA512HEX(canon_x_duo_headers)`
/// (see [`x_duo_headers_sha512_hex`]).
pub fn canon_v5(
    date: &str,
    method: &str,
    host: &str,
    path: &str,
    params: &str,
    body_sha512_hex: &str,
    headers_sha512_hex: &str,
) -> String {
    [
        date,
        &method.to_uppercase(),
        &host.to_lowercase(),
        path,
        params,
        body_sha512_hex,
        headers_sha512_hex,
    ]
    .join("\n")
}

/// Lowercase hex SHA-512 of `data`.
pub fn sha512_hex(data: &[u8]) -> String {
    hex::encode(Sha512::digest(data))
}

/// The v5 header line: names lowercased, pairs sorted by name, flattened to
/// `name\0value\0name\0value`, then SHA-512 hex. No headers gives [`EMPTY_SHA512_HEX`].
pub fn x_duo_headers_sha512_hex(headers: &[(String, String)]) -> String {
    let mut lowered: Vec<(String, &str)> = headers
        .iter()
        .map(|(name, value)| (name.to_lowercase(), value.as_str()))
        .collect();
    // Stable, so repeated names (which Python refuses to send) keep their arrival order.
    lowered.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha512::new();
    for (i, (name, value)) in lowered.iter().enumerate() {
        if i > 0 {
            hasher.update([0u8]);
        }
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        hasher.update(value.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Signs a canonical string: lowercase hex `HMAC(skey, canonical)`.
pub fn sign(skey: &[u8], canonical: &str, digest: SigDigest) -> String {
    // HMAC accepts keys of any length, so `Keyed::new` never fails in practice; an empty
    // string is never a valid signature should it ever do so.
    let Some(mut mac) = Keyed::new(skey, digest) else {
        return String::new();
    };
    mac.update(canonical.as_bytes());
    mac.finalize_hex()
}

/// Parses a request date (`X-Duo-Date` or `Date`) to unix seconds.
///
/// Accepts RFC 2822 with any numeric zone (`-0000`, `+0000`, `-0500`) and the HTTP-date
/// `GMT` form that `Net::Duo` sends. The weekday, when present, must match the date.
pub fn parse_date(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc2822(s.trim())
        .ok()
        .map(|d| d.timestamp())
}

/// Whether `date` parses and lies within `max_skew_secs` of `now_unix` (duo-protocol §1.2: 300 s).
pub fn date_is_fresh(date: &str, now_unix: i64, max_skew_secs: i64) -> bool {
    parse_date(date).is_some_and(|t| t.abs_diff(now_unix) <= max_skew_secs.unsigned_abs())
}

/// Methods that carry a body: their v1/v2 parameters come from the form body and their v4/v5
/// body line hashes the body (duo-protocol §1.3).
fn sends_body(method: &str) -> bool {
    ["POST", "PUT", "PATCH"]
        .iter()
        .any(|m| method.eq_ignore_ascii_case(m))
}

/// An HMAC keyed with the skey, cloned per candidate so the key schedule runs once.
#[derive(Clone)]
enum Keyed {
    Sha1(Hmac<Sha1>),
    Sha512(Hmac<Sha512>),
}

impl Keyed {
    /// `None` only if the HMAC implementation refused the key, which it never does.
    fn new(skey: &[u8], digest: SigDigest) -> Option<Self> {
        match digest {
            SigDigest::Sha1 => Hmac::<Sha1>::new_from_slice(skey).ok().map(Self::Sha1),
            SigDigest::Sha512 => Hmac::<Sha512>::new_from_slice(skey).ok().map(Self::Sha512),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha1(mac) => mac.update(data),
            Self::Sha512(mac) => mac.update(data),
        }
    }

    /// Feeds `lines` joined with `\n`, continuing whatever was fed before.
    fn lines(&mut self, lines: &[&str]) {
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                self.update(b"\n");
            }
            self.update(line.as_bytes());
        }
    }

    /// Constant-time comparison with the decoded signature.
    fn matches(self, expected: &[u8]) -> bool {
        match self {
            Self::Sha1(mac) => mac.verify_slice(expected).is_ok(),
            Self::Sha512(mac) => mac.verify_slice(expected).is_ok(),
        }
    }

    fn finalize_hex(self) -> String {
        match self {
            Self::Sha1(mac) => hex::encode(mac.finalize().into_bytes()),
            Self::Sha512(mac) => hex::encode(mac.finalize().into_bytes()),
        }
    }
}
