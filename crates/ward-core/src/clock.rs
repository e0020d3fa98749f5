//! The only place Ward reads the wall clock.
//!
//! Services read the time once per request and pass `now` down; tests use [`TestClock`] and
//! move it instead of sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current UTC time.
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned wall-clock read
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    /// A clock standing at `at`.
    pub fn at(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Moves the clock forward (or back, with a negative delta).
    pub fn advance(&self, by: TimeDelta) {
        if let Ok(mut t) = self.0.lock() {
            *t += by;
        }
    }

    /// Sets the clock.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Ok(mut t) = self.0.lock() {
            *t = at;
        }
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map_or(DateTime::<Utc>::MIN_UTC, |t| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp(1_000, 0).unwrap();
        let c = TestClock::at(start);
        assert_eq!(c.now(), start);
        c.advance(TimeDelta::seconds(30));
        assert_eq!(c.now().timestamp(), 1_030);
    }
}
