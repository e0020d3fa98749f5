//! The test clock: `ward-core`'s own [`TestClock`], re-exported rather than copied, so that a
//! router test moves the clock the services read.

pub use ward_core::clock::{Clock, TestClock};

/// A test clock standing at [`crate::epoch`].
pub fn test_clock() -> TestClock {
    TestClock::at(crate::epoch())
}
