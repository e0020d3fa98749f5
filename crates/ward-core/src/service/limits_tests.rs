//! Regression tests for the limits that did not hold under concurrency: the lockout threshold
//! (100 wrong codes at once, threshold 10, also with the right code sent inside the burst) and
//! the push storm limit (40 pushes at once, limit 5), through the service as the Auth API calls
//! it, on SQLite and PostgreSQL.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::join_all;
use ward_store::{DEFAULT_ORG, Store};
use ward_testkit::db::TempSqlite;

use super::*;
use crate::crypto::MasterKey;
use crate::model::{Actor, IntegrationKind, UserRef};
use crate::policy::{ApiPushMode, PushPolicy};
use crate::totp::{Algorithm, Totp};

const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

async fn service(store: Arc<dyn Store>) -> (Ward, AuthContext, DateTime<Utc>) {
    let policy = AuthPolicy {
        lockout_threshold: 10,
        push: PushPolicy {
            storm_limit: 5,
            storm_window: TimeDelta::minutes(10),
            ..PushPolicy::default()
        },
        ..AuthPolicy::default()
    };
    let keys = Keyring::new(MasterKey::from_bytes([3; 32]), vec![]);
    let ward = Ward::new(store, keys, policy, "Ward").await.unwrap();
    let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let (integration, _) = ward
        .admin()
        .create_integration(
            default_org(),
            &Actor::Cli,
            "VPN",
            IntegrationKind::AuthApi,
            Some(ApiPushMode::Plain),
            now,
        )
        .await
        .unwrap();
    ward.admin()
        .create_user(default_org(), &Actor::Cli, "alice", None, now)
        .await
        .unwrap();
    ward.admin()
        .add_totp(
            default_org(),
            &Actor::Cli,
            "alice",
            Some(SECRET),
            Algorithm::Sha1,
            6,
            now,
        )
        .await
        .unwrap();
    let ctx = AuthContext {
        integration,
        user_ip: None,
        client_ip: None,
    };
    (ward, ctx, now)
}

fn right_code(now: DateTime<Utc>) -> String {
    let t = Totp::new(
        crate::totp::base32_decode(SECRET).unwrap(),
        Algorithm::Sha1,
        6,
        30,
    )
    .unwrap();
    t.code(u64::try_from(t.step_at(now.timestamp())).unwrap())
        .to_string()
}

/// 100 wrong codes at once with threshold 10: exactly ten are checked and denied, the rest are
/// answered locked out, and the right code sent after them is not accepted (nor does it clear
/// the lock).
async fn lockout_holds(store: Arc<dyn Store>) {
    let (ward, ctx, now) = service(Arc::clone(&store)).await;
    let alice = UserRef::Name("alice".into());
    let right = right_code(now);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let burst = (0..100).map(|_| ward.auth().passcode(&ctx, &alice, wrong, false, now));
    let decisions: Vec<AuthDecision> = join_all(burst)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let denied = decisions
        .iter()
        .filter(|d| d.status == AuthStatus::Deny)
        .count();
    let locked = decisions
        .iter()
        .filter(|d| d.status == AuthStatus::LockedOut)
        .count();
    assert_eq!((denied, locked), (10, 90), "{decisions:?}");

    let late = ward
        .auth()
        .passcode(&ctx, &alice, &right, false, now)
        .await
        .unwrap();
    assert_eq!(late.status, AuthStatus::LockedOut);
    let row = store
        .user_by_name(DEFAULT_ORG, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.failed_attempts, 10);
    assert!(
        row.locked_until_ms
            .is_some_and(|t| t > now.timestamp_millis())
    );
}

/// Where the right code goes among the 100: first, just before and at the threshold, in the
/// middle, last.
const RIGHT_AT: [usize; 7] = [0, 5, 9, 10, 11, 50, 99];

/// 100 codes at once with threshold 10, the right one among 99 wrong ones (one account per
/// position of the right code): the threshold holds, the right code is accepted only while the
/// account is not locked, and its success never clears a lock that other requests set.
async fn lockout_holds_with_the_right_code_inside(store: Arc<dyn Store>) {
    let (ward, ctx, now) = service(Arc::clone(&store)).await;
    let threshold = 10;
    let right = right_code(now);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for at in RIGHT_AT {
        let name = format!("user{at}");
        let user_id = enrol(&ward, &name, now).await;
        let user = UserRef::Name(name.clone());
        let burst = (0..100).map(|i| {
            let code = if i == at { right.as_str() } else { wrong };
            ward.auth().passcode(&ctx, &user, code, false, now)
        });
        let statuses: Vec<AuthStatus> = join_all(burst)
            .await
            .into_iter()
            .map(|d| d.unwrap().status)
            .collect();
        let right_status = statuses[at];
        assert!(
            matches!(right_status, AuthStatus::Allow | AuthStatus::LockedOut),
            "right code at {at}: {right_status:?}"
        );
        let wrong_statuses = statuses
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != at)
            .map(|(_, s)| *s);
        assert!(
            wrong_statuses
                .clone()
                .all(|s| matches!(s, AuthStatus::Deny | AuthStatus::LockedOut)),
            "{statuses:?}"
        );
        let denied = wrong_statuses.filter(|s| *s == AuthStatus::Deny).count();

        // Exactly the threshold's worth of failures were counted before the lock, and the lock
        // is in place: no success cleared it.
        let row = store
            .user_by_name(DEFAULT_ORG, &name)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.failed_attempts, threshold, "right code at {at}");
        assert!(
            row.locked_until_ms
                .is_some_and(|t| t > now.timestamp_millis()),
            "right code at {at}: not locked: {row:?}"
        );
        // In the order the store decided: a success came before the threshold was reached
        // (and restarted the count), and then exactly the threshold's worth of failures.
        let audit = super::passkey_tests::audit_of(store.as_ref()).await;
        let decided: Vec<&str> = audit
            .iter()
            .filter(|e| e["action"] == "auth.passcode" && e["target"] == user_id.as_str())
            .filter(|e| e["outcome"] == "allow" || e["details"]["reason"] == "wrong_passcode")
            .map(|e| e["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(
            decided.len(),
            denied + usize::from(right_status == AuthStatus::Allow)
        );
        let limit = usize::try_from(threshold).unwrap();
        match decided.iter().position(|o| *o == "allow") {
            Some(before) => {
                assert!(before < limit, "right code at {at}: allowed after {before}");
                assert_eq!(decided.len() - before - 1, limit, "right code at {at}");
            }
            None => assert_eq!(denied, limit, "right code at {at}"),
        }

        // The right code of the next time step, after the burst: still locked out.
        let later = now + TimeDelta::seconds(30);
        let late = ward
            .auth()
            .passcode(&ctx, &user, &right_code(later), false, later)
            .await
            .unwrap();
        assert_eq!(late.status, AuthStatus::LockedOut, "right code at {at}");
        let row = store
            .user_by_name(DEFAULT_ORG, &name)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.failed_attempts, threshold);
    }
}

/// A user with the test authenticator; returns the user's id.
async fn enrol(ward: &Ward, name: &str, now: DateTime<Utc>) -> String {
    let user = ward
        .admin()
        .create_user(default_org(), &Actor::Cli, name, None, now)
        .await
        .unwrap();
    ward.admin()
        .add_totp(
            default_org(),
            &Actor::Cli,
            name,
            Some(SECRET),
            Algorithm::Sha1,
            6,
            now,
        )
        .await
        .unwrap();
    user.id.into_string()
}

/// 40 pushes at once with a storm limit of 5: exactly five are sent.
async fn storm_limit_holds(store: Arc<dyn Store>) {
    let (ward, ctx, now) = service(Arc::clone(&store)).await;
    let code = ward
        .devices()
        .activation_code(default_org(), &Actor::Cli, "alice", now)
        .await
        .unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let req = ward_proto::device::ActivateRequest {
        code: code.code.to_string(),
        algorithm: ward_proto::device::KeyAlgorithm::Ed25519,
        public_key: base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            key.verifying_key().as_bytes(),
        ),
        name: "phone".into(),
        platform: "linux".into(),
    };
    ward.devices().activate(&req, now).await.unwrap();
    let alice = UserRef::Name("alice".into());
    let pushes = (0..40).map(|_| {
        ward.auth()
            .start_api_push(&ctx, &alice, PushRequest::default(), true, now)
    });
    let outcomes: Vec<PushOutcome> = join_all(pushes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let sent = outcomes
        .iter()
        .filter(|o| matches!(o, PushOutcome::Started(_)))
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, PushOutcome::Decided(d) if d.status == AuthStatus::PushRefused))
        .count();
    assert_eq!((sent, refused), (5, 35), "{outcomes:?}");
    let user = store
        .user_by_name(DEFAULT_ORG, "alice")
        .await
        .unwrap()
        .unwrap();
    let since = (now - TimeDelta::minutes(10)).timestamp_millis();
    assert_eq!(
        store
            .pushes_since(DEFAULT_ORG, &user.user_id, since)
            .await
            .unwrap(),
        5
    );
}

async fn sqlite() -> (TempSqlite, Arc<dyn Store>) {
    ward_testkit::db::sqlite("test").await
}

async fn postgres(url: &str) -> Arc<dyn Store> {
    ward_testkit::db::postgres(url, "node-a").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_holds_under_100_concurrent_wrong_codes_on_sqlite() {
    let (_dir, store) = sqlite().await;
    lockout_holds(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_holds_under_100_concurrent_wrong_codes_on_postgres() {
    super::passkey_tests::on_postgres(|url| async move {
        lockout_holds(postgres(&url).await).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_holds_with_the_right_code_inside_the_burst_on_sqlite() {
    let (_dir, store) = sqlite().await;
    lockout_holds_with_the_right_code_inside(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_holds_with_the_right_code_inside_the_burst_on_postgres() {
    super::passkey_tests::on_postgres(|url| async move {
        lockout_holds_with_the_right_code_inside(postgres(&url).await).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_limit_holds_under_40_concurrent_pushes_on_sqlite() {
    let (_dir, store) = sqlite().await;
    storm_limit_holds(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_limit_holds_under_40_concurrent_pushes_on_postgres() {
    super::passkey_tests::on_postgres(|url| async move {
        storm_limit_holds(postgres(&url).await).await;
    })
    .await;
}
