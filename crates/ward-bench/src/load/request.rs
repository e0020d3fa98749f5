//! Signed Auth API requests, as `duo_client` 5.7.0 sends them: v5 (HMAC-SHA512) over a
//! key-sorted compact JSON body, an RFC 2822 `Date` with the literal zone `-0000`, and the host
//! signed without its port (spec §1).

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

use super::pool::Job;
use crate::users;

/// The Auth API endpoint the harness loads.
pub const AUTH_PATH: &str = "/auth/v2/auth";

/// Builds and signs requests for one integration.
pub struct Signer {
    ikey: String,
    skey: Zeroizing<String>,
    /// Signed host: the URL's host, lowercased, without port.
    host: String,
    /// `Host` header: the URL's `host[:port]`.
    authority: String,
    prefix: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("ikey", &self.ikey)
            .field("host", &self.host)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(
        ikey: String,
        skey: Zeroizing<String>,
        host: String,
        authority: String,
        prefix: String,
    ) -> Self {
        Self {
            ikey,
            skey,
            host,
            authority,
            prefix,
        }
    }

    /// The request for `job` at `now`: the user's code for the current step, or a wrong one.
    pub fn request(&self, job: Job, now: DateTime<Utc>) -> anyhow::Result<Request<Full<Bytes>>> {
        let step = users::step_at(now.timestamp());
        let (index, passcode) = match job {
            Job::Valid(index) => {
                let name = users::username(&self.prefix, index);
                (index, users::valid_code(&name, step)?)
            }
            Job::Wrong(index) => {
                let name = users::username(&self.prefix, index);
                (index, Zeroizing::new(users::wrong_code(&name, step)?))
            }
        };
        let username = users::username(&self.prefix, index);
        self.signed(&username, &passcode, now)
    }

    fn signed(
        &self,
        username: &str,
        passcode: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let body = auth_body(username, passcode)?;
        let date = rfc2822_date(now);
        let authorization = sign_request(
            &self.ikey,
            self.skey.as_bytes(),
            SigVersion::V5,
            SigDigest::Sha512,
            &date,
            "POST",
            &self.host,
            AUTH_PATH,
            &Params::new(),
            &body,
        );
        Request::builder()
            .method(Method::POST)
            .uri(AUTH_PATH)
            .header(HOST, &self.authority)
            .header(DATE, date)
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT_ENCODING, "identity")
            .header(
                USER_AGENT,
                concat!("ward-bench/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .context("building the request")
    }
}

/// `json.dumps(params, sort_keys=True, separators=(',',':'))` of `duo_client.auth(...)`.
fn auth_body(username: &str, passcode: &str) -> anyhow::Result<Vec<u8>> {
    let params: BTreeMap<&str, &str> = [
        ("async", "0"),
        ("factor", "passcode"),
        ("passcode", passcode),
        ("username", username),
    ]
    .into_iter()
    .collect();
    serde_json::to_vec(&params).context("encoding the request body")
}

/// `email.utils.formatdate()`: `Fri, 27 Nov 2026 18:44:51 -0000`.
fn rfc2822_date(now: DateTime<Utc>) -> String {
    now.format("%a, %d %b %Y %H:%M:%S -0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_proto::duo::signature::{SignedRequest, parse_authorization, verify};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn body_is_sorted_and_compact() {
        let body = auth_body("bench-000001", "123456").unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"async":"0","factor":"passcode","passcode":"123456","username":"bench-000001"}"#
        );
    }

    #[test]
    fn date_is_python_formatdate() {
        assert_eq!(
            rfc2822_date(at(1_795_805_091)),
            "Fri, 27 Nov 2026 18:44:51 -0000"
        );
    }

    #[test]
    fn requests_verify_like_the_server_checks_them() {
        let signer = Signer::new(
            "DIWJ8X6AEYOR5OMC6TQ1".into(),
            Zeroizing::new("Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep".into()),
            "localhost".into(),
            "localhost:8443".into(),
            "bench".into(),
        );
        let now = at(1_795_805_091);
        let req = signer.request(Job::Valid(3), now).unwrap();
        let header = |name| req.headers().get(name).unwrap().to_str().unwrap();
        assert_eq!(header(HOST), "localhost:8443");
        let creds = parse_authorization(header(AUTHORIZATION)).unwrap();
        let body = auth_body(
            "bench-000003",
            &users::valid_code("bench-000003", users::step_at(now.timestamp())).unwrap(),
        )
        .unwrap();
        let hosts = ward_proto::duo::signature::host_candidates(&[], Some(header(HOST)));
        let received = SignedRequest {
            method: "POST",
            raw_path: AUTH_PATH,
            raw_query: "",
            content_type: Some(header(CONTENT_TYPE)),
            body: &body,
            date: Some(header(DATE)),
            x_duo_headers: &[],
            hosts: &hosts,
        };
        let skey = b"Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
        assert_eq!(
            verify(&received, skey, &creds.signature_hex, false),
            Some(SigVersion::V5)
        );
    }
}
