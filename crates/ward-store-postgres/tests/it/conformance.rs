//! Every conformance check, each in its own schema, then the whole suite in one.

use ward_store::conformance;

use crate::{finish, node, with_schema};

macro_rules! checks {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            with_schema(|url| async move {
                let store = node(&url, "node-1").await;
                let result = conformance::$check(&store).await;
                finish(store, result).await;
            })
            .await;
        }
    )*};
}

checks!(
    users,
    duplicate_username,
    user_status,
    last_prompt_method,
    org_scoping,
    orgs,
    org_changes,
    org_chains,
    integrations,
    meta,
    totp_factors,
    totp_step_once,
    concurrent_totp_step,
    auth_failures,
    concurrent_lockout,
    auth_tx,
    audit_chain,
    failed_set_in_batch,
    concurrent_commits,
    poisoned_write_batch,
    activation_once,
    devices,
    nonce_once,
    push_requests,
    decide_push_once,
    concurrent_decide_push,
    concurrent_push_limit,
    mute_push,
    pushes_since,
    signals,
    webauthn_credentials,
    webauthn_counter,
    rename_factor,
    delete_factor,
    ceremony_once,
    concurrent_ceremony,
    sessions,
    end_sessions,
    user_tokens_once,
    recovery_codes,
    account_settings,
    recovery_cases,
    recovery_append,
    recovery_close,
    concurrent_recovery_append,
    recovery_queries,
    concurrent_adopt,
    concurrent_rotate,
    concurrent_notice_slots,
    roles,
    approvers,
    recovery_account_fields,
    revoke_factors,
    purge_portal,
    purge_expired,
    run_all,
);
