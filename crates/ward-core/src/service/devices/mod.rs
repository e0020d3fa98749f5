//! Push devices: activation, and the device channel's proof of possession.
//!
//! # Security
//! Activation codes are 160-bit random, single use, short-lived and stored only as SHA-256.
//! A device never holds a bearer secret: it opens its event stream by signing a single-use
//! server nonce, and signs every answer.

mod answer;

use chrono::{DateTime, TimeDelta, Utc};
use rand::RngExt;
use ward_proto::device::{ActivateRequest, PushEvent, stream_signing_bytes};
use ward_store::{ActivationRow, Change, ChangeSet, DeviceRow, Outcome, StoreError};
use zeroize::Zeroizing;

use super::{Devices, check_text};
use crate::audit::{Action, Event};
use crate::crypto::token_hash;
use crate::device_key::DeviceKey;
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor, DeviceId, OrgId, UserId};

/// How long a stream nonce is valid.
const NONCE_TTL_SECS: i64 = 60;

/// A one-time activation code for a new push device (shown once, e.g. as a QR code).
#[derive(Debug)]
pub struct ActivationCode {
    pub code: Zeroizing<String>,
    pub expires_ms: i64,
}

/// A push device as administrators and users see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushDevice {
    pub id: DeviceId,
    pub user_id: UserId,
    pub name: String,
    pub platform: String,
    pub created_ms: i64,
}

impl From<&DeviceRow> for PushDevice {
    fn from(r: &DeviceRow) -> Self {
        Self {
            id: DeviceId::new(r.device_id.clone()),
            user_id: UserId::new(r.user_id.clone()),
            name: r.name.clone(),
            platform: r.platform.clone(),
            created_ms: r.created_ms,
        }
    }
}

fn random_token(bytes: usize) -> Zeroizing<String> {
    let mut raw = Zeroizing::new(vec![0u8; bytes]);
    rand::fill(raw.as_mut_slice());
    Zeroizing::new(data_encoding::BASE32_NOPAD.encode(&raw))
}

fn device_id() -> String {
    let mut rng = rand::rng();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let tail: String = (0..18)
        .map(|_| {
            alphabet
                .get(rng.random_range(0..alphabet.len()))
                .copied()
                .map_or('A', char::from)
        })
        .collect();
    format!("DP{tail}")
}

impl Devices<'_> {
    /// Issues a one-time activation code binding a new push device to `username`. Audited.
    pub async fn activation_code(
        self,
        org: &OrgId,
        actor: &Actor,
        username: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<ActivationCode> {
        let user = self.admin().user(org, username).await?;
        let code = random_token(20);
        let expires_ms = (now + self.policy.push.activation_ttl).timestamp_millis();
        let row = ActivationRow {
            org_id: org.to_string(),
            code_hash: token_hash(&code),
            user_id: user.id.to_string(),
            created_ms: now.timestamp_millis(),
            expires_ms,
            used_ms: None,
        };
        let event = Event::new(
            org.as_str(),
            now,
            actor,
            Action::DeviceActivationIssued,
            user.id.as_str(),
            "ok",
        )
        .detail("expires_ms", expires_ms);
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::InsertActivation(row))
                    .with(event.into_change()),
            )
            .await?;
        Ok(ActivationCode { code, expires_ms })
    }

    /// Activates a device: consumes the code and binds the device's public key to its user.
    /// Returns the device and the username. Audited (refusals too).
    pub async fn activate(
        self,
        req: &ActivateRequest,
        now: DateTime<Utc>,
    ) -> CoreResult<(PushDevice, String)> {
        check_text("name", &req.name, 100)?;
        check_text("platform", &req.platform, 50)?;
        let key = DeviceKey::parse(req.algorithm, &req.public_key)?;
        let code_hash = token_hash(req.code.trim());
        let actor = Actor::Device(String::new());
        let consumed = self
            .store
            .commit(ChangeSet::new().with(Change::ConsumeActivation {
                code_hash,
                now_ms: now.timestamp_millis(),
            }))
            .await;
        let (org_id, user_id) = match consumed {
            Ok(receipt) => match receipt.outcomes.first() {
                Some(Outcome::Activated { org_id, user_id }) => (org_id.clone(), user_id.clone()),
                _ => return Err(CoreError::Internal("activation gave no user".into())),
            },
            Err(StoreError::ConditionFailed(_)) => {
                // An unknown code names no organisation.
                let log_org = self.unattributed_org().await?;
                let event = Event::new(
                    log_org.as_str(),
                    now,
                    &actor,
                    Action::DeviceActivate,
                    "-",
                    "refused",
                )
                .detail("reason", "unknown, used or expired code");
                self.store
                    .commit(ChangeSet::new().with(event.into_change()))
                    .await?;
                return Err(CoreError::Expired("activation code".into()));
            }
            Err(e) => return Err(e.into()),
        };
        let row = DeviceRow {
            org_id: org_id.clone(),
            device_id: device_id(),
            user_id: user_id.clone(),
            name: req.name.clone(),
            platform: req.platform.clone(),
            key_alg: key.algorithm().as_str().into(),
            public_key: key.to_base64(),
            created_ms: now.timestamp_millis(),
        };
        let device = PushDevice::from(&row);
        let event = Event::new(
            &org_id,
            now,
            &Actor::Device(row.device_id.clone()),
            Action::DeviceActivate,
            &user_id,
            "ok",
        )
        .detail("device_id", row.device_id.as_str())
        .detail("name", row.name.as_str())
        .detail("key_alg", row.key_alg.as_str());
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::InsertDevice(row))
                    .with(event.into_change()),
            )
            .await?;
        let username = self
            .store
            .user_by_id(&org_id, &user_id)
            .await?
            .map(|u| u.username)
            .ok_or_else(|| CoreError::NotFound("user".into()))?;
        Ok((device, username))
    }

    /// A user's push devices.
    pub async fn list(self, org: &OrgId, username: &str) -> CoreResult<Vec<PushDevice>> {
        let user = self.admin().user(org, username).await?;
        let rows = self
            .store
            .devices_for_user(org.as_str(), user.id.as_str())
            .await?;
        Ok(rows.iter().map(PushDevice::from).collect())
    }

    /// A single-use nonce the device signs to open its event stream.
    pub async fn challenge(
        self,
        device_id: &DeviceId,
        now: DateTime<Utc>,
    ) -> CoreResult<(String, i64)> {
        // Unknown devices get a nonce too (that can never be used), so the answer does not
        // reveal which device ids exist.
        let nonce = random_token(20);
        let expires = now + TimeDelta::seconds(NONCE_TTL_SECS);
        if self.store.device(device_id.as_str()).await?.is_some() {
            self.store
                .commit(ChangeSet::new().with(Change::InsertNonce {
                    nonce_hash: token_hash(&nonce),
                    device_id: device_id.to_string(),
                    expires_ms: expires.timestamp_millis(),
                }))
                .await?;
        }
        Ok((nonce.to_string(), expires.timestamp()))
    }

    /// Checks a device's signature over its nonce and consumes the nonce. `Unauthenticated`
    /// whatever is wrong.
    pub async fn open_stream(
        self,
        device_id: &DeviceId,
        nonce: &str,
        signature: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<PushDevice> {
        let row = self
            .store
            .device(device_id.as_str())
            .await?
            .ok_or(CoreError::Unauthenticated)?;
        let key = DeviceKey::from_stored(&row.key_alg, &row.public_key)?;
        if !key.verifies(&stream_signing_bytes(device_id.as_str(), nonce), signature) {
            return Err(CoreError::Unauthenticated);
        }
        let consumed = self
            .store
            .commit(ChangeSet::new().with(Change::ConsumeNonce {
                nonce_hash: token_hash(nonce),
                device_id: device_id.to_string(),
                now_ms: now.timestamp_millis(),
            }))
            .await;
        match consumed {
            Ok(_) => Ok(PushDevice::from(&row)),
            Err(StoreError::ConditionFailed(_)) => Err(CoreError::Unauthenticated),
            Err(e) => Err(e.into()),
        }
    }

    /// The requests a device must show now (pending and not expired).
    pub async fn pending_push_events(
        self,
        device_id: &DeviceId,
        now: DateTime<Utc>,
    ) -> CoreResult<Vec<PushEvent>> {
        let rows = self
            .store
            .pending_pushes(device_id.as_str(), now.timestamp_millis())
            .await?;
        rows.iter()
            .map(|row| {
                serde_json::from_str::<PushEvent>(&row.context)
                    .map_err(|e| CoreError::Internal(format!("stored push context: {e}")))
            })
            .collect()
    }
}
