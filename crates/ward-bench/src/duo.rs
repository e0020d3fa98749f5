//! Signed Duo Auth API requests, as `duo_client` 5.7.0 sends them: v5 (HMAC-SHA512), an
//! RFC 2822 `Date` with the literal zone `-0000`, and the host signed without its port
//! (duo-protocol §1).
//! POSTs carry a key-sorted compact JSON body; GETs carry the canonical parameters as their
//! query string.

use std::collections::BTreeMap;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ACCEPT_ENCODING, AUTHORIZATION, CONTENT_TYPE, DATE, HOST, USER_AGENT};
use hyper::{Method, Request};
use ward_proto::duo::params::Params;
use ward_proto::duo::signature::{SigDigest, SigVersion, sign_request};
use zeroize::Zeroizing;

/// The `User-Agent` of every request the harness sends.
pub const BENCH_USER_AGENT: &str = concat!("ward-bench/", env!("CARGO_PKG_VERSION"));

/// Signs requests for one integration.
pub struct DuoSigner {
    ikey: String,
    skey: Zeroizing<String>,
    /// Signed host: the URL's host, lowercased, without port.
    host: String,
    /// `Host` header: the URL's `host[:port]`.
    authority: String,
}

impl std::fmt::Debug for DuoSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuoSigner")
            .field("ikey", &self.ikey)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl DuoSigner {
    pub fn new(ikey: String, skey: Zeroizing<String>, host: String, authority: String) -> Self {
        Self {
            ikey,
            skey,
            host,
            authority,
        }
    }

    /// `POST path` with `params` as the JSON body
    /// (`json.dumps(params, sort_keys=True, separators=(',',':'))`).
    pub fn post_json(
        &self,
        path: &str,
        params: &BTreeMap<&str, &str>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let body = serde_json::to_vec(params).context("encoding the request body")?;
        let date = rfc2822_date(now);
        let authorization = self.sign("POST", &date, path, &Params::new(), &body);
        Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, &self.authority)
            .header(DATE, date)
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT_ENCODING, "identity")
            .header(USER_AGENT, BENCH_USER_AGENT)
            .body(Full::new(Bytes::from(body)))
            .context("building the request")
    }

    /// `GET path?params`, the parameters in their canonical (signed) form.
    pub fn get(
        &self,
        path: &str,
        params: &Params,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let date = rfc2822_date(now);
        let authorization = self.sign("GET", &date, path, params, b"");
        let query = params.canonical();
        let uri = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(HOST, &self.authority)
            .header(DATE, date)
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT_ENCODING, "identity")
            .header(USER_AGENT, BENCH_USER_AGENT)
            .body(Full::new(Bytes::new()))
            .context("building the request")
    }

    fn sign(&self, method: &str, date: &str, path: &str, params: &Params, body: &[u8]) -> String {
        sign_request(
            &self.ikey,
            self.skey.as_bytes(),
            SigVersion::V5,
            SigDigest::Sha512,
            date,
            method,
            &self.host,
            path,
            params,
            body,
        )
    }
}

/// `email.utils.formatdate()`: `Fri, 27 Nov 2026 18:44:51 -0000`.
pub fn rfc2822_date(now: DateTime<Utc>) -> String {
    now.format("%a, %d %b %Y %H:%M:%S -0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_proto::duo::signature::{SignedRequest, host_candidates, parse_authorization, verify};

    const SKEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";

    fn signer() -> DuoSigner {
        DuoSigner::new(
            "DIWJ8X6AEYOR5OMC6TQ1".into(),
            Zeroizing::new(SKEY.into()),
            "localhost".into(),
            "localhost:8443".into(),
        )
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn date_is_python_formatdate() {
        assert_eq!(
            rfc2822_date(at(1_795_805_091)),
            "Fri, 27 Nov 2026 18:44:51 -0000"
        );
    }

    #[test]
    fn signed_gets_verify_like_the_server_checks_them() {
        let params: Params = [("txid", "a b/c")].into_iter().collect();
        let req = signer()
            .get("/auth/v2/auth_status", &params, at(1_795_805_091))
            .unwrap();
        let header = |name| req.headers().get(name).unwrap().to_str().unwrap();
        assert_eq!(req.uri().to_string(), "/auth/v2/auth_status?txid=a%20b%2Fc");
        let creds = parse_authorization(header(AUTHORIZATION)).unwrap();
        let hosts = host_candidates(&[], Some(header(HOST)));
        let received = SignedRequest {
            method: "GET",
            raw_path: "/auth/v2/auth_status",
            raw_query: "txid=a%20b%2Fc",
            content_type: None,
            body: b"",
            date: Some(header(DATE)),
            x_duo_headers: &[],
            hosts: &hosts,
        };
        assert_eq!(
            verify(&received, SKEY.as_bytes(), &creds.signature_hex, false),
            Some(SigVersion::V5)
        );
    }
}
