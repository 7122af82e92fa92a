//! The only module with `unsafe` code and libc calls. Everything above it is
//! safe Rust; each function here wraps one OS facility and returns
//! `io::Result`, leaving the meaning of an errno to the caller.
#![allow(unsafe_code)]

pub(crate) mod c_str;
pub(crate) mod mq;
pub(crate) mod pidfd;
#[cfg(feature = "cli")]
pub(crate) mod process;
pub(crate) mod robust;
pub(crate) mod sem;
pub(crate) mod shm;
pub(crate) mod users;

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Turns a C-style `-1 means errno` return value into an `io::Result`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// What `fstat` says about an open file, as plain numbers; the layers
/// above give them meaning (which file it is, what type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStat {
    /// `st_mode`: the file type and permission bits.
    pub(crate) mode: u32,
    /// `st_size`, in bytes.
    pub(crate) size: u64,
    /// `st_dev`: the device the file is on.
    pub(crate) dev: u64,
    /// `st_ino`: the file's inode on that device.
    pub(crate) ino: u64,
    /// `st_uid`: the file's owner.
    pub(crate) uid: u32,
    /// `st_gid`: the file's group.
    pub(crate) gid: u32,
}

/// `fstat(2)` on `fd`.
#[allow(clippy::useless_conversion)] // the field types of `struct stat` differ between platforms
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileStat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is open for the duration of the borrow and `st` is valid,
    // writable memory for one `struct stat`.
    check(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it filled in the whole struct.
    let st = unsafe { st.assume_init() };
    Ok(FileStat {
        mode: u32::from(st.st_mode),
        // Only a broken file system reports a negative size.
        size: u64::try_from(st.st_size).unwrap_or(0),
        dev: u64::from(st.st_dev),
        ino: u64::from(st.st_ino),
        uid: st.st_uid,
        gid: st.st_gid,
    })
}

/// `fchmod(2)`: sets the permission bits of the file `fd` to `mode`.
pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    retry_on_interrupt(|| {
        // SAFETY: `fd` is open for the duration of the borrow; fchmod takes no pointers.
        check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(drop)
    })
}

/// `fchown(2)` with the owner left as it is: gives the file `fd` the group `gid`.
pub(crate) fn fchgrp(fd: BorrowedFd<'_>, gid: u32) -> io::Result<()> {
    retry_on_interrupt(|| {
        // SAFETY: `fd` is open for the duration of the borrow; fchown takes no
        // pointers, and uid -1 means "keep the owner".
        check(unsafe { libc::fchown(fd.as_raw_fd(), libc::uid_t::MAX, gid) }).map(drop)
    })
}

/// This process's effective group id.
pub(crate) fn getegid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// This process's supplementary groups (getgroups(2)).
pub(crate) fn getgroups() -> io::Result<Vec<u32>> {
    loop {
        // SAFETY: a size of 0 asks only for the count; the pointer is not used.
        let count = check(unsafe { libc::getgroups(0, std::ptr::null_mut()) })?;
        let mut groups = vec![0 as libc::gid_t; usize::try_from(count).unwrap_or(0)];
        // SAFETY: `groups` is valid, writable memory for `count` gids.
        match check(unsafe { libc::getgroups(count, groups.as_mut_ptr()) }) {
            Ok(n) => {
                groups.truncate(usize::try_from(n).unwrap_or(0));
                return Ok(groups);
            }
            // The list grew in between (another thread called setgroups): again.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
}

/// This process's effective user id.
pub(crate) fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Runs `f` again while it fails with EINTR, for calls that have nothing
/// useful to do when a signal handler ran. The one place EINTR is retried.
pub(crate) fn retry_on_interrupt<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Fills `buf` from the kernel's CSPRNG (getrandom(2)), retrying on EINTR
/// and on short reads.
pub(crate) fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        filled += retry_on_interrupt(|| {
            // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes
            // for the duration of the call; flags 0 means "block until seeded".
            let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            // Negative (-1) exactly when the call failed.
            usize::try_from(n).map_err(|_| io::Error::last_os_error())
        })?;
    }
    Ok(())
}

/// The size of a memory page, in bytes.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// Time on CLOCK_MONOTONIC, the clock every deadline in this crate uses, so
/// that a change of the wall clock neither shortens nor stretches a wait.
pub(crate) fn monotonic_now() -> Duration {
    clock_now(libc::CLOCK_MONOTONIC)
}

/// Wall-clock time at the resolution of the kernel tick (a few ms), read
/// without a syscall: cheap enough for every acquire of a robust semaphore.
pub(crate) fn coarse_realtime_now() -> Duration {
    clock_now(libc::CLOCK_REALTIME_COARSE)
}

fn clock_now(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; callers pass clocks that always exist.
    let ret = unsafe { libc::clock_gettime(clock, &raw mut ts) };
    debug_assert_eq!(ret, 0, "clock_gettime cannot fail for a standard clock");
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Converts a point on the monotonic clock to a `timespec`, saturating far
/// in the future (a deadline of centuries is as good as none).
// `as`, not `From`, for the nanoseconds: c_long is 32 bits on some targets,
// and a value below 10^9 fits either way.
#[allow(clippy::cast_lossless)]
fn to_timespec(at: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(at.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: at.subsec_nanos() as libc::c_long,
    }
}
