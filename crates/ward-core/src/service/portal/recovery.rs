//! Recovery codes: a new set, and using one up.

use crate::service::Portal;
use chrono::{DateTime, Utc};
use ward_store::{Change, ChangeSet, RecoveryCodeRow, StoreError};
use zeroize::Zeroizing;

use super::{RECOVERY_CODE_BYTES, RECOVERY_CODES, Session, refuse_alteration};
use crate::argon::Ticket;
use crate::audit::{Action, Event};
use crate::error::CoreResult;
use crate::gate::Alteration;
use crate::model::{Actor, OrgId, UserId};
use crate::service::Ward;
use crate::totp;

impl Ward {
    /// A new set of recovery codes for a user: the codes (shown once) and the change that
    /// replaces the old set with their Argon2id hashes.
    pub(in crate::service) async fn new_recovery_code_set(
        &self,
        org: &OrgId,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> CoreResult<(Vec<Zeroizing<String>>, Change)> {
        let codes: Vec<Zeroizing<String>> =
            (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let normalised = codes
            .iter()
            .map(|c| Zeroizing::new(normalise_recovery_code(c)))
            .collect();
        let hashes = self.argon2.hash_all(normalised).await?;
        let rows = hashes
            .into_iter()
            .map(|code_hash| RecoveryCodeRow {
                code_id: format!("DR{}", &crate::ids::totp_id()[2..]),
                org_id: org.to_string(),
                user_id: user_id.to_string(),
                code_hash,
                created_ms: now.timestamp_millis(),
                used_ms: None,
            })
            .collect::<Vec<_>>();
        Ok((
            codes,
            Change::ReplaceRecoveryCodes {
                org_id: org.to_string(),
                user_id: user_id.to_string(),
                codes: rows,
            },
        ))
    }

    /// [`Self::use_recovery_code`] on a place in the Argon2 pool the caller already holds.
    pub(in crate::service) async fn use_recovery_code_with(
        &self,
        org: &OrgId,
        ticket: Ticket,
        user_id: &UserId,
        code: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<bool> {
        let normalised = normalise_recovery_code(code);
        if normalised.len() != RECOVERY_CODE_BYTES * 8 / 5 {
            return Ok(false);
        }
        let rows = self
            .store
            .recovery_codes_for_user(org.as_str(), user_id.as_str())
            .await?
            .into_iter()
            .filter(|r| r.used_ms.is_none())
            .collect::<Vec<_>>();
        let hashes = rows.iter().map(|r| r.code_hash.clone()).collect();
        let found = ticket
            .find_match(Zeroizing::new(normalised), hashes)
            .await?
            .and_then(|i| rows.into_iter().nth(i));
        let Some(row) = found else {
            return Ok(false);
        };
        match self
            .store
            .commit(ChangeSet::new().with(Change::UseRecoveryCode {
                org_id: org.to_string(),
                user_id: user_id.to_string(),
                code_id: row.code_id,
                used_ms: now.timestamp_millis(),
            }))
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl Portal<'_> {
    /// Generates a new set of recovery codes, replacing the old set. The codes are returned
    /// once; only their Argon2id hashes are kept.
    pub async fn regenerate_recovery_codes(
        self,
        session: &Session,
        now: DateTime<Utc>,
    ) -> CoreResult<Vec<Zeroizing<String>>> {
        let org = &session.org();
        let user = self.active_user(org, &session.user_id()).await?;
        // Right after a recovery, a takeover must not leave itself a way back in.
        refuse_alteration(&user, Alteration::RecoveryMethods, now.timestamp_millis())?;
        self.require_fresh_check(session, now).await?;
        let (codes, change) = self
            .new_recovery_code_set(org, &UserId::of(&user), now)
            .await?;
        let event = Event::new(
            org.as_str(),
            now,
            &Actor::User(user.user_id.clone()),
            Action::RecoveryCodesGenerate,
            &user.user_id,
            "ok",
        )
        .detail("count", codes.len());
        self.store
            .commit(ChangeSet::new().with(change).with(event.into_change()))
            .await?;
        self.notify_user(
            &user,
            "recovery_codes.generate",
            "New recovery codes were created for your account",
            "A new set of recovery codes was created for your account; any older codes no \
             longer work.",
            now,
        )
        .await;
        Ok(codes)
    }

    /// Checks a recovery code against the user's unused codes and, if it matches, uses it up.
    /// Returns whether it matched; [`CoreError::RateLimited`] when the Argon2 pool is full.
    pub async fn use_recovery_code(
        self,
        org: &OrgId,
        user_id: &UserId,
        code: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<bool> {
        let ticket = self.argon2.admit()?;
        self.use_recovery_code_with(org, ticket, user_id, code, now)
            .await
    }
}

/// A new recovery code: 80 random bits as 16 Base32 characters in groups of four.
fn new_recovery_code() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; RECOVERY_CODE_BYTES]);
    rand::fill(bytes.as_mut_slice());
    let text = Zeroizing::new(totp::base32_encode(bytes.as_slice()));
    let grouped = text
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-");
    Zeroizing::new(grouped)
}

/// Upper case, without separators or spaces.
fn normalise_recovery_code(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}
