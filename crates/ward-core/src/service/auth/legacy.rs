//! Duo's older Auth API (`/rest/v1/*`), as `duo_unix` 1.x (`login_duo`, `pam_duo`) speaks it.
//!
//! The decisions are the Auth API v2 ones ([`Auth::preauth`], [`Auth::passcode`],
//! [`Auth::start_push`], [`Auth::refuse_factor`]) with their audit events; this module only adds
//! what the older clients need: a text menu in place of a device list, and `factor=auto` with
//! `auto=<typed text>` in place of a factor name.
//!
//! # Security
//! These clients cannot show a Verified Push number (their only output is a text prompt and
//! status lines), so a push from them is sent only when the integration's push mode is `plain`;
//! otherwise the gate refuses it (`not_allowed_by_policy`, audited with the policy), with a
//! message saying to type a passcode.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::push::{PushDoor, PushOutcome, PushRequest};
use super::{AuthContext, AuthDecision, Capability, PreauthOutcome};
use crate::error::{CoreError, CoreResult};
use crate::gate::Door;
use crate::model::UserRef;
use crate::policy::ApiPushMode;
use crate::service::{Auth, Ward};

/// What the user typed (or the client chose) in `auto=<X>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegacyFactor {
    /// `push`, or `pushN`: the Nth push device of the menu (1-based).
    Push { index: Option<usize> },
    /// Anything else: a passcode.
    Passcode(String),
    /// `phone`, `phoneN`, `sms`, `smsN`: a factor Ward never offers.
    Refused(&'static str),
    /// The bare word `passcode`: the user chose to type one but sent none.
    PasscodeMissing,
}

impl LegacyFactor {
    /// Reads `auto=<X>` (a menu value such as `push1`, or text the user typed).
    pub fn parse(auto: &str) -> Self {
        let text = auto.trim();
        let lower = text.to_ascii_lowercase();
        let numbered = |word: &str| -> Option<Option<usize>> {
            let rest = lower.strip_prefix(word)?;
            if rest.is_empty() {
                return Some(None);
            }
            rest.parse::<usize>().ok().filter(|n| *n >= 1).map(Some)
        };
        if let Some(index) = numbered("push") {
            return Self::Push { index };
        }
        if numbered("phone").is_some() {
            return Self::Refused("phone");
        }
        if numbered("sms").is_some() {
            return Self::Refused("sms");
        }
        if lower == "passcode" {
            return Self::PasscodeMissing;
        }
        Self::Passcode(text.to_owned())
    }
}

/// The text menu the older clients print (`prompt`) and the values its choices stand for
/// (`factors`, with `default` for clients that choose without asking).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyMenu {
    pub prompt: String,
    /// `("default", …)` first, then `("1", "push1")`, … in menu order.
    pub factors: Vec<(String, String)>,
}

/// The outcome of a legacy `auth`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegacyAuth {
    Decided(AuthDecision),
    Push(PushOutcome),
}

impl Auth<'_> {
    /// `preauth` ([`Auth::preauth`], same audit) with the text menu of the older clients.
    pub async fn legacy_preauth(
        self,
        ctx: &AuthContext,
        user_ref: &UserRef,
        username: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<(PreauthOutcome, Option<LegacyMenu>)> {
        let outcome = self.preauth_at(ctx, Door::Legacy, user_ref, now).await?;
        let menu = match &outcome {
            PreauthOutcome::Auth { devices, .. } => {
                let push_names: Vec<&str> = devices
                    .iter()
                    .filter(|d| d.capabilities.contains(&Capability::Push))
                    .map(|d| d.name.as_str())
                    .collect();
                let has_passcodes = devices
                    .iter()
                    .any(|d| d.capabilities.contains(&Capability::MobileOtp));
                Some(legacy_menu(username, &push_names, has_passcodes))
            }
            PreauthOutcome::Deny { .. } | PreauthOutcome::Enroll { .. } => None,
        };
        Ok((outcome, menu))
    }

    /// `auth` with `factor=auto`: a push, a passcode, or an audited refusal.
    pub async fn legacy_auth(
        self,
        ctx: &AuthContext,
        user_ref: &UserRef,
        factor: LegacyFactor,
        mut req: PushRequest,
        is_async: bool,
        now: DateTime<Utc>,
    ) -> CoreResult<LegacyAuth> {
        match factor {
            LegacyFactor::Passcode(code) => self
                .auth_passcode_at(ctx, Door::Legacy, user_ref, &code, is_async, now)
                .await
                .map(LegacyAuth::Decided),
            LegacyFactor::Refused(name) => {
                Err(self.auth().refuse_factor(ctx, user_ref, name, now).await)
            }
            LegacyFactor::PasscodeMissing => Err(CoreError::invalid(
                "auto",
                "Type the passcode from your authenticator app at the prompt.",
            )),
            LegacyFactor::Push { index } => {
                req.number_required = false;
                req.device = None;
                req.device_index = index;
                req.want_txid = is_async;
                let door = self.legacy_push_door(ctx);
                self.auth()
                    .start_push(ctx, &door, user_ref, &req, now)
                    .await
                    .map(LegacyAuth::Push)
            }
        }
    }
}

impl Ward {
    /// What the integration's push mode lets these clients do: a plain push only, since they
    /// cannot show a Verified Push number.
    fn legacy_push_door(&self, ctx: &AuthContext) -> PushDoor {
        let allowed = ctx.allowed(Door::Legacy, &self.policy);
        match ctx.push_mode(&self.policy) {
            ApiPushMode::Refuse => PushDoor {
                allowed,
                policy: "api_push_refused",
                refusal: || CoreError::invalid("auto", LEGACY_PUSH_REFUSED),
            },
            ApiPushMode::Verified | ApiPushMode::Plain => PushDoor {
                allowed,
                policy: "verified_push_needs_a_screen",
                refusal: || CoreError::invalid("auto", VERIFIED_PUSH_NEEDS_A_SCREEN),
            },
        }
    }
}

const LEGACY_PUSH_REFUSED: &str =
    "Push is turned off for this integration. Type a passcode from your authenticator app instead.";

const VERIFIED_PUSH_NEEDS_A_SCREEN: &str = "Push is not available here: this integration uses \
     Verified Push, which SSH and sudo logins cannot display. Type a passcode instead \
     (administrators: use --push-mode plain for this integration).";

/// The menu: one entry per push device; passcodes are typed at the same prompt.
pub fn legacy_menu(username: &str, push_devices: &[&str], has_passcodes: bool) -> LegacyMenu {
    let mut factors = Vec::with_capacity(push_devices.len() + 1);
    let mut prompt = format!("Ward two-factor login for {username}\n\n");
    if has_passcodes {
        prompt.push_str("Enter a passcode from your authenticator app");
        if !push_devices.is_empty() {
            prompt.push_str(" or select one of the following options");
        }
        prompt.push_str(":\n\n");
    } else {
        prompt.push_str("Select one of the following options:\n\n");
    }
    for (i, name) in push_devices.iter().enumerate() {
        let n = i + 1;
        let _ = writeln!(prompt, " {n}. Push to {name}");
        factors.push((n.to_string(), format!("push{n}")));
    }
    let default = if push_devices.is_empty() {
        "passcode"
    } else {
        "push1"
    };
    factors.insert(0, ("default".to_owned(), default.to_owned()));
    match (has_passcodes, push_devices.len()) {
        (true, 0) => prompt.push_str("Passcode: "),
        (true, n) => {
            let _ = write!(prompt, "\nPasscode or option (1-{n}): ");
        }
        (false, n) => {
            let _ = write!(prompt, "\nOption (1-{n}): ");
        }
    }
    LegacyMenu { prompt, factors }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_values_map_to_factors() {
        assert_eq!(
            LegacyFactor::parse("push1"),
            LegacyFactor::Push { index: Some(1) }
        );
        assert_eq!(
            LegacyFactor::parse("Push"),
            LegacyFactor::Push { index: None }
        );
        assert_eq!(LegacyFactor::parse("sms2"), LegacyFactor::Refused("sms"));
        assert_eq!(LegacyFactor::parse("phone"), LegacyFactor::Refused("phone"));
        assert_eq!(
            LegacyFactor::parse("passcode"),
            LegacyFactor::PasscodeMissing
        );
        assert_eq!(
            LegacyFactor::parse(" 123456 "),
            LegacyFactor::Passcode("123456".into())
        );
        // Not a menu value: a (wrong) passcode, never a push to device 0.
        assert_eq!(
            LegacyFactor::parse("push0"),
            LegacyFactor::Passcode("push0".into())
        );
        assert_eq!(
            LegacyFactor::parse("pushx"),
            LegacyFactor::Passcode("pushx".into())
        );
    }

    #[test]
    fn menu_lists_push_devices_with_a_default() {
        let menu = legacy_menu("alice", &["Phone", "Tablet"], true);
        assert_eq!(
            menu.factors,
            vec![
                ("default".into(), "push1".into()),
                ("1".into(), "push1".into()),
                ("2".into(), "push2".into()),
            ]
        );
        assert!(menu.prompt.contains(" 2. Push to Tablet"));
        assert!(menu.prompt.ends_with("Passcode or option (1-2): "));
        let only_passcodes = legacy_menu("alice", &[], true);
        assert_eq!(
            only_passcodes.factors,
            vec![("default".into(), "passcode".into())]
        );
        assert!(only_passcodes.prompt.ends_with("Passcode: "));
    }
}
