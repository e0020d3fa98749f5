//! The one decision gate: may this user authenticate now, with this method, through this door?
//!
//! Every entry point — the Duo Auth API, the older `/rest/v1` API, the hosted prompt, the
//! portal's sign-in, passkey checks and push — asks [`admit`] (or [`offer`], for the list of
//! methods shown before a choice) and renders the answer in its own dialect. No entry point
//! keeps a copy of these checks.
//!
//! Changes to how an account signs in ([`may_alter`]: adding or removing factors, new recovery
//! methods or approvers) have their own small gate beside it: a freeze after "this wasn't me"
//! and the probation after a recovery are decided there, for every path that changes them.
//!
//! The gate is pure: no clock, store or network; the caller reads the user once and passes
//! `now`. What must hold under concurrency (the lockout threshold, the push storm limit, a time
//! step used once) is not decided here but by one conditional statement in the store, which the
//! services put in the same change set as the decision; the gate decides everything that the
//! state read before the attempt can decide.

use ward_store::UserRow;

use crate::error::CoreResult;
use crate::model::UserStatus;

/// A way of proving presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// A passkey or security key (WebAuthn, user verification required).
    Passkey,
    /// Verified Push (or plain push where an integration allows it).
    Push,
    /// A code from an authenticator app (TOTP/HOTP).
    Passcode,
}

impl Method {
    /// Every method, in the order they are offered (phishing-resistant first).
    pub const ALL: [Self; 3] = [Self::Passkey, Self::Push, Self::Passcode];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passkey => "passkey",
            Self::Push => "push",
            Self::Passcode => "passcode",
        }
    }
}

/// The entry point a request came through (for the audit log and the decision matrix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Door {
    /// Duo Auth API v2 (`/auth/v2/*`).
    AuthApi,
    /// Duo's older Auth API (`/rest/v1/*`: `login_duo`, `pam_duo`).
    Legacy,
    /// The hosted prompt (Duo Web SDK v4).
    Prompt,
    /// The self-service portal's sign-in.
    Portal,
}

impl Door {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthApi => "auth_api",
            Self::Legacy => "legacy",
            Self::Prompt => "prompt",
            Self::Portal => "portal",
        }
    }
}

/// Which methods the door's policy allows: the application's policy (prompt policy, API push
/// mode) and the user's group policy (TOTP sign-in to the portal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowed {
    pub passkey: bool,
    pub push: bool,
    pub passcode: bool,
}

impl Allowed {
    /// Every method.
    pub const ALL: Self = Self {
        passkey: true,
        push: true,
        passcode: true,
    };

    pub fn allows(self, method: Method) -> bool {
        match method {
            Method::Passkey => self.passkey,
            Method::Push => self.push,
            Method::Passcode => self.passcode,
        }
    }
}

/// Whether the organisation a request is for lets anyone in, read once per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrgState {
    Enabled,
    /// Disabled by an administrator: every login in it is refused, its data kept.
    Disabled,
}

impl OrgState {
    /// The gate's view of a stored organisation (`None`: no such organisation, which nobody
    /// logs in to).
    pub fn of(row: Option<&ward_store::OrgRow>) -> Self {
        match row {
            Some(org) if org.disabled_ms.is_none() => Self::Enabled,
            Some(_) | None => Self::Disabled,
        }
    }
}

/// What the gate needs to know of an account, read once per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subject {
    pub status: UserStatus,
    pub locked_until_ms: Option<i64>,
    pub push_muted_until_ms: Option<i64>,
    /// Factor changes are frozen (the user answered "this wasn't me").
    pub factors_frozen: bool,
    /// After a recovery: no new recovery methods or approvers before then.
    pub probation_until_ms: Option<i64>,
}

impl Subject {
    /// The gate's view of a stored account.
    pub fn of(row: &UserRow) -> CoreResult<Self> {
        Ok(Self {
            status: row.status.parse()?,
            locked_until_ms: row.locked_until_ms,
            push_muted_until_ms: row.push_muted_until_ms,
            factors_frozen: row.factors_frozen_ms.is_some(),
            probation_until_ms: row.probation_until_ms,
        })
    }

    fn locked(&self, now_ms: i64) -> bool {
        self.locked_until_ms.is_some_and(|until| until > now_ms)
    }

    fn push_muted(&self, now_ms: i64) -> bool {
        self.push_muted_until_ms.is_some_and(|until| until > now_ms)
    }
}

/// Why the gate refuses. Callers show each door's fixed answer for it; the reason itself goes
/// only to the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The account's organisation is disabled (checked first: nobody in it gets further).
    OrgDisabled,
    /// No such account.
    UnknownUser,
    /// The account is disabled.
    Disabled,
    /// Too many failed attempts: locked until the lock runs out.
    LockedOut,
    /// The door's policy does not allow this method.
    NotAllowed,
    /// Pushes are paused after the user reported one as fraud.
    PushMuted,
    /// Too many pushes in the storm window (decided by the store, see the module docs).
    PushStorm,
}

impl Refusal {
    /// Every reason, in the order [`admit`] checks them ([`Refusal::PushStorm`], decided by the
    /// store, last).
    pub const ALL: [Self; 7] = [
        Self::OrgDisabled,
        Self::UnknownUser,
        Self::Disabled,
        Self::LockedOut,
        Self::NotAllowed,
        Self::PushMuted,
        Self::PushStorm,
    ];

    /// The reason as the audit log records it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrgDisabled => "org_disabled",
            Self::UnknownUser => "unknown_user",
            Self::Disabled => "disabled",
            Self::LockedOut => "locked_out",
            Self::NotAllowed => "not_allowed_by_policy",
            Self::PushMuted => "muted_after_fraud",
            Self::PushStorm => "push_storm",
        }
    }
}

/// May `subject` (`None`: no such account) of an organisation in state `org` authenticate
/// with `method` now?
///
/// The order of the checks is part of the contract: a disabled organisation refuses everyone
/// in it, known or not, before anything else; an account that is both disabled and locked is
/// refused as disabled at every door.
pub fn admit(
    org: OrgState,
    subject: Option<&Subject>,
    method: Method,
    allowed: Allowed,
    now_ms: i64,
) -> Result<(), Refusal> {
    if org == OrgState::Disabled {
        return Err(Refusal::OrgDisabled);
    }
    let subject = subject.ok_or(Refusal::UnknownUser)?;
    if subject.status == UserStatus::Disabled {
        return Err(Refusal::Disabled);
    }
    if subject.locked(now_ms) {
        return Err(Refusal::LockedOut);
    }
    if !allowed.allows(method) {
        return Err(Refusal::NotAllowed);
    }
    if method == Method::Push && subject.push_muted(now_ms) {
        return Err(Refusal::PushMuted);
    }
    Ok(())
}

/// A change to how an account signs in or recovers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alteration {
    /// Adding, renaming or removing a passkey, authenticator app or push device.
    Factors,
    /// New recovery codes, or a change of the account's recovery approvers.
    RecoveryMethods,
}

/// Why a change to an account's sign-in or recovery methods is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlterationRefusal {
    /// Frozen after a report of suspicious activity, until an administrator unfreezes.
    Frozen,
    /// On probation after a recovery (a takeover must not leave itself a way back in).
    Probation,
}

/// May the account's sign-in or recovery methods change now?
pub fn may_alter(
    subject: &Subject,
    alteration: Alteration,
    now_ms: i64,
) -> Result<(), AlterationRefusal> {
    if subject.factors_frozen {
        return Err(AlterationRefusal::Frozen);
    }
    let on_probation = subject
        .probation_until_ms
        .is_some_and(|until| until > now_ms);
    if alteration == Alteration::RecoveryMethods && on_probation {
        return Err(AlterationRefusal::Probation);
    }
    Ok(())
}

/// Which methods the account has enrolled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Enrolled {
    pub passkey: bool,
    pub push: bool,
    pub passcode: bool,
}

impl Enrolled {
    fn has(self, method: Method) -> bool {
        match method {
            Method::Passkey => self.passkey,
            Method::Push => self.push,
            Method::Passcode => self.passcode,
        }
    }

    /// Whether anything at all is enrolled.
    pub fn any(self) -> bool {
        self.passkey || self.push || self.passcode
    }
}

/// What may be offered to the user before they choose a method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offer {
    /// These methods, phishing-resistant first; `push_muted` says push was left out because
    /// pushes are paused after a fraud report.
    Methods {
        methods: Vec<Method>,
        push_muted: bool,
    },
    /// The account has nothing enrolled (the door decides between enrolment and refusal).
    NothingEnrolled,
    /// The account is refused before any method is tried; or it has factors, but none that
    /// this door may use now ([`Refusal::NotAllowed`] or [`Refusal::PushMuted`]).
    Refused(Refusal),
}

/// The methods `subject` may be offered at a door: exactly those [`admit`] would let through,
/// among those enrolled.
pub fn offer(
    org: OrgState,
    subject: Option<&Subject>,
    enrolled: Enrolled,
    allowed: Allowed,
    now_ms: i64,
) -> Offer {
    if org == OrgState::Disabled {
        return Offer::Refused(Refusal::OrgDisabled);
    }
    let Some(subject) = subject else {
        return Offer::Refused(Refusal::UnknownUser);
    };
    if subject.status == UserStatus::Disabled {
        return Offer::Refused(Refusal::Disabled);
    }
    if subject.locked(now_ms) {
        return Offer::Refused(Refusal::LockedOut);
    }
    if !enrolled.any() {
        return Offer::NothingEnrolled;
    }
    let mut last_refusal = Refusal::NotAllowed;
    let mut methods = Vec::new();
    for method in Method::ALL.into_iter().filter(|m| enrolled.has(*m)) {
        match admit(org, Some(subject), method, allowed, now_ms) {
            Ok(()) => methods.push(method),
            Err(refusal) => last_refusal = refusal,
        }
    }
    let push_muted = enrolled.push && allowed.push && subject.push_muted(now_ms);
    if methods.is_empty() {
        Offer::Refused(last_refusal)
    } else {
        Offer::Methods {
            methods,
            push_muted,
        }
    }
}

#[cfg(test)]
mod tests;
