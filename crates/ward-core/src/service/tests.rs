use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use ward_store::Store;
use ward_testkit::db::TempSqlite;

use super::*;
use crate::crypto::MasterKey;
use crate::model::{Actor, IntegrationId, IntegrationKind, UserRef, UserStatus};
use crate::policy::UnknownUserPolicy;
use crate::totp::{Algorithm, Totp};

const SECRET_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

struct Fixture {
    _db: TempSqlite,
    store: Arc<dyn Store>,
    ward: Ward,
    ctx: AuthContext,
    now: DateTime<Utc>,
}

async fn store_in(db: &TempSqlite) -> Arc<dyn Store> {
    db.store("test").await
}

async fn fixture(policy: AuthPolicy) -> Fixture {
    let db = TempSqlite::new();
    let store = store_in(&db).await;
    let keys = Keyring::new(MasterKey::from_bytes([9; 32]), vec![]);
    let ward = Ward::new(Arc::clone(&store), keys, policy, "Ward")
        .await
        .unwrap();
    let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let (integration, _skey) = ward
        .admin()
        .create_integration(
            default_org(),
            &Actor::Cli,
            "app",
            IntegrationKind::AuthApi,
            None,
            now,
        )
        .await
        .unwrap();
    let ctx = AuthContext {
        integration,
        user_ip: Some("192.0.2.1".into()),
        client_ip: None,
    };
    Fixture {
        _db: db,
        store,
        ward,
        ctx,
        now,
    }
}

fn code_at(now: DateTime<Utc>) -> String {
    let t = Totp::new(
        crate::totp::base32_decode(SECRET_B32).unwrap(),
        Algorithm::Sha1,
        6,
        30,
    )
    .unwrap();
    t.code(t.step_at(now.timestamp()) as u64).to_string()
}

async fn alice(f: &Fixture) -> UserRef {
    f.ward
        .admin()
        .create_user(
            default_org(),
            &Actor::Cli,
            "alice",
            Some("alice@example.com"),
            f.now,
        )
        .await
        .unwrap();
    f.ward
        .admin()
        .add_totp(
            default_org(),
            &Actor::Cli,
            "alice",
            Some(SECRET_B32),
            Algorithm::Sha1,
            6,
            f.now,
        )
        .await
        .unwrap();
    UserRef::Name("alice".into())
}

#[tokio::test]
async fn passcode_is_accepted_once() {
    let f = fixture(AuthPolicy::default()).await;
    let alice = alice(&f).await;
    let code = code_at(f.now);
    let first = f
        .ward
        .auth()
        .passcode(&f.ctx, &alice, &code, false, f.now)
        .await
        .unwrap();
    assert!(first.allowed);
    assert_eq!(first.status, AuthStatus::Allow);
    let again = f
        .ward
        .auth()
        .passcode(&f.ctx, &alice, &code, false, f.now)
        .await
        .unwrap();
    assert!(!again.allowed);
    assert_eq!(again.status_msg, "Incorrect passcode. Please try again.");
    let wrong = f
        .ward
        .auth()
        .passcode(&f.ctx, &alice, "000000", false, f.now)
        .await
        .unwrap();
    assert!(!wrong.allowed);
    // A replay and a wrong code look the same to the caller.
    assert_eq!(again, wrong);
}

#[tokio::test]
async fn preauth_lists_totp_devices_and_follows_unknown_user_policy() {
    let f = fixture(AuthPolicy::default()).await;
    let alice = alice(&f).await;
    match f.ward.auth().preauth(&f.ctx, &alice, f.now).await.unwrap() {
        PreauthOutcome::Auth { devices, .. } => {
            assert_eq!(devices.len(), 1);
            assert_eq!(devices[0].capabilities, vec![Capability::MobileOtp]);
        }
        other => panic!("expected auth, got {other:?}"),
    }
    let nobody = UserRef::Name("nobody".into());
    assert_eq!(
        f.ward.auth().preauth(&f.ctx, &nobody, f.now).await.unwrap(),
        PreauthOutcome::Deny {
            reason: DenyReason::UnknownUser
        }
    );
    let enroll = fixture(AuthPolicy {
        unknown_user: UnknownUserPolicy::Enroll,
        ..AuthPolicy::default()
    })
    .await;
    assert!(matches!(
        enroll
            .ward
            .auth()
            .preauth(&enroll.ctx, &nobody, enroll.now)
            .await
            .unwrap(),
        PreauthOutcome::Enroll { .. }
    ));
}

#[tokio::test]
async fn disabled_user_is_denied_even_with_a_good_code() {
    let f = fixture(AuthPolicy::default()).await;
    let alice = alice(&f).await;
    f.ward
        .admin()
        .set_user_status(
            default_org(),
            &Actor::Cli,
            "alice",
            UserStatus::Disabled,
            f.now,
        )
        .await
        .unwrap();
    assert_eq!(
        f.ward.auth().preauth(&f.ctx, &alice, f.now).await.unwrap(),
        PreauthOutcome::Deny {
            reason: DenyReason::Disabled
        }
    );
    let d = f
        .ward
        .auth()
        .passcode(&f.ctx, &alice, &code_at(f.now), false, f.now)
        .await
        .unwrap();
    assert!(!d.allowed);
    f.ward
        .admin()
        .set_user_status(
            default_org(),
            &Actor::Cli,
            "alice",
            UserStatus::Active,
            f.now,
        )
        .await
        .unwrap();
    let d = f
        .ward
        .auth()
        .passcode(&f.ctx, &alice, &code_at(f.now), false, f.now)
        .await
        .unwrap();
    assert!(d.allowed);
}

#[tokio::test]
async fn lockout_after_threshold_and_expiry() {
    let policy = AuthPolicy {
        lockout_threshold: 3,
        ..AuthPolicy::default()
    };
    let f = fixture(policy).await;
    let alice = alice(&f).await;
    for _ in 0..3 {
        let d = f
            .ward
            .auth()
            .passcode(&f.ctx, &alice, "999999", false, f.now)
            .await
            .unwrap();
        assert_eq!(d.status, AuthStatus::Deny);
    }
    assert_eq!(
        f.ward.auth().preauth(&f.ctx, &alice, f.now).await.unwrap(),
        PreauthOutcome::Deny {
            reason: DenyReason::LockedOut
        }
    );
    let locked = f
        .ward
        .auth()
        .passcode(&f.ctx, &alice, &code_at(f.now), false, f.now)
        .await
        .unwrap();
    assert_eq!(locked.status, AuthStatus::LockedOut);
    // After the lock expires, a correct code works and clears the count.
    let later = f.now + TimeDelta::minutes(16);
    let ok = f
        .ward
        .auth()
        .passcode(&f.ctx, &alice, &code_at(later), false, later)
        .await
        .unwrap();
    assert!(ok.allowed);
    assert_eq!(
        f.ward
            .admin()
            .user(default_org(), "alice")
            .await
            .unwrap()
            .failed_attempts,
        0
    );
}

#[tokio::test]
async fn async_decisions_are_readable_by_the_same_integration_only() {
    let f = fixture(AuthPolicy::default()).await;
    let alice = alice(&f).await;
    let d = f
        .ward
        .auth()
        .passcode(&f.ctx, &alice, &code_at(f.now), true, f.now)
        .await
        .unwrap();
    let txid = d.txid.unwrap();
    let view = f.ward.auth().status(&f.ctx, &txid, f.now).await.unwrap();
    assert_eq!(view.result, TxResult::Allow);
    let (other, _) = f
        .ward
        .admin()
        .create_integration(
            default_org(),
            &Actor::Cli,
            "other",
            IntegrationKind::AuthApi,
            None,
            f.now,
        )
        .await
        .unwrap();
    let other_ctx = AuthContext {
        integration: other,
        user_ip: None,
        client_ip: None,
    };
    assert!(matches!(
        f.ward.auth().status(&other_ctx, &txid, f.now).await,
        Err(CoreError::NotFound(_))
    ));
    assert!(matches!(
        f.ward
            .auth()
            .status(&f.ctx, &txid, f.now + TimeDelta::hours(1))
            .await,
        Err(CoreError::Expired(_))
    ));
}

#[tokio::test]
async fn every_decision_is_audited_and_the_chain_verifies() {
    let f = fixture(AuthPolicy::default()).await;
    let alice = alice(&f).await;
    f.ward.auth().preauth(&f.ctx, &alice, f.now).await.unwrap();
    f.ward
        .auth()
        .passcode(&f.ctx, &alice, &code_at(f.now), false, f.now)
        .await
        .unwrap();
    f.ward
        .auth()
        .passcode(&f.ctx, &alice, "123", false, f.now)
        .await
        .unwrap();
    let err = f
        .ward
        .auth()
        .refuse_factor(&f.ctx, &alice, "sms", f.now)
        .await;
    assert!(err.to_string().contains("disabled by design"));
    let report = crate::audit::verify(f.store.as_ref())
        .await
        .unwrap()
        .unwrap();
    // integration, user, totp, preauth, allow, deny, refused sms
    assert_eq!(report.events, 7);
    let mut out = Vec::new();
    crate::audit::export(f.store.as_ref(), &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 7);
    assert!(!text.contains(SECRET_B32));
}

#[tokio::test]
async fn integration_secret_round_trips_sealed() {
    let f = fixture(AuthPolicy::default()).await;
    let (integration, skey) = f
        .ward
        .admin()
        .create_integration(
            default_org(),
            &Actor::Cli,
            "second",
            IntegrationKind::AuthApi,
            None,
            f.now,
        )
        .await
        .unwrap();
    let row = f
        .store
        .integration_by_ikey(integration.ikey.as_str())
        .await
        .unwrap()
        .unwrap();
    assert!(!row.skey_sealed.contains(skey.as_str()));
    let creds = f
        .ward
        .auth()
        .integration_credentials(&integration.ikey, f.now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.skey.as_str(), skey.as_str());
    assert!(
        f.ward
            .auth()
            .integration_credentials(&IntegrationId::new("DINOPE"), f.now)
            .await
            .unwrap()
            .is_none()
    );
}

/// A burst of lookups of one key that is not cached (a node just started, or the entry just
/// expired) asks for one database read; the others wait for it. Unknown keys are read (and
/// asked for) each time, and a refused read is `RateLimited`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_of_one_key_share_one_read() {
    let f = fixture(AuthPolicy::default()).await;
    let (integration, _) = f
        .ward
        .admin()
        .create_integration(
            default_org(),
            &Actor::Cli,
            "burst",
            IntegrationKind::AuthApi,
            None,
            f.now,
        )
        .await
        .unwrap();
    let reads = std::sync::atomic::AtomicUsize::new(0);
    let lookups = (0..100).map(|_| {
        f.ward
            .auth()
            .integration_credentials_admitted(&integration.ikey, f.now, || {
                reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                true
            })
    });
    let found = futures::future::join_all(lookups).await;
    assert!(found.iter().all(|r| matches!(r, Ok(Some(_)))));
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);

    let nope = IntegrationId::new("DINOPE");
    let misses = (0..10).map(|_| {
        f.ward
            .auth()
            .integration_credentials_admitted(&nope, f.now, || {
                reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                true
            })
    });
    let unknown = futures::future::join_all(misses).await;
    assert!(unknown.iter().all(|r| matches!(r, Ok(None))));
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 11);

    let refused = f
        .ward
        .auth()
        .integration_credentials_admitted(&IntegrationId::new("DINOPE"), f.now, || false)
        .await;
    assert!(
        matches!(refused, Err(CoreError::RateLimited)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_different_master_key_is_refused() {
    let dir = TempSqlite::new();
    let store = store_in(&dir).await;
    let first = Keyring::new(MasterKey::from_bytes([1; 32]), vec![]);
    Ward::new(Arc::clone(&store), first, AuthPolicy::default(), "Ward")
        .await
        .unwrap();
    let second = Keyring::new(MasterKey::from_bytes([2; 32]), vec![]);
    let err = Ward::new(store, second, AuthPolicy::default(), "Ward")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("master key"));
}

#[tokio::test]
async fn bad_input_changes_nothing() {
    let f = fixture(AuthPolicy::default()).await;
    assert!(
        f.ward
            .admin()
            .create_user(default_org(), &Actor::Cli, "", None, f.now)
            .await
            .is_err()
    );
    assert!(
        f.ward
            .admin()
            .create_user(
                default_org(),
                &Actor::Cli,
                "bob",
                Some("not-an-email"),
                f.now
            )
            .await
            .is_err()
    );
    f.ward
        .admin()
        .create_user(default_org(), &Actor::Cli, "bob", None, f.now)
        .await
        .unwrap();
    assert!(matches!(
        f.ward
            .admin()
            .create_user(default_org(), &Actor::Cli, "bob", None, f.now)
            .await,
        Err(CoreError::Conflict(_))
    ));
    assert!(
        f.ward
            .admin()
            .add_totp(
                default_org(),
                &Actor::Cli,
                "bob",
                Some("!!"),
                Algorithm::Sha1,
                6,
                f.now
            )
            .await
            .is_err()
    );
    assert!(
        f.ward
            .admin()
            .add_totp(
                default_org(),
                &Actor::Cli,
                "bob",
                None,
                Algorithm::Sha1,
                7,
                f.now
            )
            .await
            .is_err()
    );
    assert_eq!(
        f.ward
            .admin()
            .list_users(default_org(), 100, 0)
            .await
            .unwrap()
            .len(),
        1
    );
    // integration + one user
    let report = crate::audit::verify(f.store.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.events, 2);
}
