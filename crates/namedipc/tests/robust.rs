//! Integration tests of the crash-safe semaphore through the public API,
//! with real processes that are SIGKILLed while holding a slot. The worker
//! process is this test binary itself, re-run with an environment variable
//! that makes `worker_process` hold a slot and report over its stdout pipe.
//! Every name is unique and removed by a guard when the test ends.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use namedipc::robust::{self, RobustSemaphore};
use namedipc::{BusyReason, Error, Existence};

mod common;
use common::WAIT;

type Name = common::Name<common::RobustSemaphores>;
use common::robust_path as path;

const WORKER_ENV: &str = "NAMEDIPC_ROBUST_WORKER";
/// Set for a worker that also starts a `sleep` holding its liveness lock.
const LEND_ENV: &str = "NAMEDIPC_ROBUST_WORKER_LENDS";

/// Not a test on its own: when run as a worker, it opens the semaphore named
/// in the environment, takes a slot, says `READY <pid>` (and, with
/// `LEND_ENV`, the pid of a `sleep` that inherited its liveness lock) and
/// waits for its stdin to close (or for SIGKILL).
#[test]
fn worker_process() {
    let Ok(name) = std::env::var(WORKER_ENV) else {
        return;
    };
    let sem = RobustSemaphore::open(&name).expect("worker: open");
    assert!(sem.acquire_timeout(WAIT).expect("worker: acquire"));
    let mut ready = format!("READY {}", std::process::id());
    if std::env::var_os(LEND_ENV).is_some() {
        let lock = sem.inheritable_lock().expect("worker: inheritable_lock");
        // Never waited for: it is to outlive this worker, which the test kills.
        #[allow(clippy::zombie_processes)]
        let sleeper = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("worker: spawn sleep");
        drop(lock);
        ready = format!("{ready} {}", sleeper.id());
    }
    let mut out = std::io::stdout();
    writeln!(out, "{ready}").unwrap();
    out.flush().unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// Starts a worker holding a slot of `name`; returns once it holds it.
fn spawn_holder(name: &str) -> Child {
    spawn_worker(name, false).0
}

/// Starts a worker holding a slot of `name`, and returns it with the pids
/// its READY line names once it holds the slot.
fn spawn_worker(name: &str, lends: bool) -> (Child, Vec<u32>) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "worker_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WORKER_ENV, name)
        .env_remove(LEND_ENV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if lends {
        command.env(LEND_ENV, "1");
    }
    let mut child = command.spawn().expect("spawn worker");
    let stdout = child.stdout.take().unwrap();
    // libtest writes "test worker_process ... " before it, without a newline.
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| Some(line.split_once("READY ")?.1.to_owned()))
        .expect("worker exited without taking a slot");
    // Keep reading, so that a worker that ends normally can still write
    // libtest's report instead of failing on a closed pipe.
    thread::spawn(move || lines.for_each(drop));
    let pids = ready
        .split_whitespace()
        .map(|pid| pid.parse().unwrap())
        .collect();
    (child, pids)
}

/// SIGKILLs the process `pid` (not a child of this one) when dropped.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

fn kill(child: &mut Child) {
    child.kill().expect("SIGKILL worker");
}

#[test]
fn counts_slots() {
    let name = Name::new("count");
    let sem = RobustSemaphore::options()
        .existence(Existence::RaiseIfExists)
        .initial_value(3)
        .open(name.as_str())
        .unwrap();
    assert!(sem.created());
    assert_eq!(sem.name(), name.as_str());
    assert_eq!(sem.slots(), 3);
    assert_eq!(sem.value().unwrap(), 3);
    for left in [2, 1, 0] {
        sem.acquire().unwrap();
        assert_eq!(sem.value().unwrap(), left);
    }
    assert!(!sem.try_acquire().unwrap());
    sem.release().unwrap();
    assert_eq!(sem.value().unwrap(), 1);
    assert!(sem.try_acquire().unwrap());
    for _ in 0..3 {
        sem.release().unwrap();
    }
    assert_eq!(sem.value().unwrap(), 3);
    assert!(sem.release().is_err(), "released more than it held");
}

#[test]
fn handles_of_one_process_share_its_slots() {
    let name = Name::new("share");
    let a = RobustSemaphore::options()
        .initial_value(2)
        .open(name.as_str())
        .unwrap();
    let b = RobustSemaphore::open(name.as_str()).unwrap();
    assert!(!b.created());
    assert!(a.try_acquire().unwrap());
    assert!(b.try_acquire().unwrap());
    assert!(!a.try_acquire().unwrap());
    assert_eq!(b.value().unwrap(), 0);
    // Ownership is per process: closing one handle keeps the slots, and
    // the other handle may release a slot the first one took.
    drop(b);
    assert_eq!(a.value().unwrap(), 0);
    a.release().unwrap();
    a.release().unwrap();
    assert!(a.release().is_err());
}

#[test]
fn closing_the_last_handle_gives_slots_back() {
    let name = Name::new("lastclose");
    let sem = RobustSemaphore::options()
        .initial_value(2)
        .persistent(true)
        .open(name.as_str())
        .unwrap();
    let other = sem.clone();
    assert!(sem.try_acquire().unwrap());
    assert!(other.try_acquire().unwrap());
    sem.close();
    assert!(sem.is_closed() && !other.is_closed());
    assert!(matches!(sem.value(), Err(Error::Closed { .. })));
    assert_eq!(other.value().unwrap(), 0, "another handle is still open");
    other.close();
    let again = RobustSemaphore::open(name.as_str()).unwrap();
    assert_eq!(again.value().unwrap(), 2);
    assert!(again.holders().unwrap().is_empty());
}

#[test]
fn last_process_to_detach_removes_it_unless_persistent() {
    let name = Name::new("autoremove");
    let sem = RobustSemaphore::options().open(name.as_str()).unwrap();
    let mut child = spawn_holder(name.as_str());
    drop(sem);
    assert!(
        fs::metadata(path(name.as_str())).is_ok(),
        "another process is still attached"
    );
    drop(child.stdin.take()); // ends the worker normally
    assert!(child.wait().unwrap().success());
    assert!(
        fs::metadata(path(name.as_str())).is_err(),
        "the last process removed it"
    );

    let kept = RobustSemaphore::options()
        .persistent(true)
        .open(name.as_str())
        .unwrap();
    drop(kept);
    let snapshot = robust::inspect(name.as_str()).unwrap();
    assert!(snapshot.persistent);
    assert_eq!((snapshot.attached, snapshot.free), (0, 1));
    assert!(robust::remove_if_unused(name.as_str()).unwrap());
}

#[test]
fn inspect_and_remove_if_unused_see_other_processes() {
    let name = Name::new("inspect");
    let sem = RobustSemaphore::options()
        .initial_value(3)
        .persistent(true)
        .open(name.as_str())
        .unwrap();
    drop(sem);
    let mut child = spawn_holder(name.as_str());
    let seen = robust::inspect(name.as_str()).unwrap();
    assert_eq!((seen.slots, seen.free, seen.attached), (3, 2, 1));
    assert_eq!(seen.holders.len(), 1);
    assert_eq!(seen.holders[0].pid, child.id());
    assert!(seen.holders[0].alive);
    assert!(robust::names().unwrap().contains(&name.as_str().to_owned()));
    assert!(!robust::remove_if_unused(name.as_str()).unwrap());
    kill(&mut child);
    child.wait().unwrap();
    let seen = robust::inspect(name.as_str()).unwrap();
    assert_eq!(seen.attached, 0);
    assert!(!seen.holders[0].alive, "{seen:?}");
    assert!(robust::remove_if_unused(name.as_str()).unwrap());
    assert!(robust::inspect(name.as_str()).is_err());
}

#[test]
fn existence_rules() {
    let name = Name::new("exist");
    assert!(matches!(
        RobustSemaphore::open(name.as_str()),
        Err(Error::NotFound { .. })
    ));
    let first = RobustSemaphore::options().open(name.as_str()).unwrap();
    assert!(matches!(
        RobustSemaphore::options()
            .existence(Existence::RaiseIfExists)
            .open(name.as_str()),
        Err(Error::AlreadyExists { .. })
    ));
    let linked = RobustSemaphore::options()
        .initial_value(9)
        .open(name.as_str())
        .unwrap();
    assert!(!linked.created());
    assert_eq!(
        linked.value().unwrap(),
        1,
        "slots of an existing semaphore are kept"
    );
    let fresh = RobustSemaphore::options()
        .existence(Existence::UnlinkAndCreate)
        .initial_value(4)
        .open(name.as_str())
        .unwrap();
    assert_eq!(fresh.value().unwrap(), 4);
    // The old handles' file was removed: they say so instead of splitting.
    assert!(matches!(first.try_acquire(), Err(Error::NotFound { .. })));
}

#[test]
fn removed_or_replaced_file_is_reported() {
    let name = Name::new("replaced");
    let sem = RobustSemaphore::options().open(name.as_str()).unwrap();
    robust::unlink(name.as_str()).unwrap();
    assert!(matches!(sem.try_acquire(), Err(Error::NotFound { .. })));
    let again = RobustSemaphore::options().open(name.as_str()).unwrap();
    assert!(again.created());
    drop(sem);
    // Removed behind namedipc's back (no flag in the file), then created
    // again: a handle that has to wait compares the name's inode with its own.
    let sem = RobustSemaphore::open(name.as_str()).unwrap();
    assert!(sem.try_acquire().unwrap());
    fs::remove_file(path(name.as_str())).unwrap();
    let err = sem.acquire_timeout(Duration::from_millis(1)).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let replacement = RobustSemaphore::options().open(name.as_str()).unwrap();
    assert!(replacement.created());
    let err = sem.acquire_timeout(Duration::from_millis(1)).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("another file"), "{err}");
}

#[test]
fn unlink_removes_the_name_even_while_in_use() {
    let name = Name::new("unlink");
    let sem = RobustSemaphore::options()
        .persistent(true)
        .open(name.as_str())
        .unwrap();
    sem.unlink().unwrap();
    assert!(matches!(
        RobustSemaphore::open(name.as_str()),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(sem.acquire(), Err(Error::NotFound { .. })));
    // By name, without a handle: the same, and NotFound once it is gone.
    let again = RobustSemaphore::options().open(name.as_str()).unwrap();
    robust::unlink(name.as_str()).unwrap();
    assert!(matches!(again.try_acquire(), Err(Error::NotFound { .. })));
    assert!(matches!(
        robust::unlink(name.as_str()),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        robust::unlink("/a/b"),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn a_name_without_its_slash_is_the_same_semaphore() {
    let name = Name::new("slashless");
    let slashless = name.as_str().trim_start_matches('/');
    let sem = RobustSemaphore::options().open(slashless).unwrap();
    assert_eq!(sem.name(), name.as_str(), "shown with one leading slash");
    let same = RobustSemaphore::open(name.as_str()).unwrap();
    assert!(same.try_acquire().unwrap());
    assert_eq!(sem.value().unwrap(), 0);
    assert_eq!(robust::inspect(slashless).unwrap().name, name.as_str());
}

#[test]
fn options_shape_a_new_semaphore_only() {
    let name = Name::new("options");
    let sem = RobustSemaphore::options()
        .existence(Existence::RaiseIfExists)
        .initial_value(3)
        .records(16)
        .mode(0o660)
        .persistent(true)
        .open(name.as_str())
        .unwrap();
    let seen = robust::inspect(name.as_str()).unwrap();
    assert_eq!((seen.slots, seen.records, seen.free), (3, 16, 3));
    assert!(seen.persistent);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(path(name.as_str())).unwrap().permissions(),
    );
    assert_eq!(mode & 0o7777, 0o660, "{mode:o}: exactly the mode asked for");
    assert_eq!(sem.owner().mode, 0o660);
    drop(sem);
    let reopened = RobustSemaphore::options()
        .initial_value(5)
        .records(2)
        .persistent(false)
        .open(name.as_str())
        .unwrap();
    assert!(!reopened.created());
    let seen = robust::inspect(name.as_str()).unwrap();
    assert_eq!((seen.slots, seen.records, seen.persistent), (3, 16, true));
}

#[test]
fn an_inheritable_lock_keeps_a_dead_holders_slot_while_its_child_lives() {
    let name = Name::new("lend");
    let sem = RobustSemaphore::options().open(name.as_str()).unwrap();
    let (mut worker, pids) = spawn_worker(name.as_str(), true);
    let sleeper = KillOnDrop(pids[1]);
    kill(&mut worker);
    worker.wait().unwrap();
    // The worker is dead, but `sleep` holds its open file description.
    assert!(!sem.try_acquire().unwrap());
    let holders = sem.holders().unwrap();
    assert_eq!(holders.len(), 1);
    assert!(holders[0].alive && holders[0].pid == pids[0], "{holders:?}");
    drop(sleeper);
    assert!(
        sem.acquire_timeout(WAIT).unwrap(),
        "the slot came back once the child was gone too"
    );
}

#[test]
fn timeouts_are_never_shorter_than_asked() {
    let name = Name::new("timeout");
    let sem = RobustSemaphore::options().open(name.as_str()).unwrap();
    sem.acquire().unwrap();
    for ms in [1, 3, 10, 25] {
        let timeout = Duration::from_millis(ms);
        let start = Instant::now();
        assert!(!sem.acquire_timeout(timeout).unwrap());
        let took = start.elapsed();
        assert!(took >= timeout, "asked {timeout:?}, waited {took:?}");
        assert!(took < timeout + WAIT, "{took:?}");
    }
}

#[test]
fn waiter_is_woken_by_release() {
    let name = Name::new("wake");
    let sem = RobustSemaphore::options().open(name.as_str()).unwrap();
    let other = RobustSemaphore::open(name.as_str()).unwrap();
    sem.acquire().unwrap();
    thread::scope(|s| {
        let waiter = s.spawn(|| other.acquire_timeout(WAIT).unwrap());
        sem.release().unwrap();
        assert!(waiter.join().unwrap());
    });
    assert_eq!(sem.value().unwrap(), 0);
    // Both handles are this process's: either may give the slot back.
    sem.release().unwrap();
    assert!(other.release().is_err());
}

#[test]
fn release_without_holding_is_an_error() {
    let name = Name::new("norelease");
    let sem = RobustSemaphore::options()
        .initial_value(2)
        .open(name.as_str())
        .unwrap();
    let err = sem.release().unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(err.to_string().contains("holds no slot"), "{err}");
    assert_eq!(sem.value().unwrap(), 2, "a failed release changes nothing");
}

#[test]
fn release_many_gives_back_all_or_none() {
    let name = Name::new("many");
    let sem = RobustSemaphore::options()
        .initial_value(5)
        .open(name.as_str())
        .unwrap();
    for _ in 0..3 {
        sem.acquire().unwrap();
    }
    let err = sem.release_many(4).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(err.to_string().contains("holds 3 slots"), "{err}");
    assert_eq!(
        sem.value().unwrap(),
        2,
        "a failed release_many changes nothing"
    );
    sem.release_many(3).unwrap();
    assert_eq!(sem.value().unwrap(), 5);
    let err = sem.release_many(2).unwrap_err();
    assert!(err.to_string().contains("holds no slot"), "{err}");
    // With nothing held, releasing one is the same error either way.
    assert_eq!(
        sem.release_many(1).unwrap_err().to_string(),
        sem.release().unwrap_err().to_string()
    );
    assert!(matches!(
        sem.release_many(0),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(sem.value().unwrap(), 5);
}

#[test]
fn release_many_gives_back_only_this_process_slots() {
    let name = Name::new("manyproc");
    let sem = RobustSemaphore::options()
        .initial_value(4)
        .open(name.as_str())
        .unwrap();
    let mut child = spawn_holder(name.as_str());
    sem.acquire().unwrap();
    // Two slots are held, but only one of them by this process.
    assert!(sem.release_many(2).is_err());
    assert_eq!(sem.value().unwrap(), 2);
    // Every handle of the process shares its slots.
    let other = RobustSemaphore::open(name.as_str()).unwrap();
    other.acquire().unwrap();
    sem.release_many(2).unwrap();
    assert_eq!(sem.value().unwrap(), 3);
    kill(&mut child);
    child.wait().unwrap();
}

#[test]
fn racing_releases_never_give_back_more_than_held_nor_part_of_a_request() {
    const SLOTS: u32 = 1024;
    let name = Name::new("manyrace");
    let sem = RobustSemaphore::options()
        .initial_value(SLOTS)
        .open(name.as_str())
        .unwrap();
    for round in 0..40 {
        for _ in 0..SLOTS {
            assert!(sem.try_acquire().unwrap());
        }
        // What each thread asks for, in turn: two requests that cannot
        // both be met (long passes over the slots, which overlap), and a
        // run of single releases among them.
        let big = SLOTS / 2 + 1 + round * 7;
        let asks: [Vec<u32>; 3] = [vec![big], vec![big], vec![1; 200]];
        let go = AtomicBool::new(false);
        let outcomes: Vec<(u32, bool)> = thread::scope(|s| {
            let threads: Vec<_> = asks
                .iter()
                .map(|asks| {
                    let (sem, go) = (&sem, &go);
                    s.spawn(move || {
                        while !go.load(Ordering::Acquire) {
                            std::hint::spin_loop();
                        }
                        asks.iter()
                            .map(|&n| {
                                let released = if n == 1 {
                                    sem.release()
                                } else {
                                    sem.release_many(n)
                                };
                                (n, released.is_ok())
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            go.store(true, Ordering::Release);
            threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect()
        });
        let released: u32 = outcomes.iter().filter(|o| o.1).map(|o| o.0).sum();
        assert!(released <= SLOTS, "round {round}");
        assert_eq!(
            sem.value().unwrap(),
            released,
            "round {round}: a failed call gave back part of its request"
        );
        // A call fails only when fewer than it asked for were left then
        // (never fewer than are left now).
        let left = SLOTS - released;
        for &(n, ok) in &outcomes {
            assert!(
                ok || n > left,
                "round {round}: {n} refused with {left} left"
            );
        }
        // Exactly the rest is still this process's.
        if left > 0 {
            sem.release_many(left).unwrap();
        }
        assert!(sem.release().is_err());
        assert_eq!(sem.value().unwrap(), SLOTS);
    }
}

#[test]
fn threads_that_give_back_what_they_took_never_fail() {
    const SLOTS: u32 = 6;
    let name = Name::new("manymixed");
    let sem = RobustSemaphore::options()
        .initial_value(SLOTS)
        .open(name.as_str())
        .unwrap();
    let inside = AtomicU32::new(0);
    let most = AtomicU32::new(0);
    thread::scope(|s| {
        for batch in [1, 1, 2, 3] {
            let (sem, inside, most) = (&sem, &inside, &most);
            s.spawn(move || {
                for _ in 0..300 {
                    for _ in 0..batch {
                        assert!(sem.acquire_timeout(WAIT).unwrap());
                    }
                    let now = inside.fetch_add(batch, Ordering::SeqCst) + batch;
                    most.fetch_max(now, Ordering::SeqCst);
                    inside.fetch_sub(batch, Ordering::SeqCst);
                    // Any thread's release may give back a slot another
                    // thread took: slots are the process's.
                    if batch == 1 {
                        sem.release().unwrap();
                    } else {
                        sem.release_many(batch).unwrap();
                    }
                }
            });
        }
    });
    assert!(most.load(Ordering::SeqCst) <= SLOTS);
    assert_eq!(sem.value().unwrap(), SLOTS);
    assert!(sem.release().is_err());
}

#[test]
fn holders_lists_this_process() {
    let name = Name::new("holders");
    let before = std::time::SystemTime::now() - Duration::from_secs(1);
    let sem = RobustSemaphore::options()
        .initial_value(2)
        .open(name.as_str())
        .unwrap();
    assert!(sem.holders().unwrap().is_empty());
    sem.acquire().unwrap();
    let holders = sem.holders().unwrap();
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0].pid, std::process::id());
    assert!(holders[0].alive);
    assert!(holders[0].since >= before);
    let uid = fs::metadata(path(name.as_str()))
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap();
    assert_eq!(holders[0].uid, uid);
}

#[test]
fn bad_names_and_arguments_are_rejected() {
    let too_long = format!("/{}", "x".repeat(240));
    assert!(matches!(
        RobustSemaphore::options().open(&too_long),
        Err(Error::InvalidName { .. })
    ));
    for bad in ["", "/", "/a/b"] {
        assert!(matches!(
            RobustSemaphore::options().open(bad),
            Err(Error::InvalidName { .. })
        ));
    }
    let mut name = Name::new("longest");
    let body = name.as_str().len() - 1;
    name.push_str(&"y".repeat(239 - body));
    let sem = RobustSemaphore::options().open(name.as_str()).unwrap();
    assert!(sem.try_acquire().unwrap());
    let name = Name::new("args");
    for options in [
        RobustSemaphore::options().initial_value(0),
        RobustSemaphore::options().records(0),
        RobustSemaphore::options().initial_value(65_537),
        RobustSemaphore::options().mode(0o10000),
    ] {
        assert!(matches!(
            options.open(name.as_str()),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert!(!std::path::Path::new(&path(name.as_str())).exists());
}

#[test]
fn full_records_are_an_error_not_a_hang() {
    let name = Name::new("records");
    drop(
        RobustSemaphore::options()
            .records(1)
            .persistent(true)
            .open(name.as_str())
            .unwrap(),
    );
    let mut child = spawn_holder(name.as_str());
    let err = RobustSemaphore::open(name.as_str()).unwrap_err();
    kill(&mut child);
    child.wait().unwrap();
    // Every record is in use: no room now, not a bad argument.
    assert!(
        matches!(
            err,
            Error::Busy {
                reason: BusyReason::NoRecord,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("process record"), "{err}");
}

fn assert_corrupt(name: &Name, what: &str) {
    for existence in [Existence::RaiseIfNotExists, Existence::LinkOrCreate] {
        match RobustSemaphore::options()
            .existence(existence)
            .open(name.as_str())
        {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn corrupt_files_are_reported() {
    let name = Name::new("corrupt");
    let file = path(name.as_str());
    // A valid file to start from.
    drop(
        RobustSemaphore::options()
            .persistent(true)
            .initial_value(2)
            .records(4)
            .open(name.as_str())
            .unwrap(),
    );
    let valid = fs::read(&file).unwrap();
    assert_eq!(valid.len(), 64 + 4 * 32 + 2 * 32);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("short", valid[..10].to_vec()),
        ("header only", valid[..64].to_vec()),
        ("truncated", valid[..valid.len() - 1].to_vec()),
        ("too long", [valid.clone(), vec![0; 32]].concat()),
        ("zeros", vec![0; valid.len()]),
        ("foreign", b"#!/bin/sh\necho hello\n".repeat(20)),
        ("wrong magic", {
            let mut v = valid.clone();
            v[0] ^= 0xff;
            v
        }),
        ("wrong version", {
            let mut v = valid.clone();
            v[8..12].copy_from_slice(&2u32.to_ne_bytes());
            v
        }),
        ("zero slots", {
            let mut v = valid.clone();
            v[16..20].copy_from_slice(&0u32.to_ne_bytes());
            v
        }),
        ("huge records", {
            let mut v = valid.clone();
            v[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
            v
        }),
    ];
    for (what, bytes) in cases {
        fs::write(&file, &bytes).unwrap();
        assert_corrupt(&name, what);
    }
    fs::write(&file, &valid).unwrap();
    assert!(
        RobustSemaphore::open(name.as_str()).is_ok(),
        "restored file opens"
    );

    fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/dev/null", &file).unwrap();
    assert_corrupt(&name, "symlink");
    fs::remove_file(&file).unwrap();
    fs::create_dir(&file).unwrap();
    let err = RobustSemaphore::open(name.as_str()).unwrap_err();
    fs::remove_dir(&file).unwrap();
    assert!(matches!(err, Error::Corrupt { .. }), "directory: {err:?}");
}

#[test]
fn dead_holder_is_shown_dead_then_reclaimed() {
    let name = Name::new("dead");
    let sem = RobustSemaphore::options().open(name.as_str()).unwrap();
    let mut child = spawn_holder(name.as_str());
    let holders = sem.holders().unwrap();
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0].pid, child.id());
    assert!(holders[0].alive);
    assert!(!sem.try_acquire().unwrap());
    kill(&mut child);
    child.wait().unwrap();
    let holders = sem.holders().unwrap();
    assert_eq!(holders.len(), 1);
    assert!(!holders[0].alive, "{holders:?}");
    assert!(
        sem.try_acquire().unwrap(),
        "slot of the dead holder comes back"
    );
    assert_eq!(sem.holders().unwrap()[0].pid, std::process::id());
}

#[test]
fn killed_holder_slot_goes_to_waiter_quickly() {
    const ROUNDS: usize = 5;
    let name = Name::new("kill");
    let sem = RobustSemaphore::options()
        .initial_value(1)
        .open(name.as_str())
        .unwrap();
    let mut latencies = Vec::new();
    for _ in 0..ROUNDS {
        let mut child = spawn_holder(name.as_str());
        assert!(!sem.try_acquire().unwrap());
        let (killed, acquired) = thread::scope(|s| {
            let waiter = s.spawn(|| {
                let got = sem.acquire_timeout(WAIT).unwrap();
                (got, Instant::now())
            });
            kill(&mut child);
            let killed = Instant::now();
            let (got, at) = waiter.join().unwrap();
            assert!(got, "the killed holder's slot never came back");
            (killed, at)
        });
        child.wait().unwrap();
        latencies.push(acquired.saturating_duration_since(killed));
        sem.release().unwrap();
        assert_eq!(sem.value().unwrap(), 1);
    }
    latencies.sort();
    println!(
        "kill-to-acquire latency over {ROUNDS} rounds: min {:?}, median {:?}, max {:?}",
        latencies[0],
        latencies[ROUNDS / 2],
        latencies[ROUNDS - 1]
    );
    assert!(
        latencies[ROUNDS - 1] < Duration::from_millis(100),
        "{latencies:?}"
    );
}

#[test]
fn never_over_admits_across_handles() {
    const SLOTS: u32 = 2;
    let name = Name::new("oracle");
    let first = RobustSemaphore::options()
        .initial_value(SLOTS)
        .open(name.as_str())
        .unwrap();
    let inside = AtomicU32::new(0);
    let most = AtomicU32::new(0);
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let sem = RobustSemaphore::open(name.as_str()).unwrap();
                for _ in 0..300 {
                    assert!(sem.acquire_timeout(WAIT).unwrap());
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    sem.release().unwrap();
                }
            });
        }
    });
    let most = most.load(Ordering::SeqCst);
    assert!((1..=SLOTS).contains(&most), "{most} inside at once");
    assert_eq!(first.value().unwrap(), SLOTS);
}

#[test]
fn several_dead_holders_are_all_reclaimed() {
    let name = Name::new("several");
    let sem = RobustSemaphore::options()
        .initial_value(3)
        .open(name.as_str())
        .unwrap();
    let mut children: Vec<Child> = (0..3).map(|_| spawn_holder(name.as_str())).collect();
    assert_eq!(sem.value().unwrap(), 0);
    for child in &mut children {
        kill(child);
    }
    for child in &mut children {
        child.wait().unwrap();
    }
    for _ in 0..3 {
        assert!(sem.acquire_timeout(WAIT).unwrap());
    }
    assert_eq!(sem.value().unwrap(), 0);
    assert!(sem
        .holders()
        .unwrap()
        .iter()
        .all(|h| h.alive && h.pid == std::process::id()));
}

#[test]
fn an_uncontended_handle_notices_a_removal_behind_its_back_within_milliseconds() {
    let name = Name::new("rawrm");
    let sem = RobustSemaphore::options().open(name.as_str()).unwrap();
    assert!(sem.try_acquire().unwrap());
    sem.release().unwrap();
    fs::remove_file(path(name.as_str())).unwrap();
    let _replacement = RobustSemaphore::options().open(name.as_str()).unwrap();
    let removed = Instant::now();
    let err = loop {
        match sem.try_acquire() {
            Ok(true) => sem.release().unwrap(),
            Ok(false) => panic!("the old file's only slot was free"),
            Err(e) => break e,
        }
        assert!(
            removed.elapsed() < WAIT,
            "the replacement was never noticed"
        );
    };
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    // At most every 10 ms (plus the coarse clock's tick) without waiting.
    assert!(
        removed.elapsed() < Duration::from_millis(100),
        "{:?}",
        removed.elapsed()
    );
}

/// Sets the `removed` flag (bit 2 of the header's flags word, at byte 40)
/// in `bytes`, the content of a semaphore's file.
fn with_removed_flag(mut bytes: Vec<u8>) -> Vec<u8> {
    let flags = u32::from_ne_bytes(bytes[40..44].try_into().unwrap()) | 2;
    bytes[40..44].copy_from_slice(&flags.to_ne_bytes());
    bytes
}

fn assert_marked_removed(err: &Error, what: &str) {
    match err {
        Error::Corrupt { reason, .. } => {
            assert!(reason.contains("marked removed"), "{what}: {err}");
            assert!(reason.contains("namedipc rm"), "{what}: {err}");
        }
        other => panic!("{what}: expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_file_marked_removed_at_the_name_is_corrupt_not_retried() {
    let name = Name::new("marked");
    let file = path(name.as_str());
    // What `cp` of a removed semaphore's file leaves: a new file at the
    // name whose header says it was removed.
    let sem = RobustSemaphore::options()
        .persistent(true)
        .open(name.as_str())
        .unwrap();
    let mut kept = fs::File::open(&file).unwrap();
    robust::unlink(name.as_str()).unwrap();
    assert!(matches!(sem.try_acquire(), Err(Error::NotFound { .. })));
    let mut removed = Vec::new();
    kept.read_to_end(&mut removed).unwrap();
    fs::write(&file, &removed).unwrap();
    // The same, with the flag set in a file that stays at the name.
    let valid = {
        drop(sem);
        fs::remove_file(&file).unwrap();
        drop(
            RobustSemaphore::options()
                .persistent(true)
                .open(name.as_str())
                .unwrap(),
        );
        fs::read(&file).unwrap()
    };
    for (what, bytes) in [("copy", removed), ("flag", with_removed_flag(valid))] {
        fs::write(&file, &bytes).unwrap();
        for existence in [Existence::RaiseIfNotExists, Existence::LinkOrCreate] {
            let started = Instant::now();
            let err = RobustSemaphore::options()
                .existence(existence)
                .open(name.as_str())
                .unwrap_err();
            assert_marked_removed(&err, what);
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{what}: retried"
            );
        }
        assert_marked_removed(&robust::inspect(name.as_str()).unwrap_err(), what);
        #[cfg(feature = "cli")]
        {
            use namedipc::inventory::{self, Details};
            let found = inventory::find(name.as_str()).unwrap().objects;
            let object = found
                .iter()
                .find(|o| o.kind == namedipc::ObjectKind::RobustSemaphore)
                .unwrap();
            assert!(matches!(object.details, Details::RobustSemaphore(None)));
            let problem = object.problem.as_deref().unwrap_or("");
            assert!(problem.contains("marked removed"), "{what}: {problem}");
        }
    }
    // Removing it is the cure.
    robust::unlink(name.as_str()).unwrap();
    assert!(!std::path::Path::new(&file).exists());
    let sem = RobustSemaphore::options().open(name.as_str()).unwrap();
    assert!(sem.created());
    assert!(sem.try_acquire().unwrap());
}

#[test]
fn a_socket_or_fifo_at_the_name_is_corrupt_and_says_what_it_is() {
    let name = Name::new("special");
    let file = path(name.as_str());
    let listener = std::os::unix::net::UnixListener::bind(&file).unwrap();
    check_special(&name, "socket");
    drop(listener);
    fs::remove_file(&file).unwrap();
    let made = Command::new("mkfifo").arg(&file).status().unwrap();
    assert!(made.success());
    check_special(&name, "FIFO");
    robust::unlink(name.as_str()).unwrap();
    assert!(fs::symlink_metadata(&file).is_err(), "unlink removes it");
}

fn check_special(name: &Name, what: &str) {
    let expect_corrupt = |result: Result<(), Error>, call: &str| match result {
        Err(Error::Corrupt { reason, .. }) => {
            assert!(reason.contains(what), "{call} on a {what}: {reason}");
        }
        other => panic!("{call} on a {what}: expected Corrupt, got {other:?}"),
    };
    for existence in [Existence::RaiseIfNotExists, Existence::LinkOrCreate] {
        expect_corrupt(
            RobustSemaphore::options()
                .existence(existence)
                .open(name.as_str())
                .map(drop),
            "open",
        );
    }
    expect_corrupt(robust::inspect(name.as_str()).map(drop), "inspect");
    expect_corrupt(
        robust::remove_if_unused(name.as_str()).map(drop),
        "remove_if_unused",
    );
    assert!(
        fs::symlink_metadata(path(name.as_str())).is_ok(),
        "still there"
    );
}
