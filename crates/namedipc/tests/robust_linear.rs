//! A robust semaphore file written by someone else (a squatter, a buggy
//! writer) costs time in proportion to its size, whatever its slots say:
//! the files here have the most slots and records a file may have
//! (65,536 each), every slot naming a different process record, and the
//! acquire, the reclaim of the dead records' slots, `holders()`, `inspect`
//! and a wait among live holders all finish within a bound that only quadratic
//! work (some 4·10⁹ steps) could pass. The files are written byte by byte
//! from the documented layout (docs/robust-semaphore.md, "File layout").

// A planted holder's lock is an OFD lock that only libc's fcntl takes; the
// one block says why it is sound.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use namedipc::robust::{self, RobustSemaphore, MAX_RECORDS, MAX_SLOTS};

mod common;

type Name = common::Name<common::RobustSemaphores>;
use common::robust_path as path;

/// What only quadratic work would exceed, even on a loaded machine and in
/// a debug build (the linear work takes a fraction of a second).
const BOUND: Duration = Duration::from_secs(8);

const HEADER_LEN: usize = 64;
const RECORD_LEN: usize = 32;
const SLOT_LEN: usize = 32;
const LOCK_BASE: i64 = 1 << 40;

fn token(record: u32, generation: u64) -> u64 {
    (u64::from(record) + 1) << 40 | generation
}

/// Writes a version-1 file with `MAX_SLOTS` slots and `MAX_RECORDS`
/// records, every record registered (generation 1, `pid`), slot i held by
/// record i. Returns it, open.
fn plant(name: &str, pid: u32) -> File {
    let (slots, records) = (MAX_SLOTS as usize, MAX_RECORDS as usize);
    let mut bytes = vec![0u8; HEADER_LEN + records * RECORD_LEN + slots * SLOT_LEN];
    bytes[0..8].copy_from_slice(b"NIPCRSM1");
    bytes[8..12].copy_from_slice(&1u32.to_ne_bytes());
    bytes[12..16].copy_from_slice(&64u32.to_ne_bytes());
    bytes[16..20].copy_from_slice(&MAX_SLOTS.to_ne_bytes());
    bytes[20..24].copy_from_slice(&MAX_RECORDS.to_ne_bytes());
    for r in 0..records {
        let at = HEADER_LEN + r * RECORD_LEN;
        bytes[at..at + 8].copy_from_slice(&(1u64 << 1 | 1).to_ne_bytes());
        bytes[at + 8..at + 12].copy_from_slice(&pid.to_ne_bytes());
    }
    for i in 0..slots {
        let at = HEADER_LEN + records * RECORD_LEN + i * SLOT_LEN;
        let record = u32::try_from(i).unwrap();
        bytes[at..at + 8].copy_from_slice(&token(record, 1).to_ne_bytes());
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path(name))
        .unwrap();
    file.write_all(&bytes).unwrap();
    file
}

/// The pid of a process that has exited (and was reaped).
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Takes a write lock on the liveness bytes of records `first..` (to the
/// last) through `file`'s own open file description: those records look
/// alive to everybody else.
fn lock_records_from(file: &File, first: u32) {
    // SAFETY: flock is a plain C struct for which all-zero bytes are valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::c_short::try_from(libc::F_WRLCK).unwrap();
    fl.l_whence = libc::c_short::try_from(libc::SEEK_SET).unwrap();
    fl.l_start = LOCK_BASE + i64::from(first);
    fl.l_len = i64::from(MAX_RECORDS - first);
    // SAFETY: a valid descriptor (borrowed for the call) and a valid flock
    // that the kernel only reads for F_OFD_SETLK.
    let ret = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &raw const fl) };
    assert_eq!(ret, 0, "{}", std::io::Error::last_os_error());
}

#[test]
fn every_slot_naming_a_different_dead_record_is_reclaimed_in_linear_time() {
    let name = Name::new("dead");
    drop(plant(name.as_str(), dead_pid()));
    let started = Instant::now();
    // Registering takes record 0 (dead) and frees its one slot; the first
    // acquire takes that slot, the second finds none free and reclaims
    // the other 65,535 dead records' slots.
    let sem = RobustSemaphore::open(name.as_str()).unwrap();
    assert!(sem.try_acquire().unwrap());
    assert!(sem.try_acquire().unwrap());
    let took = started.elapsed();
    assert_eq!(sem.value().unwrap(), MAX_SLOTS - 2);
    let holders = sem.holders().unwrap();
    assert_eq!(holders.len(), 2);
    assert!(holders.iter().all(|h| h.alive), "{holders:?}");
    let seen = robust::inspect(name.as_str()).unwrap();
    // Record 0's slot at registration, the others' by the reclaim.
    assert_eq!(seen.reclaimed, u64::from(MAX_SLOTS));
    assert!(
        took < BOUND,
        "open and two acquires over 65,536 dead records took {took:?}"
    );
}

#[test]
fn every_slot_naming_a_different_live_record_is_looked_at_in_linear_time() {
    let name = Name::new("live");
    let planted = plant(name.as_str(), dead_pid());
    // Another open file description of the file holds every record's
    // lock: 65,536 live holders, as far as anybody can tell (whose pid
    // opens no pidfd: the watcher keeps looking at each of them).
    lock_records_from(&planted, 0);
    let started = Instant::now();
    // No record is free to register in.
    let full = RobustSemaphore::open(name.as_str()).unwrap_err();
    assert!(
        matches!(full, namedipc::Error::Busy { .. }),
        "expected every record in use, got {full:?}"
    );
    let seen = robust::inspect(name.as_str()).unwrap();
    assert_eq!(seen.holders.len(), MAX_SLOTS as usize);
    assert!(seen.holders.iter().all(|h| h.alive));
    assert_eq!(seen.attached, MAX_RECORDS);
    let took = started.elapsed();
    assert!(
        took < BOUND,
        "an open and an inspect over 65,536 live records took {took:?}"
    );
}

#[test]
fn a_wait_among_many_live_holders_costs_linear_time() {
    let name = Name::new("wait");
    let planted = plant(name.as_str(), dead_pid());
    // Record 0 is left to register in: the lock covers the others only.
    lock_records_from(&planted, 1);
    let started = Instant::now();
    let sem = RobustSemaphore::open(name.as_str()).unwrap();
    // Record 0's slot came back when this process registered in it.
    assert!(sem.try_acquire().unwrap());
    assert!(!sem.try_acquire().unwrap());
    // A wait past its grace: at the grace's end the waiter reclaims (one
    // lock attempt per live record) and then counts on its watcher, which
    // looks at the 65,535 holders in its own thread (not timed here: the
    // wait's own work is).
    assert!(!sem.acquire_timeout(Duration::from_millis(300)).unwrap());
    assert_eq!(sem.holders().unwrap().len(), MAX_SLOTS as usize);
    let took = started.elapsed();
    assert!(
        took < BOUND,
        "a wait among 65,535 live holders took {took:?}"
    );
}
