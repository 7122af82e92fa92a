//! Integration tests of taking and giving back a named semaphore's slots
//! (acquire in its four forms, release, release_many, the maximum value),
//! through the public API only, on real kernel objects, with other threads
//! and signals. Every name is unique (pid + random) and is removed by a
//! guard when the test ends, pass or fail.

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use namedipc::semaphore::VALUE_MAX;
use namedipc::{Error, Semaphore};

mod common;
use common::WAIT;

type Name = common::Name<common::Semaphores>;

#[test]
fn try_acquire_release_and_value() {
    let name = Name::new("ops");
    let sem = Semaphore::create(name.as_str(), 2).unwrap();
    assert_eq!(sem.value().unwrap(), 2);
    assert!(sem.try_acquire().unwrap());
    assert_eq!(sem.value().unwrap(), 1);
    assert!(sem.try_acquire().unwrap());
    assert_eq!(sem.value().unwrap(), 0);
    assert!(!sem.try_acquire().unwrap(), "no slot left");
    assert_eq!(sem.value().unwrap(), 0);
    sem.release().unwrap();
    assert_eq!(sem.value().unwrap(), 1);
    sem.release().unwrap();
    sem.release().unwrap();
    assert_eq!(sem.value().unwrap(), 3);
    // With slots free, acquire returns at once.
    sem.acquire().unwrap();
    assert_eq!(sem.value().unwrap(), 2);
}

#[test]
fn default_initial_value_is_one() {
    let name = Name::new("default");
    let sem = Semaphore::options().open(name.as_str()).unwrap();
    assert!(sem.created());
    assert_eq!(sem.value().unwrap(), 1);
}

#[test]
fn acquire_timeout_takes_a_free_slot_at_once() {
    let name = Name::new("wt-free");
    let sem = Semaphore::create(name.as_str(), 1).unwrap();
    let start = Instant::now();
    assert!(sem.acquire_timeout(WAIT).unwrap());
    assert!(start.elapsed() < WAIT / 2, "took {:?}", start.elapsed());
    assert_eq!(sem.value().unwrap(), 0);
}

#[test]
fn acquire_timeout_on_a_taken_semaphore_times_out_on_time() {
    let name = Name::new("wt-busy");
    let sem = Semaphore::create(name.as_str(), 0).unwrap();
    for timeout in [Duration::from_millis(1), Duration::from_millis(300)] {
        let start = Instant::now();
        assert!(!sem.acquire_timeout(timeout).unwrap());
        let elapsed = start.elapsed();
        assert!(
            elapsed >= timeout,
            "returned after {elapsed:?} < {timeout:?}"
        );
        assert!(
            elapsed < timeout + Duration::from_secs(2),
            "returned after {elapsed:?}, far beyond {timeout:?}"
        );
    }
    assert!(!sem.acquire_timeout(Duration::ZERO).unwrap());
    assert_eq!(sem.value().unwrap(), 0);
}

#[test]
fn acquire_interruptible_times_out_on_time() {
    let name = Name::new("wi");
    let sem = Semaphore::create(name.as_str(), 0).unwrap();
    let timeout = Duration::from_millis(200);
    let start = Instant::now();
    assert!(!sem.acquire_interruptible(Some(timeout)).unwrap());
    let elapsed = start.elapsed();
    assert!(elapsed >= timeout, "returned after {elapsed:?}");
    assert!(elapsed < timeout + Duration::from_secs(2), "{elapsed:?}");
    sem.release().unwrap();
    assert!(sem.acquire_interruptible(Some(WAIT)).unwrap());
    assert_eq!(sem.value().unwrap(), 0);
}

#[test]
fn a_signal_ends_acquire_interruptible_but_no_other_wait() {
    let name = Name::new("signal");
    let sem = Arc::new(Semaphore::create(name.as_str(), 0).unwrap());

    let err = common::with_signals(|| sem.acquire_interruptible(Some(WAIT))).unwrap_err();
    assert!(matches!(err, Error::Interrupted { .. }), "{err:?}");
    let err = common::with_signals(|| sem.acquire_interruptible(None)).unwrap_err();
    assert!(matches!(err, Error::Interrupted { .. }), "{err:?}");

    // acquire_timeout waits through the signals to its deadline.
    let timeout = Duration::from_millis(200);
    let start = Instant::now();
    assert!(!common::with_signals(|| sem.acquire_timeout(timeout)).unwrap());
    assert!(start.elapsed() >= timeout, "{:?}", start.elapsed());

    // acquire waits through the signals until a slot comes.
    let releaser = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            sem.release()
        })
    };
    common::with_signals(|| sem.acquire()).unwrap();
    releaser.join().unwrap().unwrap();
    assert_eq!(sem.value().unwrap(), 0);
}

/// Runs `wait` in another thread on a semaphore at 0, releases, and checks that
/// the waiter was woken and took the slot.
fn assert_release_wakes(label: &str, wait: fn(&Semaphore) -> namedipc::Result<bool>) {
    let name = Name::new(label);
    let sem = Arc::new(Semaphore::create(name.as_str(), 0).unwrap());
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            ready_tx.send(()).unwrap();
            done_tx.send(wait(&sem)).unwrap();
        })
    };
    ready_rx.recv_timeout(WAIT).expect("waiter thread started");
    // With the value at 0 the waiter cannot have got through yet.
    assert!(
        done_rx.try_recv().is_err(),
        "{label}: returned without a slot"
    );

    sem.release().unwrap();
    match done_rx.recv_timeout(WAIT) {
        Ok(result) => assert!(result.unwrap(), "{label}: reported a timeout"),
        Err(e) => {
            // Unblock the thread so that it does not outlive the test, then fail.
            sem.release().unwrap();
            panic!("{label}: not woken by release() within {WAIT:?}: {e}");
        }
    }
    waiter.join().unwrap();
    assert_eq!(sem.value().unwrap(), 0, "{label}: the waiter took the slot");
}

#[test]
fn a_release_from_another_thread_wakes_acquire() {
    assert_release_wakes("wake", |sem| sem.acquire().map(|()| true));
}

#[test]
fn a_release_wakes_acquires_with_long_or_unbounded_timeouts() {
    assert_release_wakes("wake-timeout", |sem| sem.acquire_timeout(WAIT));
    // Deadlines past what a timespec can hold saturate rather than fail.
    assert_release_wakes("wake-max", |sem| sem.acquire_timeout(Duration::MAX));
    assert_release_wakes("wake-intr", |sem| sem.acquire_interruptible(None));
    assert_release_wakes("wake-intr-max", |sem| {
        sem.acquire_interruptible(Some(Duration::MAX))
    });
}

// ---------------------------------------------------------------- maximum

#[test]
fn release_at_value_max_is_overflow() {
    let name = Name::new("overflow");
    let sem = Semaphore::create(name.as_str(), VALUE_MAX).unwrap();
    assert_eq!(sem.value().unwrap(), VALUE_MAX);
    let err = sem.release().unwrap_err();
    match &err {
        Error::Overflow { max, name: n, .. } => {
            assert_eq!(*max, VALUE_MAX);
            assert_eq!(n, name.as_str());
        }
        other => panic!("expected Overflow, got {other:?}"),
    }
    assert_eq!(err.errno(), Some(libc::EOVERFLOW));
    assert_eq!(err.name(), Some(name.as_str()));
    assert_eq!(sem.value().unwrap(), VALUE_MAX, "value unchanged");
    // One below the maximum, a release is fine again.
    assert!(sem.try_acquire().unwrap());
    sem.release().unwrap();
    assert_eq!(sem.value().unwrap(), VALUE_MAX);
}

#[test]
fn release_many_gives_back_all_or_none() {
    let name = Name::new("many");
    let sem = Semaphore::create(name.as_str(), 0).unwrap();
    sem.release_many(0).unwrap();
    assert_eq!(sem.value().unwrap(), 0);
    sem.release_many(5).unwrap();
    assert_eq!(sem.value().unwrap(), 5);

    let full = Name::new("many-full");
    let sem = Semaphore::create(full.as_str(), VALUE_MAX - 2).unwrap();
    for n in [3, u32::MAX] {
        let err = sem.release_many(n).unwrap_err();
        assert!(
            matches!(err, Error::Overflow { max: VALUE_MAX, .. }),
            "{n}: {err:?}"
        );
        assert_eq!(
            sem.value().unwrap(),
            VALUE_MAX - 2,
            "{n}: nothing given back"
        );
    }
    sem.release_many(2).unwrap();
    assert_eq!(sem.value().unwrap(), VALUE_MAX);
}
