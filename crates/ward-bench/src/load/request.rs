//! The passcode requests of `ward-bench auth`, signed as `duo_client` 5.7.0 signs them (see
//! [`crate::duo`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper::Request;
use hyper::body::Bytes;
use zeroize::Zeroizing;

use super::pool::Job;
use crate::duo::DuoSigner;
use crate::users;

/// The Auth API endpoint the harness loads.
pub const AUTH_PATH: &str = "/auth/v2/auth";

/// Builds and signs requests for one integration.
#[derive(Debug)]
pub struct Signer {
    duo: DuoSigner,
    prefix: String,
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
            duo: DuoSigner::new(ikey, skey, host, authority),
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
        self.duo
            .post_json(AUTH_PATH, &auth_params(&username, &passcode), now)
    }
}

/// What `duo_client.auth(username, factor="passcode", passcode=...)` sends.
fn auth_params<'a>(username: &'a str, passcode: &'a str) -> BTreeMap<&'static str, &'a str> {
    [
        ("async", "0"),
        ("factor", "passcode"),
        ("passcode", passcode),
        ("username", username),
    ]
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{AUTHORIZATION, CONTENT_TYPE, DATE, HOST};
    use ward_proto::duo::signature::{SigVersion, SignedRequest, parse_authorization, verify};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn body_is_sorted_and_compact() {
        let body = serde_json::to_vec(&auth_params("bench-000001", "123456")).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"async":"0","factor":"passcode","passcode":"123456","username":"bench-000001"}"#
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
        let code = users::valid_code("bench-000003", users::step_at(now.timestamp())).unwrap();
        let body = serde_json::to_vec(&auth_params("bench-000003", &code)).unwrap();
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
