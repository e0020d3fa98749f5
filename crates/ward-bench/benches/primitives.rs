//! CPU cost of the per-request primitives on Ward's passcode path, without I/O: verifying a
//! v5 request signature (as `ward serve` does for every Auth API call), verifying a TOTP code
//! with the ±1 step window, and signing a request (the load generator's own cost).
//!
//! Run with `cargo bench -p ward-bench`. Figures go to `docs/benchmarks.md`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ward_core::totp::{Algorithm, Totp};
use ward_proto::duo::params::Params;
use ward_proto::duo::signature::{
    SigDigest, SigVersion, SignedRequest, host_candidates, parse_authorization, sign_request,
    verify,
};
use zeroize::Zeroizing;

const IKEY: &str = "DIWJ8X6AEYOR5OMC6TQ1";
const SKEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
const DATE: &str = "Fri, 27 Nov 2026 18:44:51 -0000";
const BODY: &[u8] =
    br#"{"async":"0","factor":"passcode","passcode":"123456","username":"bench-000001"}"#;
const PATH: &str = "/auth/v2/auth";

fn sign_v5() -> String {
    sign_request(
        IKEY,
        SKEY.as_bytes(),
        SigVersion::V5,
        SigDigest::Sha512,
        DATE,
        "POST",
        "localhost",
        PATH,
        &Params::new(),
        BODY,
    )
}

fn signature(c: &mut Criterion) {
    c.bench_function("sign v5 request (client)", |b| {
        b.iter(|| black_box(sign_v5()));
    });

    let header = sign_v5();
    let Ok(creds) = parse_authorization(&header) else {
        return;
    };
    // What the server tries: configured host plus the Host header with and without its port.
    let hosts = host_candidates(&["localhost:8443".to_owned()], Some("localhost:8443"));
    let request = SignedRequest {
        method: "POST",
        raw_path: PATH,
        raw_query: "",
        content_type: Some("application/json"),
        body: BODY,
        date: Some(DATE),
        x_duo_headers: &[],
        hosts: &hosts,
    };
    assert_eq!(
        verify(&request, SKEY.as_bytes(), &creds.signature_hex, true),
        Some(SigVersion::V5),
        "the benchmark must measure a successful verification"
    );
    c.bench_function("verify v5 signature (server)", |b| {
        b.iter(|| {
            verify(
                black_box(&request),
                SKEY.as_bytes(),
                &creds.signature_hex,
                true,
            )
        });
    });
}

fn totp(c: &mut Criterion) {
    let secret = Zeroizing::new((0u8..20).collect::<Vec<u8>>());
    let Ok(totp) = Totp::new(secret, Algorithm::Sha1, 6, 30) else {
        return;
    };
    let now: i64 = 1_795_805_091;
    let step = totp.step_at(now);
    let code = totp.code(step as u64);
    c.bench_function("verify TOTP, window 1 (server)", |b| {
        b.iter(|| totp.verify(black_box(&code), now, Some(step - 5), 1));
    });
}

criterion_group!(benches, signature, totp);
criterion_main!(benches);
