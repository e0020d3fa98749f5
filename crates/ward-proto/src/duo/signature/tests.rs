//! Known-answer tests (duo-protocol §1.6, `duo_client_python`'s `tests/test_client.py`), verifier
//! acceptance and rejection, and a sign/verify property test.

use proptest::prelude::*;

use super::*;
use crate::duo::params::Params;
use crate::duo::params::tests::{PYTHON_UNICODE_CANON, PYTHON_UNICODE_PARAMS};

// duo-protocol §1.6 inputs.
const IKEY: &str = "DIWJ8X6AEYOR5OMC6TQ1";
const SKEY: &[u8] = b"Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
const HOST: &str = "api-XXXXXXXX.duosecurity.com";
const DATE: &str = "Tue, 21 Aug 2012 17:29:18 -0000";

const EX1_SIG: &str = "def3dd5beb009592aaa48072f086ab05547491e88c3afd99fa6177c0b697027e\
                       645df3a0580d41e9e62fbf503964079363491c744c4d574761f3cc9d3303ceda";
const EX2_SIG: &str = "bd6dfd2f8753817947da0a71b7fb475480381993619b2c8358e9563dec527210\
                       16a3075d66e709bfa0c2e4a623d5a11a6a0ed47919df9401b3794359b5c82d2f";
const EX3_BODY: &[u8] = br#"{"async":"1","device":"auto","factor":"push","username":"jane doe"}"#;
const EX3_BODY_SHA512: &str = "2d0a94f382abbf02e1536311417e135ac564b4ea47988d51d3dd14f0c69f1536\
                               cbf8dcf4199c17af98ec743f3e91b2ac37fb1c4bc20b01e5d492b3b3476d50b4";
const EX3_SIG: &str = "be04292c3efbc33a6dde6d46eb9ddfacd19c9edc16931762ef94af6ff9da6c8b\
                       8fea91c66269b7159ffece04601c95dca446d16c7b3f953f0185458c3896d06b";
const EX3_TRACE_HASH: &str = "b9d6068da9db9a128cfdd31b314a3ae6b4241b1b61f20417f03e667c01db396a\
                              09735d3dab1de807fca0caad74c155c63ad57cf292ea848675efe48d3d164702";
const EX3_TRACE_SIG: &str = "a5d2aa3a6a93ca14f3501b6964ff066a92cb2a4bf5678008d45e8323c583446e\
                             4bcd5219c6e0d59ae888e1b17d5a7956dc8522f35845ef0b15785a335c06c7db";
const EX4_BODY: &[u8] = b"username=jane+doe&ipaddr=10.1.2.3";
const EX4_SIG: &str = "757e9d0099435f3fcff0d1c2a549d6129c60acd22f55e9d01ac0f85a967d6895\
                       ceeb64f136dcb711a21b84e419282354f34c39aeb22f45b0a49d30a6b0113538";
const EX5_SIG: &str = "4b9b61ec0742bb8df11ce10d1126fd48a32d4f0b";

// duo_client_python TestCanonicalize / TestSign inputs.
const PY_DATE: &str = "Fri, 07 Dec 2012 17:18:00 -0000";
const PY_HOST: &str = "foO.BAr52.cOm";
const PY_METHOD: &str = "PoSt";
const PY_URI: &str = "/Foo/BaR2/qux";
const PY_SKEY: &[u8] = b"gtdfxv9YgVBYcF6dl2Eq17KUQJN2PLM2ODVTkvoT";
const PY_IKEY: &str = "test_ikey";
const PY_JSON: &str =
    r#"{"alpha":["a","b","c","d"],"data":"abc123","info":{"another":2,"test":1}}"#;

fn hosts() -> Vec<String> {
    vec![HOST.to_lowercase()]
}

fn py_params() -> Params {
    PYTHON_UNICODE_PARAMS.iter().copied().collect()
}

fn get<'a>(path: &'a str, query: &'a str, hosts: &'a [String]) -> SignedRequest<'a> {
    SignedRequest {
        method: "GET",
        raw_path: path,
        raw_query: query,
        content_type: None,
        body: b"",
        date: Some(DATE),
        x_duo_headers: &[],
        hosts,
    }
}

fn post<'a>(
    path: &'a str,
    content_type: &'a str,
    body: &'a [u8],
    hosts: &'a [String],
) -> SignedRequest<'a> {
    SignedRequest {
        method: "POST",
        raw_path: path,
        raw_query: "",
        content_type: Some(content_type),
        body,
        date: Some(DATE),
        x_duo_headers: &[],
        hosts,
    }
}

// ---- duo-protocol §1.6 worked examples
// -------------------------------------------------------------

#[test]
fn empty_sha512_constant() {
    assert_eq!(sha512_hex(b""), EMPTY_SHA512_HEX);
    assert_eq!(x_duo_headers_sha512_hex(&[]), EMPTY_SHA512_HEX);
}

#[test]
fn example_1_v5_get_no_params() {
    let canonical = canon_v5(
        DATE,
        "GET",
        HOST,
        "/auth/v2/check",
        "",
        EMPTY_SHA512_HEX,
        EMPTY_SHA512_HEX,
    );
    assert_eq!(
        canonical,
        format!(
            "{DATE}\nGET\napi-xxxxxxxx.duosecurity.com\n/auth/v2/check\n\n{EMPTY_SHA512_HEX}\n{EMPTY_SHA512_HEX}"
        )
    );
    assert_eq!(sign(SKEY, &canonical, SigDigest::Sha512), EX1_SIG);
    let header = sign_request(
        IKEY,
        SKEY,
        SigVersion::V5,
        SigDigest::Sha512,
        DATE,
        "GET",
        HOST,
        "/auth/v2/check",
        &Params::new(),
        b"",
    );
    assert_eq!(
        header,
        "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6ZGVmM2RkNWJlYjAwOTU5MmFhYTQ4MDcyZjA4NmFiMDU1NDc0OTFl\
         ODhjM2FmZDk5ZmE2MTc3YzBiNjk3MDI3ZTY0NWRmM2EwNTgwZDQxZTllNjJmYmY1MDM5NjQwNzkzNjM0OTFjNzQ0\
         YzRkNTc0NzYxZjNjYzlkMzMwM2NlZGE="
    );
    let creds = parse_authorization(&header).unwrap();
    assert_eq!(creds.ikey, IKEY);
    assert_eq!(creds.signature_hex, EX1_SIG);
    assert_eq!(creds.digest(), Some(SigDigest::Sha512));
}

#[test]
fn example_2_v5_get_with_params() {
    let params = Params::from_urlencoded(b"username=jane+doe&limit=10&offset=0").unwrap();
    assert_eq!(params.canonical(), "limit=10&offset=0&username=jane%20doe");
    let canonical = canon_v5(
        DATE,
        "GET",
        HOST,
        "/admin/v1/users",
        &params.canonical(),
        EMPTY_SHA512_HEX,
        EMPTY_SHA512_HEX,
    );
    assert_eq!(sign(SKEY, &canonical, SigDigest::Sha512), EX2_SIG);
    let header = sign_request(
        IKEY,
        SKEY,
        SigVersion::V5,
        SigDigest::Sha512,
        DATE,
        "GET",
        HOST,
        "/admin/v1/users",
        &params,
        b"",
    );
    assert_eq!(header, authorization_header(IKEY, EX2_SIG));
}

#[test]
fn example_3_v5_post_json() {
    assert_eq!(sha512_hex(EX3_BODY), EX3_BODY_SHA512);
    let canonical = canon_v5(
        DATE,
        "POST",
        HOST,
        "/auth/v2/auth",
        "",
        EX3_BODY_SHA512,
        EMPTY_SHA512_HEX,
    );
    assert_eq!(sign(SKEY, &canonical, SigDigest::Sha512), EX3_SIG);
    let header = sign_request(
        IKEY,
        SKEY,
        SigVersion::V5,
        SigDigest::Sha512,
        DATE,
        "POST",
        HOST,
        "/auth/v2/auth",
        &Params::from_json(EX3_BODY).unwrap(),
        EX3_BODY,
    );
    assert_eq!(header, authorization_header(IKEY, EX3_SIG));
}

#[test]
fn example_3_with_x_duo_trace() {
    let headers = vec![("X-Duo-Trace".to_owned(), "abc".to_owned())];
    assert_eq!(x_duo_headers_sha512_hex(&headers), EX3_TRACE_HASH);
    assert_eq!(sha512_hex(b"x-duo-trace\x00abc"), EX3_TRACE_HASH);
    let canonical = canon_v5(
        DATE,
        "POST",
        HOST,
        "/auth/v2/auth",
        "",
        EX3_BODY_SHA512,
        EX3_TRACE_HASH,
    );
    assert_eq!(sign(SKEY, &canonical, SigDigest::Sha512), EX3_TRACE_SIG);
}

#[test]
fn example_4_v2_form_sha512() {
    let params = Params::from_urlencoded(EX4_BODY).unwrap();
    let canonical = canon_v2(DATE, "POST", HOST, "/auth/v2/preauth", &params.canonical());
    assert_eq!(
        canonical,
        format!(
            "{DATE}\nPOST\napi-xxxxxxxx.duosecurity.com\n/auth/v2/preauth\nipaddr=10.1.2.3&username=jane%20doe"
        )
    );
    assert_eq!(sign(SKEY, &canonical, SigDigest::Sha512), EX4_SIG);
    let header = sign_request(
        IKEY,
        SKEY,
        SigVersion::V2,
        SigDigest::Sha512,
        DATE,
        "POST",
        HOST,
        "/auth/v2/preauth",
        &params,
        EX4_BODY,
    );
    assert_eq!(header, authorization_header(IKEY, EX4_SIG));
}

#[test]
fn example_5_v2_form_sha1() {
    let params = Params::from_urlencoded(EX4_BODY).unwrap();
    let header = sign_request(
        IKEY,
        SKEY,
        SigVersion::V2,
        SigDigest::Sha1,
        DATE,
        "POST",
        HOST,
        "/auth/v2/preauth",
        &params,
        EX4_BODY,
    );
    assert_eq!(
        header,
        "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6NGI5YjYxZWMwNzQyYmI4ZGYxMWNlMTBkMTEyNmZkNDhhMzJkNGYwYg=="
    );
    assert_eq!(parse_authorization(&header).unwrap().signature_hex, EX5_SIG);
}

// ---- duo_client_python tests/test_client.py --------------------------------------------------

#[test]
fn python_canonicalize_v1() {
    assert_eq!(
        canon_v1(PY_METHOD, PY_HOST, PY_URI, &py_params().canonical()),
        format!("POST\nfoo.bar52.com\n/Foo/BaR2/qux\n{PYTHON_UNICODE_CANON}")
    );
}

#[test]
fn python_canonicalize_v2() {
    assert_eq!(
        canon_v2(
            PY_DATE,
            PY_METHOD,
            PY_HOST,
            PY_URI,
            &py_params().canonical()
        ),
        format!("{PY_DATE}\nPOST\nfoo.bar52.com\n/Foo/BaR2/qux\n{PYTHON_UNICODE_CANON}")
    );
}

#[test]
fn python_canonicalize_v4_with_json() {
    let date = "Tue, 04 Jul 2017 14:12:00";
    assert_eq!(
        canon_v4(
            date,
            "POST",
            "foO.BaR52.cOm",
            PY_URI,
            "",
            &sha512_hex(PY_JSON.as_bytes())
        ),
        format!(
            "{date}\nPOST\nfoo.bar52.com\n/Foo/BaR2/qux\n\n{}",
            sha512_hex(PY_JSON.as_bytes())
        )
    );
}

#[test]
fn python_canonicalize_v5_with_json() {
    let date = "Tue, 17 Nov 2020 14:12:00";
    let body_hash = sha512_hex(PY_JSON.as_bytes());
    let one = vec![("X-Duo-Header-1".to_owned(), "header_value_1".to_owned())];
    let one_hash = x_duo_headers_sha512_hex(&one);
    assert_eq!(
        one_hash,
        "630b4bfe7e9abd03da2eee8f0a5d4e60a254ec880a839bcc2223bb5b9443e8ef\
         24d58f0254f1f5934bf8c017ebd0fd5b1acf86766bdbe74185e712a4092df3ed"
    );
    assert_eq!(
        canon_v5(
            date,
            "POST",
            "foO.BaR52.cOm",
            PY_URI,
            "",
            &body_hash,
            &one_hash
        ),
        format!("{date}\nPOST\nfoo.bar52.com\n/Foo/BaR2/qux\n\n{body_hash}\n{one_hash}")
    );
}

#[test]
fn python_v5_lowers_and_then_sorts_headers() {
    let headers = vec![
        ("X-Duo-B".to_owned(), "header_value_2".to_owned()),
        ("x-duo-A".to_owned(), "header_value_1".to_owned()),
    ];
    assert_eq!(
        x_duo_headers_sha512_hex(&headers),
        "60be11a30e0756f2ee2afdce1db849b987dcf86c1133394bd7bbbc9877920330\
         c4d78aceacbb377ab8cbd9a8efe6a410fed4047376635ac71226ab46ca10d2b1"
    );
}

#[test]
fn python_sign_hmac_sha1() {
    let header = sign_request(
        PY_IKEY,
        PY_SKEY,
        SigVersion::V2,
        SigDigest::Sha1,
        PY_DATE,
        PY_METHOD,
        PY_HOST,
        PY_URI,
        &py_params(),
        b"",
    );
    assert_eq!(
        header,
        authorization_header(PY_IKEY, "f01811cbbf9561623ab45b893096267fd46a5178")
    );
}

#[test]
fn python_sign_hmac_sha512() {
    let header = sign_request(
        PY_IKEY,
        PY_SKEY,
        SigVersion::V2,
        SigDigest::Sha512,
        PY_DATE,
        PY_METHOD,
        PY_HOST,
        PY_URI,
        &py_params(),
        b"",
    );
    assert_eq!(
        header,
        authorization_header(
            PY_IKEY,
            "0508065035a03b2a1de2f453e629e791d180329e157f65df6b3e0f08299d4321\
             e1c5c7a7c7ee6b9e5fc80d1fb6fbf3ad5eb7c44dd3b3985a02c37aca53ec3698"
        )
    );
}

// ---- parse_authorization ---------------------------------------------------------------------

#[test]
fn authorization_splits_at_first_colon_and_accepts_sha1() {
    let header = authorization_header("DI:weird", EX5_SIG);
    let err = parse_authorization(&header).unwrap_err();
    // "DI" then "weird:<sig>", which is not hex: the ikey is kept for the 40102 check.
    assert_eq!(
        err,
        SigError::MalformedSignature {
            ikey: "DI".to_owned()
        }
    );
    assert_eq!(
        err.code(),
        crate::duo::envelope::DuoErrorCode::InvalidSignature
    );
    let creds = parse_authorization(&format!(
        "basic  {}",
        &authorization_header(IKEY, EX5_SIG)[6..]
    ))
    .unwrap();
    assert_eq!(creds.digest(), Some(SigDigest::Sha1));
    assert!(!format!("{creds:?}").contains(EX5_SIG));
}

#[test]
fn authorization_rejects_garbage_as_missing() {
    let b64 = |s: &str| format!("Basic {}", BASE64.encode(s));
    for header in [
        String::new(),
        "Basic".to_owned(),
        "Bearer abc".to_owned(),
        "Basic !!!not-base64".to_owned(),
        b64("no-colon"),
        b64(&format!(":{EX5_SIG}")),
        format!("Basic {}", BASE64.encode([0xff, b':', b'a'])),
        format!("Basic {}", "A".repeat(2000)),
    ] {
        let err = parse_authorization(&header).unwrap_err();
        assert_eq!(err, SigError::MissingCredentials, "{header:?}");
        assert_eq!(
            err.code(),
            crate::duo::envelope::DuoErrorCode::MissingCredentials
        );
    }
}

#[test]
fn authorization_rejects_bad_signature_shapes() {
    for sig in [
        "",
        "abc",
        &"g".repeat(40),
        &"a".repeat(41),
        &"a".repeat(64),
        &"a".repeat(127),
    ] {
        let err = parse_authorization(&authorization_header(IKEY, sig)).unwrap_err();
        assert_eq!(
            err,
            SigError::MalformedSignature {
                ikey: IKEY.to_owned()
            },
            "{sig:?}"
        );
    }
}

// ---- verify: acceptance ----------------------------------------------------------------------

#[test]
fn verify_accepts_examples() {
    let hosts = hosts();
    let json = "application/json";
    let form = "application/x-www-form-urlencoded";
    let cases: [(SignedRequest<'_>, &str, SigVersion); 6] = [
        (get("/auth/v2/check", "", &hosts), EX1_SIG, SigVersion::V5),
        (
            get(
                "/admin/v1/users",
                "username=jane+doe&limit=10&offset=0",
                &hosts,
            ),
            EX2_SIG,
            SigVersion::V5,
        ),
        (
            post("/auth/v2/auth", json, EX3_BODY, &hosts),
            EX3_SIG,
            SigVersion::V5,
        ),
        (
            post("/auth/v2/preauth", form, EX4_BODY, &hosts),
            EX4_SIG,
            SigVersion::V2,
        ),
        (
            post("/auth/v2/preauth", form, EX4_BODY, &hosts),
            EX5_SIG,
            SigVersion::V2,
        ),
        // Java spells spaces %20 and orders params differently: same canonical line.
        (
            get(
                "/admin/v1/users",
                "offset=0&username=jane%20doe&limit=10",
                &hosts,
            ),
            EX2_SIG,
            SigVersion::V5,
        ),
    ];
    for (req, sig, version) in cases {
        assert_eq!(verify(&req, SKEY, sig, false), Some(version), "{req:?}");
    }
}

#[test]
fn verify_accepts_x_duo_trace_with_and_without_it_signed() {
    let hosts = hosts();
    let trace = vec![("X-Duo-Trace".to_owned(), "abc".to_owned())];
    let mut req = post(
        "/auth/v2/auth",
        "application/json; charset=utf-8",
        EX3_BODY,
        &hosts,
    );
    req.x_duo_headers = &trace;
    assert_eq!(
        verify(&req, SKEY, EX3_TRACE_SIG, false),
        Some(SigVersion::V5)
    );
    assert_eq!(verify(&req, SKEY, EX3_SIG, false), Some(SigVersion::V5));
    // With an X-Duo-Date also received, "all headers" no longer matches but "without
    // x-duo-date" does.
    let both = vec![
        ("X-Duo-Trace".to_owned(), "abc".to_owned()),
        ("X-Duo-Date".to_owned(), DATE.to_owned()),
    ];
    req.x_duo_headers = &both;
    assert_eq!(
        verify(&req, SKEY, EX3_TRACE_SIG, false),
        Some(SigVersion::V5)
    );
    // Not received at all: the trace signature cannot match.
    req.x_duo_headers = &[];
    assert_eq!(verify(&req, SKEY, EX3_TRACE_SIG, false), None);
}

#[test]
fn verify_accepts_python_vectors_with_host_as_given() {
    let hosts = vec![PY_HOST.to_owned()];
    let body = py_params().to_urlencoded();
    let mut req = post(
        PY_URI,
        "application/x-www-form-urlencoded",
        body.as_bytes(),
        &hosts,
    );
    req.method = PY_METHOD;
    req.date = Some(PY_DATE);
    assert_eq!(
        verify(
            &req,
            PY_SKEY,
            "f01811cbbf9561623ab45b893096267fd46a5178",
            false
        ),
        Some(SigVersion::V2)
    );
}

#[test]
fn verify_accepts_v4() {
    let hosts = hosts();
    let header = sign_request(
        IKEY,
        SKEY,
        SigVersion::V4,
        SigDigest::Sha512,
        DATE,
        "POST",
        HOST,
        "/auth/v2/auth",
        &Params::new(),
        EX3_BODY,
    );
    let sig = parse_authorization(&header).unwrap().signature_hex;
    let req = post("/auth/v2/auth", "application/json", EX3_BODY, &hosts);
    assert_eq!(verify(&req, SKEY, &sig, false), Some(SigVersion::V4));
}

#[test]
fn verify_v1_only_when_allowed() {
    let hosts = hosts();
    let params = Params::from_urlencoded(EX4_BODY).unwrap();
    let header = sign_request(
        IKEY,
        SKEY,
        SigVersion::V1,
        SigDigest::Sha512,
        "",
        "POST",
        HOST,
        "/auth/v2/preauth",
        &params,
        EX4_BODY,
    );
    let sig = parse_authorization(&header).unwrap().signature_hex;
    let mut req = post(
        "/auth/v2/preauth",
        "application/x-www-form-urlencoded",
        EX4_BODY,
        &hosts,
    );
    req.date = None;
    assert_eq!(verify(&req, SKEY, &sig, true), Some(SigVersion::V1));
    assert_eq!(verify(&req, SKEY, &sig, false), None);
    // A date header does not stop a v1 signature from matching (its freshness is the caller's).
    req.date = Some(DATE);
    assert_eq!(verify(&req, SKEY, &sig, true), Some(SigVersion::V1));
    assert_eq!(verify(&req, SKEY, &sig, false), None);
}

#[test]
fn verify_duo_unix_v1_with_host_not_lowercased() {
    // duo_unix 1.11.3: HMAC-SHA1, no date, host as configured (not lowercased, no port).
    let canonical = "POST\nLocalHost\n/rest/v1/preauth.bson\nfailmode=closed&hostname=vm&ipaddr=127.0.0.1&user=alice";
    let sig = sign(SKEY, canonical, SigDigest::Sha1);
    // Cross-checked with Python's hmac module.
    assert_eq!(sig, "b2ecc66d6879b0bfdf133abb525e0b118197710a");
    let hosts = vec!["LocalHost".to_owned(), "localhost:8443".to_owned()];
    let body = b"failmode=closed&hostname=vm&ipaddr=127.0.0.1&user=alice";
    let mut req = post(
        "/rest/v1/preauth.bson",
        "application/x-www-form-urlencoded",
        body,
        &hosts,
    );
    req.date = None;
    assert_eq!(verify(&req, SKEY, &sig, true), Some(SigVersion::V1));
    let lower = vec!["localhost".to_owned()];
    req.hosts = &lower;
    assert_eq!(verify(&req, SKEY, &sig, true), None);
}

#[test]
fn verify_net_duo_v2_sha1_gmt_date_host_with_port() {
    let date = "Fri, 27 Nov 2026 19:39:06 GMT";
    let canonical = format!("{date}\nPOST\nlocalhost:8443\n/auth/v2/preauth\nusername=alice");
    let sig = sign(SKEY, &canonical, SigDigest::Sha1);
    assert_eq!(sig, "5ba7d3c577a5ffc1618820e58060369e9d9ce35d");
    let hosts = vec!["localhost".to_owned(), "localhost:8443".to_owned()];
    let mut req = post(
        "/auth/v2/preauth",
        "application/x-www-form-urlencoded",
        b"username=alice",
        &hosts,
    );
    req.date = Some(date);
    assert_eq!(verify(&req, SKEY, &sig, false), Some(SigVersion::V2));
    assert_eq!(parse_date(date), Some(1_795_808_346));
}

#[test]
fn verify_accepts_go_and_libduo_orders() {
    let hosts = hosts();
    let query = "k=%C3%A9&k=~&user=a&user-id=b";
    let params = Params::from_urlencoded(query.as_bytes()).unwrap();
    let python = params.canonical();
    let go = params.canonical_raw_sorted();
    let libduo = params.canonical_pair_sorted();
    assert_ne!(python, go);
    assert_ne!(python, libduo);
    for line in [python, go, libduo] {
        let sig = sign(
            SKEY,
            &canon_v2(DATE, "GET", HOST, "/admin/v1/users", &line),
            SigDigest::Sha512,
        );
        let req = get("/admin/v1/users", query, &hosts);
        assert_eq!(
            verify(&req, SKEY, &sig, false),
            Some(SigVersion::V2),
            "{line}"
        );
    }
}

#[test]
fn verify_accepts_uppercase_hex_and_other_content_types() {
    let hosts = hosts();
    let req = post("/auth/v2/preauth", "text/plain", EX4_BODY, &hosts);
    assert_eq!(
        verify(&req, SKEY, &EX4_SIG.to_uppercase(), false),
        Some(SigVersion::V2)
    );
    let mut req = post("/auth/v2/auth", "text/plain", EX3_BODY, &hosts);
    req.content_type = None;
    assert_eq!(verify(&req, SKEY, EX3_SIG, false), Some(SigVersion::V5));
}

#[test]
fn host_candidates_cover_port_and_configured_names() {
    let configured = vec!["API-1.example.com".to_owned(), "localhost:8443".to_owned()];
    assert_eq!(
        host_candidates(&configured, Some("API-1.example.com:8443")),
        [
            "API-1.example.com",
            "localhost:8443",
            "localhost",
            "API-1.example.com:8443"
        ]
    );
    assert_eq!(
        host_candidates(&[], Some("[::1]:8443")),
        ["[::1]:8443", "[::1]"]
    );
    assert_eq!(host_candidates(&[], Some("[::1]")), ["[::1]"]);
    assert_eq!(host_candidates(&[], Some("host:")), ["host:"]);
    assert_eq!(host_candidates(&[], Some(" ")), Vec::<String>::new());
    assert_eq!(host_candidates(&[], None), Vec::<String>::new());
    // Go signs "localhost:8443", Python "localhost": both verify with the same candidates.
    let hosts = host_candidates(&[], Some("localhost:8443"));
    for signed_host in ["localhost:8443", "LOCALHOST"] {
        let sig = sign(
            SKEY,
            &canon_v2(DATE, "GET", signed_host, "/auth/v2/check", ""),
            SigDigest::Sha512,
        );
        let req = get("/auth/v2/check", "", &hosts);
        assert_eq!(
            verify(&req, SKEY, &sig, false),
            Some(SigVersion::V2),
            "{signed_host}"
        );
    }
}

// ---- verify: rejection -----------------------------------------------------------------------

#[test]
fn verify_rejects_one_byte_changes() {
    let hosts = hosts();
    let json = "application/json";
    let form = "application/x-www-form-urlencoded";
    let mut body3 = EX3_BODY.to_vec();
    body3[10] ^= 1;
    let mut body4 = EX4_BODY.to_vec();
    body4[9] = b'J';
    let other_host = vec!["api-xxxxxxxy.duosecurity.com".to_owned()];

    let mut cases: Vec<(SignedRequest<'_>, &str)> = vec![
        (post("/auth/v2/auth", json, &body3, &hosts), EX3_SIG),
        (post("/auth/v2/preauth", form, &body4, &hosts), EX4_SIG),
        (post("/auth/v2/preauth", form, &body4, &hosts), EX5_SIG),
        (get("/auth/v2/chock", "", &hosts), EX1_SIG),
        (
            get(
                "/admin/v1/users",
                "username=jane+doe&limit=11&offset=0",
                &hosts,
            ),
            EX2_SIG,
        ),
        (
            get("/admin/v1/users", "username=jane+doe&limit=10", &hosts),
            EX2_SIG,
        ),
        (get("/auth/v2/check", "", &other_host), EX1_SIG),
        (post("/auth/v2/auth", form, EX3_BODY, &hosts), EX3_SIG),
    ];
    let mut wrong_date = get("/auth/v2/check", "", &hosts);
    wrong_date.date = Some("Tue, 21 Aug 2012 17:29:19 -0000");
    cases.push((wrong_date, EX1_SIG));
    let mut no_date = get("/auth/v2/check", "", &hosts);
    no_date.date = None;
    cases.push((no_date, EX1_SIG));
    let mut wrong_method = get("/auth/v2/check", "", &hosts);
    wrong_method.method = "DELETE";
    cases.push((wrong_method, EX1_SIG));

    for (req, sig) in &cases {
        assert_eq!(verify(req, SKEY, sig, true), None, "{req:?}");
    }
    // One byte of the skey, and one byte of the signature.
    let req = get("/auth/v2/check", "", &hosts);
    assert_eq!(
        verify(
            &req,
            b"Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Eq",
            EX1_SIG,
            true
        ),
        None
    );
    let mut flipped = EX1_SIG.to_owned();
    flipped.replace_range(0..1, "e");
    assert_eq!(verify(&req, SKEY, &flipped, true), None);
    // Wrong lengths and non-hex.
    assert_eq!(verify(&req, SKEY, &EX1_SIG[..127], true), None);
    assert_eq!(verify(&req, SKEY, &"z".repeat(128), true), None);
    assert_eq!(verify(&req, SKEY, EX1_SIG, true), Some(SigVersion::V5));
}

// ---- parse_date --------------------------------------------------------------------------------

#[test]
fn parse_date_formats() {
    let t = 1_136_214_245;
    for s in [
        "Mon, 02 Jan 2006 15:04:05 +0000", // Go RFC1123Z, libduo
        "Mon, 02 Jan 2006 15:04:05 -0000", // Python email.utils.formatdate
        "Mon, 02 Jan 2006 10:04:05 -0500", // Java in a local zone
        "Mon, 02 Jan 2006 20:34:05 +0530",
        "Mon, 02 Jan 2006 15:04:05 GMT", // Net::Duo HTTP-date
        "Mon,  2 Jan 2006 15:04:05 +0000",
        "02 Jan 2006 15:04:05 +0000",
        " Mon, 02 Jan 2006 15:04:05 +0000 ",
    ] {
        assert_eq!(parse_date(s), Some(t), "{s}");
    }
    assert_eq!(parse_date(DATE), Some(1_345_570_158));
    assert_eq!(
        parse_date("Fri, 27 Nov 2026 18:44:51 -0000"),
        Some(1_795_805_091)
    );
    for bad in [
        "",
        "yesterday",
        "Tue, 02 Jan 2006 15:04:05 +0000", // wrong weekday
        "Mon, 02 Jan 2006 15:04:05",       // no zone
        "2006-01-02T15:04:05Z",
        "Mon, 32 Jan 2006 15:04:05 +0000",
    ] {
        assert_eq!(parse_date(bad), None, "{bad}");
    }
}

#[test]
fn date_freshness_window() {
    let t = 1_345_570_158;
    assert!(date_is_fresh(DATE, t, 300));
    assert!(date_is_fresh(DATE, t + 300, 300));
    assert!(date_is_fresh(DATE, t - 300, 300));
    assert!(!date_is_fresh(DATE, t + 301, 300));
    assert!(!date_is_fresh(DATE, t - 301, 300));
    assert!(!date_is_fresh("garbage", t, 300));
}

// ---- property: sign then verify ----------------------------------------------------------------

fn version_strategy() -> impl Strategy<Value = SigVersion> {
    prop_oneof![
        Just(SigVersion::V1),
        Just(SigVersion::V2),
        Just(SigVersion::V4),
        Just(SigVersion::V5)
    ]
}

fn digest_strategy() -> impl Strategy<Value = SigDigest> {
    prop_oneof![Just(SigDigest::Sha1), Just(SigDigest::Sha512)]
}

fn method_strategy() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("GET"),
        Just("DELETE"),
        Just("POST"),
        Just("PUT"),
        Just("PATCH")
    ]
}

fn params_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    let text = "[a-zA-Z0-9 _.~!*'()&=+%/:@é中\u{1F600}-]{0,10}";
    prop::collection::vec((text, text), 0..8)
}

/// The request as the client would send it, with the body and query it would carry.
struct Sent {
    params: Params,
    query: String,
    body: Vec<u8>,
    content_type: Option<&'static str>,
}

fn sent(version: SigVersion, method: &str, params: Params, json_body: Vec<u8>) -> Sent {
    let body_method = sends_body(method);
    let modern = matches!(version, SigVersion::V4 | SigVersion::V5);
    match (body_method, modern) {
        (true, true) => Sent {
            params,
            query: String::new(),
            body: json_body,
            content_type: Some("application/json"),
        },
        (true, false) => Sent {
            body: params.to_urlencoded().into_bytes(),
            params,
            query: String::new(),
            content_type: Some("application/x-www-form-urlencoded"),
        },
        (false, _) => Sent {
            query: params.to_urlencoded(),
            params,
            body: Vec::new(),
            content_type: None,
        },
    }
}

proptest! {
    #[test]
    fn signed_requests_verify_and_mutations_fail(
        version in version_strategy(),
        digest in digest_strategy(),
        method in method_strategy(),
        pairs in params_strategy(),
        json_body in prop::collection::vec(any::<u8>(), 0..64),
        host in "[A-Za-z0-9.-]{1,20}(:[0-9]{1,5})?",
        path in "/[A-Za-z0-9/%._-]{0,20}",
        skey in prop::collection::vec(any::<u8>(), 1..64),
        flip_at in any::<prop::sample::Index>(),
        flip_bits in 1u8..=255,
    ) {
        let params: Params = pairs.into_iter().collect();
        let s = sent(version, method, params, json_body);
        let header = sign_request(
            "DIXXXXXXXXXXXXXXXXXX", &skey, version, digest, DATE, method, &host, &path,
            &s.params, &s.body,
        );
        let creds = parse_authorization(&header).unwrap();
        prop_assert_eq!(creds.digest(), Some(digest));
        let hosts = vec![host.to_lowercase()];
        let req = SignedRequest {
            method,
            raw_path: &path,
            raw_query: &s.query,
            content_type: s.content_type,
            body: &s.body,
            date: Some(DATE),
            x_duo_headers: &[],
            hosts: &hosts,
        };
        prop_assert_eq!(verify(&req, &skey, &creds.signature_hex, true), Some(version));
        if version == SigVersion::V1 {
            prop_assert_eq!(verify(&req, &skey, &creds.signature_hex, false), None);
        }

        // Mutate one byte of what carries the signed data: the body, or the query for
        // bodiless methods.
        let mut body = s.body.clone();
        let mut query = s.query.clone().into_bytes();
        let carrier = if sends_body(method) { &mut body } else { &mut query };
        if carrier.is_empty() {
            carrier.push(b'x');
        } else {
            let i = flip_at.index(carrier.len());
            carrier[i] ^= flip_bits;
        }
        let query = String::from_utf8_lossy(&query).into_owned();
        let mutated = SignedRequest { raw_query: &query, body: &body, ..req };
        let result = verify(&mutated, &skey, &creds.signature_hex, true);
        let form_encoded = !(sends_body(method) && matches!(version, SigVersion::V4 | SigVersion::V5));
        if form_encoded {
            // Form encoding has equivalent spellings ('+' and ' ', %2f and %2F): a mutation
            // must fail exactly when it changes the decoded parameters.
            let decoded = |b: &[u8]| Params::from_urlencoded(b).map(|p| p.canonical()).ok();
            let before = decoded(if sends_body(method) { &s.body } else { s.query.as_bytes() });
            let after = decoded(if sends_body(method) { &body } else { query.as_bytes() });
            prop_assert_eq!(result.is_some(), before == after);
        } else {
            prop_assert_eq!(result, None);
        }
    }
}
