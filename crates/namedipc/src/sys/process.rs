//! What `namedipc run` needs from the OS to supervise a command: signals
//! blocked in the calling thread and taken synchronously (sigtimedwait), so
//! no code runs in a signal handler; sending a signal to a process; and a
//! child that starts with default dispositions for given signals and an
//! empty mask.

use std::io;
use std::mem::MaybeUninit;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use super::{check, retry_on_interrupt};

/// A signal taken by [`BlockedSignals::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    /// The signal number.
    pub(crate) signal: i32,
    /// Sent by the kernel, not by a process: a terminal's ^C, ^\ or hang-up,
    /// which the kernel sends to the whole foreground process group.
    pub(crate) from_kernel: bool,
    /// The process that sent it with kill(2), if one did.
    pub(crate) sender: Option<u32>,
}

/// Signals blocked in the calling thread, to be taken with [`Self::wait`]
/// instead of running a handler; the previous mask comes back on drop.
///
/// A signal sent to the process stays pending while every thread blocks it,
/// so in a single-threaded process (the `namedipc` command, or an
/// interpreter running it on its main thread) none is lost.
pub(crate) struct BlockedSignals {
    set: libc::sigset_t,
    previous: libc::sigset_t,
}

fn signal_set(signals: &[i32]) -> io::Result<libc::sigset_t> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `set` is valid, writable memory for one sigset_t, which
    // sigemptyset initialises completely.
    check(unsafe { libc::sigemptyset(set.as_mut_ptr()) })?;
    for &signal in signals {
        // SAFETY: `set` was initialised by sigemptyset; an invalid signal
        // number is reported as EINVAL, not undefined behaviour.
        check(unsafe { libc::sigaddset(set.as_mut_ptr(), signal) })?;
    }
    // SAFETY: initialised by sigemptyset above.
    Ok(unsafe { set.assume_init() })
}

impl BlockedSignals {
    /// Blocks `signals` in the calling thread.
    pub(crate) fn block(signals: &[i32]) -> io::Result<Self> {
        let set = signal_set(signals)?;
        let mut previous = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `set` is an initialised sigset_t and `previous` is valid,
        // writable memory that pthread_sigmask fills in on success.
        let ret = unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, previous.as_mut_ptr())
        };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        Ok(Self {
            set,
            // SAFETY: pthread_sigmask succeeded, so it wrote the old mask.
            previous: unsafe { previous.assume_init() },
        })
    }

    /// Takes one of the blocked signals, waiting at most `timeout` for one
    /// to arrive (`Duration::ZERO`: only look). `Ok(None)` if none came.
    pub(crate) fn wait(&self, timeout: Duration) -> io::Result<Option<Received>> {
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: timeout.subsec_nanos().into(),
        };
        let mut info = MaybeUninit::<libc::siginfo_t>::uninit();
        let taken = retry_on_interrupt(|| {
            // SAFETY: `self.set` is an initialised sigset_t, `info` is valid,
            // writable memory for one siginfo_t and `ts` a valid timespec.
            check(unsafe {
                libc::sigtimedwait(&raw const self.set, info.as_mut_ptr(), &raw const ts)
            })
        });
        let signal = match taken {
            Ok(signal) => signal,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(None),
            Err(e) => return Err(e),
        };
        // SAFETY: sigtimedwait returned a signal, so it filled in `info`.
        let info = unsafe { info.assume_init() };
        let from_kernel = info.si_code == libc::SI_KERNEL;
        let sender = if info.si_code == libc::SI_USER || info.si_code == libc::SI_QUEUE {
            // SAFETY: for SI_USER and SI_QUEUE the kernel fills in the
            // sender's pid, so reading that member of the union is defined.
            u32::try_from(unsafe { info.si_pid() }).ok()
        } else {
            None
        };
        Ok(Some(Received {
            signal,
            from_kernel,
            sender,
        }))
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: `previous` is the initialised mask saved by `block`; the
        // call only reads it.
        let ret = unsafe {
            libc::pthread_sigmask(
                libc::SIG_SETMASK,
                &raw const self.previous,
                std::ptr::null_mut(),
            )
        };
        debug_assert_eq!(ret, 0, "restoring a saved signal mask cannot fail");
    }
}

/// Sends `signal` to the process `pid`.
pub(crate) fn kill(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill takes no pointers; a positive pid names one process.
    check(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// Makes the child of `command` start with the default disposition of each
/// of `signals` (an ignored signal stays ignored across exec) and with no
/// blocked signals (the mask is inherited too).
pub(crate) fn default_signals_in_child(command: &mut Command, signals: &'static [i32]) {
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe functions may be called: signal, sigemptyset
    // and sigprocmask are, and it allocates nothing (`signals` is static).
    unsafe {
        command.pre_exec(move || {
            for &signal in signals {
                if libc::signal(signal, libc::SIG_DFL) == libc::SIG_ERR {
                    return Err(io::Error::last_os_error());
                }
            }
            let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
            check(libc::sigemptyset(empty.as_mut_ptr()))?;
            check(libc::sigprocmask(
                libc::SIG_SETMASK,
                empty.as_ptr(),
                std::ptr::null_mut(),
            ))?;
            Ok(())
        });
    }
}

/// Makes the child of `command` get `signal` when the thread that starts it
/// ends (Linux's parent-death signal, `PR_SET_PDEATHSIG`), so that a command
/// whose supervisor is killed learns of it at once. A supervisor that died
/// before the child set this up makes the spawn fail instead.
pub(crate) fn parent_death_signal_in_child(command: &mut Command, signal: i32) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe functions may be called: prctl and getppid are system
    // calls, and nothing is allocated (the error is built from an errno).
    unsafe {
        command.pre_exec(move || {
            let signal = libc::c_ulong::try_from(signal)
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            check(libc::prctl(libc::PR_SET_PDEATHSIG, signal, 0, 0, 0))?;
            // Reparented already: the supervisor is gone, and no signal will come.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}
