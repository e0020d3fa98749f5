//! What the stores can hold: every text value of a change set, checked before it is applied.
//!
//! PostgreSQL refuses a NUL character in any text value, and one refused value used to fail a
//! whole group-commit batch. [`ChangeSet::check_storable`] finds such a value before the set
//! joins a batch, so the set fails alone with [`StoreError::Unstorable`]. Every struct below is
//! destructured without `..`, so a new field cannot be forgotten here.

mod rows;

use crate::change::{Change, ChangeSet};
use crate::{StoreError, StoreResult};

/// Whether every store can hold `text` (PostgreSQL refuses the NUL character).
pub fn is_storable(text: &str) -> bool {
    !text.contains('\0')
}

impl ChangeSet {
    /// Refuses a set holding a text value no store can hold, naming the change it is in.
    ///
    /// # Errors
    /// [`StoreError::Unstorable`]; nothing is applied.
    pub fn check_storable(&self) -> StoreResult<()> {
        let mut texts = Vec::new();
        for change in &self.changes {
            texts.clear();
            change.texts(&mut texts);
            if !texts.iter().all(|text| is_storable(text)) {
                return Err(StoreError::Unstorable(format!(
                    "a value of {} holds a NUL character",
                    change.kind()
                )));
            }
        }
        Ok(())
    }
}

/// Collects the text values of a record.
trait Texts {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>);
}

fn opt<'a>(out: &mut Vec<&'a str>, value: Option<&'a String>) {
    if let Some(value) = value {
        out.push(value);
    }
}

impl Change {
    /// The variant's name, for messages.
    fn kind(&self) -> &'static str {
        texts_and_kind(self, &mut Vec::new())
    }

    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        texts_and_kind(self, out);
    }
}

#[allow(clippy::too_many_lines)] // one arm per change, each a line or two
fn texts_and_kind<'a>(change: &'a Change, out: &mut Vec<&'a str>) -> &'static str {
    match change {
        Change::InsertIntegration(row) => {
            row.texts(out);
            "InsertIntegration"
        }
        Change::InsertUser(row) => {
            row.texts(out);
            "InsertUser"
        }
        Change::SetUserStatus {
            org_id,
            user_id,
            status,
        } => {
            out.extend([org_id.as_str(), user_id, status]);
            "SetUserStatus"
        }
        Change::InsertTotp(row) => {
            row.texts(out);
            "InsertTotp"
        }
        Change::UseTotpStep {
            org_id,
            totp_id,
            step: _,
        } => {
            out.extend([org_id.as_str(), totp_id]);
            "UseTotpStep"
        }
        Change::RecordAuthFailure {
            org_id,
            user_id,
            threshold: _,
            lock_until_ms: _,
            now_ms: _,
        } => {
            out.extend([org_id.as_str(), user_id]);
            "RecordAuthFailure"
        }
        Change::RecordAuthSuccess {
            org_id,
            user_id,
            at_ms: _,
        } => {
            out.extend([org_id.as_str(), user_id]);
            "RecordAuthSuccess"
        }
        Change::InsertAuthTx(row) => {
            row.texts(out);
            "InsertAuthTx"
        }
        Change::FinishAuthTx {
            org_id,
            txid,
            result,
            status,
            status_msg,
        } => {
            out.extend([org_id.as_str(), txid, result, status, status_msg]);
            "FinishAuthTx"
        }
        Change::Audit(event) => {
            event.texts(out);
            "Audit"
        }
        Change::InsertActivation(row) => {
            row.texts(out);
            "InsertActivation"
        }
        Change::ConsumeActivation {
            code_hash,
            now_ms: _,
        } => {
            out.push(code_hash);
            "ConsumeActivation"
        }
        Change::InsertDevice(row) => {
            row.texts(out);
            "InsertDevice"
        }
        Change::InsertNonce {
            nonce_hash,
            device_id,
            expires_ms: _,
        } => {
            out.extend([nonce_hash.as_str(), device_id]);
            "InsertNonce"
        }
        Change::ConsumeNonce {
            nonce_hash,
            device_id,
            now_ms: _,
        } => {
            out.extend([nonce_hash.as_str(), device_id]);
            "ConsumeNonce"
        }
        Change::InsertPush(row) => {
            row.texts(out);
            "InsertPush"
        }
        Change::DecidePush {
            org_id,
            txid,
            state,
            decided_ms: _,
        } => {
            out.extend([org_id.as_str(), txid, state]);
            "DecidePush"
        }
        Change::CheckPushLimit {
            org_id,
            user_id,
            since_ms: _,
            limit: _,
        } => {
            out.extend([org_id.as_str(), user_id]);
            "CheckPushLimit"
        }
        Change::PurgeExpired { before_ms: _ } => "PurgeExpired",
        Change::MutePush {
            org_id,
            user_id,
            until_ms: _,
        } => {
            out.extend([org_id.as_str(), user_id]);
            "MutePush"
        }
        Change::InsertWebauthnCredential(row) => {
            row.texts(out);
            "InsertWebauthnCredential"
        }
        Change::UseWebauthnCredential {
            cred_id,
            expected_sign_count: _,
            credential_sealed,
            sign_count: _,
            backed_up: _,
            used_ms: _,
        } => {
            out.extend([cred_id.as_str(), credential_sealed]);
            "UseWebauthnCredential"
        }
        Change::RenameFactor {
            org_id,
            user_id,
            kind,
            id,
            name,
        } => {
            out.extend([org_id.as_str(), user_id, kind, id, name]);
            "RenameFactor"
        }
        Change::DeleteFactor {
            org_id,
            user_id,
            kind,
            id,
        } => {
            out.extend([org_id.as_str(), user_id, kind, id]);
            "DeleteFactor"
        }
        Change::InsertCeremony(row) => {
            row.texts(out);
            "InsertCeremony"
        }
        Change::ConsumeCeremony {
            ceremony_hash,
            purpose,
            now_ms: _,
        } => {
            out.extend([ceremony_hash.as_str(), purpose]);
            "ConsumeCeremony"
        }
        Change::InsertSession(row) => {
            row.texts(out);
            "InsertSession"
        }
        Change::TouchSession {
            session_hash,
            last_seen_ms: _,
            step_up_until_ms: _,
        } => {
            out.push(session_hash);
            "TouchSession"
        }
        Change::DeleteSession { session_hash } => {
            out.push(session_hash);
            "DeleteSession"
        }
        Change::DeleteUserSessions { org_id, user_id } => {
            out.extend([org_id.as_str(), user_id]);
            "DeleteUserSessions"
        }
        Change::InsertUserToken(row) => {
            row.texts(out);
            "InsertUserToken"
        }
        Change::ConsumeUserToken {
            token_hash,
            purpose,
            now_ms: _,
        } => {
            out.extend([token_hash.as_str(), purpose]);
            "ConsumeUserToken"
        }
        Change::ReplaceRecoveryCodes {
            org_id,
            user_id,
            codes,
        } => {
            out.extend([org_id.as_str(), user_id]);
            for code in codes {
                code.texts(out);
            }
            "ReplaceRecoveryCodes"
        }
        Change::UseRecoveryCode {
            org_id,
            user_id,
            code_id,
            used_ms: _,
        } => {
            out.extend([org_id.as_str(), user_id, code_id]);
            "UseRecoveryCode"
        }
        Change::SetFactorsFrozen {
            org_id,
            user_id,
            frozen_ms: _,
        } => {
            out.extend([org_id.as_str(), user_id]);
            "SetFactorsFrozen"
        }
        Change::SetLastPromptMethod {
            org_id,
            user_id,
            method,
        } => {
            out.extend([org_id.as_str(), user_id, method]);
            "SetLastPromptMethod"
        }
        Change::OpenRecoveryCase { case, first_event } => {
            case.texts(out);
            first_event.texts(out);
            "OpenRecoveryCase"
        }
        Change::AppendRecoveryEvents {
            case_id,
            expected_version: _,
            events,
            state,
            is_open: _,
            updated_ms: _,
            expires_ms: _,
        } => {
            out.extend([case_id.as_str(), state]);
            for event in events {
                event.texts(out);
            }
            "AppendRecoveryEvents"
        }
        Change::AdoptRecoveryCase {
            case_id,
            adopt_hash,
            handle_hash,
        } => {
            out.extend([case_id.as_str(), adopt_hash, handle_hash]);
            "AdoptRecoveryCase"
        }
        Change::RotateRecoveryHandle {
            case_id,
            old_hash,
            new_hash,
        } => {
            out.extend([case_id.as_str(), old_hash, new_hash]);
            "RotateRecoveryHandle"
        }
        Change::TakeNoticeSlot {
            org_id,
            user_id,
            kind,
            now_ms: _,
            window_ms: _,
            cap: _,
        } => {
            out.extend([org_id.as_str(), user_id, kind]);
            "TakeNoticeSlot"
        }
        Change::GrantRole(row) => {
            row.texts(out);
            "GrantRole"
        }
        Change::RevokeRole {
            org_id,
            user_id,
            role,
        } => {
            out.extend([org_id.as_str(), user_id, role]);
            "RevokeRole"
        }
        Change::AddRecoveryApprover(row) => {
            row.texts(out);
            "AddRecoveryApprover"
        }
        Change::RemoveRecoveryApprover {
            org_id,
            user_id,
            approver_id,
        } => {
            out.extend([org_id.as_str(), user_id, approver_id]);
            "RemoveRecoveryApprover"
        }
        Change::SetRecoveryBlock {
            org_id,
            user_id,
            until_ms: _,
        } => {
            out.extend([org_id.as_str(), user_id]);
            "SetRecoveryBlock"
        }
        Change::SetRecovered {
            org_id,
            user_id,
            at_ms: _,
            probation_until_ms: _,
        } => {
            out.extend([org_id.as_str(), user_id]);
            "SetRecovered"
        }
        Change::RevokeFactors {
            org_id,
            user_id,
            keep_cred_id,
        } => {
            out.extend([org_id.as_str(), user_id]);
            opt(out, keep_cred_id.as_ref());
            "RevokeFactors"
        }
        Change::SetPolicyGroup {
            org_id,
            user_id,
            group,
        } => {
            out.extend([org_id.as_str(), user_id]);
            opt(out, group.as_ref());
            "SetPolicyGroup"
        }
        Change::InsertOrg(row) => {
            row.texts(out);
            "InsertOrg"
        }
        Change::RenameOrg { org_id, name } => {
            out.extend([org_id.as_str(), name]);
            "RenameOrg"
        }
        Change::SetOrgDisabled {
            org_id,
            disabled_ms: _,
        } => {
            out.push(org_id);
            "SetOrgDisabled"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewAudit;

    fn audit(details: &str) -> Change {
        Change::Audit(NewAudit {
            org_id: "default".into(),
            ts_ms: 1,
            actor: "cli".into(),
            action: "test".into(),
            target: "t".into(),
            outcome: "ok".into(),
            details: details.into(),
        })
    }

    #[test]
    fn nul_anywhere_in_a_set_is_refused_and_named() {
        let good = ChangeSet::new()
            .with(audit("{}"))
            .with(Change::SetPolicyGroup {
                org_id: "default".into(),
                user_id: "DU1".into(),
                group: Some("staff".into()),
            });
        assert!(good.check_storable().is_ok());
        let bad = good.clone().with(audit("{\"txid\":\"a\0b\"}"));
        let err = bad.check_storable().unwrap_err();
        assert!(
            matches!(&err, StoreError::Unstorable(m) if m.contains("Audit")),
            "{err}"
        );
        let bad_option = ChangeSet::new().with(Change::SetPolicyGroup {
            org_id: "default".into(),
            user_id: "DU1".into(),
            group: Some("st\0aff".into()),
        });
        assert!(matches!(
            bad_option.check_storable(),
            Err(StoreError::Unstorable(m)) if m.contains("SetPolicyGroup")
        ));
        let bad_org = ChangeSet::new().with(Change::RenameOrg {
            org_id: "default".into(),
            name: "a\0b".into(),
        });
        assert!(matches!(
            bad_org.check_storable(),
            Err(StoreError::Unstorable(m)) if m.contains("RenameOrg")
        ));
        assert!(is_storable("ünïcode ✓ \t\n"));
        assert!(!is_storable("\0"));
    }
}
