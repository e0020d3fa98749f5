//! `import-totp OTPAUTH_URI` and `code`: a plain TOTP authenticator next to the push one.

use std::io::BufRead;

use anyhow::{Context, anyhow, bail};
use percent_encoding::percent_decode_str;
use ward_core::totp::{Algorithm, Totp, base32_decode, base32_encode};
use zeroize::Zeroizing;

use super::sanitize;
use crate::state::{Secret, State, StateFile, TotpSeed};

/// Parses `otpauth://totp/LABEL?secret=..[&issuer=..][&algorithm=..][&digits=..][&period=..]`.
pub fn parse_otpauth(uri: &str) -> anyhow::Result<TotpSeed> {
    let uri = uri.trim();
    let rest = uri
        .get(..10)
        .filter(|scheme| scheme.eq_ignore_ascii_case("otpauth://"))
        .and_then(|_| uri.get(10..))
        .ok_or_else(|| anyhow!("not an otpauth:// URI"))?;
    let (kind, rest) = rest
        .split_once('/')
        .ok_or_else(|| anyhow!("the otpauth URI has no label"))?;
    if kind.eq_ignore_ascii_case("hotp") {
        bail!("counter-based (HOTP) seeds are not supported, only TOTP");
    }
    if !kind.eq_ignore_ascii_case("totp") {
        bail!("unknown otpauth type {:?}", sanitize(kind));
    }
    let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
    let label = percent_decode_str(label)
        .decode_utf8()
        .context("the label is not UTF-8")?
        .trim()
        .to_owned();

    let mut secret = None;
    let mut issuer = None;
    let mut algorithm = Algorithm::Sha1;
    let mut digits = 6;
    let mut period = 30;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.to_ascii_lowercase().as_str() {
            "secret" => secret = Some(Zeroizing::new(value.into_owned())),
            "issuer" if !value.trim().is_empty() => issuer = Some(value.trim().to_owned()),
            "algorithm" => {
                algorithm = value.parse().map_err(|e| anyhow!("{e}"))?;
            }
            "digits" => digits = value.parse().context("digits must be a number")?,
            "period" => {
                period = value
                    .parse()
                    .context("period must be a number of seconds")?;
            }
            _ => {}
        }
    }
    let secret = secret.ok_or_else(|| anyhow!("the otpauth URI has no secret"))?;
    let bytes = base32_decode(&secret).map_err(|e| anyhow!("{e}"))?;
    // Checks digits, period and secret length the way the server does.
    let totp = Totp::new(bytes, algorithm, digits, period).map_err(|e| anyhow!("{e}"))?;

    let label = match (&issuer, label.is_empty()) {
        (_, false) if label.contains(':') => label,
        (Some(issuer), false) => format!("{issuer}:{label}"),
        (Some(issuer), true) => issuer.clone(),
        (None, false) => label,
        (None, true) => bail!("the otpauth URI has an empty label"),
    };
    Ok(TotpSeed {
        label,
        issuer,
        secret: Secret::new(Zeroizing::new(base32_encode(totp.secret()))),
        algorithm: algorithm.as_str().to_owned(),
        digits,
        period,
    })
}

fn totp_of(seed: &TotpSeed) -> anyhow::Result<Totp> {
    let bytes = base32_decode(seed.secret.expose()).map_err(|e| anyhow!("{e}"))?;
    let algorithm: Algorithm = seed.algorithm.parse().map_err(|e| anyhow!("{e}"))?;
    Totp::new(bytes, algorithm, seed.digits, seed.period)
        .map_err(|e| anyhow!("TOTP seed {}: {e}", sanitize(&seed.label)))
}

/// The current code of a seed and the seconds it stays valid.
pub fn current_code(seed: &TotpSeed, now: i64) -> anyhow::Result<(Zeroizing<String>, i64)> {
    let totp = totp_of(seed)?;
    let step = u64::try_from(totp.step_at(now)).context("the clock is before 1970")?;
    let period = totp.step_secs() as i64;
    Ok((totp.code(step), period - now.rem_euclid(period)))
}

pub fn import(file: &StateFile, uri: &str) -> anyhow::Result<()> {
    let uri = if uri == "-" {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the URI from standard input")?;
        line
    } else {
        Zeroizing::new(uri.to_owned())
    };
    let seed = parse_otpauth(&uri)?;
    let mut state = file.load()?;
    if state.totp.iter().any(|s| s.label == seed.label) {
        bail!(
            "a TOTP seed labelled {:?} exists already",
            sanitize(&seed.label)
        );
    }
    println!("Added TOTP seed {}.", sanitize(&seed.label));
    state.totp.push(seed);
    file.save(&state)
}

pub fn code(state: &State, filter: Option<&str>, now: i64) -> anyhow::Result<()> {
    let filter = filter.map(str::to_lowercase);
    let seeds: Vec<&TotpSeed> = state
        .totp
        .iter()
        .filter(|s| {
            filter
                .as_deref()
                .is_none_or(|f| s.label.to_lowercase().contains(f))
        })
        .collect();
    if seeds.is_empty() {
        bail!(if state.totp.is_empty() {
            "no TOTP seeds; add one with: ward-authenticator import-totp OTPAUTH_URI"
        } else {
            "no TOTP seed matches"
        });
    }
    for seed in seeds {
        let (code, left) = current_code(seed, now)?;
        println!(
            "{}  {}  ({left} s left)",
            code.as_str(),
            sanitize(&seed.label)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_uri_parses() {
        let seed = parse_otpauth(
            "otpauth://totp/Example%20Co:alice%40example.com?secret=JBSW Y3DP-EHPK3PXP&issuer=Example%20Co&algorithm=SHA256&digits=8&period=60",
        )
        .unwrap();
        assert_eq!(seed.label, "Example Co:alice@example.com");
        assert_eq!(seed.issuer.as_deref(), Some("Example Co"));
        assert_eq!(seed.secret.expose(), "JBSWY3DPEHPK3PXP");
        assert_eq!(seed.algorithm, "sha256");
        assert_eq!((seed.digits, seed.period), (8, 60));
    }

    #[test]
    fn defaults_and_issuer_prefix() {
        let seed =
            parse_otpauth("OTPAUTH://TOTP/alice?secret=jbswy3dpehpk3pxp&issuer=ACME").unwrap();
        assert_eq!(seed.label, "ACME:alice");
        assert_eq!(seed.algorithm, "sha1");
        assert_eq!((seed.digits, seed.period), (6, 30));
    }

    #[test]
    fn bad_uris_are_refused() {
        for bad in [
            "https://totp/x?secret=JBSWY3DPEHPK3PXP",
            "otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter=1",
            "otpauth://totp/x",
            "otpauth://totp/x?secret=not!base32",
            "otpauth://totp/x?secret=JBSW",
            "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=7",
            "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&period=0",
            "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&algorithm=MD5",
            "otpauth://totp/?secret=JBSWY3DPEHPK3PXP",
            "otpauth://",
        ] {
            assert!(parse_otpauth(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn codes_match_rfc_6238() {
        // RFC 6238 appendix B: SHA-1 seed "12345678901234567890", 8 digits.
        let secret = base32_encode(b"12345678901234567890");
        let seed = parse_otpauth(&format!("otpauth://totp/rfc?secret={secret}&digits=8")).unwrap();
        let (code, left) = current_code(&seed, 59).unwrap();
        assert_eq!(code.as_str(), "94287082");
        assert_eq!(left, 1);
        let (code, left) = current_code(&seed, 1_111_111_109).unwrap();
        assert_eq!(code.as_str(), "07081804");
        assert_eq!(left, 1);
    }
}
