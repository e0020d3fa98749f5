//! `[recovery]`: how account recovery behaves. Cooling periods can be lengthened, never
//! shortened below the design's floors — except with `test_cooling_seconds`, which exists for
//! test deployments and says so loudly in the log.

use chrono::TimeDelta;
use serde::Deserialize;
use ward_core::service::RecoverySettings;

use super::{ConfigError, value_err};

const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecoveryFile {
    starts_per_day: Option<i64>,
    denied_cooloff_hours: Option<i64>,
    circuit_breaker_multiple: Option<i64>,
    circuit_breaker_floor: Option<i64>,
    cooling_hours: Option<i64>,
    cooling_hours_without_approval: Option<i64>,
    r2_cooling_hours: Option<i64>,
    probation_days: Option<i64>,
    /// Test deployments only: every cooling period becomes this many seconds.
    pub(super) test_cooling_seconds: Option<i64>,
}

pub(super) fn resolve_recovery(file: &RecoveryFile) -> Result<RecoverySettings, ConfigError> {
    let mut s = RecoverySettings::default();
    if let Some(n) = file.starts_per_day {
        if !(1..=20).contains(&n) {
            return Err(value_err(
                "recovery.starts_per_day",
                "must be between 1 and 20",
            ));
        }
        s.starts_per_day = n;
    }
    if let Some(h) = file.denied_cooloff_hours {
        if !(1..=720).contains(&h) {
            return Err(value_err(
                "recovery.denied_cooloff_hours",
                "must be between 1 and 720",
            ));
        }
        s.denied_cooloff = TimeDelta::hours(h);
    }
    if let Some(m) = file.circuit_breaker_multiple {
        s.breaker_multiple = m.max(2);
    }
    if let Some(f) = file.circuit_breaker_floor {
        s.breaker_floor = f.max(1);
    }
    let p = &mut s.policy;
    if let Some(h) = file.cooling_hours {
        p.r1_cooling_ms = h.saturating_mul(HOUR_MS);
    }
    if let Some(h) = file.cooling_hours_without_approval {
        p.r1_cooling_without_approval_or_document_ms = h.saturating_mul(HOUR_MS);
    }
    if let Some(h) = file.r2_cooling_hours {
        p.r2_cooling_ms = h.saturating_mul(HOUR_MS);
    }
    if let Some(d) = file.probation_days {
        s.probation = TimeDelta::days(d.clamp(1, 90));
    }
    match file.test_cooling_seconds {
        Some(secs) if (1..=3600).contains(&secs) => {
            let ms = secs * 1000;
            p.r1_cooling_ms = ms;
            p.r1_cooling_without_approval_or_document_ms = ms;
            p.r1_cooling_document_person_approval_ms = ms;
            p.r2_cooling_ms = ms;
            p.r3_cooling_ms = ms;
        }
        Some(_) => {
            return Err(value_err(
                "recovery.test_cooling_seconds",
                "must be between 1 and 3600",
            ));
        }
        None => p
            .check_production_bounds()
            .map_err(|e| value_err("recovery", format!("below the design's floor: {e:?}")))?,
    }
    Ok(s)
}
