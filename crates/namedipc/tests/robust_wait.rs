//! How a robust semaphore's waits end, in one process: a release wakes the
//! waiters (none is lost, over many releases between threads), `close()`
//! from another thread ends even a wait without a deadline, and signals
//! end a [`Waiter`]'s call with `Interrupted` but not `acquire_timeout`.
//! Every name is unique and removed by a guard when the test ends.

use std::fs;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use namedipc::robust::{RobustSemaphore, Waiter};
use namedipc::Error;

mod common;
use common::WAIT;

type Name = common::Name<common::RobustSemaphores>;
use common::robust_path as path;

/// The `waiters` word of the file's header: how many waits are under way.
fn waiters(name: &str) -> u32 {
    let data = fs::read(path(name)).expect("read the semaphore's file");
    u32::from_ne_bytes(data[28..32].try_into().unwrap())
}

fn until_waiting(name: &str, count: u32) {
    let deadline = Instant::now() + WAIT;
    while waiters(name) < count {
        assert!(Instant::now() < deadline, "never {count} waiters on {name}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn close_from_another_thread_ends_a_wait_without_a_deadline() {
    let name = Name::new("close");
    let sem = RobustSemaphore::options().open(name.as_str()).unwrap();
    sem.acquire().unwrap();
    let other = sem.clone();
    let (tx, rx) = mpsc::channel();
    thread::scope(|scope| {
        scope.spawn(|| tx.send(other.acquire()).unwrap());
        until_waiting(name.as_str(), 1);
        other.close();
        let outcome = rx.recv_timeout(WAIT).expect("the wait ended");
        assert!(matches!(outcome, Err(Error::Closed { .. })), "{outcome:?}");
    });
    // The slot the process held is still held, through `sem`.
    assert_eq!(sem.value().unwrap(), 0);
    sem.release().unwrap();
}

#[test]
fn no_wake_up_is_lost_over_many_releases_between_threads() {
    let name = Name::new("many");
    let sem = RobustSemaphore::options().open(name.as_str()).unwrap();
    thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for i in 0..500 {
                    assert!(
                        sem.acquire_timeout(WAIT).unwrap(),
                        "acquire {i} timed out: a wake-up was lost"
                    );
                    sem.release().unwrap();
                }
            });
        }
    });
    assert_eq!(sem.value().unwrap(), 1);
}

#[test]
fn signals_end_a_waiters_call_but_not_acquire_timeout() {
    let name = Name::new("signals");
    let sem = RobustSemaphore::options().open(name.as_str()).unwrap();
    sem.acquire().unwrap();
    let other = sem.clone();
    let interrupted = common::with_signals(|| {
        let mut waiter: Waiter<'_> = other.waiter().unwrap();
        waiter.acquire_interruptible(Some(WAIT))
    });
    assert!(
        matches!(interrupted, Err(Error::Interrupted { .. })),
        "{interrupted:?}"
    );
    let started = Instant::now();
    let timed_out = common::with_signals(|| other.acquire_timeout(Duration::from_millis(100)));
    assert!(!timed_out.unwrap());
    assert!(started.elapsed() >= Duration::from_millis(100));
    // A wait spread over calls: the first times out, the next is woken.
    let mut waiter = other.waiter().unwrap();
    assert!(!waiter
        .acquire_interruptible(Some(Duration::from_millis(20)))
        .unwrap());
    thread::scope(|scope| {
        scope.spawn(|| {
            until_waiting(name.as_str(), 1);
            sem.release().unwrap();
        });
        assert!(waiter.acquire_interruptible(Some(WAIT)).unwrap());
    });
    drop(waiter);
    assert_eq!(waiters(name.as_str()), 0);
    other.release().unwrap();
}
