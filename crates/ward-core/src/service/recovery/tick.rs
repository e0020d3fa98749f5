//! Time passes for every open case, whether or not anyone looks at it: cooling starts and
//! ends, the halfway reminder goes out, unused tokens and stale cases expire.

use crate::service::Recovery;
use chrono::{DateTime, Utc};

use super::Ward;
use crate::error::CoreResult;
use crate::model::{Actor as AuditActor, OrgId};
use crate::recovery::Command;

/// Cases visited per run (the least recently updated first).
const PER_RUN: u32 = 500;

impl Ward {
    /// Lets time pass for one organisation's open cases.
    async fn recovery_tick(&self, org: &OrgId, now: DateTime<Utc>) -> CoreResult<usize> {
        let rows = self
            .store
            .open_recovery_cases(org.as_str(), PER_RUN)
            .await?;
        let visited = rows.len();
        for row in rows {
            let case_id = row.case_id.clone();
            let loaded = match self.load_case(row).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(%case_id, error = %e, "recovery case unreadable");
                    continue;
                }
            };
            match self
                .run_case(loaded.clone(), Command::Tick, &AuditActor::Anonymous, now)
                .await
            {
                Ok(Ok(view)) => self.midpoint_notice(&loaded, &view, now).await,
                Ok(Err(_)) => {}
                Err(e) => tracing::warn!(%case_id, error = %e, "recovery tick failed"),
            }
        }
        Ok(visited)
    }
}

impl Recovery<'_> {
    /// Lets time pass for the open cases of every organisation; returns how many were
    /// visited. The server runs this every minute.
    pub async fn tick_all(self, now: DateTime<Utc>) -> CoreResult<usize> {
        let mut visited = 0;
        for org in self.store.list_orgs().await? {
            visited += self.recovery_tick(&OrgId::new(org.org_id), now).await?;
        }
        Ok(visited)
    }
}
