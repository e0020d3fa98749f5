//! Benchmark users: their names and their TOTP secrets, derived so that the load generator can
//! compute every user's codes without reading Ward's database.
//!
//! # Security
//! A benchmark user's secret is a public function of its name: anyone can compute its codes.
//! Benchmark users belong on benchmark servers only.

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use ward_core::totp::{Algorithm, Totp, base32_encode};
use zeroize::Zeroizing;

/// Digits of the benchmark authenticators (Ward's and Duo's default).
pub const DIGITS: u32 = 6;
/// Time step of the benchmark authenticators, in seconds (Ward enrols 30 s steps).
pub const STEP_SECS: u64 = 30;
/// Length of the derived secret: 160 bits, as RFC 4226 recommends.
const SECRET_LEN: usize = 20;
/// `10^DIGITS`.
const CODE_SPACE: u32 = 1_000_000;

/// The name of user `index`: `{prefix}-000042`.
pub fn username(prefix: &str, index: u32) -> String {
    format!("{prefix}-{index:06}")
}

/// The secret of a benchmark user: SHA-256("ward-bench/" + username), first 20 bytes.
pub fn secret(username: &str) -> Zeroizing<Vec<u8>> {
    let digest = Sha256::digest(format!("ward-bench/{username}").as_bytes());
    Zeroizing::new(digest.iter().copied().take(SECRET_LEN).collect())
}

/// The secret in the Base32 form `Admin::add_totp` takes.
pub fn secret_base32(username: &str) -> Zeroizing<String> {
    Zeroizing::new(base32_encode(&secret(username)))
}

/// The user's TOTP generator.
pub fn generator(username: &str) -> anyhow::Result<Totp> {
    Totp::new(secret(username), Algorithm::Sha1, DIGITS, STEP_SECS)
        .context("benchmark TOTP parameters")
}

/// The TOTP time step containing `unix_secs`.
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS as i64)
}

/// The valid code of `username` for `step`.
pub fn valid_code(username: &str, step: i64) -> anyhow::Result<Zeroizing<String>> {
    let counter = u64::try_from(step).context("time before 1970")?;
    Ok(generator(username)?.code(counter))
}

/// A well-formed code that no step within ±2 of `step` accepts, so it is wrong whatever
/// window the server allows and whichever side of a step boundary it reads the clock.
pub fn wrong_code(username: &str, step: i64) -> anyhow::Result<String> {
    let totp = generator(username)?;
    let mut valid = Vec::with_capacity(5);
    for s in step.saturating_sub(2)..=step.saturating_add(2) {
        if let Ok(counter) = u64::try_from(s) {
            valid.push(totp.hotp(counter));
        }
    }
    let base = valid.get(2).copied().unwrap_or_default();
    (0..=valid.len() as u32)
        .map(|k| (base + CODE_SPACE / 2 + k) % CODE_SPACE)
        .find(|candidate| !valid.contains(candidate))
        .map(|code| format!("{code:06}"))
        .context("no wrong code found")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_core::totp::base32_decode;

    #[test]
    fn names_are_zero_padded() {
        assert_eq!(username("bench", 42), "bench-000042");
        assert_eq!(username("b", 1_234_567), "b-1234567");
    }

    #[test]
    fn secret_is_deterministic_and_round_trips_base32() {
        let a = secret("bench-000001");
        assert_eq!(a.len(), 20);
        assert_eq!(*a, *secret("bench-000001"));
        assert_ne!(*a, *secret("bench-000002"));
        let decoded = base32_decode(&secret_base32("bench-000001")).unwrap();
        assert_eq!(*decoded, *a);
    }

    #[test]
    fn valid_code_is_what_the_server_verifies() {
        let name = "bench-000007";
        let step = 59_000_000;
        let code = valid_code(name, step).unwrap();
        let totp = generator(name).unwrap();
        let now = step * STEP_SECS as i64 + 3;
        assert_eq!(totp.verify(&code, now, None, 1), Some(step));
    }

    #[test]
    fn wrong_code_is_refused_in_a_wide_window() {
        for i in 0..200 {
            let name = username("bench", i);
            let step = 59_000_000 + i64::from(i);
            let code = wrong_code(&name, step).unwrap();
            assert_eq!(code.len(), 6);
            let totp = generator(&name).unwrap();
            let now = step * STEP_SECS as i64;
            assert_eq!(totp.verify(&code, now, None, 2), None, "{name}");
        }
    }
}
