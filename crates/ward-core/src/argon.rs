//! The one way Ward runs Argon2id: a bounded executor with its own memory.
//!
//! Argon2id is CPU- and memory-hard on purpose, and some of its callers are anonymous (a
//! recovery code submitted on a public page). Every Argon2 call in Ward goes through an
//! [`Argon2Pool`]:
//!
//! - at most `workers` hashes run at once (one per core by default), each on the blocking
//!   thread pool, so the async runtime keeps answering;
//! - at most `queue` more callers wait; anyone beyond is refused at once with
//!   [`CoreError::RateLimited`] instead of piling up;
//! - each worker owns one memory area of Argon2 blocks, allocated once and reused, so the
//!   memory Argon2 holds is `workers` × `m_cost` whatever the load. (With a fresh allocation per
//!   hash, glibc keeps the freed 19 MiB blocks in per-thread arenas: one anonymous wrong code
//!   took a server from 30 to 147 MiB, eight concurrent ones to 795 MiB, never given back.)
//!
//! Hashes are PHC strings with the `argon2` crate's default parameters (Argon2id, v=19,
//! m=19456 KiB, t=2, p=1: OWASP's first recommended configuration). Verification takes the
//! parameters, salt and version from the stored string, so hashes stored with other valid
//! parameters keep verifying.
//!
//! # Security
//! A stored hash's memory cost is capped at [`MAX_MEMORY_KIB`]: a PHC string asking for more
//! does not match rather than making Ward allocate it. Outputs are compared in constant time
//! (the `phc` crate's `Output` equality).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::phc::{Output, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::error::{CoreError, CoreResult};

/// The largest memory cost a stored hash may ask for (64 MiB).
pub const MAX_MEMORY_KIB: u32 = 64 * 1024;

/// Callers allowed to wait per worker before new ones are refused.
const QUEUE_PER_WORKER: usize = 16;

/// Bounded Argon2id executor; see the module documentation.
#[derive(Clone)]
pub struct Argon2Pool {
    inner: Arc<Inner>,
}

struct Inner {
    permits: Arc<Semaphore>,
    /// Memory areas not in use: at most one per worker ever exists.
    memory: Mutex<Vec<Vec<Block>>>,
    /// Callers admitted and not yet finished (running or waiting).
    admitted: AtomicUsize,
    /// Callers waiting for a worker.
    waiting: AtomicUsize,
    workers: usize,
    capacity: usize,
}

impl std::fmt::Debug for Argon2Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Argon2Pool")
            .field("workers", &self.inner.workers)
            .field("capacity", &self.inner.capacity)
            .field("admitted", &self.inner.admitted.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for Argon2Pool {
    /// One worker per available core, [`QUEUE_PER_WORKER`] waiting callers per worker.
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::new(workers, workers.saturating_mul(QUEUE_PER_WORKER))
    }
}

impl Argon2Pool {
    /// `workers` hashes at once (at least one), `queue` more callers waiting.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(workers)),
                memory: Mutex::new(Vec::with_capacity(workers)),
                admitted: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                workers,
                capacity: workers.saturating_add(queue),
            }),
        }
    }

    /// A place in the pool, or [`CoreError::RateLimited`] when every worker is busy and the
    /// queue is full. Taking it first lets a caller answer "busy" the same way whether or not
    /// it then has anything to hash.
    pub fn admit(&self) -> CoreResult<Ticket> {
        let before = self.inner.admitted.fetch_add(1, Ordering::AcqRel);
        let ticket = Ticket {
            inner: Arc::clone(&self.inner),
        };
        if before >= self.inner.capacity {
            drop(ticket);
            return Err(CoreError::RateLimited);
        }
        Ok(ticket)
    }

    /// Hashes each secret (a new random salt each), as PHC strings.
    pub async fn hash_all(&self, secrets: Vec<Zeroizing<String>>) -> CoreResult<Vec<String>> {
        self.admit()?.hash_all(secrets).await
    }

    /// Callers admitted and not finished.
    pub fn admitted(&self) -> usize {
        self.inner.admitted.load(Ordering::Acquire)
    }

    /// Callers waiting for a worker.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Acquire)
    }
}

/// An admitted caller's place in an [`Argon2Pool`]; dropping it gives the place back.
#[derive(Debug)]
#[must_use = "a ticket holds a place in the pool until it is used or dropped"]
pub struct Ticket {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Argon2Pool")
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.inner.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Ticket {
    /// Hashes each secret (a new random salt each), as PHC strings.
    pub async fn hash_all(self, secrets: Vec<Zeroizing<String>>) -> CoreResult<Vec<String>> {
        self.run(move |memory| {
            secrets
                .iter()
                .map(|s| hash_with(memory, s.as_bytes()))
                .collect::<CoreResult<Vec<_>>>()
        })
        .await?
    }

    /// The index of the first of `hashes` that `secret` matches. Unreadable hashes match
    /// nothing.
    pub async fn find_match(
        self,
        secret: Zeroizing<String>,
        hashes: Vec<String>,
    ) -> CoreResult<Option<usize>> {
        self.run(move |memory| {
            hashes
                .iter()
                .position(|h| verify_with(memory, secret.as_bytes(), h))
        })
        .await
    }

    /// Runs `job` on a worker with its memory area, once a worker is free. The work finishes
    /// (and holds its worker) even if the caller stops waiting.
    pub(crate) async fn run<T, F>(self, job: F) -> CoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    {
        let permits = Arc::clone(&self.inner.permits);
        let permit = {
            let _waiting = Waiting::new(&self.inner.waiting);
            permits.acquire_owned().await
        };
        let permit = permit.map_err(|_| CoreError::Internal("the Argon2 pool is closed".into()))?;
        let mut memory = self.take_memory();
        tokio::task::spawn_blocking(move || {
            let out = job(&mut memory);
            self.give_back(memory);
            drop(permit);
            out
        })
        .await
        .map_err(|e| CoreError::Internal(format!("an Argon2 worker failed: {e}")))
    }

    fn take_memory(&self) -> Vec<Block> {
        self.inner
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    fn give_back(&self, memory: Vec<Block>) {
        self.inner
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(memory);
    }
}

/// Counts a caller waiting for a worker for as long as it lives (a caller that stops waiting
/// stops counting).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `memory` with at least `blocks` blocks (grown once, then reused).
fn blocks_of(memory: &mut Vec<Block>, blocks: usize) -> Option<&mut [Block]> {
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    memory.get_mut(..blocks)
}

fn hash_with(memory: &mut Vec<Block>, secret: &[u8]) -> CoreResult<String> {
    let fail = |what: &str| CoreError::Internal(format!("Argon2 hashing failed: {what}"));
    let mut salt_bytes = [0u8; Salt::RECOMMENDED_LENGTH];
    rand::fill(&mut salt_bytes);
    let salt = Salt::new(&salt_bytes).map_err(|e| fail(&e.to_string()))?;
    let params = Params::DEFAULT;
    let context = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = Zeroizing::new([0u8; Params::DEFAULT_OUTPUT_LEN]);
    let blocks = blocks_of(memory, params.block_count()).ok_or_else(|| fail("memory"))?;
    context
        .hash_password_into_with_memory(secret, &salt, out.as_mut_slice(), blocks)
        .map_err(|e| fail(&e.to_string()))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into().map_err(|_| fail("parameters"))?,
        salt: Some(salt),
        hash: Some(Output::new(out.as_slice()).map_err(|e| fail(&e.to_string()))?),
    };
    Ok(hash.to_string())
}

/// Whether `secret` matches the PHC string `stored`, computed in `memory`.
fn verify_with(memory: &mut Vec<Block>, secret: &[u8], stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let blocks = params.block_count();
    let context = Argon2::new(algorithm, version, params);
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    let Some(area) = blocks_of(memory, blocks) else {
        return false;
    };
    if context
        .hash_password_into_with_memory(secret, salt, out.as_mut_slice(), area)
        .is_err()
    {
        return false;
    }
    Output::new(out.as_slice()).is_ok_and(|computed| computed == *expected)
}

#[cfg(test)]
mod tests;
