//! Client-side signing, as the official clients do it (for Ward's load generator and tests).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{
    EMPTY_SHA512_HEX, SigDigest, SigVersion, canon_v1, canon_v2, canon_v4, canon_v5, sends_body,
    sha512_hex, sign,
};
use crate::duo::params::Params;

/// Signs a request and returns the full `Authorization` header value.
///
/// - v1/v2: the parameter line is `params` (the query for GET/DELETE, the form body for
///   POST/PUT/PATCH); `body` is not signed.
/// - v4/v5 with POST/PUT/PATCH: the parameter line is empty and `body` (the exact JSON bytes
///   sent) is hashed; `params` is not signed.
/// - v4/v5 with other methods: the parameter line is `params` and the body line is the hash of
///   the empty string.
/// - v5 signs no extra `X-Duo-*` headers, like every current client.
///
/// `date` is ignored by v1. `host` is lowercased and `method` uppercased.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per signed request part keeps call sites explicit"
)]
pub fn sign_request(
    ikey: &str,
    skey: &[u8],
    version: SigVersion,
    digest: SigDigest,
    date: &str,
    method: &str,
    host: &str,
    path: &str,
    params: &Params,
    body: &[u8],
) -> String {
    let canonical = match version {
        SigVersion::V1 => canon_v1(method, host, path, &params.canonical()),
        SigVersion::V2 => canon_v2(date, method, host, path, &params.canonical()),
        SigVersion::V4 | SigVersion::V5 => {
            let (params_line, body_hash) = if sends_body(method) {
                (String::new(), sha512_hex(body))
            } else {
                (params.canonical(), EMPTY_SHA512_HEX.to_owned())
            };
            if version == SigVersion::V4 {
                canon_v4(date, method, host, path, &params_line, &body_hash)
            } else {
                canon_v5(
                    date,
                    method,
                    host,
                    path,
                    &params_line,
                    &body_hash,
                    EMPTY_SHA512_HEX,
                )
            }
        }
    };
    authorization_header(ikey, &sign(skey, &canonical, digest))
}

/// `Basic base64(ikey ":" signature_hex)`.
pub fn authorization_header(ikey: &str, signature_hex: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{ikey}:{signature_hex}")))
}
