//! Two nodes on one database (two servers on PostgreSQL; a server and the CLI on one SQLite
//! file): each decision is won once whichever node it reaches, limits hold across them, and
//! each node's audit chain stays gap-free and verifiable from the other.

use futures::future::join_all;

use super::{Check, Ctx, commit, device_row, event, push_row, totp, user, verify_chain};
use crate::{
    CeremonyRow, Change, CommitReceipt, Outcome, RecoveryCodeRow, Store, StoreError, StoreResult,
    UserTokenRow, WebauthnCredentialRow,
};

/// The node of attempt `i`: alternately `a` and `b`.
fn node<'s>(a: &'s dyn Store, b: &'s dyn Store, i: i64) -> &'s dyn Store {
    if i % 2 == 0 { a } else { b }
}

/// How many results are `Ok`, and whether every other one is `ConditionFailed`.
fn tally(results: &[StoreResult<CommitReceipt>]) -> (usize, bool) {
    let won = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .all(|r| r.is_ok() || matches!(r, Err(StoreError::ConditionFailed(_))));
    (won, refused)
}

fn use_step(org: &str, step: i64) -> Vec<Change> {
    vec![
        Change::Audit(event(org, "auth.passcode", "NU1")),
        Change::UseTotpStep {
            org_id: org.into(),
            totp_id: "NT1".into(),
            step,
        },
    ]
}

/// A TOTP step used through one node is refused through the other, and of two nodes racing
/// for a step exactly one wins.
pub async fn step_once_across_nodes(a: &dyn Store, b: &dyn Store) -> Check {
    let org = "conf-nodes-step";
    let setup = vec![
        Change::InsertUser(user(org, "NU1", "alice")),
        Change::InsertTotp(totp(org, "NT1", "NU1", 1)),
    ];
    commit(a, setup).await.ctx("setup")?;
    commit(a, use_step(org, 10)).await.ctx("first use")?;
    let replay = commit(b, use_step(org, 10)).await;
    check!(
        matches!(replay, Err(StoreError::ConditionFailed(_))),
        "the step used on node a is refused on node b: {replay:?}"
    );
    for step in 11..=20 {
        let (ra, rb) = futures::join!(
            commit(a, use_step(org, step)),
            commit(b, use_step(org, step))
        );
        let results = [ra, rb];
        check_eq!(tally(&results), (1, true), "step {step}: {results:?}");
    }
    let on_a = verify_chain(a, &a.chain_for(org)).await?;
    let on_b = verify_chain(b, &b.chain_for(org)).await?;
    check_eq!(on_a + on_b, 11, "one audit event per winning use");
    check_eq!(
        verify_chain(b, &a.chain_for(org)).await?,
        on_a,
        "node b verifies node a's chain"
    );
    Ok(())
}

/// Concurrent commits spread over two nodes keep both chains gap-free.
pub async fn chains_across_nodes(a: &dyn Store, b: &dyn Store) -> Check {
    let org = "conf-nodes-chains";
    let commits = (0..60).map(|i| {
        let id = format!("NU{i}");
        let set = vec![
            Change::InsertUser(user(org, &id, &format!("user{i}"))),
            Change::Audit(event(org, "user.create", &id)),
        ];
        commit(node(a, b, i), set)
    });
    for result in join_all(commits).await {
        result.ctx("commit")?;
    }
    check_eq!(
        verify_chain(a, &a.chain_for(org)).await?,
        30,
        "node a's chain"
    );
    check_eq!(
        verify_chain(a, &b.chain_for(org)).await?,
        30,
        "node b's chain"
    );
    let users = b.list_users(org, 200, 0).await.ctx("list users")?;
    check_eq!(users.len(), 60, "every user is stored");
    Ok(())
}

/// The lockout threshold and the push storm limit hold across nodes: 40 concurrent failures
/// (threshold 10) and 40 concurrent limited pushes (limit 5), split over two nodes.
pub async fn limits_across_nodes(a: &dyn Store, b: &dyn Store) -> Check {
    let org = "conf-nodes-limits";
    let setup = vec![
        Change::InsertUser(user(org, "NU1", "alice")),
        Change::InsertDevice(device_row(org, "ND1", "NU1", 1)),
    ];
    commit(a, setup).await.ctx("setup")?;
    let fail = || {
        vec![Change::RecordAuthFailure {
            org_id: org.into(),
            user_id: "NU1".into(),
            threshold: 10,
            lock_until_ms: 9_000,
            now_ms: 1_000,
        }]
    };
    let results = join_all((0..40).map(|i| commit(node(a, b, i), fail()))).await;
    check_eq!(tally(&results), (10, true), "failures counted: {results:?}");
    let stored = b.user_by_id(org, "NU1").await.ctx("user")?;
    check_eq!(
        stored.map(|u| (u.failed_attempts, u.locked_until_ms)),
        Some((10, Some(9_000))),
        "the account is locked after the threshold"
    );
    let push = |i: i64| {
        vec![
            Change::CheckPushLimit {
                org_id: org.into(),
                user_id: "NU1".into(),
                since_ms: 0,
                limit: 5,
            },
            Change::InsertPush(push_row(org, &format!("NX{i}"), "NU1", "ND1", 1_000)),
        ]
    };
    let results = join_all((0..40).map(|i| commit(node(a, b, i), push(i)))).await;
    check_eq!(tally(&results), (5, true), "pushes sent: {results:?}");
    let sent = a.pushes_since(org, "NU1", 0).await.ctx("pushes since")?;
    check_eq!(sent, 5, "pushes stored");
    Ok(())
}

fn single_use_setup(org: &str) -> Vec<Change> {
    let credential = WebauthnCredentialRow {
        cred_id: "NCRED1".into(),
        org_id: org.into(),
        user_id: "NU1".into(),
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
        ceremony_hash: "NCER1".into(),
        org_id: org.into(),
        user_id: None,
        purpose: "passkey-signin".into(),
        state_sealed: "k1:state".into(),
        created_ms: 0,
        expires_ms: 60_000,
    };
    let token = UserTokenRow {
        token_hash: "NTOK1".into(),
        org_id: org.into(),
        user_id: "NU1".into(),
        purpose: "enrol".into(),
        created_ms: 0,
        expires_ms: 60_000,
        used_ms: None,
    };
    let code = RecoveryCodeRow {
        code_id: "NRC1".into(),
        org_id: org.into(),
        user_id: "NU1".into(),
        code_hash: "$argon2id$x".into(),
        created_ms: 0,
        used_ms: None,
    };
    vec![
        Change::InsertUser(user(org, "NU1", "alice")),
        Change::InsertWebauthnCredential(credential),
        Change::InsertCeremony(ceremony),
        Change::InsertUserToken(token),
        Change::ReplaceRecoveryCodes {
            org_id: org.into(),
            user_id: "NU1".into(),
            codes: vec![code],
        },
    ]
}

/// One of each single-use change, as attempt `i` makes it.
fn attempt(org: &str, kind: usize, i: i64) -> Change {
    match kind {
        0 => Change::ConsumeCeremony {
            ceremony_hash: "NCER1".into(),
            purpose: "passkey-signin".into(),
            now_ms: 1_000 + i,
        },
        1 => Change::ConsumeUserToken {
            token_hash: "NTOK1".into(),
            purpose: "enrol".into(),
            now_ms: 1_000 + i,
        },
        2 => Change::UseRecoveryCode {
            org_id: org.into(),
            user_id: "NU1".into(),
            code_id: "NRC1".into(),
            used_ms: 1_000 + i,
        },
        _ => Change::UseWebauthnCredential {
            cred_id: "NCRED1".into(),
            expected_sign_count: 3,
            credential_sealed: format!("k1:{i}"),
            sign_count: 4,
            backed_up: true,
            used_ms: 1_000 + i,
        },
    }
}

/// Whichever node a finish reaches, a ceremony, a user token, a recovery code and a WebAuthn
/// counter value are each used once.
pub async fn single_use_across_nodes(a: &dyn Store, b: &dyn Store) -> Check {
    let org = "conf-nodes-single";
    commit(a, single_use_setup(org)).await.ctx("setup")?;
    for kind in 0..4 {
        let uses = (0..20).map(|i| commit(node(a, b, i), vec![attempt(org, kind, i)]));
        let results = join_all(uses).await;
        check_eq!(tally(&results), (1, true), "kind {kind}: {results:?}");
        let winner = (0_i64..).zip(&results).find(|(_, r)| r.is_ok());
        if let (0, Some((_, Ok(receipt)))) = (kind, winner) {
            let consumed = match receipt.outcomes.as_slice() {
                [Outcome::Ceremony(row)] => Some(row.ceremony_hash.as_str()),
                _ => None,
            };
            check_eq!(consumed, Some("NCER1"), "the ceremony is handed out");
        }
        if let (3, Some((i, _))) = (kind, winner) {
            let stored = b.webauthn_credential("NCRED1").await.ctx("credential")?;
            check_eq!(
                stored.map(|c| (c.credential_sealed, c.last_used_ms)),
                Some((format!("k1:{i}"), Some(1_000 + i))),
                "the winner's counter update is stored"
            );
        }
    }
    let token = a.user_token("NTOK1").await.ctx("token")?;
    check!(
        token.is_some_and(|t| t.used_ms.is_some()),
        "the token is used"
    );
    let codes = b.recovery_codes_for_user(org, "NU1").await.ctx("codes")?;
    check!(
        codes.iter().all(|c| c.used_ms.is_some()),
        "the code is used: {codes:?}"
    );
    Ok(())
}

/// Of 20 concurrent decisions of one push spread over two nodes, exactly one wins, and both
/// nodes read the winner's decision.
pub async fn push_decision_across_nodes(a: &dyn Store, b: &dyn Store) -> Check {
    let org = "conf-nodes-push";
    let pending = push_row(org, "NXRACE", "NU1", "ND1", 1_000);
    commit(a, vec![Change::InsertPush(pending)])
        .await
        .ctx("insert")?;
    let state = |i: i64| if i % 2 == 0 { "approved" } else { "denied" };
    let decisions = (0..20).map(|i| {
        let decide = Change::DecidePush {
            org_id: org.into(),
            txid: "NXRACE".into(),
            state: state(i).into(),
            decided_ms: 2_000 + i,
        };
        // Neighbouring attempts go to the same node, so both nodes see both states race.
        commit(node(a, b, i / 2), vec![decide])
    });
    let results = join_all(decisions).await;
    check_eq!(tally(&results), (1, true), "{results:?}");
    let winner = (0_i64..)
        .zip(&results)
        .find(|(_, r)| r.is_ok())
        .map(|(i, _)| i);
    let expected = winner.map(|i| (state(i).to_owned(), Some(2_000 + i)));
    for store in [a, b] {
        let stored = store.push(org, "NXRACE").await.ctx("push")?;
        check_eq!(
            stored.map(|p| (p.state, p.decided_ms)),
            expected,
            "{} reads the winner's decision",
            store.chain_id()
        );
    }
    Ok(())
}
