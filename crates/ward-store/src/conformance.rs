//! The conformance suite every storage backend runs (see [`run_all`]).
//!
//! Each check is a plain `async fn(&dyn Store) -> Result<(), String>` so that backends can run
//! them one by one (one test each, on a fresh database) as well as all together on one store.
//! Checks use their own organisation ids, so they do not disturb each other on a shared store;
//! they expect a freshly migrated database otherwise. They never panic: a failed expectation is
//! an `Err` naming the file, line and what differed.

use crate::{
    AuthTxRow, Change, ChangeSet, CommitReceipt, DeviceRow, GENESIS_HASH, IntegrationRow, NewAudit,
    PushRow, Store, StoreResult, TotpRow, UserRow,
};

/// Fails the check with a message when `cond` does not hold.
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!("{}:{}: {}", file!(), line!(), format_args!($($msg)+)));
        }
    };
}

/// Fails the check when the two values differ, showing both.
macro_rules! check_eq {
    ($left:expr, $right:expr, $($msg:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!(
                "{}:{}: {}\n  left: {:?}\n right: {:?}",
                file!(),
                line!(),
                format_args!($($msg)+),
                left,
                right
            ));
        }
    }};
}

mod accounts;
mod audit;
mod decisions;
mod devices;
mod orgs;
mod portal;
mod push;
mod recovery;

pub use accounts::{
    duplicate_username, integrations, last_prompt_method, meta, org_scoping, user_status, users,
};
pub use audit::{
    audit_chain, concurrent_commits, failed_set_in_batch, poisoned_write_batch, verify_chain,
};
pub use decisions::{
    auth_failures, auth_tx, concurrent_lockout, concurrent_totp_step, totp_factors, totp_step_once,
};
pub use devices::{activation_once, devices, nonce_once};
pub use orgs::{org_chains, org_changes, orgs};
pub use portal::{
    account_settings, ceremony_once, concurrent_ceremony, delete_factor, end_sessions,
    purge_portal, recovery_codes, rename_factor, sessions, user_tokens_once, webauthn_counter,
    webauthn_credentials,
};
pub use push::{
    concurrent_decide_push, concurrent_push_limit, decide_push_once, mute_push, purge_expired,
    push_requests, pushes_since, signals,
};
pub use recovery::{
    approvers, concurrent_adopt, concurrent_notice_slots, concurrent_recovery_append,
    concurrent_rotate, recovery_account_fields, recovery_append, recovery_cases, recovery_close,
    recovery_queries, revoke_factors, roles,
};

/// What a check returns.
pub type Check = Result<(), String>;

/// Runs every check, in order, on one store; stops at the first failure.
pub async fn run_all(store: &dyn Store) -> Check {
    named("users", users(store)).await?;
    named("duplicate_username", duplicate_username(store)).await?;
    named("user_status", user_status(store)).await?;
    named("last_prompt_method", last_prompt_method(store)).await?;
    named("org_scoping", org_scoping(store)).await?;
    named("integrations", integrations(store)).await?;
    named("orgs", orgs(store)).await?;
    named("org_changes", org_changes(store)).await?;
    named("org_chains", org_chains(store)).await?;
    named("meta", meta(store)).await?;
    named("totp_factors", totp_factors(store)).await?;
    named("totp_step_once", totp_step_once(store)).await?;
    named("concurrent_totp_step", concurrent_totp_step(store)).await?;
    named("auth_failures", auth_failures(store)).await?;
    named("concurrent_lockout", concurrent_lockout(store)).await?;
    named("auth_tx", auth_tx(store)).await?;
    named("audit_chain", audit_chain(store)).await?;
    named("failed_set_in_batch", failed_set_in_batch(store)).await?;
    named("concurrent_commits", concurrent_commits(store)).await?;
    named("poisoned_write_batch", poisoned_write_batch(store)).await?;
    named("activation_once", activation_once(store)).await?;
    named("devices", devices(store)).await?;
    named("nonce_once", nonce_once(store)).await?;
    named("push_requests", push_requests(store)).await?;
    named("decide_push_once", decide_push_once(store)).await?;
    named("concurrent_decide_push", concurrent_decide_push(store)).await?;
    named("concurrent_push_limit", concurrent_push_limit(store)).await?;
    named("mute_push", mute_push(store)).await?;
    named("pushes_since", pushes_since(store)).await?;
    named("signals", signals(store)).await?;
    named("webauthn_credentials", webauthn_credentials(store)).await?;
    named("webauthn_counter", webauthn_counter(store)).await?;
    named("rename_factor", rename_factor(store)).await?;
    named("delete_factor", delete_factor(store)).await?;
    named("ceremony_once", ceremony_once(store)).await?;
    named("concurrent_ceremony", concurrent_ceremony(store)).await?;
    named("sessions", sessions(store)).await?;
    named("end_sessions", end_sessions(store)).await?;
    named("user_tokens_once", user_tokens_once(store)).await?;
    named("recovery_codes", recovery_codes(store)).await?;
    named("account_settings", account_settings(store)).await?;
    named("recovery_cases", recovery_cases(store)).await?;
    named("recovery_append", recovery_append(store)).await?;
    named("recovery_close", recovery_close(store)).await?;
    named(
        "concurrent_recovery_append",
        concurrent_recovery_append(store),
    )
    .await?;
    named("recovery_queries", recovery_queries(store)).await?;
    named("concurrent_adopt", concurrent_adopt(store)).await?;
    named("concurrent_rotate", concurrent_rotate(store)).await?;
    named("concurrent_notice_slots", concurrent_notice_slots(store)).await?;
    named("roles", roles(store)).await?;
    named("approvers", approvers(store)).await?;
    named("recovery_account_fields", recovery_account_fields(store)).await?;
    named("revoke_factors", revoke_factors(store)).await?;
    // Last, with the next: they delete other checks' expired rows too.
    named("purge_portal", purge_portal(store)).await?;
    named("purge_expired", purge_expired(store)).await?;
    let mut events = 0;
    for chain in store.audit_chains().await.ctx("audit_chains")? {
        events += verify_chain(store, &chain.chain_id).await?;
    }
    check!(
        events > 0,
        "the suite appended audit events, yet the chains are empty"
    );
    Ok(())
}

async fn named(name: &str, check: impl Future<Output = Check>) -> Check {
    check.await.map_err(|err| format!("{name}: {err}"))
}

/// Turns a store error into a check failure that says what was being done.
trait Ctx<T> {
    fn ctx(self, doing: &str) -> Result<T, String>;
}

impl<T> Ctx<T> for StoreResult<T> {
    fn ctx(self, doing: &str) -> Result<T, String> {
        self.map_err(|err| format!("{doing}: unexpected error: {err}"))
    }
}

/// Commits the given changes as one set.
async fn commit(store: &dyn Store, changes: Vec<Change>) -> StoreResult<CommitReceipt> {
    store.commit(ChangeSet { changes }).await
}

fn user(org_id: &str, user_id: &str, username: &str) -> UserRow {
    UserRow {
        org_id: org_id.into(),
        user_id: user_id.into(),
        username: username.into(),
        email: None,
        status: "active".into(),
        created_ms: 1_000,
        failed_attempts: 0,
        locked_until_ms: None,
        last_login_ms: None,
        push_muted_until_ms: None,
        factors_frozen_ms: None,
        policy_group: None,
        last_prompt_method: None,
        recovery_blocked_until_ms: None,
        probation_until_ms: None,
        last_recovered_ms: None,
    }
}

fn totp(org_id: &str, totp_id: &str, user_id: &str, created_ms: i64) -> TotpRow {
    TotpRow {
        org_id: org_id.into(),
        totp_id: totp_id.into(),
        user_id: user_id.into(),
        name: format!("phone {totp_id}"),
        seed_sealed: format!("k1:sealed-seed-of-{totp_id}"),
        algorithm: "sha1".into(),
        digits: 6,
        step_secs: 30,
        last_step: None,
        created_ms,
    }
}

fn integration(org_id: &str, ikey: &str, created_ms: i64) -> IntegrationRow {
    IntegrationRow {
        org_id: org_id.into(),
        ikey: ikey.into(),
        name: format!("app {ikey}"),
        kind: "auth-api".into(),
        skey_sealed: format!("k1:sealed-skey-of-{ikey}"),
        push_mode: Some("plain".into()),
        prompt_policy: Some("{\"passcode\":false}".into()),
        created_ms,
    }
}

fn auth_tx_row(org_id: &str, txid: &str, user_id: &str) -> AuthTxRow {
    AuthTxRow {
        org_id: org_id.into(),
        txid: txid.into(),
        ikey: "DICONFORMANCE".into(),
        user_id: Some(user_id.into()),
        factor: "push".into(),
        result: "waiting".into(),
        status: "pushed".into(),
        status_msg: "Pushed a login request to your device...".into(),
        created_ms: 1_000,
        expires_ms: 61_000,
    }
}

fn device_row(org_id: &str, device_id: &str, user_id: &str, created_ms: i64) -> DeviceRow {
    DeviceRow {
        org_id: org_id.into(),
        device_id: device_id.into(),
        user_id: user_id.into(),
        name: format!("phone {device_id}"),
        platform: "android".into(),
        key_alg: "ed25519".into(),
        public_key: format!("public-key-of-{device_id}"),
        created_ms,
    }
}

/// A pending push to `user_id`'s `device_id`, made at `created_ms`, expiring a minute later.
fn push_row(org_id: &str, txid: &str, user_id: &str, device_id: &str, created_ms: i64) -> PushRow {
    PushRow {
        org_id: org_id.into(),
        txid: txid.into(),
        ikey: "DICONFORMANCE".into(),
        user_id: user_id.into(),
        device_id: device_id.into(),
        state: "pending".into(),
        number: None,
        context: format!("{{\"txid\":\"{txid}\"}}"),
        context_hash: format!("hash-of-{txid}"),
        created_ms,
        expires_ms: created_ms + 60_000,
        decided_ms: None,
    }
}

fn event(org_id: &str, action: &str, target: &str) -> NewAudit {
    NewAudit {
        org_id: org_id.into(),
        ts_ms: 1_000,
        actor: "cli".into(),
        action: action.into(),
        target: target.into(),
        outcome: "ok".into(),
        details: format!("{{\"target\":\"{target}\"}}"),
    }
}

/// The recorded head of this store's chain of `org`: `(seq, hash)`, `(0, GENESIS_HASH)` for a
/// new chain.
async fn head(store: &dyn Store, org: &str) -> Result<(i64, String), String> {
    let chains = store.audit_chains().await.ctx("reading audit chains")?;
    let chain_id = store.chain_for(org);
    Ok(chains
        .into_iter()
        .find(|chain| chain.chain_id == chain_id)
        .map_or_else(
            || (0, GENESIS_HASH.to_owned()),
            |c| (c.head_seq, c.head_hash),
        ))
}
