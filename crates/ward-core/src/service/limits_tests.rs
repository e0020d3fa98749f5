//! Regression tests for the limits that did not hold under concurrency: the lockout threshold
//! (100 wrong codes at once, threshold 10) and the push storm limit (40 pushes at once, limit
//! 5), through the service as the Auth API calls it, on SQLite and PostgreSQL.

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
