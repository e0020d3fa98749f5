//! Domain types, converted from storage rows with `TryFrom`.

use ward_store::{IntegrationRow, OrgRow, TotpRow, UserRow};

use crate::error::{CoreError, CoreResult};
use crate::totp::Algorithm;

/// Declares an id newtype: a stored string that only converts explicitly, so ids of
/// different kinds cannot be passed for one another.
macro_rules! typed_id {
    ($($(#[$doc:meta])* $name:ident;)*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
            #[serde(transparent)]
            pub struct $name(String);

            impl $name {
                /// Wraps a stored id.
                pub fn new(id: impl Into<String>) -> Self {
                    Self(id.into())
                }

                /// The id as stored.
                pub fn as_str(&self) -> &str {
                    &self.0
                }

                /// The stored string.
                pub fn into_string(self) -> String {
                    self.0
                }
            }

            impl std::fmt::Display for $name {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(&self.0)
                }
            }

            impl AsRef<str> for $name {
                fn as_ref(&self) -> &str {
                    &self.0
                }
            }
        )*
    };
}

typed_id! {
    /// An organisation's id: the tenant every user, factor, integration, case and audit chain
    /// belongs to.
    ///
    /// There is deliberately no `Default`: every request takes its organisation from where it
    /// enters (the signing integration, the session, the device, the case, `--org`).
    OrgId;
    /// A user's id (`DU…`), unique across organisations.
    UserId;
    /// A push device's id (`DP…`), as the device channel and its signatures name it.
    DeviceId;
    /// An integration's key (`DI…`): the id an application signs its requests with.
    IntegrationId;
}

impl UserId {
    /// The id of a stored user.
    pub fn of(user: &UserRow) -> Self {
        Self::new(user.user_id.clone())
    }
}

/// An organisation, as administrators see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created_ms: i64,
    /// When it was disabled (every login in it is refused); `None`: enabled.
    pub disabled_ms: Option<i64>,
}

impl From<&OrgRow> for Org {
    fn from(r: &OrgRow) -> Self {
        Self {
            id: OrgId::new(r.org_id.clone()),
            name: r.name.clone(),
            created_ms: r.created_ms,
            disabled_ms: r.disabled_ms,
        }
    }
}

/// Whether an account may authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }
}

impl std::str::FromStr for UserStatus {
    type Err = CoreError;

    fn from_str(s: &str) -> CoreResult<Self> {
        match s {
            "active" => Ok(Self::Active),
            "disabled" => Ok(Self::Disabled),
            _ => Err(CoreError::invalid("status", "must be active or disabled")),
        }
    }
}

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub org_id: OrgId,
    pub id: UserId,
    pub username: String,
    pub email: Option<String>,
    pub status: UserStatus,
    pub created_ms: i64,
    pub failed_attempts: i64,
    pub locked_until_ms: Option<i64>,
    pub last_login_ms: Option<i64>,
}

impl User {
    /// Whether the account is locked at `now_ms`.
    pub fn is_locked(&self, now_ms: i64) -> bool {
        self.locked_until_ms.is_some_and(|until| until > now_ms)
    }
}

impl TryFrom<UserRow> for User {
    type Error = CoreError;

    fn try_from(r: UserRow) -> CoreResult<Self> {
        Ok(Self {
            status: r.status.parse()?,
            org_id: OrgId::new(r.org_id),
            id: UserId::new(r.user_id),
            username: r.username,
            email: r.email,
            created_ms: r.created_ms,
            failed_attempts: r.failed_attempts,
            locked_until_ms: r.locked_until_ms,
            last_login_ms: r.last_login_ms,
        })
    }
}

/// What an integration is allowed to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntegrationKind {
    /// Duo Auth API v2 (and its legacy forms).
    AuthApi,
    /// Duo Web SDK v4: the hosted prompt (OIDC authorization code flow).
    WebSdk,
}

impl IntegrationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthApi => "auth-api",
            Self::WebSdk => "web-sdk",
        }
    }
}

impl std::str::FromStr for IntegrationKind {
    type Err = CoreError;

    fn from_str(s: &str) -> CoreResult<Self> {
        match s {
            "auth-api" => Ok(Self::AuthApi),
            "web-sdk" => Ok(Self::WebSdk),
            _ => Err(CoreError::invalid("kind", "must be auth-api or web-sdk")),
        }
    }
}

/// An application allowed to call Ward (without its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Integration {
    pub org_id: OrgId,
    pub ikey: IntegrationId,
    pub name: String,
    pub kind: IntegrationKind,
    pub created_ms: i64,
    /// This integration's push policy for Auth API clients; `None`: the server default.
    pub push_mode: Option<crate::policy::ApiPushMode>,
    /// What the hosted prompt offers (`web-sdk` integrations).
    pub prompt_policy: crate::policy::PromptPolicy,
}

impl TryFrom<&IntegrationRow> for Integration {
    type Error = CoreError;

    fn try_from(r: &IntegrationRow) -> CoreResult<Self> {
        Ok(Self {
            org_id: OrgId::new(r.org_id.clone()),
            ikey: IntegrationId::new(r.ikey.clone()),
            name: r.name.clone(),
            kind: r.kind.parse()?,
            created_ms: r.created_ms,
            push_mode: r.push_mode.as_deref().map(str::parse).transpose()?,
            prompt_policy: r
                .prompt_policy
                .as_deref()
                .map(crate::policy::PromptPolicy::from_json)
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

/// A TOTP authenticator without its seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpAuthenticator {
    pub id: String,
    pub user_id: UserId,
    pub name: String,
    pub algorithm: Algorithm,
    pub digits: u32,
    pub step_secs: u64,
    pub last_step: Option<i64>,
}

impl TryFrom<&TotpRow> for TotpAuthenticator {
    type Error = CoreError;

    fn try_from(r: &TotpRow) -> CoreResult<Self> {
        Ok(Self {
            id: r.totp_id.clone(),
            user_id: UserId::new(r.user_id.clone()),
            name: r.name.clone(),
            algorithm: r.algorithm.parse()?,
            digits: u32::try_from(r.digits)
                .map_err(|_| CoreError::Internal("bad digits".into()))?,
            step_secs: u64::try_from(r.step_secs)
                .map_err(|_| CoreError::Internal("bad step".into()))?,
            last_step: r.last_step,
        })
    }
}

/// A reference to a user as API callers give it: by name or by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserRef {
    Name(String),
    Id(String),
}

/// Who is acting, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// An administrator at the `ward` command line on the server.
    Cli,
    /// An application, by integration key.
    Integration(String),
    /// A push device, by device id (empty before it has one).
    Device(String),
    /// A user acting on their own account in the portal, by user id.
    User(String),
    /// Someone not yet signed in (an enrolment link, a "this wasn't me" link).
    Anonymous,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cli => f.write_str("cli"),
            Self::Integration(ikey) => write!(f, "integration:{ikey}"),
            Self::Device(id) if id.is_empty() => f.write_str("device"),
            Self::Device(id) => write!(f, "device:{id}"),
            Self::User(id) => write!(f, "user:{id}"),
            Self::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// A role a user may hold besides being a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Administers Ward.
    Admin,
    /// Helpdesk agent: may look up users, open recovery cases and verify callers; never
    /// approves, shortens cooling or issues tokens.
    Helpdesk,
    /// May be named in users' recovery approver sets.
    Approver,
    /// The security pool: approvals for privileged accounts and when the circuit breaker trips.
    Security,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Helpdesk => "helpdesk",
            Self::Approver => "approver",
            Self::Security => "security",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = CoreError;

    fn from_str(s: &str) -> CoreResult<Self> {
        match s {
            "admin" => Ok(Self::Admin),
            "helpdesk" => Ok(Self::Helpdesk),
            "approver" => Ok(Self::Approver),
            "security" => Ok(Self::Security),
            _ => Err(CoreError::invalid(
                "role",
                "must be admin, helpdesk, approver or security",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Comparisons of a stored state with a string literal (`user.status != "active"`).
    const RAW_COMPARES: [&str; 4] = ["status!=\"", "status==\"", "state!=\"", "state==\""];

    fn scan(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.contains("tests") {
                continue;
            }
            if path.is_dir() {
                scan(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text
                    .lines()
                    .enumerate()
                    .filter(|(_, line)| !line.trim_start().starts_with("//"));
                for (n, line) in code {
                    let squeezed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
                    if RAW_COMPARES.iter().any(|p| squeezed.contains(p)) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }

    /// Issue 11: stored states (an account's status, a push's state) are parsed into their
    /// enums and compared as such, never as strings, so that every path decides alike.
    #[test]
    fn stored_states_are_never_compared_as_strings() {
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut found = Vec::new();
        for name in ["ward-core", "ward-server"] {
            scan(&crates.join(name).join("src"), &mut found);
        }
        assert!(
            found.is_empty(),
            "raw state compares:\n{}",
            found.join("\n")
        );
    }
}
