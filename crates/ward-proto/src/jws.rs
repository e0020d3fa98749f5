//! Compact JWS with HMAC-SHA-512 (`HS512`), the only algorithm Duo's Web SDK v4 uses for the
//! request object, the client assertion and the `id_token`.
//!
//! # Security
//! Only `HS512` is accepted: the algorithm is fixed by the protocol, never taken from the
//! token (no `none`, no algorithm confusion). The MAC is checked in constant time before any
//! claim is trusted. Registered claims (`exp`, `aud`, ...) are checked by the caller, which
//! knows what each endpoint expects.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit as _, Mac as _};
use serde_json::{Map, Value};

type HmacSha512 = hmac::Hmac<sha2::Sha512>;

/// Largest token accepted (a request object with a long `state` is a few KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("the token is not a compact JWS")]
    Malformed,
    #[error("the token must be signed with HS512")]
    Algorithm,
    #[error("the token's signature is invalid")]
    Signature,
}

/// Signs `claims` (a JSON object) with HS512 under `key`.
pub fn sign_hs512(claims: &Map<String, Value>, key: &[u8]) -> Result<String, JwsError> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string());
    let signing_input = format!("{header}.{payload}");
    let signature = mac(key, signing_input.as_bytes())?.finalize().into_bytes();
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

fn mac(key: &[u8], data: &[u8]) -> Result<HmacSha512, JwsError> {
    // HMAC takes keys of any length, so this does not fail in practice.
    let mut mac = HmacSha512::new_from_slice(key).map_err(|_| JwsError::Signature)?;
    mac.update(data);
    Ok(mac)
}

struct Parts<'a> {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

fn split(token: &str) -> Result<Parts<'_>, JwsError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwsError::Malformed);
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or(JwsError::Malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(JwsError::Malformed)?;
    let object = |part: &str| -> Result<Map<String, Value>, JwsError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwsError::Malformed)?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(JwsError::Malformed),
        }
    };
    Ok(Parts {
        header: object(header)?,
        claims: object(payload)?,
        signing_input,
        signature: URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwsError::Malformed)?,
    })
}

/// The claims of a token **without** checking its signature: only to find out which key to
/// check it with (the client named by `iss`). Never trust what this returns.
pub fn unverified_claims(token: &str) -> Result<Map<String, Value>, JwsError> {
    split(token).map(|p| p.claims)
}

/// Checks an HS512 token under `key` and returns its claims.
pub fn verify_hs512(token: &str, key: &[u8]) -> Result<Map<String, Value>, JwsError> {
    let parts = split(token)?;
    if parts.header.get("alg").and_then(Value::as_str) != Some("HS512") {
        return Err(JwsError::Algorithm);
    }
    if parts.header.contains_key("crit") {
        return Err(JwsError::Malformed);
    }
    mac(key, parts.signing_input.as_bytes())?
        .verify_slice(&parts.signature)
        .map_err(|_| JwsError::Signature)?;
    Ok(parts.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Map<String, Value> {
        let Value::Object(map) = serde_json::json!({"iss": "DIXXXXXXXXXXXXXXXXXX", "exp": 1.5e9})
        else {
            unreachable!()
        };
        map
    }

    #[test]
    fn round_trips_and_checks_the_key() {
        let token = sign_hs512(&claims(), b"secret").unwrap();
        assert_eq!(verify_hs512(&token, b"secret").unwrap(), claims());
        assert_eq!(verify_hs512(&token, b"other"), Err(JwsError::Signature));
        assert_eq!(unverified_claims(&token).unwrap(), claims());
    }

    #[test]
    fn refuses_other_algorithms_and_tampering() {
        let token = sign_hs512(&claims(), b"secret").unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        let none = format!(
            "{}.{rest}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
        );
        assert_eq!(verify_hs512(&none, b"secret"), Err(JwsError::Algorithm));
        let hs256 = format!(
            "{}.{rest}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#)
        );
        assert_eq!(verify_hs512(&hs256, b"secret"), Err(JwsError::Algorithm));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"iss":"DIYYYYYYYYYYYYYYYYYY"}"#);
        parts[1] = &forged;
        assert_eq!(
            verify_hs512(&parts.join("."), b"secret"),
            Err(JwsError::Signature)
        );
        assert_eq!(verify_hs512("a.b", b"secret"), Err(JwsError::Malformed));
        assert_eq!(verify_hs512("", b"secret"), Err(JwsError::Malformed));
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(verify_hs512(&huge, b"secret"), Err(JwsError::Malformed));
    }

    #[test]
    fn verifies_a_token_made_by_pyjwt() {
        // jwt.encode({"sub": "alice"}, "secret", algorithm="HS512") with PyJWT 2.15.1.
        let token = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.\
            T0dbPffXLSeC9hFxmyoOxj72yAoHx4glHAtrAteMKB_R3hTqYOp57-C6FyWt0zoqdTVjeixIBnMWQj3PP_Egog";
        let got = verify_hs512(token, b"secret");
        assert!(
            got.as_ref()
                .is_ok_and(|c| c.get("sub") == Some(&Value::from("alice"))),
            "{got:?}"
        );
    }
}
