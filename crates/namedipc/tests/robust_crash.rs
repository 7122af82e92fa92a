//! Deterministic crash points: a real process is SIGKILLed at each step of
//! the robust semaphore's protocol (register, acquire, release, reclaim,
//! close, create, remove), and every time the semaphore loses nothing: all
//! its slots come back, and the dead process's record can be used again.
//!
//! The crash points are compiled into debug builds only: the process kills
//! itself where `NAMEDIPC_CRASH_AT` names the step. The worker process is
//! this test binary, re-run with `CRASH_WORKER` saying what it should do.
#![cfg(debug_assertions)]

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use namedipc::robust::{self, RobustSemaphore};
use namedipc::Existence;

mod common;
use common::WAIT;

struct Robust;

impl common::Kind for Robust {
    const TAG: &'static str = "crash";

    fn remove(name: &str) {
        let _ = robust::unlink(name);
    }
}

type Name = common::Name<Robust>;

const WORKER_ENV: &str = "CRASH_WORKER";
const SLOTS: u32 = 2;
/// The test's own record, the crashed worker's, and one more holder.
const RECORDS: u32 = 3;

/// One test at a time: the create test compares the temporary files in
/// /dev/shm before and after its worker.
static SERIAL: Mutex<()> = Mutex::new(());

/// Not a test on its own: as a worker, does what `CRASH_WORKER`
/// (`<action>:<name>`) says; the crash point in `NAMEDIPC_CRASH_AT` kills it
/// on the way. `hold` takes a slot, says READY and waits for its stdin.
#[test]
fn worker_process() {
    let Ok(job) = std::env::var(WORKER_ENV) else {
        return;
    };
    let (action, name) = job.split_once(':').unwrap();
    let open = || RobustSemaphore::open(name).expect("worker: open");
    match action {
        "open" => drop(open()),
        "create" => drop(
            RobustSemaphore::options()
                .existence(Existence::RaiseIfExists)
                .initial_value(SLOTS)
                .open(name)
                .expect("worker: create"),
        ),
        "acquire" => {
            open().acquire_timeout(WAIT).expect("worker: acquire");
        }
        "release" | "close" => {
            let sem = open();
            assert!(sem.acquire_timeout(WAIT).unwrap());
            if action == "release" {
                sem.release().unwrap();
            }
            drop(sem);
        }
        "reclaim" => {
            // Registering reuses the first dead record (and frees its slot
            // on the way); the second slot needs a reclaim.
            let sem = open();
            for _ in 0..SLOTS {
                sem.try_acquire().expect("worker: try_acquire");
            }
        }
        "hold" => {
            let sem = open();
            assert!(sem.acquire_timeout(WAIT).unwrap());
            let mut out = std::io::stdout();
            writeln!(out, "READY").unwrap();
            out.flush().unwrap();
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        }
        other => panic!("unknown worker action {other}"),
    }
}

fn worker(action: &str, name: &str, crash_at: Option<&str>) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "worker_process", "--test-threads=1", "--quiet"])
        .env(WORKER_ENV, format!("{action}:{name}"))
        .env_remove("NAMEDIPC_CRASH_AT");
    if let Some(point) = crash_at {
        command.env("NAMEDIPC_CRASH_AT", point);
    }
    command
}

/// Runs a worker that must die by SIGKILL at `point`.
fn crash(action: &str, name: &str, point: &str) {
    let status = worker(action, name, Some(point))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the worker did not reach crash point {point}: {status:?}"
    );
}

/// Starts a worker that holds a slot; returns once it does.
fn holder(name: &str) -> Child {
    let mut child = worker("hold", name, None)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("READY"));
    assert!(ready, "the holder exited without taking a slot");
    child
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A persistent semaphore that this test process stays attached to.
fn semaphore(name: &Name) -> RobustSemaphore {
    RobustSemaphore::options()
        .initial_value(SLOTS)
        .records(RECORDS)
        .persistent(true)
        .open(name.as_str())
        .unwrap()
}

/// Nothing was lost: every slot can be taken (within a bounded wait, so
/// that a slot a dead process holds is reclaimed), and another process can
/// still register and hold a slot after they are given back.
fn assert_intact(sem: &RobustSemaphore, point: &str) {
    for _ in 0..SLOTS {
        assert!(
            sem.acquire_timeout(WAIT).unwrap(),
            "{point}: a slot never came back"
        );
    }
    assert_eq!(sem.value().unwrap(), 0);
    for _ in 0..SLOTS {
        sem.release().unwrap();
    }
    assert_eq!(sem.value().unwrap(), SLOTS, "{point}");
    let other = holder(sem.name());
    assert_eq!(sem.value().unwrap(), SLOTS - 1, "{point}");
    kill(other);
    assert!(sem
        .holders()
        .unwrap()
        .iter()
        .all(|h| !h.alive || h.pid == std::process::id()));
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn crash_while_registering() {
    let _serial = serial();
    for point in ["register.locked", "register.done"] {
        let name = Name::new("register");
        let sem = semaphore(&name);
        crash("open", name.as_str(), point);
        assert_intact(&sem, point);
    }
}

#[test]
fn crash_while_acquiring_releasing_or_closing() {
    let _serial = serial();
    for (action, point) in [
        ("acquire", "acquire.taken"),
        ("release", "release.freed"),
        ("close", "close.freed"),
    ] {
        let name = Name::new(action);
        let sem = semaphore(&name);
        crash(action, name.as_str(), point);
        assert_intact(&sem, point);
    }
}

#[test]
fn crash_while_reclaiming_a_dead_holders_slot() {
    let _serial = serial();
    for point in ["reclaim.locked", "reclaim.freed"] {
        let name = Name::new("reclaim");
        let sem = semaphore(&name);
        // Both slots held by processes that then die; a third process dies
        // while it gives their slots back.
        let first = holder(name.as_str());
        let second = holder(name.as_str());
        kill(first);
        kill(second);
        crash("reclaim", name.as_str(), point);
        assert_intact(&sem, point);
    }
}

fn temporary_files() -> HashSet<String> {
    fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.starts_with(".namedipc-robust-tmp."))
        .collect()
}

#[test]
fn crash_while_creating_leaves_no_half_made_semaphore() {
    let _serial = serial();
    let name = Name::new("create");
    let before = temporary_files();
    crash("create", name.as_str(), "create.before_link");
    // The name was never linked to the half-made file...
    assert!(robust::inspect(name.as_str()).is_err());
    for stray in temporary_files().difference(&before) {
        fs::remove_file(format!("/dev/shm/{stray}")).unwrap();
    }
    // ... so the next process creates it afresh.
    let sem = semaphore(&name);
    assert!(sem.created());
    assert_intact(&sem, "create.before_link");
}

#[test]
fn crash_while_removing_an_unused_semaphore() {
    let _serial = serial();
    let name = Name::new("remove");
    // The worker creates a (non-persistent) semaphore and, as its last
    // user, dies between taking every record's lock and unlinking the name.
    crash("create", name.as_str(), "remove.locked");
    // The name still refers to a complete file: it opens, works, and its
    // next last user removes it.
    let sem = RobustSemaphore::open(name.as_str()).unwrap();
    assert_intact(&sem, "remove.locked");
    drop(sem);
    assert!(
        robust::inspect(name.as_str()).is_err(),
        "removed when unused"
    );
}
