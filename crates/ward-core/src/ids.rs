//! Identifiers in Duo's style: a two-letter kind prefix and 18 random characters from
//! `A-Z0-9` (about 93 bits), e.g. `DU3RP9I2WOC59VZX672N`.

use rand::RngExt;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| {
            let i = rng.random_range(0..alphabet.len());
            alphabet.get(i).copied().map_or('A', char::from)
        })
        .collect()
}

/// A user id (`DU…`).
pub fn user_id() -> String {
    format!("DU{}", random_from(ALPHABET, 18))
}

/// An organisation id (`DO…`).
pub fn org_id() -> String {
    format!("DO{}", random_from(ALPHABET, 18))
}

/// An integration key (`DI…`, 20 characters, as Duo clients expect).
pub fn integration_key() -> String {
    format!("DI{}", random_from(ALPHABET, 18))
}

/// A TOTP authenticator id (`DT…`).
pub fn totp_id() -> String {
    format!("DT{}", random_from(ALPHABET, 18))
}

/// An integration secret key: 40 characters from `A-Za-z0-9` (about 238 bits).
pub fn integration_secret() -> String {
    random_from(SECRET_ALPHABET, 40)
}

/// A transaction id: a random UUID v4 in its text form, as Duo sends.
pub fn txid() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        h.get(0..8).unwrap_or_default(),
        h.get(8..12).unwrap_or_default(),
        h.get(12..16).unwrap_or_default(),
        h.get(16..20).unwrap_or_default(),
        h.get(20..32).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let u = user_id();
        assert_eq!(u.len(), 20);
        assert!(u.starts_with("DU"));
        assert!(
            u.bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        assert_eq!(integration_key().len(), 20);
        let s = integration_secret();
        assert_eq!(s.len(), 40);
        assert!(s.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(integration_secret(), integration_secret());
        let t = txid();
        assert_eq!(t.len(), 36);
        assert_eq!(t.as_bytes()[14], b'4');
    }
}
