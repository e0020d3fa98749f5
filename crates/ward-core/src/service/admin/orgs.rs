//! Organisations: creating, naming, disabling and enabling them, and finding the one a
//! request names.
//!
//! Every change is audited in the organisation's own log. Names are what administrators type
//! (`--org NAME`); ids are what every row stores.

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use ward_store::{Change, ChangeSet, OrgRow, StoreError};

use crate::audit::{Action, Event};
use crate::error::{CoreError, CoreResult};
use crate::gate::OrgState;
use crate::ids;
use crate::model::{Actor, Org, OrgId};
use crate::service::{Admin, Ward, check_text};

/// How long an organisation's state is trusted before it is read again: disabling takes
/// effect on this node at once, on every other node within this time.
const STATE_TTL_MS: i64 = 5_000;

/// The organisations' states as last read, so that the gate's check costs no database read on
/// most logins.
#[derive(Debug, Default)]
pub(in crate::service) struct OrgStates {
    entries: RwLock<HashMap<String, (i64, OrgState)>>,
}

impl OrgStates {
    fn get(&self, org: &str, now_ms: i64) -> Option<OrgState> {
        let entries = self.entries.read().ok()?;
        entries
            .get(org)
            .filter(|(read_at, _)| now_ms - read_at < STATE_TTL_MS && now_ms >= *read_at)
            .map(|(_, state)| *state)
    }

    fn put(&self, org: &str, state: OrgState, now_ms: i64) {
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(org.to_owned(), (now_ms, state));
        }
    }

    fn forget(&self, org: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(org);
        }
    }
}

impl Ward {
    /// Where a refusal that names no organisation is recorded (an unknown activation code,
    /// device or link): the oldest organisation's log, the deployment's first tenant.
    pub(crate) async fn unattributed_org(&self) -> CoreResult<OrgId> {
        self.store
            .list_orgs()
            .await?
            .into_iter()
            .next()
            .map(|row| OrgId::new(row.org_id))
            .ok_or_else(|| CoreError::Internal("no organisation exists".into()))
    }

    /// The state of `org` for the gate (an organisation that does not exist counts as
    /// disabled: nobody logs in to it).
    pub(crate) async fn org_state(&self, org: &str, now: DateTime<Utc>) -> CoreResult<OrgState> {
        let now_ms = now.timestamp_millis();
        if let Some(state) = self.org_states.get(org, now_ms) {
            return Ok(state);
        }
        let state = OrgState::of(self.store.org(org).await?.as_ref());
        self.org_states.put(org, state, now_ms);
        Ok(state)
    }
}

impl Admin<'_> {
    /// Creates an organisation named `name` (unique).
    pub async fn create_org(
        self,
        actor: &Actor,
        name: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Org> {
        check_text("name", name, 100)?;
        let row = OrgRow {
            org_id: ids::org_id(),
            name: name.into(),
            created_ms: now.timestamp_millis(),
            disabled_ms: None,
        };
        let event = Event::new(
            &row.org_id,
            now,
            actor,
            Action::OrgCreate,
            &row.org_id,
            "ok",
        )
        .detail("name", name);
        let org = Org::from(&row);
        self.store
            .commit(
                ChangeSet::new()
                    .with(Change::InsertOrg(row))
                    .with(event.into_change()),
            )
            .await
            .map_err(|e| name_taken(e, name))?;
        Ok(org)
    }

    /// Every organisation, oldest first.
    pub async fn list_orgs(self) -> CoreResult<Vec<Org>> {
        Ok(self
            .store
            .list_orgs()
            .await?
            .iter()
            .map(Org::from)
            .collect())
    }

    /// The organisation `name` names: its name, or its id (so the first organisation, `default`,
    /// can be named either way).
    pub async fn org_named(self, name: &str) -> CoreResult<Org> {
        if let Some(row) = self.store.org_by_name(name).await? {
            return Ok(Org::from(&row));
        }
        self.store
            .org(name)
            .await?
            .map(|row| Org::from(&row))
            .ok_or_else(|| CoreError::NotFound(format!("organisation {name}")))
    }

    /// The organisation a request acts on: the one `name` names or, when it names none, the
    /// only organisation there is. Several organisations and no name is an error that says
    /// to name one.
    pub async fn resolve_org(self, name: Option<&str>) -> CoreResult<OrgId> {
        if let Some(name) = name {
            return Ok(self.admin().org_named(name).await?.id);
        }
        let mut orgs = self.store.list_orgs().await?.into_iter();
        match (orgs.next(), orgs.next()) {
            (Some(only), None) => Ok(OrgId::new(only.org_id)),
            (None, _) => Err(CoreError::NotFound("organisation".into())),
            (Some(_), Some(_)) => Err(CoreError::invalid(
                "org",
                "there are several organisations: name one (--org NAME)",
            )),
        }
    }

    /// Renames an organisation; the new name must be free.
    pub async fn rename_org(
        self,
        actor: &Actor,
        name: &str,
        new_name: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Org> {
        check_text("name", new_name, 100)?;
        let mut org = self.admin().org_named(name).await?;
        let event = Event::new(
            org.id.as_str(),
            now,
            actor,
            Action::OrgRename,
            org.id.as_str(),
            "ok",
        )
        .detail("previous", org.name.as_str())
        .detail("name", new_name);
        let change = Change::RenameOrg {
            org_id: org.id.to_string(),
            name: new_name.into(),
        };
        self.store
            .commit(ChangeSet::new().with(change).with(event.into_change()))
            .await
            .map_err(|e| name_taken(e, new_name))?;
        new_name.clone_into(&mut org.name);
        Ok(org)
    }

    /// Disables (`disabled`) or enables an organisation. A disabled organisation keeps its
    /// data; every login in it is refused by the gate.
    pub async fn set_org_disabled(
        self,
        actor: &Actor,
        name: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> CoreResult<Org> {
        let mut org = self.admin().org_named(name).await?;
        let (action, disabled_ms) = if disabled {
            (Action::OrgDisable, Some(now.timestamp_millis()))
        } else {
            (Action::OrgEnable, None)
        };
        let event = Event::new(org.id.as_str(), now, actor, action, org.id.as_str(), "ok");
        let change = Change::SetOrgDisabled {
            org_id: org.id.to_string(),
            disabled_ms,
        };
        self.store
            .commit(ChangeSet::new().with(change).with(event.into_change()))
            .await?;
        self.org_states.forget(org.id.as_str());
        org.disabled_ms = disabled_ms;
        Ok(org)
    }
}

fn name_taken(e: StoreError, name: &str) -> CoreError {
    match e {
        StoreError::Duplicate(_) => {
            CoreError::Conflict(format!("organisation {name} already exists"))
        }
        other => other.into(),
    }
}
