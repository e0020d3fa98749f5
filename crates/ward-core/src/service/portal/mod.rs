//! The self-service portal: enrolment links, sessions, a user's factors and recovery codes,
//! notices about every change, and the "this wasn't me" freeze.
//!
//! # Security
//! Bearer values (session cookies, enrolment and report links) are 256-bit random tokens; only
//! their SHA-256 is stored. Single-use tokens are consumed by a conditional write. CSRF tokens
//! are MACs of the session hash under a key derived from the master key, compared in constant
//! time. Removing a factor needs a step-up (a fresh passkey check within minutes); a frozen
//! account refuses every factor change until an administrator unfreezes it.

mod factors;
mod links;
mod recovery;
mod sessions;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use ward_store::UserRow;
use zeroize::Zeroizing;

use super::PushDevice;
use super::passkeys::PasskeyView;
use crate::error::{CoreError, CoreResult};
use crate::gate::{self, Alteration, AlterationRefusal, Subject};
use crate::model::{OrgId, UserId};

/// User-token purposes.
const ENROL: &str = "enrol";
const REPORT_PREFIX: &str = "report:";
/// The ceremony purpose of a TOTP seed awaiting its first code.
const TOTP_ENROL: &str = "totp-enrol";
/// Sessions opened by an enrolment link are short: long enough to enrol.
const ENROL_SESSION_TTL: TimeDelta = TimeDelta::hours(1);
/// How many recovery codes a set has, and how many random bits each carries.
pub const RECOVERY_CODES: usize = 10;
const RECOVERY_CODE_BYTES: usize = 10;
/// Sessions are touched at most this often (each touch is a write).
const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);
/// What a change that needs a fresh passkey check answers without one.
pub const STEP_UP_NEEDED: &str = "confirm it is you with a passkey first";
/// Longest enrolment link an administrator may create.
pub const MAX_ENROL_TTL: TimeDelta = TimeDelta::days(30);

/// A new enrolment link.
#[derive(Clone, Debug)]
pub struct EnrolLink {
    pub url: String,
    pub expires_ms: i64,
}

/// What a single-use link is worth now, for the page that explains it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    Valid { username: String, expires_ms: i64 },
    Used,
    Expired,
    Unknown,
}

/// A new session: the cookie value (shown once) and what it allows.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub token: Zeroizing<String>,
    pub session: Session,
}

/// A signed-in session, checked.
#[derive(Clone, Debug)]
pub struct Session {
    pub session_hash: String,
    pub user: UserRow,
    pub auth_method: String,
    pub expires_ms: i64,
    /// A fresh passkey check allows sensitive changes until then.
    pub step_up_until_ms: Option<i64>,
    /// The CSRF token forms of this session must carry.
    pub csrf: String,
}

impl Session {
    /// The signed-in user's id.
    pub fn user_id(&self) -> UserId {
        UserId::of(&self.user)
    }

    /// The organisation this session belongs to (its user's).
    pub fn org(&self) -> OrgId {
        OrgId::new(self.user.org_id.clone())
    }

    pub fn stepped_up(&self, now: DateTime<Utc>) -> bool {
        self.step_up_until_ms
            .is_some_and(|until| until > now.timestamp_millis())
    }
}

/// A TOTP authenticator as the portal lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TotpView {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
}

/// Recovery codes: how many are left of the current set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryView {
    pub total: usize,
    pub remaining: usize,
    pub created_ms: Option<i64>,
}

/// Everything a user has enrolled.
#[derive(Clone, Debug, Default)]
pub struct Factors {
    pub passkeys: Vec<PasskeyView>,
    pub totps: Vec<TotpView>,
    pub devices: Vec<PushDevice>,
    pub recovery: RecoveryView,
}

impl Factors {
    /// Whether the user has a phishing-resistant factor.
    pub fn phishing_resistant(&self) -> bool {
        !self.passkeys.is_empty()
    }
}

/// A TOTP seed waiting for its first code.
#[derive(Debug)]
pub struct TotpSetup {
    pub ceremony: String,
    pub secret_base32: Zeroizing<String>,
    pub otpauth_uri: Zeroizing<String>,
}

/// The result of confirming a TOTP set-up.
#[derive(Debug)]
pub enum TotpConfirm {
    Added(TotpView),
    /// The code did not match; the set-up continues under this ceremony id.
    WrongCode {
        ceremony: String,
    },
}

/// A kind of factor, as the portal names it in URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorKind {
    Passkey,
    Totp,
    Device,
}

impl FactorKind {
    pub fn parse(s: &str) -> CoreResult<Self> {
        match s {
            "passkey" => Ok(Self::Passkey),
            "totp" => Ok(Self::Totp),
            "device" => Ok(Self::Device),
            _ => Err(CoreError::NotFound("factor".into())),
        }
    }

    fn store_kind(self) -> &'static str {
        match self {
            Self::Passkey => "webauthn",
            Self::Totp => "totp",
            Self::Device => "device",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Passkey => "passkey",
            Self::Totp => "authenticator app",
            Self::Device => "push device",
        }
    }
}

/// Refuses factor changes on a frozen account (the gate's [`gate::may_alter`]).
pub(super) fn refuse_if_frozen(user: &UserRow) -> CoreResult<()> {
    refuse_alteration(user, Alteration::Factors, 0)
}

/// Refuses a change of the account's sign-in or recovery methods that the gate does not allow
/// now, with a fixed sentence for each reason.
pub(crate) fn refuse_alteration(
    user: &UserRow,
    alteration: Alteration,
    now_ms: i64,
) -> CoreResult<()> {
    match gate::may_alter(&Subject::of(user)?, alteration, now_ms) {
        Ok(()) => Ok(()),
        Err(AlterationRefusal::Frozen) => Err(CoreError::Forbidden(
            "changes to this account's sign-in methods are frozen after a report of \
             suspicious activity; contact your administrators"
                .into(),
        )),
        Err(AlterationRefusal::Probation) => Err(CoreError::Forbidden(
            "this account was recovered recently: its recovery methods and approvers can \
             change once the probation period ends"
                .into(),
        )),
    }
}
