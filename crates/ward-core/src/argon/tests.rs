use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use zeroize::Zeroizing;

use super::*;

/// A gate blocking workers until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    entered: AtomicUsize,
}

/// Opens the gate when dropped, so that a failing assertion does not leave a worker blocked
/// (the runtime waits for its blocking threads when it shuts down, and the test would hang).
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

impl Gate {
    fn wait(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// Polls `done` until it holds (the state it waits for is reached by other threads, in their
/// own time); fails after 20 s.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..4000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never reached: {what}");
}

fn secret(s: &str) -> Zeroizing<String> {
    Zeroizing::new(s.to_owned())
}

/// Memory under anonymous Argon2 work: the pool runs at most `workers` jobs at once, keeps at
/// most `queue` more waiting, refuses anyone beyond with `RateLimited`, and never holds more
/// than one memory area per worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_under_anonymous_argon2_work_is_bounded_by_workers_and_queue() {
    let pool = Argon2Pool::new(2, 3);
    let tickets = (0..5).map(|_| pool.admit().unwrap()).collect::<Vec<_>>();
    assert!(matches!(pool.admit(), Err(CoreError::RateLimited)));
    assert_eq!(pool.admitted(), 5);

    let gate = Arc::new(Gate::default());
    let _opener = OpenOnDrop(Arc::clone(&gate));
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut jobs = Vec::new();
    for ticket in tickets {
        let (gate, running, most) = (Arc::clone(&gate), Arc::clone(&running), Arc::clone(&most));
        jobs.push(tokio::spawn(ticket.run(move |memory| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            memory.resize(4, argon2::Block::default());
            gate.wait();
            running.fetch_sub(1, Ordering::SeqCst);
        })));
    }
    // Every job is either running or waiting for a worker: two run, three wait.
    until("2 running and 3 waiting", || {
        running.load(Ordering::SeqCst) == 2 && pool.waiting() == 3
    })
    .await;
    assert_eq!(most.load(Ordering::SeqCst), 2);
    assert!(matches!(pool.admit(), Err(CoreError::RateLimited)));

    gate.open();
    for job in jobs {
        job.await.unwrap().unwrap();
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "more jobs ran at once than workers"
    );
    assert_eq!(pool.admitted(), 0);
    assert_eq!(pool.waiting(), 0);
    let areas = pool.inner.memory.lock().unwrap().len();
    assert!(
        (1..=2).contains(&areas),
        "{areas} memory areas for 2 workers"
    );
    drop(pool.admit().unwrap());
}

/// A caller that stops waiting gives its place back; the running job still finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_stops_waiting_frees_its_place() {
    let pool = Argon2Pool::new(1, 1);
    let first = pool.admit().unwrap();
    let second = pool.admit().unwrap();
    assert!(matches!(pool.admit(), Err(CoreError::RateLimited)));

    let gate = Arc::new(Gate::default());
    let _opener = OpenOnDrop(Arc::clone(&gate));
    let held = Arc::clone(&gate);
    let running = tokio::spawn(first.run(move |_| held.wait()));
    // The first caller holds the only worker before the second asks for it.
    until("the first job running", || {
        gate.entered.load(Ordering::SeqCst) == 1
    })
    .await;
    let waiter = tokio::spawn(second.run(|_| ()));
    until("one waiting", || pool.waiting() == 1).await;
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    assert_eq!(pool.waiting(), 0);
    assert_eq!(
        pool.admitted(),
        1,
        "the aborted caller still holds its place"
    );
    let third = pool.admit().unwrap();

    gate.open();
    running.await.unwrap().unwrap();
    assert_eq!(third.hash_all(vec![secret("x")]).await.unwrap().len(), 1);
    assert_eq!(pool.admitted(), 0);
}

/// Hashes stored by earlier versions (`Argon2::default().hash_password`) keep verifying, and
/// the pool's hashes verify with the library's own verifier: the stored format is unchanged.
#[tokio::test]
async fn stored_recovery_code_hashes_still_verify() {
    let code = "ABCDEFGHIJKLMNOP";
    let stored = argon2::Argon2::default()
        .hash_password(code.as_bytes())
        .unwrap()
        .to_string();
    let other = argon2::Argon2::default()
        .hash_password(b"QRSTUVWXYZ234567")
        .unwrap()
        .to_string();
    let pool = Argon2Pool::new(1, 0);
    let found = pool
        .admit()
        .unwrap()
        .find_match(secret(code), vec![other.clone(), stored.clone()])
        .await
        .unwrap();
    assert_eq!(found, Some(1));
    let wrong = pool
        .admit()
        .unwrap()
        .find_match(secret("ABCDEFGHIJKLMNOQ"), vec![other, stored])
        .await
        .unwrap();
    assert_eq!(wrong, None);

    let made = pool.hash_all(vec![secret(code)]).await.unwrap();
    let [made] = made.as_slice() else {
        panic!("{made:?}")
    };
    assert!(
        made.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{made}"
    );
    argon2::Argon2::default()
        .verify_password(code.as_bytes(), made.as_str())
        .unwrap();
    assert!(
        argon2::Argon2::default()
            .verify_password(b"ABCDEFGHIJKLMNOQ", made.as_str())
            .is_err()
    );
}

/// The reference implementation's example (`echo -n password | argon2 somesalt -t 2 -m 16 -p 4
/// -l 24`): parameters, version and algorithm come from the stored string.
#[tokio::test]
async fn reference_vector_verifies() {
    let stored = "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
    let pool = Argon2Pool::new(1, 0);
    let found = pool
        .admit()
        .unwrap()
        .find_match(secret("password"), vec![stored.into()])
        .await
        .unwrap();
    assert_eq!(found, Some(0));
}

/// Unreadable strings, and memory costs above the cap, match nothing.
#[tokio::test]
async fn unreadable_or_oversized_hashes_match_nothing() {
    let over = format!(
        "$argon2id$v=19$m={},t=1,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
        MAX_MEMORY_KIB + 1
    );
    let pool = Argon2Pool::new(1, 0);
    let found = pool
        .admit()
        .unwrap()
        .find_match(
            secret("password"),
            vec!["not a hash".into(), over, String::new()],
        )
        .await
        .unwrap();
    assert_eq!(found, None);
    assert!(pool.inner.memory.lock().unwrap().iter().all(Vec::is_empty));
}
