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

/// How push works for Duo Auth API clients, which have no screen of Ward's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiPushMode {
    /// Verified Push: the asynchronous `auth` answer carries `verified_push_code`, which the
    /// application shows and the user types on the device. Synchronous push is refused.
    Verified,
    /// Push with context (application, user, address, time) but no number.
    Plain,
    /// No push through the Auth API: applications must use the hosted prompt.
    Refuse,
}

impl ApiPushMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Plain => "plain",
            Self::Refuse => "refuse",
        }
    }
}

impl std::str::FromStr for ApiPushMode {
    type Err = crate::CoreError;

    fn from_str(s: &str) -> crate::CoreResult<Self> {
        match s {
            "verified" => Ok(Self::Verified),
            "plain" => Ok(Self::Plain),
            "refuse" => Ok(Self::Refuse),
            _ => Err(crate::CoreError::invalid(
                "auth_api_mode",
                "must be verified, plain or refuse",
            )),
        }
    }
}

/// Push policy.
#[derive(Clone, Debug)]
pub struct PushPolicy {
    /// How long a push waits for an answer before it times out.
    pub timeout: TimeDelta,
    /// How long pushes to a user are refused after they report fraud (Duo: 20 minutes).
    pub mute_after_fraud: TimeDelta,
    /// At most this many pushes to one user per `storm_window` (0: no limit).
    pub storm_limit: u32,
    pub storm_window: TimeDelta,
    /// Digits of the Verified Push number (3 to 6).
    pub number_digits: u32,
    pub auth_api_mode: ApiPushMode,
    /// How long a device activation link is valid.
    pub activation_ttl: TimeDelta,
}

impl Default for PushPolicy {
    fn default() -> Self {
        Self {
            timeout: TimeDelta::seconds(60),
            mute_after_fraud: TimeDelta::minutes(20),
            storm_limit: 10,
            storm_window: TimeDelta::minutes(10),
            number_digits: 3,
            auth_api_mode: ApiPushMode::Verified,
            activation_ttl: TimeDelta::minutes(10),
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
    pub push: PushPolicy,
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
            push: PushPolicy::default(),
        }
    }
}

/// Which factors a group of users may enrol and use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactorPolicy {
    /// Passkeys that may be synced between devices (by a platform or a password manager) are
    /// accepted. When `false`, only device-bound security keys whose attestation chains to one
    /// of `attestation_ca_pems` and whose model is in `aaguids` can be registered.
    pub synced_passkeys: bool,
    /// Root certificates (PEM) of the security-key vendors whose attestation is accepted.
    pub attestation_ca_pems: Vec<String>,
    /// Authenticator models (AAGUIDs) accepted when attestation is required. Empty: none.
    pub aaguids: Vec<webauthn_rs::prelude::Uuid>,
    /// TOTP may be used to sign in to the portal (phishable; off by default).
    pub totp_signin: bool,
    /// The account must keep at least one phishing-resistant factor (passkey or security key):
    /// removing the last one is refused.
    pub require_phishing_resistant: bool,
}

impl FactorPolicy {
    /// What the gate lets through at the portal's sign-in for this group: passkeys, and codes
    /// where the group allows TOTP sign-in.
    pub fn portal_allowed(&self) -> crate::gate::Allowed {
        crate::gate::Allowed {
            passkey: true,
            push: false,
            passcode: self.totp_signin,
        }
    }
}

impl Default for FactorPolicy {
    fn default() -> Self {
        Self {
            synced_passkeys: true,
            attestation_ca_pems: Vec::new(),
            aaguids: Vec::new(),
            totp_signin: false,
            require_phishing_resistant: true,
        }
    }
}

/// Factor policies: a default and named groups (a user's `policy_group` picks one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FactorPolicies {
    pub default: FactorPolicy,
    pub groups: std::collections::BTreeMap<String, FactorPolicy>,
}

impl FactorPolicies {
    /// The policy for a user in `group` (the default for no group or an unknown one).
    pub fn for_group(&self, group: Option<&str>) -> &FactorPolicy {
        group
            .and_then(|g| self.groups.get(g))
            .unwrap_or(&self.default)
    }
}

/// The portal: where it is served, who it belongs to, and how long its sessions last.
#[derive(Clone, Debug)]
pub struct PortalSettings {
    /// The WebAuthn relying-party id: the host name of the public address.
    pub rp_id: String,
    /// The public origin, e.g. `https://mfa.example.com` (`https://localhost:8443` by default).
    pub origin: url::Url,
    /// The organisation's name, shown on every page and in notices.
    pub organisation: String,
    /// Absolute lifetime of a signed-in session.
    pub session_ttl: TimeDelta,
    /// A session unused for this long ends.
    pub idle_ttl: TimeDelta,
    /// How long a step-up (a fresh passkey check) allows sensitive changes.
    pub step_up_ttl: TimeDelta,
    /// How long a ceremony (passkey prompt, TOTP set-up) may take.
    pub ceremony_ttl: TimeDelta,
    /// How long a "this wasn't me" link in a notice stays valid.
    pub report_link_ttl: TimeDelta,
    pub factors: FactorPolicies,
}

impl PortalSettings {
    /// Settings for `origin` with the default lifetimes and policies.
    pub fn new(origin: url::Url, organisation: impl Into<String>) -> Self {
        Self {
            rp_id: origin.host_str().unwrap_or("localhost").to_owned(),
            origin,
            organisation: organisation.into(),
            session_ttl: TimeDelta::hours(12),
            idle_ttl: TimeDelta::minutes(30),
            step_up_ttl: TimeDelta::minutes(5),
            ceremony_ttl: TimeDelta::minutes(5),
            report_link_ttl: TimeDelta::days(14),
            factors: FactorPolicies::default(),
        }
    }
}

/// What the hosted prompt does for a user who has no factor yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NewUsers {
    /// Set up a passkey inside the prompt (the application has already checked the password).
    #[default]
    Enrol,
    /// Deny the login.
    Deny,
}

/// What the hosted prompt of one `web-sdk` integration offers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptPolicy {
    /// Only passkeys and security keys are accepted; push and codes are not offered.
    pub require_phishing_resistant: bool,
    /// Verified Push (number matching, signed answers) is offered.
    pub push: bool,
    /// Codes from authenticator apps are offered.
    pub passcodes: bool,
    /// What happens to users without any factor.
    pub new_users: NewUsers,
    /// Where the prompt may send users back to (exact URLs). Empty: any `https` URL, or
    /// `http` on localhost (Duo registers none for Web SDK applications).
    pub redirect_uris: Vec<String>,
}

impl Default for PromptPolicy {
    fn default() -> Self {
        Self {
            require_phishing_resistant: false,
            push: true,
            passcodes: true,
            new_users: NewUsers::Enrol,
            redirect_uris: Vec::new(),
        }
    }
}

impl PromptPolicy {
    /// Reads a stored policy.
    pub fn from_json(text: &str) -> crate::CoreResult<Self> {
        serde_json::from_str(text)
            .map_err(|e| crate::CoreError::Internal(format!("stored prompt policy: {e}")))
    }

    /// The policy as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// What the gate lets through at this application's prompt.
    pub fn allowed(&self) -> crate::gate::Allowed {
        crate::gate::Allowed {
            passkey: true,
            push: self.offers_push(),
            passcode: self.offers_passcodes(),
        }
    }

    /// Whether push may be offered.
    pub fn offers_push(&self) -> bool {
        self.push && !self.require_phishing_resistant
    }

    /// Whether codes may be offered.
    pub fn offers_passcodes(&self) -> bool {
        self.passcodes && !self.require_phishing_resistant
    }
}
