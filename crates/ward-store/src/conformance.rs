//! The conformance suite every storage backend runs: [`conformance_tests!`](crate::conformance_tests)
//! makes one test per check in a backend's test crate.
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
mod nodes;
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
pub use nodes::{
    chains_across_nodes, limits_across_nodes, push_decision_across_nodes, single_use_across_nodes,
    step_once_across_nodes,
};
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

/// What a backend's test crate supplies to [`conformance_tests!`](crate::conformance_tests):
/// fresh, migrated databases. Implementations fail the test (panic) with the check's message.
pub trait Harness {
    /// Runs `check` on one node of a fresh database, then closes the node.
    fn one(check: impl AsyncFnOnce(&dyn Store) -> Check) -> impl Future<Output = ()>;
    /// Runs `check` on two nodes of one fresh database (separate pools and writer connections,
    /// chains `node-a` and `node-b`), as two servers or a server and the CLI would be, then
    /// closes them.
    fn two(check: impl AsyncFnOnce(&dyn Store, &dyn Store) -> Check) -> impl Future<Output = ()>;
}

/// Generates one `#[tokio::test]` per conformance check, run through the given [`Harness`]
/// type: single-node checks each on a fresh database, [`run_all`] on one, and the two-node
/// checks. A backend's test crate (which must depend on `tokio`) calls it once:
///
/// ```ignore
/// struct Fresh;
/// impl ward_store::conformance::Harness for Fresh { /* … */ }
/// ward_store::conformance_tests!(Fresh);
/// ```
///
/// A new check is added here, in this one list, and runs on every backend.
#[macro_export]
macro_rules! conformance_tests {
    (@checks [$($how:tt)*]) => {
        $crate::conformance_tests!(
            @$($how)*
            one: [
                users
                duplicate_username
                user_status
                last_prompt_method
                org_scoping
                integrations
                orgs
                org_changes
                org_chains
                meta
                totp_factors
                totp_step_once
                concurrent_totp_step
                auth_failures
                concurrent_lockout
                auth_tx
                audit_chain
                failed_set_in_batch
                concurrent_commits
                poisoned_write_batch
                activation_once
                devices
                nonce_once
                push_requests
                decide_push_once
                concurrent_decide_push
                concurrent_push_limit
                mute_push
                pushes_since
                signals
                webauthn_credentials
                webauthn_counter
                rename_factor
                delete_factor
                ceremony_once
                concurrent_ceremony
                sessions
                end_sessions
                user_tokens_once
                recovery_codes
                account_settings
                recovery_cases
                recovery_append
                recovery_close
                concurrent_recovery_append
                recovery_queries
                concurrent_adopt
                concurrent_rotate
                concurrent_notice_slots
                roles
                approvers
                recovery_account_fields
                revoke_factors
                purge_portal
                purge_expired
            ]
            two: [
                step_once_across_nodes
                chains_across_nodes
                limits_across_nodes
                single_use_across_nodes
                push_decision_across_nodes
            ]
        );
    };
    // In `run_all`: every single-node check in order on one store.
    (@run_all $store:ident one: [$($one:ident)*] two: [$($two:ident)*]) => {
        $(
            $crate::conformance::named(::std::stringify!($one), $crate::conformance::$one($store))
                .await?;
        )*
    };
    (@tests $harness:ty; one: [$($one:ident)*] two: [$($two:ident)*]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $one() {
                <$harness as $crate::conformance::Harness>::one($crate::conformance::$one).await;
            }
        )*
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $two() {
                <$harness as $crate::conformance::Harness>::two($crate::conformance::$two).await;
            }
        )*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn run_all() {
            <$harness as $crate::conformance::Harness>::one($crate::conformance::run_all).await;
        }
    };
    ($harness:ty) => {
        $crate::conformance_tests!(@checks [tests $harness;]);
    };
}

/// Runs every single-node check, in order, on one store; stops at the first failure. The
/// last two delete other checks' expired rows too, so they stay last.
pub async fn run_all(store: &dyn Store) -> Check {
    crate::conformance_tests!(@checks [run_all store]);
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

#[doc(hidden)]
pub async fn named(name: &str, check: impl Future<Output = Check>) -> Check {
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
