//! What a thread that watches other processes for their death needs from
//! the OS: pidfds (a descriptor that becomes readable when its process has
//! exited), an eventfd to be woken by this process's own threads, `poll`
//! over both, and a way to start the thread with every signal blocked, so
//! that signals keep going to the threads that handle them.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use super::{check, retry_on_interrupt};

/// A pidfd of the process `pid` (as this process's PID namespace numbers
/// it), close-on-exec. `ESRCH` if no such process exists; `ENOSYS` on a
/// kernel older than 5.3.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: pidfd_open takes a pid and flags (0), no memory; it returns a
    // new descriptor (close-on-exec) or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    let fd = libc::c_int::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    check(fd)?;
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What identifies this process's PID namespace: the inode of
/// `/proc/self/ns/pid` (0 if it cannot be read: no `/proc`). Two processes
/// with the same non-zero value number processes alike. Allocates nothing
/// (a forked child calls it from its fork handler).
pub(crate) fn pid_namespace() -> u64 {
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

/// A new eventfd (close-on-exec, non-blocking), counting from 0.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd has no memory arguments.
    let fd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to the eventfd `fd`, waking whoever polls it.
pub(crate) fn eventfd_signal(fd: BorrowedFd<'_>) -> io::Result<()> {
    let one: u64 = 1;
    retry_on_interrupt(|| {
        // SAFETY: `fd` is open for the duration of the borrow and `one` is
        // 8 readable bytes, the size an eventfd write takes.
        let n = unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
        // A counter at its maximum (EAGAIN) is readable already.
        match usize::try_from(n) {
            Ok(_) => Ok(()),
            Err(_) => match io::Error::last_os_error() {
                e if e.raw_os_error() == Some(libc::EAGAIN) => Ok(()),
                e => Err(e),
            },
        }
    })
}

/// Resets the eventfd `fd` to 0 (nothing to do if it is 0 already).
pub(crate) fn eventfd_drain(fd: BorrowedFd<'_>) {
    let mut value: u64 = 0;
    // SAFETY: `fd` is open for the duration of the borrow and `value` is 8
    // writable bytes, the size an eventfd read fills. EAGAIN (it was 0) and
    // EINTR leave nothing to do.
    let _ = unsafe { libc::read(fd.as_raw_fd(), (&raw mut value).cast(), 8) };
}

/// Waits until one of `fds` is readable (or hung up), at most `timeout`
/// (`None`: as long as it takes), and sets `ready[i]` for each one that is.
/// A signal ends the wait early with nothing ready.
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
    ready: &mut Vec<bool>,
) -> io::Result<()> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // Rounded up, so that a short timeout does not become a busy 0.
    let timeout_ms = timeout.map_or(-1, |t| {
        libc::c_int::try_from(t.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX)
    });
    let count = libc::nfds_t::try_from(pollfds.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `pollfds` is a valid, writable array of `count` pollfds whose
    // descriptors stay open for the duration of the borrow of `fds`.
    let ret = unsafe { libc::poll(pollfds.as_mut_ptr(), count, timeout_ms) };
    ready.clear();
    if ret == -1 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            ready.resize(fds.len(), false);
            return Ok(());
        }
        return Err(e);
    }
    ready.extend(pollfds.iter().map(|p| p.revents != 0));
    Ok(())
}

/// Starts a thread running `f`, with every signal blocked in it (the
/// calling thread's mask is blocked for the moment of the spawn, which the
/// new thread inherits, and then restored), so that the process's signals
/// are never delivered to it and interrupt the threads that wait for them.
pub(crate) fn spawn_with_signals_blocked<F>(
    name: &str,
    stack_size: usize,
    f: F,
) -> io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut previous = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises the set it is given, and pthread_sigmask
    // reads `all` (initialised just before) and writes the previous mask
    // into `previous`, valid writable memory for one sigset_t.
    let blocked = unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), previous.as_mut_ptr())
    };
    if blocked != 0 {
        return Err(io::Error::from_raw_os_error(blocked));
    }
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .stack_size(stack_size)
        .spawn(f);
    // SAFETY: `previous` was filled in by the successful pthread_sigmask above.
    let restored = unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, previous.as_ptr(), std::ptr::null_mut())
    };
    debug_assert_eq!(
        restored, 0,
        "restoring a mask read a moment ago cannot fail"
    );
    spawned
}
