//! A device's answer to a push: accepted only if signed by the key of the device the request
//! was sent to, over this transaction, the decision, the typed number and the hash of the
//! context it showed (see [`push`](crate::service::auth::push) for the lifecycle).

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use ward_proto::device::{AnswerRequest, Decision, answer_signing_bytes};
use ward_store::{ChangeSet, PushRow};

use crate::audit::{Action, Event};
use crate::device_key::DeviceKey;
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor, OrgId, UserId};
use crate::service::auth::push::{PushState, is_pending};
use crate::service::{Devices, Ward};

/// How far an answer's own timestamp may be from the server's clock.
const ANSWER_SKEW_SECS: i64 = 300;

impl Ward {
    async fn refuse_answer(
        &self,
        answer: &AnswerRequest,
        reason: &'static str,
        error: CoreError,
        now: DateTime<Utc>,
    ) -> CoreResult<PushState> {
        let actor = Actor::Device(answer.device_id.clone());
        // A known device's refusals go to its organisation's log.
        let log_org = match self.store.device(&answer.device_id).await? {
            Some(device) => device.org_id,
            None => self.unattributed_org().await?.to_string(),
        };
        let event = Event::new(
            &log_org,
            now,
            &actor,
            Action::AuthPushAnswer,
            &answer.txid,
            "refused",
        )
        .detail("reason", reason)
        .detail("device_id", answer.device_id.as_str());
        self.store
            .commit(ChangeSet::new().with(event.into_change()))
            .await?;
        tracing::warn!(device_id = %answer.device_id, txid = %answer.txid, reason, "push answer refused");
        Err(error)
    }
}

impl Devices<'_> {
    /// Records a device's answer. Audited, refused answers too.
    pub async fn answer_push(
        self,
        answer: &AnswerRequest,
        now: DateTime<Utc>,
    ) -> CoreResult<PushState> {
        let actor = Actor::Device(answer.device_id.clone());
        let refuse =
            |reason: &'static str, error: CoreError| self.refuse_answer(answer, reason, error, now);
        let Some(device) = self.store.device(&answer.device_id).await? else {
            return refuse("unknown_device", CoreError::Unauthenticated).await;
        };
        let key = DeviceKey::from_stored(&device.key_alg, &device.public_key)?;
        let signed = answer_signing_bytes(
            &answer.device_id,
            &answer.txid,
            answer.decision,
            answer.number.as_deref(),
            &answer.context_hash,
            answer.time,
        );
        if !key.verifies(&signed, &answer.signature) {
            return refuse("bad_signature", CoreError::Unauthenticated).await;
        }
        if (answer.time - now.timestamp()).abs() > ANSWER_SKEW_SECS {
            return refuse("stale_answer", CoreError::Expired("answer".into())).await;
        }
        let push = match self.store.push(&device.org_id, &answer.txid).await? {
            Some(push) if push.device_id == device.device_id => push,
            _ => {
                return refuse(
                    "not_this_devices_request",
                    CoreError::NotFound("request".into()),
                )
                .await;
            }
        };
        if push
            .context_hash
            .as_bytes()
            .ct_eq(answer.context_hash.as_bytes())
            .unwrap_u8()
            != 1
        {
            return refuse(
                "context_mismatch",
                CoreError::invalid("context_hash", "does not match the request"),
            )
            .await;
        }
        if !is_pending(&push)? {
            return refuse(
                "already_decided",
                CoreError::Conflict("request already answered".into()),
            )
            .await;
        }
        if push.expires_ms <= now.timestamp_millis() {
            self.expire_push(&push, now).await?;
            return refuse("expired", CoreError::Expired("request".into())).await;
        }
        let (state, reason) = judge(&push, answer);
        match self.decide_push(&push, state, reason, &actor, now).await {
            Ok(()) => {
                if Ward::is_recovery_push(&push.ikey) {
                    self.recovery_answered(
                        &OrgId::new(push.org_id.clone()),
                        &UserId::new(push.user_id.clone()),
                        state,
                        now,
                    )
                    .await;
                }
                Ok(state)
            }
            Err(CoreError::Conflict(_)) => {
                refuse(
                    "already_decided",
                    CoreError::Conflict("request already answered".into()),
                )
                .await
            }
            Err(e) => Err(e),
        }
    }
}

/// The decision an authentic, timely answer makes.
fn judge(push: &PushRow, answer: &AnswerRequest) -> (PushState, &'static str) {
    match answer.decision {
        Decision::Fraud => (PushState::Fraud, "user_reported_fraud"),
        Decision::Deny => (PushState::Denied, "user_denied"),
        Decision::Approve => match &push.number {
            None => (PushState::Approved, "user_approved"),
            Some(expected) => {
                let typed = answer.number.as_deref().unwrap_or("");
                if expected.as_bytes().ct_eq(typed.as_bytes()).into() {
                    (PushState::Approved, "user_approved_with_number")
                } else {
                    (PushState::Denied, "wrong_number")
                }
            }
        },
    }
}
