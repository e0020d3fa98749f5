//! The users the load generator signs in as, and which code each request carries.
//!
//! Ward accepts each TOTP step at most once per authenticator, so a valid request needs a user
//! that has not been used in the current step yet. Users are handed out round robin from a
//! shared cursor and each remembers the last step it was used in; when the cursor comes back to
//! a user already used in this step, every user of the pool has been used in it, and the pool
//! is exhausted until the next step. Nothing is ever sent with a code that was already used.
//!
//! Wrong codes go to a separate pool (the last users), so that valid users' failure counters
//! and lockouts stay untouched.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use anyhow::bail;

/// Which kind of request to send, and as which user (an index into the provisioned users).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// The user's code for the current step: must be allowed.
    Valid(u32),
    /// A code no nearby step accepts: must be denied.
    Wrong(u32),
}

/// What [`Pool::claim_valid`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Claimed(u32),
    /// Every valid user was used in this step.
    Exhausted,
    /// The user was already used in a later step: our clock reading is stale; try again.
    Stale,
}

/// The shared user pools.
#[derive(Debug)]
pub struct Pool {
    valid_users: u32,
    wrong_users: u32,
    valid_cursor: AtomicU64,
    wrong_cursor: AtomicU64,
    /// Per valid user, the last step used (`i64::MIN`: never).
    last_step: Vec<AtomicI64>,
}

impl Pool {
    /// Splits `users` into a valid pool and, when wrong codes are sent, a wrong-code pool of
    /// `wrong_fraction` of the users (at least one), taken from the end.
    pub fn new(users: u32, wrong_ratio: f64, wrong_fraction: f64) -> anyhow::Result<Self> {
        let wrong_users = if wrong_ratio > 0.0 {
            ((f64::from(users) * wrong_fraction).ceil() as u32).max(1)
        } else {
            0
        };
        let valid_users = users.saturating_sub(wrong_users);
        if valid_users == 0 && wrong_ratio < 1.0 {
            bail!(
                "--users {users} leaves no user for valid codes after the wrong-code pool of {wrong_users}"
            );
        }
        Ok(Self {
            valid_users,
            wrong_users,
            valid_cursor: AtomicU64::new(0),
            wrong_cursor: AtomicU64::new(0),
            last_step: (0..valid_users).map(|_| AtomicI64::new(i64::MIN)).collect(),
        })
    }

    /// Users that receive valid codes.
    pub fn valid_users(&self) -> u32 {
        self.valid_users
    }

    /// Users that receive wrong codes.
    pub fn wrong_users(&self) -> u32 {
        self.wrong_users
    }

    /// A valid user not yet used in `step`, or `None` when the pool is exhausted for it.
    pub fn valid(&self, step: i64) -> Option<u32> {
        // A stale read can only happen around a step boundary, and only a few times in a row.
        for _ in 0..8 {
            match self.claim_valid(step) {
                Claim::Claimed(user) => return Some(user),
                Claim::Exhausted => return None,
                Claim::Stale => {}
            }
        }
        None
    }

    fn claim_valid(&self, step: i64) -> Claim {
        if self.valid_users == 0 {
            return Claim::Exhausted;
        }
        let index = (self.valid_cursor.fetch_add(1, Ordering::Relaxed)
            % u64::from(self.valid_users)) as u32;
        let Some(last) = self.last_step.get(index as usize) else {
            return Claim::Exhausted;
        };
        let previous = last.fetch_max(step, Ordering::AcqRel);
        match previous.cmp(&step) {
            std::cmp::Ordering::Less => Claim::Claimed(index),
            std::cmp::Ordering::Equal => Claim::Exhausted,
            std::cmp::Ordering::Greater => Claim::Stale,
        }
    }

    /// The next user of the wrong-code pool (no step bookkeeping: wrong codes use no step).
    pub fn wrong(&self) -> Option<u32> {
        if self.wrong_users == 0 {
            return None;
        }
        let offset =
            self.wrong_cursor.fetch_add(1, Ordering::Relaxed) % u64::from(self.wrong_users);
        Some(self.valid_users + offset as u32)
    }
}

/// Decides, request by request, whether to send a wrong code, so that `ratio` of one worker's
/// requests are wrong, evenly spread (an error-diffusion counter in parts per million, not a
/// coin toss, so short runs get the asked ratio too).
#[derive(Debug, Clone)]
pub struct Mixer {
    ppm: u64,
    debt: u64,
}

const MILLION: u64 = 1_000_000;

impl Mixer {
    /// A mixer for `ratio` (0 to 1) wrong codes; `phase` in `[0, 1)` staggers workers.
    pub fn new(ratio: f64, phase: f64) -> Self {
        let ppm = (ratio.clamp(0.0, 1.0) * MILLION as f64).round() as u64;
        let debt = (phase.clamp(0.0, 1.0) * MILLION as f64) as u64 % MILLION;
        Self { ppm, debt }
    }

    /// Whether the next request carries a wrong code.
    pub fn next_is_wrong(&mut self) -> bool {
        self.debt += self.ppm;
        if self.debt >= MILLION {
            self.debt -= MILLION;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_valid_user_is_used_once_per_step() {
        let pool = Pool::new(10, 0.1, 0.2).unwrap();
        assert_eq!((pool.valid_users(), pool.wrong_users()), (8, 2));
        let mut seen: Vec<u32> = (0..8).map(|_| pool.valid(100).unwrap()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
        assert_eq!(pool.valid(100), None, "exhausted within the step");
        assert!(pool.valid(101).is_some(), "fresh again in the next step");
    }

    #[test]
    fn stale_steps_never_reuse_a_user() {
        let pool = Pool::new(4, 0.0, 0.05).unwrap();
        assert_eq!(pool.wrong_users(), 0);
        for _ in 0..4 {
            assert!(pool.valid(200).is_some());
        }
        // A worker still reading step 199 must not get a user already used in 200.
        assert_eq!(pool.valid(199), None);
    }

    #[test]
    fn wrong_pool_is_the_tail_round_robin() {
        let pool = Pool::new(100, 0.5, 0.05).unwrap();
        let users: Vec<u32> = (0..6).map(|_| pool.wrong().unwrap()).collect();
        assert_eq!(users, [95, 96, 97, 98, 99, 95]);
    }

    #[test]
    fn no_valid_users_is_refused() {
        assert!(Pool::new(1, 0.1, 0.05).is_err());
        assert!(Pool::new(1, 1.0, 0.05).is_ok());
    }

    #[test]
    fn mixer_hits_the_ratio_exactly() {
        let mut m = Mixer::new(0.1, 0.0);
        let wrong = (0..1000).filter(|_| m.next_is_wrong()).count();
        assert_eq!(wrong, 100);
        let mut never = Mixer::new(0.0, 0.5);
        assert!((0..1000).all(|_| !never.next_is_wrong()));
    }
}
