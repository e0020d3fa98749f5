//! Roles (admin, helpdesk, approver, security) and recovery approver sets, granted by an
//! administrator and audited.

use chrono::{DateTime, Utc};
use ward_store::{ApproverRow, Change, ChangeSet, RoleRow, StoreError, UserRow};

use crate::audit::{Action, Event};
use crate::error::{CoreError, CoreResult};
use crate::model::{Actor, OrgId, Role, UserId};
use crate::service::{Admin, Ward};

impl Ward {
    pub(in crate::service) async fn user_named(
        &self,
        org: &OrgId,
        username: &str,
    ) -> CoreResult<UserRow> {
        self.store
            .user_by_name(org.as_str(), username)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("user {username}")))
    }
}

impl Admin<'_> {
    /// Grants a role.
    pub async fn grant_role(
        self,
        org: &OrgId,
        actor: &Actor,
        username: &str,
        role: Role,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let user = self.user_named(org, username).await?;
        let row = RoleRow {
            org_id: org.to_string(),
            user_id: user.user_id.clone(),
            role: role.as_str().into(),
            granted_ms: now.timestamp_millis(),
            granted_by: actor.to_string(),
        };
        let event = Event::new(
            org.as_str(),
            now,
            actor,
            Action::RoleGrant,
            &user.user_id,
            "ok",
        )
        .detail("role", role.as_str());
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::GrantRole(row))
                    .with(event.into_change()),
            )
            .await
            .map_err(|e| match e {
                StoreError::Duplicate(_) => CoreError::Conflict(format!(
                    "{username} already has the role {}",
                    role.as_str()
                )),
                other => other.into(),
            })?;
        Ok(())
    }

    /// Revokes a role.
    pub async fn revoke_role(
        self,
        org: &OrgId,
        actor: &Actor,
        username: &str,
        role: Role,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let user = self.user_named(org, username).await?;
        let event = Event::new(
            org.as_str(),
            now,
            actor,
            Action::RoleRevoke,
            &user.user_id,
            "ok",
        )
        .detail("role", role.as_str());
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::RevokeRole {
                        org_id: org.to_string(),
                        user_id: user.user_id.clone(),
                        role: role.as_str().into(),
                    })
                    .with(event.into_change()),
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => {
                    CoreError::NotFound(format!("role {} of {username}", role.as_str()))
                }
                other => other.into(),
            })?;
        Ok(())
    }

    /// The roles a user holds.
    pub async fn roles(self, org: &OrgId, user_id: &UserId) -> CoreResult<Vec<Role>> {
        self.store
            .roles_for_user(org.as_str(), user_id.as_str())
            .await?
            .iter()
            .map(|r| r.parse())
            .collect()
    }

    /// Whether a user holds a role.
    pub async fn has_role(self, org: &OrgId, user_id: &UserId, role: Role) -> CoreResult<bool> {
        Ok(self.admin().roles(org, user_id).await?.contains(&role))
    }

    /// Names someone who may approve a user's recovery. The approver must hold the `approver`
    /// or `security` role and be someone else; refused while the user is on probation after a
    /// recovery (a takeover must not add its own approvers).
    pub async fn add_recovery_approver(
        self,
        org: &OrgId,
        actor: &Actor,
        username: &str,
        approver_name: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let user = self.user_named(org, username).await?;
        let approver = self.user_named(org, approver_name).await?;
        if user.user_id == approver.user_id {
            return Err(CoreError::invalid(
                "approver",
                "a user cannot approve their own recovery",
            ));
        }
        crate::service::portal::refuse_alteration(
            &user,
            crate::gate::Alteration::RecoveryMethods,
            now.timestamp_millis(),
        )?;
        let roles = self.admin().roles(org, &UserId::of(&approver)).await?;
        if !roles.contains(&Role::Approver) && !roles.contains(&Role::Security) {
            return Err(CoreError::invalid(
                "approver",
                format!("{approver_name} does not hold the approver role (ward role grant)"),
            ));
        }
        let event = Event::new(
            org.as_str(),
            now,
            actor,
            Action::RecoveryApproverAdd,
            &user.user_id,
            "ok",
        )
        .detail("approver_id", approver.user_id.as_str());
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::AddRecoveryApprover(ApproverRow {
                        org_id: org.to_string(),
                        user_id: user.user_id.clone(),
                        approver_id: approver.user_id.clone(),
                        added_ms: now.timestamp_millis(),
                    }))
                    .with(event.into_change()),
            )
            .await
            .map_err(|e| match e {
                StoreError::Duplicate(_) => {
                    CoreError::Conflict(format!("{approver_name} already approves for {username}"))
                }
                other => other.into(),
            })?;
        self.notify_user(
            &user,
            "recovery.approver.add",
            "A recovery approver was added to your account",
            &format!(
                "{approver_name} can now approve a recovery of your account if you lose every \
                 sign-in method."
            ),
            now,
        )
        .await;
        Ok(())
    }
}
