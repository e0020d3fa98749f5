//! Tallies of push logins: outcomes, and HDR histograms of the round trip and its parts.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::time::Instant;

/// Longest latency the histograms tell apart; logins time out well before.
const MAX_LATENCY_US: u64 = 600_000_000;
/// Distinct failure labels kept; further ones count under "other".
const MAX_LABELS: usize = 32;
/// The percentiles reported, with their labels.
pub const PERCENTILES: [(&str, f64); 4] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
];

/// The moments of one successful login.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// `t0`: `POST /auth/v2/auth` about to be sent.
    pub sent: Instant,
    /// Its answer (the transaction id and the number) read.
    pub auth_answered: Instant,
    /// `t1`: the event read from the device's stream.
    pub received: Instant,
    /// `t2`: the device's answer acknowledged.
    pub acknowledged: Instant,
    /// `t3`: `auth_status` answered `allow`.
    pub allowed: Instant,
}

/// The histograms reported, in order: key, label.
pub const PARTS: [(&str, &str); 5] = [
    ("round_trip", "round trip  t3-t0"),
    ("auth_answer", "/auth answer"),
    ("to_device", "to device   t1-t0"),
    ("device_answer", "answer ack  t2-t1"),
    ("final_status", "status      t3-t2"),
];

/// Tallies of one phase (warm-up or measured) of one or all workers.
#[derive(Debug, Clone)]
pub struct PushStats {
    pub logins: u64,
    pub allowed: u64,
    pub failures: BTreeMap<String, u64>,
    /// Events for an earlier transaction, skipped by the device.
    pub stale_events: u64,
    /// `auth_status` answered before the device's answer was acknowledged (the two race
    /// after the server commits the decision); `t3-t2` counts 0 for these.
    pub status_before_ack: u64,
    /// In [`PARTS`] order, microseconds.
    pub parts: [Histogram<u64>; 5],
    pub first_start: Option<Instant>,
    pub last_end: Option<Instant>,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?)
}

impl PushStats {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            logins: 0,
            allowed: 0,
            failures: BTreeMap::new(),
            stale_events: 0,
            status_before_ack: 0,
            parts: [
                histogram()?,
                histogram()?,
                histogram()?,
                histogram()?,
                histogram()?,
            ],
            first_start: None,
            last_end: None,
        })
    }

    /// Counts one login that started at `start` and ended at `end`.
    pub fn record(&mut self, result: Result<Timings, String>, start: Instant, end: Instant) {
        self.logins += 1;
        self.first_start = Some(self.first_start.map_or(start, |s| s.min(start)));
        self.last_end = Some(self.last_end.map_or(end, |e| e.max(end)));
        match result {
            Ok(t) => {
                self.allowed += 1;
                if t.allowed < t.acknowledged {
                    self.status_before_ack += 1;
                }
                let spans = [
                    t.allowed - t.sent,
                    t.auth_answered - t.sent,
                    t.received.saturating_duration_since(t.sent),
                    t.acknowledged.saturating_duration_since(t.received),
                    t.allowed.saturating_duration_since(t.acknowledged),
                ];
                for (h, span) in self.parts.iter_mut().zip(spans) {
                    h.saturating_record(micros(span).max(1));
                }
            }
            Err(label) => {
                let key =
                    if self.failures.len() >= MAX_LABELS && !self.failures.contains_key(&label) {
                        "other".to_owned()
                    } else {
                        label
                    };
                *self.failures.entry(key).or_insert(0) += 1;
            }
        }
    }

    /// Adds another worker's tallies.
    pub fn merge(&mut self, other: &Self) -> anyhow::Result<()> {
        self.logins += other.logins;
        self.allowed += other.allowed;
        self.stale_events += other.stale_events;
        self.status_before_ack += other.status_before_ack;
        for (label, n) in &other.failures {
            *self.failures.entry(label.clone()).or_insert(0) += n;
        }
        for (mine, theirs) in self.parts.iter_mut().zip(&other.parts) {
            mine.add(theirs)?;
        }
        self.first_start = match (self.first_start, other.first_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_end = match (self.last_end, other.last_end) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Ok(())
    }

    /// Logins that did not end in `allow`.
    pub fn failed(&self) -> u64 {
        self.logins - self.allowed
    }

    /// Seconds from the first login's start to the last one's end.
    pub fn span_secs(&self) -> f64 {
        match (self.first_start, self.last_end) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        }
    }

    pub fn to_json(&self) -> Value {
        let secs = self.span_secs();
        let latency: BTreeMap<&str, Value> = PARTS
            .iter()
            .zip(&self.parts)
            .map(|((key, _), h)| (*key, histogram_json(h)))
            .collect();
        json!({
            "logins": self.logins,
            "allowed": self.allowed,
            "failed": self.failed(),
            "failures": self.failures,
            "stale_events": self.stale_events,
            "status_before_ack": self.status_before_ack,
            "secs": secs,
            "logins_per_sec": if secs > 0.0 { self.logins as f64 / secs } else { 0.0 },
            "latency_ms": latency,
        })
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn histogram_json(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| us as f64 / 1000.0;
    let mut out: BTreeMap<&str, Value> = PERCENTILES
        .iter()
        .map(|(label, q)| (*label, json!(ms(h.value_at_quantile(*q)))))
        .collect();
    out.insert("max", json!(ms(h.max())));
    out.insert("mean", json!(h.mean() / 1000.0));
    out.insert("count", json!(h.len()));
    Value::Object(out.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timings(base: Instant, ms: [u64; 4]) -> Timings {
        let at = |m: u64| base + Duration::from_millis(m);
        Timings {
            sent: base,
            auth_answered: at(ms[0]),
            received: at(ms[1]),
            acknowledged: at(ms[2]),
            allowed: at(ms[3]),
        }
    }

    #[test]
    fn parts_and_failures_are_tallied_and_merged() {
        let base = Instant::now();
        let mut a = PushStats::new().unwrap();
        a.record(
            Ok(timings(base, [1, 2, 4, 5])),
            base,
            base + Duration::from_millis(5),
        );
        a.record(
            Err("auth: timeout".into()),
            base,
            base + Duration::from_secs(30),
        );
        let mut b = PushStats::new().unwrap();
        // The final status raced ahead of the acknowledgement.
        b.record(
            Ok(timings(base, [1, 2, 6, 5])),
            base,
            base + Duration::from_millis(6),
        );
        a.merge(&b).unwrap();
        assert_eq!((a.logins, a.allowed, a.failed()), (3, 2, 1));
        assert_eq!(a.status_before_ack, 1);
        assert_eq!(a.failures["auth: timeout"], 1);
        let round_trip = &a.parts[0];
        assert_eq!(round_trip.len(), 2);
        assert!(round_trip.equivalent(round_trip.max(), 5000));
        let final_status = &a.parts[4];
        assert_eq!(
            final_status.min(),
            1,
            "a negative t3-t2 counts as 0 (1 µs floor)"
        );
        assert!((a.span_secs() - 30.0).abs() < 1e-6);
        let doc = a.to_json();
        assert_eq!(doc["latency_ms"]["round_trip"]["count"], 2);
    }
}
