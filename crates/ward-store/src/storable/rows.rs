//! The text values of each stored record (see the parent module).

use super::{Texts, opt};
use crate::rows::{
    ActivationRow, ApproverRow, AuthTxRow, CeremonyRow, DeviceRow, IntegrationRow, NewAudit,
    OrgRow, PushRow, RecoveryCaseRow, RecoveryCodeRow, RecoveryEventRow, RoleRow, SessionRow,
    TotpRow, UserRow, UserTokenRow, WebauthnCredentialRow,
};

impl Texts for IntegrationRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            org_id,
            ikey,
            name,
            kind,
            skey_sealed,
            created_ms: _,
            push_mode,
            prompt_policy,
        } = self;
        out.extend([org_id.as_str(), ikey, name, kind, skey_sealed]);
        opt(out, push_mode.as_ref());
        opt(out, prompt_policy.as_ref());
    }
}

impl Texts for UserRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            org_id,
            user_id,
            username,
            email,
            status,
            created_ms: _,
            failed_attempts: _,
            locked_until_ms: _,
            last_login_ms: _,
            push_muted_until_ms: _,
            factors_frozen_ms: _,
            policy_group,
            last_prompt_method,
            recovery_blocked_until_ms: _,
            probation_until_ms: _,
            last_recovered_ms: _,
        } = self;
        out.extend([org_id.as_str(), user_id, username, status]);
        opt(out, email.as_ref());
        opt(out, policy_group.as_ref());
        opt(out, last_prompt_method.as_ref());
    }
}

impl Texts for TotpRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            org_id,
            totp_id,
            user_id,
            name,
            seed_sealed,
            algorithm,
            digits: _,
            step_secs: _,
            last_step: _,
            created_ms: _,
        } = self;
        out.extend([
            org_id.as_str(),
            totp_id,
            user_id,
            name,
            seed_sealed,
            algorithm,
        ]);
    }
}

impl Texts for AuthTxRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            org_id,
            txid,
            ikey,
            user_id,
            factor,
            result,
            status,
            status_msg,
            created_ms: _,
            expires_ms: _,
        } = self;
        out.extend([
            org_id.as_str(),
            txid,
            ikey,
            factor,
            result,
            status,
            status_msg,
        ]);
        opt(out, user_id.as_ref());
    }
}

impl Texts for NewAudit {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            org_id,
            ts_ms: _,
            actor,
            action,
            target,
            outcome,
            details,
        } = self;
        out.extend([org_id.as_str(), actor, action, target, outcome, details]);
    }
}

impl Texts for ActivationRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            org_id,
            code_hash,
            user_id,
            created_ms: _,
            expires_ms: _,
            used_ms: _,
        } = self;
        out.extend([org_id.as_str(), code_hash, user_id]);
    }
}

impl Texts for DeviceRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            org_id,
            device_id,
            user_id,
            name,
            platform,
            key_alg,
            public_key,
            created_ms: _,
        } = self;
        out.extend([
            org_id.as_str(),
            device_id,
            user_id,
            name,
            platform,
            key_alg,
            public_key,
        ]);
    }
}

impl Texts for PushRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            org_id,
            txid,
            ikey,
            user_id,
            device_id,
            state,
            number,
            context,
            context_hash,
            created_ms: _,
            expires_ms: _,
            decided_ms: _,
        } = self;
        out.extend([
            org_id.as_str(),
            txid,
            ikey,
            user_id,
            device_id,
            state,
            context,
            context_hash,
        ]);
        opt(out, number.as_ref());
    }
}

impl Texts for WebauthnCredentialRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            cred_id,
            org_id,
            user_id,
            name,
            kind,
            credential_sealed,
            aaguid,
            backup_eligible: _,
            backed_up: _,
            sign_count: _,
            created_ms: _,
            last_used_ms: _,
        } = self;
        out.extend([
            cred_id.as_str(),
            org_id,
            user_id,
            name,
            kind,
            credential_sealed,
        ]);
        opt(out, aaguid.as_ref());
    }
}

impl Texts for CeremonyRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            ceremony_hash,
            org_id,
            user_id,
            purpose,
            state_sealed,
            created_ms: _,
            expires_ms: _,
        } = self;
        out.extend([ceremony_hash.as_str(), org_id, purpose, state_sealed]);
        opt(out, user_id.as_ref());
    }
}

impl Texts for SessionRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            session_hash,
            org_id,
            user_id,
            auth_method,
            created_ms: _,
            last_seen_ms: _,
            expires_ms: _,
            step_up_until_ms: _,
        } = self;
        out.extend([session_hash.as_str(), org_id, user_id, auth_method]);
    }
}

impl Texts for UserTokenRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            token_hash,
            org_id,
            user_id,
            purpose,
            created_ms: _,
            expires_ms: _,
            used_ms: _,
        } = self;
        out.extend([token_hash.as_str(), org_id, user_id, purpose]);
    }
}

impl Texts for RecoveryCodeRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            code_id,
            org_id,
            user_id,
            code_hash,
            created_ms: _,
            used_ms: _,
        } = self;
        out.extend([code_id.as_str(), org_id, user_id, code_hash]);
    }
}

impl Texts for RecoveryCaseRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            case_id,
            org_id,
            user_id,
            handle_hash,
            state,
            is_open: _,
            opened_by,
            opened_ms: _,
            updated_ms: _,
            expires_ms: _,
            version: _,
            opened_from,
            adopt_hash,
        } = self;
        out.extend([case_id.as_str(), org_id, handle_hash, state, opened_by]);
        opt(out, user_id.as_ref());
        opt(out, opened_from.as_ref());
        opt(out, adopt_hash.as_ref());
    }
}

impl Texts for RecoveryEventRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            case_id,
            seq: _,
            at_ms: _,
            event,
        } = self;
        out.extend([case_id.as_str(), event]);
    }
}

impl Texts for RoleRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            org_id,
            user_id,
            role,
            granted_ms: _,
            granted_by,
        } = self;
        out.extend([org_id.as_str(), user_id, role, granted_by]);
    }
}

impl Texts for ApproverRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            org_id,
            user_id,
            approver_id,
            added_ms: _,
        } = self;
        out.extend([org_id.as_str(), user_id, approver_id]);
    }
}

impl Texts for OrgRow {
    fn texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        let Self {
            org_id,
            name,
            created_ms: _,
            disabled_ms: _,
        } = self;
        out.extend([org_id.as_str(), name]);
    }
}
