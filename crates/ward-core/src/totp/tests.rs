use super::*;

fn totp(secret: &[u8], alg: Algorithm, digits: u32) -> Totp {
    Totp::new(Zeroizing::new(secret.to_vec()), alg, digits, 30).unwrap()
}

const SEED20: &[u8] = b"12345678901234567890";
const SEED32: &[u8] = b"12345678901234567890123456789012";
const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

#[test]
fn rfc4226_appendix_d_vectors() {
    let expected = [
        755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871, 520_489,
    ];
    let t = totp(SEED20, Algorithm::Sha1, 6);
    for (counter, want) in expected.iter().enumerate() {
        assert_eq!(t.hotp(counter as u64), *want, "counter {counter}");
    }
}

#[test]
fn rfc6238_appendix_b_vectors() {
    let rows: [(i64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1_111_111_109, "07081804", "68084774", "25091201"),
        (1_111_111_111, "14050471", "67062674", "99943326"),
        (1_234_567_890, "89005924", "91819424", "93441116"),
        (2_000_000_000, "69279037", "90698825", "38618901"),
        (20_000_000_000, "65353130", "77737706", "47863826"),
    ];
    let sha1 = totp(SEED20, Algorithm::Sha1, 8);
    let sha256 = totp(SEED32, Algorithm::Sha256, 8);
    let sha512 = totp(SEED64, Algorithm::Sha512, 8);
    for (t, c1, c256, c512) in rows {
        let step = sha1.step_at(t) as u64;
        assert_eq!(*sha1.code(step), c1, "sha1 at {t}");
        assert_eq!(*sha256.code(step), c256, "sha256 at {t}");
        assert_eq!(*sha512.code(step), c512, "sha512 at {t}");
    }
}

#[test]
fn verify_accepts_window_and_refuses_used_steps() {
    let t = totp(SEED20, Algorithm::Sha1, 6);
    let now = 1_234_567_890;
    let step = t.step_at(now);
    let current = t.code(step as u64);
    assert_eq!(t.verify(&current, now, None, 1), Some(step));
    // The same step is refused once recorded, and so is any earlier one.
    assert_eq!(t.verify(&current, now, Some(step), 1), None);
    let previous = t.code((step - 1) as u64);
    assert_eq!(t.verify(&previous, now, None, 1), Some(step - 1));
    assert_eq!(t.verify(&previous, now, Some(step - 1), 1), None);
    let next = t.code((step + 1) as u64);
    assert_eq!(t.verify(&next, now, Some(step), 1), Some(step + 1));
    // Two steps away is outside a window of one.
    let far = t.code((step + 2) as u64);
    assert_eq!(t.verify(&far, now, None, 1), None);
}

#[test]
fn verify_rejects_malformed_codes() {
    let t = totp(SEED20, Algorithm::Sha1, 6);
    let now = 59;
    let code = t.code(t.step_at(now) as u64);
    assert_eq!(t.verify(&format!("{}0", *code), now, None, 1), None);
    assert_eq!(t.verify(&code[..5], now, None, 1), None);
    assert_eq!(t.verify("12a456", now, None, 1), None);
    assert_eq!(t.verify("", now, None, 1), None);
}

#[test]
fn parameters_are_checked() {
    let s = || Zeroizing::new(SEED20.to_vec());
    assert!(Totp::new(s(), Algorithm::Sha1, 7, 30).is_err());
    assert!(Totp::new(s(), Algorithm::Sha1, 6, 0).is_err());
    assert!(Totp::new(Zeroizing::new(vec![1; 5]), Algorithm::Sha1, 6, 30).is_err());
}

#[test]
fn base32_round_trip_and_uri() {
    let secret = base32_decode("GEZD GNBV-GY3T QOJQ GEZD GNBV GY3T QOJQ").unwrap();
    assert_eq!(secret.as_slice(), SEED20);
    assert!(base32_decode("not base32!").is_err());
    let t = totp(SEED20, Algorithm::Sha256, 8);
    let uri = t.otpauth_uri("Ward", "alice@example.com");
    assert!(uri.starts_with(
        "otpauth://totp/Ward:alice%40example%2Ecom?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    ));
    assert!(uri.contains("algorithm=SHA256&digits=8&period=30"));
}

#[test]
fn debug_redacts_secret() {
    let t = totp(SEED20, Algorithm::Sha1, 6);
    assert!(!format!("{t:?}").contains("1234"));
}
