//! Ceremony state kept between a start and its finish: stored sealed, consumed once.

use chrono::{DateTime, Utc};
use ward_store::{CeremonyRow, Change, ChangeSet, Outcome, StoreError};

use super::CeremonyState;
use crate::crypto::{Purpose, new_token, token_hash};
use crate::error::{CoreError, CoreResult};
use crate::model::{OrgId, UserId};
use crate::service::Ward;

impl Ward {
    /// Stores a ceremony's state and returns the id the browser keeps.
    pub(super) async fn begin_ceremony(
        &self,
        org: &OrgId,
        purpose: &str,
        user_id: Option<&str>,
        state: &CeremonyState,
        now: DateTime<Utc>,
    ) -> CoreResult<String> {
        let ttl = self.passkeys()?.settings.ceremony_ttl;
        let ceremony = new_token();
        let hash = token_hash(&ceremony);
        let json = serde_json::to_vec(state)
            .map_err(|e| CoreError::Internal(format!("ceremony state cannot be encoded: {e}")))?;
        let row = CeremonyRow {
            state_sealed: self.keys.seal(Purpose::Ceremony, &hash, &json)?,
            ceremony_hash: hash,
            org_id: org.to_string(),
            user_id: user_id.map(str::to_owned),
            purpose: purpose.into(),
            created_ms: now.timestamp_millis(),
            expires_ms: (now + ttl).timestamp_millis(),
        };
        self.store
            .commit(ChangeSet::new().with(Change::InsertCeremony(row)))
            .await?;
        Ok(ceremony)
    }

    /// Consumes a ceremony (once, on any node) and opens its state.
    pub(in crate::service) async fn take_ceremony(
        &self,
        org: &OrgId,
        purpose: &str,
        ceremony: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<(CeremonyRow, zeroize::Zeroizing<Vec<u8>>)> {
        if ceremony.is_empty() || ceremony.len() > 128 {
            return Err(CoreError::invalid("ceremony", "is missing or malformed"));
        }
        let hash = token_hash(ceremony);
        let receipt = self
            .store
            .commit(ChangeSet::new().with(Change::ConsumeCeremony {
                ceremony_hash: hash.clone(),
                purpose: purpose.into(),
                now_ms: now.timestamp_millis(),
            }))
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed(_) => CoreError::Expired(
                    "this request (it was already used, or took too long; start again)".into(),
                ),
                other => other.into(),
            })?;
        let Some(Outcome::Ceremony(row)) = receipt.outcomes.into_iter().next() else {
            return Err(CoreError::Internal(
                "ceremony consumed without its state".into(),
            ));
        };
        // A ceremony begun in one organisation is never finished in another.
        if row.org_id != org.as_str() {
            return Err(CoreError::Forbidden(
                "this request belongs to another session".into(),
            ));
        }
        let state = self
            .keys
            .open(Purpose::Ceremony, &hash, &row.state_sealed)?;
        Ok((row, state))
    }

    /// Stores a non-WebAuthn ceremony's state (e.g. a TOTP seed awaiting its first code).
    pub(in crate::service) async fn begin_sealed_ceremony(
        &self,
        org: &OrgId,
        purpose: &str,
        user_id: &UserId,
        state: &[u8],
        now: DateTime<Utc>,
    ) -> CoreResult<String> {
        let ttl = self.passkeys()?.settings.ceremony_ttl;
        let ceremony = new_token();
        let hash = token_hash(&ceremony);
        let row = CeremonyRow {
            state_sealed: self.keys.seal(Purpose::Ceremony, &hash, state)?,
            ceremony_hash: hash,
            org_id: org.to_string(),
            user_id: Some(user_id.to_string()),
            purpose: purpose.into(),
            created_ms: now.timestamp_millis(),
            expires_ms: (now + ttl).timestamp_millis(),
        };
        self.store
            .commit(ChangeSet::new().with(Change::InsertCeremony(row)))
            .await?;
        Ok(ceremony)
    }
}
