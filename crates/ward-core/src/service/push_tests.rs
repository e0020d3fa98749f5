use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use ed25519_dalek::{Signer, SigningKey};
use ward_proto::device::{Decision, stream_signing_bytes};
use ward_store::Store;
use ward_testkit::db::{TempSqlite, sqlite};
use ward_testkit::device::{DeviceKey, Phone};

use super::*;
use crate::crypto::MasterKey;
use crate::model::{Actor, DeviceId, IntegrationKind, UserRef};
use crate::policy::{ApiPushMode, PushPolicy};

struct Fixture {
    _db: TempSqlite,
    store: Arc<dyn Store>,
    ward: Ward,
    ctx: AuthContext,
    now: DateTime<Utc>,
}

async fn fixture(push: PushPolicy) -> Fixture {
    let (db, store) = sqlite("test").await;
    let keys = Keyring::new(MasterKey::from_bytes([4; 32]), vec![]);
    let policy = AuthPolicy {
        push,
        ..AuthPolicy::default()
    };
    let ward = Ward::new(Arc::clone(&store), keys, policy, "Ward")
        .await
        .unwrap();
    let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let (integration, _) = ward
        .admin()
        .create_integration(
            default_org(),
            &Actor::Cli,
            "VPN",
            IntegrationKind::AuthApi,
            None,
            now,
        )
        .await
        .unwrap();
    ward.admin()
        .create_user(default_org(), &Actor::Cli, "alice", None, now)
        .await
        .unwrap();
    let ctx = AuthContext {
        integration,
        user_ip: Some("198.51.100.7".into()),
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

async fn activate(f: &Fixture, seed: u8) -> Phone {
    let code = f
        .ward
        .devices()
        .activation_code(default_org(), &Actor::Cli, "alice", f.now)
        .await
        .unwrap();
    let key = DeviceKey::from_seed(seed);
    let req = key.activate_request(&code.code, "laptop", "linux");
    let (device, username) = f.ward.devices().activate(&req, f.now).await.unwrap();
    assert_eq!(username, "alice");
    // The code works once.
    assert!(matches!(
        f.ward.devices().activate(&req, f.now).await,
        Err(CoreError::Expired(_))
    ));
    key.activated(device.id.into_string())
}

fn alice() -> UserRef {
    UserRef::Name("alice".into())
}

async fn push(f: &Fixture, is_async: bool) -> PushStarted {
    let req = PushRequest {
        want_txid: is_async,
        ..PushRequest::default()
    };
    match f
        .ward
        .auth()
        .start_api_push(&f.ctx, &alice(), req, is_async, f.now)
        .await
        .unwrap()
    {
        PushOutcome::Started(s) => s,
        other @ PushOutcome::Decided(_) => panic!("not started: {other:?}"),
    }
}

async fn shown(f: &Fixture, phone: &Phone) -> ward_proto::device::PushEvent {
    let mut events = f
        .ward
        .devices()
        .pending_push_events(&DeviceId::new(phone.id.clone()), f.now)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = events.remove(0);
    assert_eq!(event.context_hash, event.computed_context_hash());
    assert_eq!(event.application, "VPN");
    assert_eq!(event.ip.as_deref(), Some("198.51.100.7"));
    event
}

#[tokio::test]
async fn verified_push_approved_with_the_right_number() {
    let f = fixture(PushPolicy::default()).await;
    let phone = activate(&f, 1).await;
    let started = push(&f, true).await;
    let number = started
        .number
        .clone()
        .expect("verified push shows a number");
    assert_eq!(number.len(), 3);
    let waiting = f
        .ward
        .auth()
        .status(&f.ctx, &started.txid, f.now)
        .await
        .unwrap();
    assert_eq!(
        (waiting.result.as_str(), waiting.status.as_str()),
        ("waiting", "pushed")
    );
    let event = shown(&f, &phone).await;
    assert!(event.number_required);
    let state = f
        .ward
        .devices()
        .answer_push(
            &phone.answer(&event, Decision::Approve, Some(&number), f.now.timestamp()),
            f.now,
        )
        .await
        .unwrap();
    assert_eq!(state, PushState::Approved);
    let done = f
        .ward
        .auth()
        .status(&f.ctx, &started.txid, f.now)
        .await
        .unwrap();
    assert_eq!(
        (done.result.as_str(), done.status.as_str()),
        ("allow", "allow")
    );
    assert!(
        f.ward
            .devices()
            .pending_push_events(&DeviceId::new(phone.id.clone()), f.now)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_wrong_number_denies() {
    let f = fixture(PushPolicy::default()).await;
    let phone = activate(&f, 1).await;
    let started = push(&f, true).await;
    let number = started.number.unwrap();
    let wrong = if number == "000" { "001" } else { "000" };
    let event = shown(&f, &phone).await;
    let state = f
        .ward
        .devices()
        .answer_push(
            &phone.answer(&event, Decision::Approve, Some(wrong), f.now.timestamp()),
            f.now,
        )
        .await
        .unwrap();
    assert_eq!(state, PushState::Denied);
    let done = f
        .ward
        .auth()
        .status(&f.ctx, &started.txid, f.now)
        .await
        .unwrap();
    assert_eq!(done.result, TxResult::Deny);
}

#[tokio::test]
async fn fraud_report_mutes_pushes_and_preauth_says_so() {
    let f = fixture(PushPolicy::default()).await;
    let phone = activate(&f, 1).await;
    let started = push(&f, true).await;
    let event = shown(&f, &phone).await;
    let state = f
        .ward
        .devices()
        .answer_push(
            &phone.answer(&event, Decision::Fraud, None, f.now.timestamp()),
            f.now,
        )
        .await
        .unwrap();
    assert_eq!(state, PushState::Fraud);
    let done = f
        .ward
        .auth()
        .status(&f.ctx, &started.txid, f.now)
        .await
        .unwrap();
    assert_eq!(
        (done.result.as_str(), done.status.as_str()),
        ("deny", "fraud")
    );
    let again = f
        .ward
        .auth()
        .start_api_push(&f.ctx, &alice(), PushRequest::default(), true, f.now)
        .await
        .unwrap();
    match again {
        PushOutcome::Decided(d) => assert_eq!(d.status, AuthStatus::PushRefused),
        other @ PushOutcome::Started(_) => panic!("muted user was pushed: {other:?}"),
    }
    match f
        .ward
        .auth()
        .preauth(&f.ctx, &alice(), f.now)
        .await
        .unwrap()
    {
        PreauthOutcome::Auth {
            devices,
            push_muted,
        } => {
            assert!(push_muted);
            assert!(
                devices
                    .iter()
                    .all(|d| !d.capabilities.contains(&Capability::Push))
            );
        }
        other => panic!("{other:?}"),
    }
    // After the mute window, pushes work again.
    let later = f.now + TimeDelta::minutes(21);
    let after = f
        .ward
        .auth()
        .start_api_push(&f.ctx, &alice(), PushRequest::default(), true, later)
        .await
        .unwrap();
    assert!(matches!(after, PushOutcome::Started(_)));
}

#[tokio::test]
async fn forged_replayed_and_misdirected_answers_are_refused_and_audited() {
    let f = fixture(PushPolicy {
        auth_api_mode: ApiPushMode::Plain,
        ..PushPolicy::default()
    })
    .await;
    let phone = activate(&f, 1).await;
    let first = push(&f, true).await;
    let event = shown(&f, &phone).await;
    // Signed by another key.
    let thief = Phone {
        key: SigningKey::from_bytes(&[9; 32]),
        id: phone.id.clone(),
    };
    let forged = thief.answer(&event, Decision::Approve, None, f.now.timestamp());
    assert!(matches!(
        f.ward.devices().answer_push(&forged, f.now).await,
        Err(CoreError::Unauthenticated)
    ));
    // An authentic answer, then the same answer again.
    let genuine = phone.answer(&event, Decision::Approve, None, f.now.timestamp());
    assert_eq!(
        f.ward.devices().answer_push(&genuine, f.now).await.unwrap(),
        PushState::Approved
    );
    assert!(matches!(
        f.ward.devices().answer_push(&genuine, f.now).await,
        Err(CoreError::Conflict(_))
    ));
    // An answer signed for the first transaction, sent for a second one.
    let second = push(&f, true).await;
    let mut misdirected = phone.answer(&event, Decision::Approve, None, f.now.timestamp());
    misdirected.txid = second.txid.clone();
    assert!(matches!(
        f.ward.devices().answer_push(&misdirected, f.now).await,
        Err(CoreError::Unauthenticated)
    ));
    let still = f
        .ward
        .auth()
        .status(&f.ctx, &second.txid, f.now)
        .await
        .unwrap();
    assert_eq!(still.result, TxResult::Waiting);
    assert_eq!(
        f.ward
            .auth()
            .status(&f.ctx, &first.txid, f.now)
            .await
            .unwrap()
            .result,
        TxResult::Allow
    );
    // Every refusal left an audit event.
    let mut out = Vec::new();
    crate::audit::export(f.store.as_ref(), &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    for reason in ["bad_signature", "already_decided"] {
        assert!(text.contains(reason), "no audit event for {reason}");
    }
    assert!(
        crate::audit::verify(f.store.as_ref())
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn an_unanswered_push_times_out_at_the_configured_time() {
    let f = fixture(PushPolicy {
        timeout: TimeDelta::seconds(30),
        ..PushPolicy::default()
    })
    .await;
    let phone = activate(&f, 1).await;
    let started = push(&f, true).await;
    let event = shown(&f, &phone).await;
    let before = f.now + TimeDelta::seconds(29);
    assert_eq!(
        f.ward
            .auth()
            .status(&f.ctx, &started.txid, before)
            .await
            .unwrap()
            .result,
        TxResult::Waiting
    );
    let after = f.now + TimeDelta::seconds(30);
    let done = f
        .ward
        .auth()
        .status(&f.ctx, &started.txid, after)
        .await
        .unwrap();
    assert_eq!(
        (done.result.as_str(), done.status.as_str()),
        ("deny", "timeout")
    );
    // A late answer changes nothing.
    let late = phone.answer(
        &event,
        Decision::Approve,
        Some(started.number.as_deref().unwrap_or("")),
        after.timestamp(),
    );
    assert!(f.ward.devices().answer_push(&late, after).await.is_err());
    assert_eq!(
        f.ward
            .auth()
            .status(&f.ctx, &started.txid, after)
            .await
            .unwrap()
            .status,
        TxStatus::Timeout
    );
}

#[tokio::test]
async fn policy_modes_for_auth_api_clients() {
    let verified = fixture(PushPolicy::default()).await;
    activate(&verified, 1).await;
    let sync = verified
        .ward
        .auth()
        .start_api_push(
            &verified.ctx,
            &alice(),
            PushRequest::default(),
            false,
            verified.now,
        )
        .await;
    assert!(sync.unwrap_err().to_string().contains("async=1"));
    let refuse = fixture(PushPolicy {
        auth_api_mode: ApiPushMode::Refuse,
        ..PushPolicy::default()
    })
    .await;
    activate(&refuse, 1).await;
    let err = refuse
        .ward
        .auth()
        .start_api_push(
            &refuse.ctx,
            &alice(),
            PushRequest::default(),
            true,
            refuse.now,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("hosted prompt"));
    let plain = fixture(PushPolicy {
        auth_api_mode: ApiPushMode::Plain,
        ..PushPolicy::default()
    })
    .await;
    activate(&plain, 1).await;
    let started = push(&plain, false).await;
    assert!(started.number.is_none());
}

#[tokio::test]
async fn push_storms_are_stopped() {
    let f = fixture(PushPolicy {
        storm_limit: 3,
        ..PushPolicy::default()
    })
    .await;
    activate(&f, 1).await;
    for _ in 0..3 {
        push(&f, true).await;
    }
    let fourth = f
        .ward
        .auth()
        .start_api_push(&f.ctx, &alice(), PushRequest::default(), true, f.now)
        .await
        .unwrap();
    assert!(matches!(fourth, PushOutcome::Decided(d) if d.status == AuthStatus::PushRefused));
}

#[tokio::test]
async fn the_stream_opens_once_per_signed_nonce() {
    let f = fixture(PushPolicy::default()).await;
    let phone = activate(&f, 1).await;
    let (nonce, _) = f
        .ward
        .devices()
        .challenge(&DeviceId::new(phone.id.clone()), f.now)
        .await
        .unwrap();
    let sig = URL_SAFE_NO_PAD.encode(
        phone
            .key
            .sign(&stream_signing_bytes(&phone.id, &nonce))
            .to_bytes(),
    );
    let bad = URL_SAFE_NO_PAD.encode(
        SigningKey::from_bytes(&[2; 32])
            .sign(&stream_signing_bytes(&phone.id, &nonce))
            .to_bytes(),
    );
    assert!(matches!(
        f.ward
            .devices()
            .open_stream(&DeviceId::new(phone.id.clone()), &nonce, &bad, f.now)
            .await,
        Err(CoreError::Unauthenticated)
    ));
    assert_eq!(
        f.ward
            .devices()
            .open_stream(&DeviceId::new(phone.id.clone()), &nonce, &sig, f.now)
            .await
            .unwrap()
            .id,
        DeviceId::new(phone.id.clone())
    );
    assert!(matches!(
        f.ward
            .devices()
            .open_stream(&DeviceId::new(phone.id.clone()), &nonce, &sig, f.now)
            .await,
        Err(CoreError::Unauthenticated)
    ));
    let (late_nonce, _) = f
        .ward
        .devices()
        .challenge(&DeviceId::new(phone.id.clone()), f.now)
        .await
        .unwrap();
    let late_sig = URL_SAFE_NO_PAD.encode(
        phone
            .key
            .sign(&stream_signing_bytes(&phone.id, &late_nonce))
            .to_bytes(),
    );
    let later = f.now + TimeDelta::minutes(2);
    assert!(matches!(
        f.ward
            .devices()
            .open_stream(
                &DeviceId::new(phone.id.clone()),
                &late_nonce,
                &late_sig,
                later
            )
            .await,
        Err(CoreError::Unauthenticated)
    ));
}

#[tokio::test]
async fn an_integration_can_override_the_server_push_mode() {
    let f = fixture(PushPolicy::default()).await;
    activate(&f, 1).await;
    let (integration, _) = f
        .ward
        .admin()
        .create_integration(
            default_org(),
            &Actor::Cli,
            "legacy",
            IntegrationKind::AuthApi,
            Some(ApiPushMode::Plain),
            f.now,
        )
        .await
        .unwrap();
    assert_eq!(integration.push_mode, Some(ApiPushMode::Plain));
    let ctx = AuthContext {
        integration,
        user_ip: None,
        client_ip: None,
    };
    let started = f
        .ward
        .auth()
        .start_api_push(&ctx, &alice(), PushRequest::default(), false, f.now)
        .await
        .unwrap();
    assert!(matches!(
        started,
        PushOutcome::Started(PushStarted { number: None, .. })
    ));
    // The server default still applies to the other integration.
    assert!(
        f.ward
            .auth()
            .start_api_push(&f.ctx, &alice(), PushRequest::default(), false, f.now)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn expired_records_are_purged_and_the_purge_is_audited() {
    let f = fixture(PushPolicy {
        auth_api_mode: ApiPushMode::Plain,
        ..PushPolicy::default()
    })
    .await;
    let phone = activate(&f, 1).await;
    let started = push(&f, true).await;
    let event = shown(&f, &phone).await;
    f.ward
        .devices()
        .answer_push(
            &phone.answer(&event, Decision::Deny, None, f.now.timestamp()),
            f.now,
        )
        .await
        .unwrap();
    assert_eq!(
        f.ward.admin().purge_expired(f.now).await.unwrap(),
        0,
        "nothing has expired yet"
    );
    let later = f.now + TimeDelta::hours(2);
    assert!(f.ward.admin().purge_expired(later).await.unwrap() >= 2);
    assert!(
        f.store
            .push(ward_store::DEFAULT_ORG, &started.txid)
            .await
            .unwrap()
            .is_none()
    );
    let mut out = Vec::new();
    crate::audit::export(f.store.as_ref(), &mut out)
        .await
        .unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("maintenance.purge")
    );
    assert!(
        crate::audit::verify(f.store.as_ref())
            .await
            .unwrap()
            .is_ok()
    );
}
