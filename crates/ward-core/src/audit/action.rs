//! The catalogue of audit actions: every kind of event Ward records, with the exact string
//! stored in (and exported from) the audit log, what it records and who its actor is.
//!
//! The strings are part of the stored format: operators and tests filter on them, and the hash
//! chain covers them, so a variant's string never changes. `docs/audit-actions.md` is rendered
//! from this table by [`reference_markdown`].

use crate::recovery::CaseEvent;

/// Declares [`Action`] from one table, so the enum, its strings, [`Action::ALL`] and the
/// descriptions cannot drift apart.
macro_rules! actions {
    ($(
        $variant:ident = $name:literal {
            $desc:literal,
            outcomes: [$($outcome:literal),*],
            details: [$($detail:literal),*] $(,)?
        }
    )*) => {
        /// One kind of audit event. [`Action::as_str`] is the string the log stores.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action {
            $(#[doc = $desc] $variant,)*
        }

        impl Action {
            /// Every action, in catalogue order.
            pub const ALL: &'static [Action] = &[$(Self::$variant),*];

            /// The string stored in the audit log.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// One line: what the event records and who its actor is.
            #[must_use]
            pub const fn describe(self) -> &'static str {
                match self {
                    $(Self::$variant => $desc,)*
                }
            }

            /// The outcomes the event is recorded with.
            #[must_use]
            pub const fn outcomes(self) -> &'static [&'static str] {
                match self {
                    $(Self::$variant => &[$($outcome),*],)*
                }
            }

            /// The detail keys the event may carry (ids and reasons, never secrets).
            #[must_use]
            pub const fn details(self) -> &'static [&'static str] {
                match self {
                    $(Self::$variant => &[$($detail),*],)*
                }
            }
        }
    };
}

actions! {
    // Duo APIs (Auth API v2, legacy /rest/v1) and the hosted prompt.
    AuthPreauth = "auth.preauth" {
        "A preauth answer (which factors are offered); actor: the integration.",
        outcomes: ["auth", "enroll", "deny"],
        details: ["door", "reason", "integration", "ipaddr", "client_ip"],
    }
    AuthPasscode = "auth.passcode" {
        "A passcode from an authenticator app (TOTP/HOTP) checked at a Duo API door or the hosted prompt; actor: the integration.",
        outcomes: ["allow", "deny"],
        details: ["door", "reason", "totp_id", "integration", "ipaddr", "client_ip"],
    }
    AuthRequestRefused = "auth.request_refused" {
        "A signed request refused before any decision (a single-valued parameter given more than once); actor: the integration.",
        outcomes: ["deny"],
        details: ["reason", "parameter", "integration", "ipaddr", "client_ip"],
    }
    AuthRefusedFactor = "auth.refused_factor" {
        "An SMS or phone factor asked for and refused by design; actor: the integration.",
        outcomes: ["deny"],
        details: ["factor", "integration", "ipaddr", "client_ip"],
    }
    AuthPush = "auth.push" {
        "A push refused by the gate before it was sent (the reason; when the application's policy does not allow it, also which policy: its push mode, Verified Push where no number can be shown, the prompt's policy); actor: the integration.",
        outcomes: ["deny"],
        details: ["reason", "policy", "integration", "ipaddr", "client_ip"],
    }
    AuthPushSent = "auth.push.sent" {
        "A push request sent to one of the user's devices; actor: the integration.",
        outcomes: ["pending"],
        details: ["txid", "device_id", "number_required", "hostname", "pushinfo", "integration", "ipaddr", "client_ip"],
    }
    AuthPushAnswer = "auth.push.answer" {
        "A device's answer to a push that was refused (wrong device, bad signature, already decided); actor: the device.",
        outcomes: ["refused"],
        details: ["reason", "device_id"],
    }
    AuthPushDecided = "auth.push.decided" {
        "A push reached its final state (approved, denied, timed out); actor: the answering device, or the integration when it timed out.",
        outcomes: ["allow", "deny"],
        details: ["txid", "integration", "device_id", "state", "reason"],
    }
    PromptStart = "prompt.start" {
        "A hosted prompt (Web SDK v4) opened for a user; actor: the integration (client id).",
        outcomes: ["ok"],
        details: ["ip"],
    }
    PromptRefused = "prompt.refused" {
        "A hosted prompt request refused before it opened (bad client, request or redirect); actor: anonymous.",
        outcomes: ["deny"],
        details: ["reason", "ip"],
    }
    PromptCancel = "prompt.cancel" {
        "The user cancelled the hosted prompt; actor: the integration (client id).",
        outcomes: ["deny"],
        details: ["ip"],
    }
    PromptAuth = "prompt.auth" {
        "The hosted prompt's decision, handed back to the application; actor: the integration (client id).",
        outcomes: ["allow", "deny"],
        details: ["txid", "factor", "reason", "device", "ip"],
    }
    // Passkeys and the portal.
    PasskeyAdd = "passkey.add" {
        "A passkey or security key registered, or its registration refused; actor: the user.",
        outcomes: ["ok", "deny"],
        details: ["cred_id", "kind", "backup_eligible", "aaguid", "reason"],
    }
    PasskeyAuth = "passkey.auth" {
        "A passkey assertion checked; actor: the user when allowed, anonymous when refused.",
        outcomes: ["allow", "deny"],
        details: ["purpose", "cred_id", "backed_up", "reason", "stored_count", "presented_count"],
    }
    PortalSigninTotp = "portal.signin.totp" {
        "A portal sign-in with a TOTP code; actor: the user when allowed, anonymous when refused.",
        outcomes: ["allow", "deny"],
        details: ["door"],
    }
    SessionOpen = "session.open" {
        "A portal session opened; actor: the user.",
        outcomes: ["ok"],
        details: ["method", "expires_ms"],
    }
    SessionClose = "session.close" {
        "A portal session signed out; actor: the user.",
        outcomes: ["ok"],
        details: [],
    }
    SessionCloseAll = "session.close_all" {
        "Every portal session of a user ended (sign out everywhere); actor: the user.",
        outcomes: ["ok"],
        details: [],
    }
    FactorTotpAdd = "factor.totp.add" {
        "An authenticator app (TOTP) enrolled; actor: the user in the portal, or the administrator.",
        outcomes: ["ok"],
        details: ["totp_id", "algorithm", "digits"],
    }
    FactorRename = "factor.rename" {
        "A factor renamed in the portal; actor: the user.",
        outcomes: ["ok"],
        details: ["kind", "id"],
    }
    FactorRemove = "factor.remove" {
        "A factor removed in the portal, or its removal refused (last phishing-resistant factor); actor: the user.",
        outcomes: ["ok", "deny"],
        details: ["kind", "id", "reason"],
    }
    RecoveryCodesGenerate = "recovery_codes.generate" {
        "A new set of recovery codes created, replacing the old; actor: the user.",
        outcomes: ["ok"],
        details: ["count"],
    }
    EnrolLinkCreate = "enrol_link.create" {
        "An enrolment link issued for a user; actor: the administrator.",
        outcomes: ["ok"],
        details: ["expires_ms"],
    }
    EnrolLinkUse = "enrol_link.use" {
        "An enrolment link refused (unknown, used or expired); actor: anonymous.",
        outcomes: ["deny"],
        details: ["reason"],
    }
    AccountFreeze = "account.freeze" {
        "A user disowned a change through a notice's report link, freezing their factors; actor: the user.",
        outcomes: ["ok"],
        details: ["disowned"],
    }
    AccountUnfreeze = "account.unfreeze" {
        "A user's frozen factors released; actor: the administrator.",
        outcomes: ["ok"],
        details: [],
    }
    UserPolicyGroup = "user.policy_group" {
        "A user moved to (or out of) a factor policy group; actor: the administrator.",
        outcomes: ["ok"],
        details: ["group"],
    }
    // Devices (Verified Push).
    DeviceActivationIssued = "device.activation_issued" {
        "A device activation code issued for a user; actor: the administrator.",
        outcomes: ["ok"],
        details: ["expires_ms"],
    }
    DeviceActivate = "device.activate" {
        "A device activated with a code, or the code refused; actor: the new device (unnamed when refused).",
        outcomes: ["ok", "refused"],
        details: ["device_id", "name", "key_alg", "reason"],
    }
    // Administration.
    OrgCreate = "org.create" {
        "An organisation created; actor: the administrator. Recorded in the new organisation's log.",
        outcomes: ["ok"],
        details: ["name"],
    }
    OrgRename = "org.rename" {
        "An organisation renamed; actor: the administrator.",
        outcomes: ["ok"],
        details: ["previous", "name"],
    }
    OrgDisable = "org.disable" {
        "An organisation disabled: every login in it is refused, its data kept; actor: the administrator.",
        outcomes: ["ok"],
        details: [],
    }
    OrgEnable = "org.enable" {
        "An organisation enabled again; actor: the administrator.",
        outcomes: ["ok"],
        details: [],
    }
    IntegrationCreate = "integration.create" {
        "An integration (Duo API application or Web SDK client) created; actor: the administrator.",
        outcomes: ["ok"],
        details: ["name", "kind", "push_mode", "prompt_policy"],
    }
    UserCreate = "user.create" {
        "A user created; actor: the administrator.",
        outcomes: ["ok"],
        details: ["username"],
    }
    UserEnable = "user.enable" {
        "A user enabled; actor: the administrator.",
        outcomes: ["ok"],
        details: ["previous"],
    }
    UserDisable = "user.disable" {
        "A user disabled; actor: the administrator.",
        outcomes: ["ok"],
        details: ["previous"],
    }
    RoleGrant = "role.grant" {
        "A role (helpdesk, security, ...) granted to a user; actor: the administrator.",
        outcomes: ["ok"],
        details: ["role"],
    }
    RoleRevoke = "role.revoke" {
        "A role revoked from a user; actor: the administrator.",
        outcomes: ["ok"],
        details: ["role"],
    }
    MaintenancePurge = "maintenance.purge" {
        "Expired rows (sessions, ceremonies, pushes, tokens) purged; actor: the command line.",
        outcomes: ["ok"],
        details: ["rows", "expired_before_ms"],
    }
    // Recovery: the service around a case.
    RecoveryApproverAdd = "recovery.approver.add" {
        "A recovery approver named for a user; actor: the administrator.",
        outcomes: ["ok"],
        details: ["approver_id"],
    }
    RecoveryStart = "recovery.start" {
        "A recovery case opened (a phantom one for an unknown identifier); actor: anonymous, or the helpdesk agent.",
        outcomes: ["ok"],
        details: ["case_id", "phantom", "phantom_reason", "breaker", "user_told", "ip"],
    }
    RecoveryAdopted = "recovery.adopted" {
        "A continue link bound a case to the browser that opened it; actor: anonymous.",
        outcomes: ["ok"],
        details: ["case_id", "ip"],
    }
    RecoveryHandleRotated = "recovery.handle_rotated" {
        "A case's browser handle replaced by a fresh one; actor: anonymous.",
        outcomes: ["ok"],
        details: ["case_id"],
    }
    RecoveryRevokeFactors = "recovery.revoke_factors" {
        "A finished recovery removed every old factor but the new passkey; actor: the recovered user.",
        outcomes: ["ok"],
        details: ["case_id", "kept"],
    }
    RecoveryApprovalRefused = "recovery.approval_refused" {
        "An approver's approval of a case refused; actor: the approver.",
        outcomes: ["deny"],
        details: ["reason"],
    }
    HelpdeskLookup = "helpdesk.lookup" {
        "A helpdesk agent looked a user up; actor: the agent.",
        outcomes: ["ok"],
        details: ["found"],
    }
    HelpdeskNote = "helpdesk.note" {
        "A helpdesk agent noted a call against a user; actor: the agent.",
        outcomes: ["ok"],
        details: ["note"],
    }
    SecurityContactReport = "security.contact_report" {
        "A report to the security team (suspicious call, unrecognised change); actor: the user, or anonymous.",
        outcomes: ["ok"],
        details: ["kind", "description", "description_chars", "recovery_blocked_until_ms", "ip"],
    }
    // Recovery: one per case event (see `crate::recovery::CaseEvent`).
    RecoveryOpened = "recovery.opened" {
        "A case's opening event; openings are recorded as recovery.start, so this is reserved for the case event of the same name.",
        outcomes: ["ok"],
        details: ["case_id"],
    }
    RecoveryEvidenceAccepted = "recovery.evidence_accepted" {
        "Evidence of a category accepted into a case; actor: who ran the case command.",
        outcomes: ["ok"],
        details: ["case_id", "category"],
    }
    RecoveryEvidenceRejected = "recovery.evidence_rejected" {
        "Evidence of a category rejected; actor: who ran the case command.",
        outcomes: ["ok"],
        details: ["case_id", "category", "reason"],
    }
    RecoveryApprovalRecorded = "recovery.approval_recorded" {
        "An approver's approval recorded on a case; actor: the approver.",
        outcomes: ["ok"],
        details: ["case_id", "approver_id", "cred_id", "security_pool"],
    }
    RecoveryCoolingStarted = "recovery.cooling_started" {
        "A case met its policy and started cooling; actor: who ran the case command.",
        outcomes: ["ok"],
        details: ["case_id", "row", "until_ms"],
    }
    RecoveryCoolingElapsed = "recovery.cooling_elapsed" {
        "A case's cooling ended with its policy still met; actor: who read or advanced the case.",
        outcomes: ["ok"],
        details: ["case_id"],
    }
    RecoveryPolicyLapsed = "recovery.policy_lapsed" {
        "A case's cooling ended with its policy no longer met, back to collecting; actor: who read or advanced the case.",
        outcomes: ["ok"],
        details: ["case_id"],
    }
    RecoveryCancelled = "recovery.cancelled" {
        "A case cancelled (portal, push deny, recovery page); actor: who cancelled it.",
        outcomes: ["ok"],
        details: ["case_id", "via"],
    }
    RecoveryFrozen = "recovery.frozen" {
        "A case held for security review; actor: the user, an agent or the security team.",
        outcomes: ["ok"],
        details: ["case_id", "reason"],
    }
    RecoveryUnfrozen = "recovery.unfrozen" {
        "A frozen case resumed by security review; actor: the security reviewer.",
        outcomes: ["ok"],
        details: ["case_id"],
    }
    RecoveryTokenIssued = "recovery.token_issued" {
        "A case issued its one-time recovery token; actor: who ran the case command.",
        outcomes: ["ok"],
        details: ["case_id"],
    }
    RecoveryTokenExpired = "recovery.token_expired" {
        "A case's recovery token expired unused; actor: who read or advanced the case.",
        outcomes: ["ok"],
        details: ["case_id"],
    }
    RecoveryAuthenticatorBound = "recovery.authenticator_bound" {
        "A new passkey bound to finish a case; actor: the recovering user.",
        outcomes: ["ok"],
        details: ["case_id", "cred_id"],
    }
    RecoveryCompleted = "recovery.completed" {
        "A case completed: old factors removed, sessions closed; actor: the recovered user.",
        outcomes: ["ok"],
        details: ["case_id"],
    }
    RecoveryExpired = "recovery.expired" {
        "A case expired before it finished; actor: who read or advanced the case.",
        outcomes: ["ok"],
        details: ["case_id"],
    }
    RecoveryDenied = "recovery.denied" {
        "A case refused by security review, blocking new cases for a while; actor: the security reviewer.",
        outcomes: ["ok"],
        details: ["case_id", "reason"],
    }
}

impl Action {
    /// The action recording a recovery case event.
    #[must_use]
    pub const fn for_case_event(event: &CaseEvent) -> Self {
        match event {
            CaseEvent::Opened { .. } => Self::RecoveryOpened,
            CaseEvent::EvidenceAccepted { .. } => Self::RecoveryEvidenceAccepted,
            CaseEvent::EvidenceRejected { .. } => Self::RecoveryEvidenceRejected,
            CaseEvent::ApprovalRecorded(_) => Self::RecoveryApprovalRecorded,
            CaseEvent::CoolingStarted { .. } => Self::RecoveryCoolingStarted,
            CaseEvent::CoolingElapsed { .. } => Self::RecoveryCoolingElapsed,
            CaseEvent::PolicyLapsed { .. } => Self::RecoveryPolicyLapsed,
            CaseEvent::Cancelled { .. } => Self::RecoveryCancelled,
            CaseEvent::Frozen { .. } => Self::RecoveryFrozen,
            CaseEvent::Unfrozen { .. } => Self::RecoveryUnfrozen,
            CaseEvent::TokenIssued { .. } => Self::RecoveryTokenIssued,
            CaseEvent::TokenExpired { .. } => Self::RecoveryTokenExpired,
            CaseEvent::AuthenticatorBound { .. } => Self::RecoveryAuthenticatorBound,
            CaseEvent::Completed { .. } => Self::RecoveryCompleted,
            CaseEvent::Expired { .. } => Self::RecoveryExpired,
            CaseEvent::Denied { .. } => Self::RecoveryDenied,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The command that regenerates `docs/audit-actions.md`.
pub const REGENERATE: &str =
    "cargo run -p ward -- audit actions --markdown > docs/audit-actions.md";

/// The audit action reference page (`docs/audit-actions.md`).
#[must_use]
pub fn reference_markdown() -> String {
    let mut page = format!(
        "# Audit actions\n\n\
         Every audit event Ward records carries one of these actions. The action string is part \
         of the stored and exported format (`ward audit export`), so it never changes; filter on \
         it. Each event also names its actor (`cli` for the administrator at the `ward` command \
         line, `integration:IKEY`, `device:ID`, `user:ID` or `anonymous`), its target (usually \
         a user id, `-` when there is none) and an outcome; details hold ids and reasons, never \
         secrets.\n\n\
         This page is generated from `crates/ward-core/src/audit/action.rs`; do not edit it by \
         hand. Regenerate it with:\n\n\
         ```sh\n{REGENERATE}\n```\n\n\
         | Action | Description | Outcomes | Details |\n\
         |---|---|---|---|\n"
    );
    let rows = Action::ALL.iter().map(|action| {
        format!(
            "| `{}` | {} | {} | {} |\n",
            action.as_str(),
            action.describe(),
            code_list(action.outcomes()),
            code_list(action.details()),
        )
    });
    page.extend(rows);
    page
}

fn code_list(items: &[&str]) -> String {
    if items.is_empty() {
        return "-".to_owned();
    }
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_action_string_is_unique() {
        let names: HashSet<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), Action::ALL.len());
    }

    fn every_case_event() -> Vec<CaseEvent> {
        use crate::recovery::{Actor, Approval, Category, Level, Opener};
        let s = String::new;
        vec![
            CaseEvent::Opened {
                case_id: s(),
                user_id: s(),
                level: Level::R1,
                opened_by: Opener::User,
                phantom: false,
                at_ms: 0,
                expires_ms: 0,
            },
            CaseEvent::EvidenceAccepted {
                category: Category::RecoveryCode,
                verifier: s(),
                verdict_digest: s(),
                attended: false,
                at_ms: 0,
            },
            CaseEvent::EvidenceRejected {
                category: Category::EmailCode,
                reason: s(),
                at_ms: 0,
            },
            CaseEvent::ApprovalRecorded(Approval {
                case_id: s(),
                approver_id: s(),
                from_security_pool: false,
                cred_id: s(),
                at_ms: 0,
                expires_ms: 0,
            }),
            CaseEvent::CoolingStarted {
                row: s(),
                until_ms: 0,
                at_ms: 0,
            },
            CaseEvent::CoolingElapsed { at_ms: 0 },
            CaseEvent::PolicyLapsed { at_ms: 0 },
            CaseEvent::Cancelled {
                by: Actor::User,
                via: s(),
                at_ms: 0,
            },
            CaseEvent::Frozen {
                by: Actor::System,
                reason: s(),
                at_ms: 0,
            },
            CaseEvent::Unfrozen {
                by: Actor::System,
                at_ms: 0,
            },
            CaseEvent::TokenIssued {
                token_hash: s(),
                expires_ms: 0,
                at_ms: 0,
            },
            CaseEvent::TokenExpired { at_ms: 0 },
            CaseEvent::AuthenticatorBound {
                cred_id: s(),
                at_ms: 0,
            },
            CaseEvent::Completed { at_ms: 0 },
            CaseEvent::Expired { at_ms: 0 },
            CaseEvent::Denied {
                by: Actor::System,
                reason: s(),
                at_ms: 0,
            },
        ]
    }

    /// Case events were audited as `recovery.{name}`; the typed mapping keeps those strings.
    #[test]
    fn case_event_actions_keep_the_stored_recovery_names() {
        let events = every_case_event();
        let actions: HashSet<_> = events.iter().map(Action::for_case_event).collect();
        assert_eq!(
            actions.len(),
            events.len(),
            "two case events share an action"
        );
        for e in &events {
            assert_eq!(
                Action::for_case_event(e).as_str(),
                format!("recovery.{}", e.name())
            );
        }
    }

    #[test]
    fn reference_table_cells_hold_no_pipes() {
        for action in Action::ALL {
            let cells = [action.as_str(), action.describe()];
            let lists = action.outcomes().iter().chain(action.details());
            assert!(
                cells.iter().chain(lists).all(|c| !c.contains('|')),
                "{action} would break the table"
            );
        }
    }

    #[test]
    fn committed_reference_page_matches_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/audit-actions.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == reference_markdown(),
            "docs/audit-actions.md is out of date; regenerate it with: {REGENERATE}"
        );
    }
}
