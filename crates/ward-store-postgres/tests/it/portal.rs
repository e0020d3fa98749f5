//! The portal's single-use records across nodes: whichever node a finish reaches, a ceremony,
//! a user token, a recovery code and a WebAuthn counter value are each used once.

use futures::future::join_all;
use ward_store::{
    CeremonyRow, Change, ChangeSet, Outcome, PortalStore, RecoveryCodeRow, Store, StoreError,
    UserRow, UserTokenRow, WebauthnCredentialRow, Writer,
};

use crate::{node, with_schema};

fn setup() -> ChangeSet {
    let user = UserRow {
        org_id: "default".into(),
        user_id: "DU1".into(),
        username: "alice".into(),
        email: None,
        status: "active".into(),
        created_ms: 0,
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
    };
    let credential = WebauthnCredentialRow {
        cred_id: "CRED1".into(),
        org_id: "default".into(),
        user_id: "DU1".into(),
        name: "key".into(),
        kind: "passkey".into(),
        credential_sealed: "k1:x".into(),
        aaguid: None,
        backup_eligible: true,
        backed_up: true,
        sign_count: 3,
        created_ms: 0,
        last_used_ms: None,
    };
    let ceremony = CeremonyRow {
        ceremony_hash: "CER1".into(),
        org_id: "default".into(),
        user_id: None,
        purpose: "passkey-signin".into(),
        state_sealed: "k1:state".into(),
        created_ms: 0,
        expires_ms: 60_000,
    };
    let token = UserTokenRow {
        token_hash: "TOK1".into(),
        org_id: "default".into(),
        user_id: "DU1".into(),
        purpose: "enrol".into(),
        created_ms: 0,
        expires_ms: 60_000,
        used_ms: None,
    };
    let code = RecoveryCodeRow {
        code_id: "RC1".into(),
        org_id: "default".into(),
        user_id: "DU1".into(),
        code_hash: "$argon2id$x".into(),
        created_ms: 0,
        used_ms: None,
    };
    ChangeSet::new()
        .with(Change::InsertUser(user))
        .with(Change::InsertWebauthnCredential(credential))
        .with(Change::InsertCeremony(ceremony))
        .with(Change::InsertUserToken(token))
        .with(Change::ReplaceRecoveryCodes {
            org_id: "default".into(),
            user_id: "DU1".into(),
            codes: vec![code],
        })
}

/// One of each single-use change, as attempt `i` makes it.
fn attempt(kind: usize, i: i64) -> Change {
    match kind {
        0 => Change::ConsumeCeremony {
            ceremony_hash: "CER1".into(),
            purpose: "passkey-signin".into(),
            now_ms: 1_000 + i,
        },
        1 => Change::ConsumeUserToken {
            token_hash: "TOK1".into(),
            purpose: "enrol".into(),
            now_ms: 1_000 + i,
        },
        2 => Change::UseRecoveryCode {
            org_id: "default".into(),
            user_id: "DU1".into(),
            code_id: "RC1".into(),
            used_ms: 1_000 + i,
        },
        _ => Change::UseWebauthnCredential {
            cred_id: "CRED1".into(),
            expected_sign_count: 3,
            credential_sealed: format!("k1:{i}"),
            sign_count: 4,
            backed_up: true,
            used_ms: 1_000 + i,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_use_records_are_used_once_across_two_nodes() {
    with_schema(|url| async move {
        let (a, b) = tokio::join!(node(&url, "node-a"), node(&url, "node-b"));
        a.commit(setup()).await.unwrap();
        for kind in 0..4 {
            let uses = (0..20).map(|i| {
                let store: &dyn Store = if i % 2 == 0 { &a } else { &b };
                store.commit(ChangeSet::new().with(attempt(kind, i)))
            });
            let results = join_all(uses).await;
            let won: Vec<i64> = (0..)
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(i, _)| i)
                .collect();
            assert_eq!(won.len(), 1, "kind {kind}: {results:?}");
            let refused = results
                .iter()
                .filter(|r| matches!(r, Err(StoreError::ConditionFailed(_))))
                .count();
            assert_eq!(refused, 19, "kind {kind}: {results:?}");
            if kind == 0 {
                let receipt = results.iter().find_map(|r| r.as_ref().ok()).unwrap();
                let consumed = match &receipt.outcomes[..] {
                    [Outcome::Ceremony(row)] => row.ceremony_hash.as_str(),
                    other => panic!("{other:?}"),
                };
                assert_eq!(consumed, "CER1");
            }
            if kind == 3 {
                let stored = b.webauthn_credential("CRED1").await.unwrap().unwrap();
                let winner = won[0];
                assert_eq!(
                    (stored.credential_sealed, stored.last_used_ms),
                    (format!("k1:{winner}"), Some(1_000 + winner))
                );
            }
        }
        let token = a.user_token("TOK1").await.unwrap().unwrap();
        assert!(token.used_ms.is_some());
        let codes = b.recovery_codes_for_user("default", "DU1").await.unwrap();
        assert!(codes.iter().all(|c| c.used_ms.is_some()), "{codes:?}");
        b.close().await;
        a.close().await;
    })
    .await;
}
