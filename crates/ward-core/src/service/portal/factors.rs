//! A user's factors: the list, adding an authenticator app, renaming and removing, and the
//! policy group that decides which factors a user may have.

use crate::service::Portal;
use chrono::{DateTime, Utc};
use ward_store::{Change, ChangeSet, TotpRow};
use zeroize::Zeroizing;

use super::{
    FactorKind, Factors, RecoveryView, STEP_UP_NEEDED, Session, TOTP_ENROL, TotpConfirm, TotpSetup,
    TotpView, refuse_if_frozen,
};
use crate::audit::{Action, Event};
use crate::crypto::Purpose;
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor, OrgId, UserId};
use crate::service::passkeys::PasskeyView;
use crate::service::{PushDevice, check_text};
use crate::totp::{self, Algorithm, Totp};

impl Portal<'_> {
    /// Everything a user has enrolled.
    pub async fn factors(self, org: &OrgId, user_id: &UserId) -> CoreResult<Factors> {
        let passkeys = self
            .store
            .webauthn_credentials_for_user(org.as_str(), user_id.as_str())
            .await?;
        let totps = self
            .store
            .totps_for_user(org.as_str(), user_id.as_str())
            .await?;
        let devices = self
            .store
            .devices_for_user(org.as_str(), user_id.as_str())
            .await?;
        let codes = self
            .store
            .recovery_codes_for_user(org.as_str(), user_id.as_str())
            .await?;
        Ok(Factors {
            passkeys: passkeys.iter().map(PasskeyView::from).collect(),
            totps: totps
                .iter()
                .map(|t| TotpView {
                    id: t.totp_id.clone(),
                    name: t.name.clone(),
                    created_ms: t.created_ms,
                })
                .collect(),
            devices: devices.iter().map(PushDevice::from).collect(),
            recovery: RecoveryView {
                total: codes.len(),
                remaining: codes.iter().filter(|c| c.used_ms.is_none()).count(),
                created_ms: codes.iter().map(|c| c.created_ms).max(),
            },
        })
    }

    /// Starts adding a TOTP authenticator: a new seed, kept server-side until a code from
    /// the app confirms it.
    pub async fn totp_setup_start(
        self,
        session: &Session,
        now: DateTime<Utc>,
    ) -> CoreResult<TotpSetup> {
        let org = &session.org();
        let user = self.active_user(org, &session.user_id()).await?;
        refuse_if_frozen(&user)?;
        self.require_fresh_check(session, now).await?;
        let secret = totp::generate_secret();
        let generator = Totp::new(secret, Algorithm::Sha1, 6, 30)?;
        let secret_base32 = Zeroizing::new(totp::base32_encode(generator.secret()));
        let ceremony = self
            .begin_sealed_ceremony(org, TOTP_ENROL, &UserId::of(&user), generator.secret(), now)
            .await?;
        let issuer = self.passkeys()?.settings.organisation.clone();
        Ok(TotpSetup {
            ceremony,
            secret_base32,
            otpauth_uri: Zeroizing::new(generator.otpauth_uri(&issuer, &user.username)),
        })
    }

    /// Finishes adding a TOTP authenticator once `code` matches the seed. A wrong code keeps
    /// the set-up open under a new ceremony id, so the user can try the next code.
    pub async fn totp_setup_finish(
        self,
        session: &Session,
        ceremony: &str,
        code: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<TotpConfirm> {
        let org = &session.org();
        check_text("name", name, 60)?;
        let code = code.trim().replace(' ', "");
        let (row, seed) = self.take_ceremony(org, TOTP_ENROL, ceremony, now).await?;
        if row.user_id.as_deref() != Some(session.user.user_id.as_str()) {
            return Err(CoreError::Forbidden(
                "this set-up belongs to another session".into(),
            ));
        }
        let user = self.active_user(org, &session.user_id()).await?;
        refuse_if_frozen(&user)?;
        let generator = Totp::new(seed, Algorithm::Sha1, 6, 30)?;
        let Some(step) = generator.verify(&code, now.timestamp(), None, self.policy.totp_window)
        else {
            // Keep the seed usable for another try.
            let retry = self
                .begin_sealed_ceremony(org, TOTP_ENROL, &UserId::of(&user), generator.secret(), now)
                .await?;
            return Ok(TotpConfirm::WrongCode { ceremony: retry });
        };
        let totp_id = crate::ids::totp_id();
        let row = TotpRow {
            org_id: org.to_string(),
            totp_id: totp_id.clone(),
            user_id: user.user_id.clone(),
            name: name.into(),
            seed_sealed: self
                .keys
                .seal(Purpose::TotpSeed, &totp_id, generator.secret())?,
            algorithm: Algorithm::Sha1.as_str().into(),
            digits: 6,
            step_secs: 30,
            last_step: Some(step),
            created_ms: now.timestamp_millis(),
        };
        let event = Event::new(
            org.as_str(),
            now,
            &Actor::User(user.user_id.clone()),
            Action::FactorTotpAdd,
            &user.user_id,
            "ok",
        )
        .detail("totp_id", totp_id.as_str());
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::InsertTotp(row))
                    .with(event.into_change()),
            )
            .await?;
        self.notify_user(
            &user,
            "factor.totp.add",
            "An authenticator app was added to your account",
            &format!(
                "An authenticator app named \u{201c}{name}\u{201d} was added to your account."
            ),
            now,
        )
        .await;
        Ok(TotpConfirm::Added(TotpView {
            id: totp_id,
            name: name.into(),
            created_ms: now.timestamp_millis(),
        }))
    }

    /// Renames one of the user's factors.
    pub async fn rename_factor(
        self,
        session: &Session,
        kind: FactorKind,
        id: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let org = &session.org();
        check_text("name", name, 60)?;
        let user = self.active_user(org, &session.user_id()).await?;
        refuse_if_frozen(&user)?;
        let event = Event::new(
            org.as_str(),
            now,
            &Actor::User(user.user_id.clone()),
            Action::FactorRename,
            &user.user_id,
            "ok",
        )
        .detail("kind", kind.store_kind())
        .detail("id", id);
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::RenameFactor {
                        org_id: org.to_string(),
                        user_id: user.user_id.clone(),
                        kind: kind.store_kind().into(),
                        id: id.into(),
                        name: name.into(),
                    })
                    .with(event.into_change()),
            )
            .await?;
        Ok(())
    }

    /// Removes one of the user's factors. Needs a step-up; refuses to remove the last
    /// phishing-resistant factor where the user's policy requires one.
    pub async fn remove_factor(
        self,
        session: &Session,
        kind: FactorKind,
        id: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let org = &session.org();
        let user = self.active_user(org, &session.user_id()).await?;
        refuse_if_frozen(&user)?;
        let actor = Actor::User(user.user_id.clone());
        if !session.stepped_up(now) {
            return Err(CoreError::Forbidden(STEP_UP_NEEDED.into()));
        }
        let factors = self.portal().factors(org, &UserId::of(&user)).await?;
        let policy = self.factor_policy(&user)?;
        if kind == FactorKind::Passkey
            && policy.require_phishing_resistant
            && factors.passkeys.len() == 1
            && factors.passkeys.iter().any(|p| p.id == id)
        {
            let event = Event::new(
                org.as_str(),
                now,
                &actor,
                Action::FactorRemove,
                &user.user_id,
                "deny",
            )
            .detail("kind", kind.store_kind())
            .detail("id", id)
            .detail("reason", "last phishing-resistant factor");
            return Err(self
                .audited_refusal(
                    event,
                    "factor",
                    "this is your only passkey, and your organisation requires one; add \
                     another passkey first",
                )
                .await);
        }
        let event = Event::new(
            org.as_str(),
            now,
            &actor,
            Action::FactorRemove,
            &user.user_id,
            "ok",
        )
        .detail("kind", kind.store_kind())
        .detail("id", id);
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::DeleteFactor {
                        org_id: org.to_string(),
                        user_id: user.user_id.clone(),
                        kind: kind.store_kind().into(),
                        id: id.into(),
                    })
                    .with(event.into_change()),
            )
            .await?;
        let label = kind.label();
        self.notify_user(
            &user,
            "factor.remove",
            &format!("A {label} was removed from your account"),
            &format!("A {label} was removed from your account."),
            now,
        )
        .await;
        Ok(())
    }

    /// Puts a user in a policy group (`None`: the default group).
    pub async fn set_policy_group(
        self,
        org: &OrgId,
        actor: &Actor,
        username: &str,
        group: Option<&str>,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        if let Some(g) = group {
            check_text("group", g, 60)?;
            if !self.passkeys()?.settings.factors.groups.contains_key(g) {
                return Err(CoreError::invalid(
                    "group",
                    format!("no policy group {g} is configured"),
                ));
            }
        }
        let user = self
            .store
            .user_by_name(org.as_str(), username)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("user {username}")))?;
        let event = Event::new(
            org.as_str(),
            now,
            actor,
            Action::UserPolicyGroup,
            &user.user_id,
            "ok",
        )
        .detail_opt("group", group);
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::SetPolicyGroup {
                        org_id: org.to_string(),
                        user_id: user.user_id,
                        group: group.map(str::to_owned),
                    })
                    .with(event.into_change()),
            )
            .await?;
        Ok(())
    }
}
