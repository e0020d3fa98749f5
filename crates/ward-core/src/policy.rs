//! Authentication policy: what happens to unknown users, lockout, passcode windows.

use chrono::TimeDelta;

/// What `preauth` answers for a username Ward does not know (Duo's "new user policy").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownUserPolicy {
    /// Deny: the application must not let the user in.
    Deny,
    /// Enroll: tell the application the user may enrol.
    Enroll,
}

impl std::str::FromStr for UnknownUserPolicy {
    type Err = crate::CoreError;

    fn from_str(s: &str) -> crate::CoreResult<Self> {
        match s {
            "deny" => Ok(Self::Deny),
            "enroll" => Ok(Self::Enroll),
            _ => Err(crate::CoreError::invalid(
                "unknown_user",
                "must be deny or enroll",
            )),
        }
    }
}

/// The policy the authentication service applies.
#[derive(Clone, Debug)]
pub struct AuthPolicy {
    pub unknown_user: UnknownUserPolicy,
    /// Consecutive failures that lock an account (0 disables lockout).
    pub lockout_threshold: u32,
    /// How long a lock lasts.
    pub lockout_duration: TimeDelta,
    /// TOTP steps accepted either side of the current one.
    pub totp_window: u32,
    /// Where users without factors are sent to enrol (`preauth` result `enroll`).
    pub enroll_portal_url: String,
    /// How long an authentication transaction's result can be fetched.
    pub tx_ttl: TimeDelta,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            unknown_user: UnknownUserPolicy::Deny,
            lockout_threshold: 10,
            lockout_duration: TimeDelta::minutes(15),
            totp_window: 1,
            enroll_portal_url: "https://localhost:8443/portal".into(),
            tx_ttl: TimeDelta::minutes(10),
        }
    }
}
