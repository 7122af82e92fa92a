//! POSIX message queues: mq_open, mq_timedsend, mq_timedreceive, mq_getattr
//! and friends; their notifications (mq_notify) are in `notify`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::ptr;
use std::sync::OnceLock;
use std::time::Duration;

use super::{check, clock_now, monotonic_now, to_timespec};

mod notify;
mod wake;

pub(crate) use notify::may_have_requests;
use notify::QueueKey;
pub(crate) use wake::{Ready, Waker};

/// The highest priority a message can have, `MQ_PRIO_MAX - 1`. Linux fixes
/// `MQ_PRIO_MAX` at 32768 (`sysconf(_SC_MQ_PRIO_MAX)`, checked by a test).
pub(crate) const PRIORITY_MAX: u32 = 32767;

/// How long a send or receive may wait for room or for a message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all.
    Never,
    /// Until this time on the monotonic clock ([`super::monotonic_now`]);
    /// a time already past means not at all.
    Until(Duration),
    /// As long as it takes.
    Forever,
}

impl Wait {
    /// The absolute CLOCK_REALTIME deadline that mq_timedsend and
    /// mq_timedreceive take; `None` waits without one. A jump of the wall
    /// clock can end such a wait early, so the caller checks its own
    /// monotonic deadline after a timeout.
    fn deadline(self) -> Option<libc::timespec> {
        // The epoch itself: for a deadline in the past the kernel answers
        // ETIMEDOUT at once, without arming a timer or sleeping.
        let epoch = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match self {
            Self::Never => Some(epoch),
            Self::Until(at) => {
                let remaining = at.saturating_sub(monotonic_now());
                Some(if remaining.is_zero() {
                    epoch
                } else {
                    to_timespec(clock_now(libc::CLOCK_REALTIME).saturating_add(remaining))
                })
            }
            Self::Forever => None,
        }
    }
}

/// A queue's attributes, as `mq_getattr` reports them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attributes {
    pub(crate) nonblocking: bool,
    pub(crate) max_messages: libc::c_long,
    pub(crate) max_message_size: libc::c_long,
    pub(crate) current_messages: libc::c_long,
}

/// How `RawQueue::open` creates a new queue (failing with EEXIST if the
/// name is taken).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Create {
    /// Permission bits.
    pub(crate) mode: u32,
    /// (max_messages, max_message_size); `None` takes the system defaults.
    pub(crate) limits: Option<(i64, i64)>,
}

/// An open message queue descriptor; `mq_close`d on drop.
#[derive(Debug)]
pub(crate) struct RawQueue {
    mqd: libc::mqd_t,
    /// Which queue this is, for the notification registry; taken (fstat) only
    /// when a thread notification is in play, as opens and closes are hot.
    key: OnceLock<QueueKey>,
}

impl RawQueue {
    /// Opens the queue `name` (which must start with '/', as glibc requires)
    /// with `access` (O_RDONLY, O_WRONLY or O_RDWR): the existing queue when
    /// `create` is `None`, else a new one.
    pub(crate) fn open(
        name: &CStr,
        access: libc::c_int,
        nonblocking: bool,
        create: Option<Create>,
    ) -> io::Result<Self> {
        let mut oflag = access;
        if nonblocking {
            oflag |= libc::O_NONBLOCK;
        }
        let mqd = match create {
            // SAFETY: `name` is a valid NUL-terminated string; without O_CREAT
            // mq_open reads no variadic arguments.
            None => unsafe { libc::mq_open(name.as_ptr(), oflag) },
            Some(create) => {
                oflag |= libc::O_CREAT | libc::O_EXCL;
                let mut attr = zeroed_attr();
                let attr_ptr = match create.limits {
                    Some((max_messages, max_message_size)) => {
                        attr.mq_maxmsg = max_messages as libc::c_long;
                        attr.mq_msgsize = max_message_size as libc::c_long;
                        ptr::from_ref(&attr)
                    }
                    None => ptr::null(),
                };
                // SAFETY: `name` is NUL-terminated; with O_CREAT mq_open reads
                // exactly a mode_t and a `struct mq_attr *` (null: defaults),
                // which is what we pass; `attr` outlives the call.
                unsafe {
                    libc::mq_open(name.as_ptr(), oflag, create.mode as libc::mode_t, attr_ptr)
                }
            }
        };
        if mqd == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            mqd,
            key: OnceLock::new(),
        })
    }

    /// Which queue this is, taken on first use.
    fn key(&self) -> io::Result<QueueKey> {
        if let Some(key) = self.key.get() {
            return Ok(*key);
        }
        let key = QueueKey::of(&super::fstat(self.as_fd())?);
        Ok(*self.key.get_or_init(|| key))
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.mqd
    }

    /// Gives up the descriptor without closing it: the caller owns it now.
    /// (A notification the process requested stays with the kernel's open
    /// description, and so does its registry entry.)
    pub(crate) fn into_raw_fd(self) -> RawFd {
        let fd = self.mqd;
        std::mem::forget(self);
        fd
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: on Linux a queue descriptor is a file descriptor, and it
        // stays open until `self` is dropped, which the borrow prevents.
        unsafe { BorrowedFd::borrow_raw(self.mqd) }
    }

    pub(crate) fn attributes(&self) -> io::Result<Attributes> {
        let mut attr = zeroed_attr();
        // SAFETY: `self.mqd` is open; `attr` is a valid, writable mq_attr.
        check(unsafe { libc::mq_getattr(self.mqd, &raw mut attr) })?;
        Ok(Attributes {
            nonblocking: attr.mq_flags & libc::c_long::from(libc::O_NONBLOCK) != 0,
            max_messages: attr.mq_maxmsg,
            max_message_size: attr.mq_msgsize,
            current_messages: attr.mq_curmsgs,
        })
    }

    /// Sets or clears O_NONBLOCK, the only attribute mq_setattr changes.
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        let mut attr = zeroed_attr();
        if nonblocking {
            attr.mq_flags = libc::c_long::from(libc::O_NONBLOCK);
        }
        // SAFETY: `self.mqd` is open; `attr` is a valid mq_attr; the old
        // attributes are not asked for (null).
        check(unsafe { libc::mq_setattr(self.mqd, &raw const attr, ptr::null_mut()) }).map(drop)
    }

    /// Sends `message`. Errors: ETIMEDOUT when `wait` ran out, EAGAIN when
    /// the queue is full and the descriptor is non-blocking, EINTR when a
    /// signal handler ran, EMSGSIZE, EBADF (not open for writing).
    pub(crate) fn send(&self, message: &[u8], priority: u32, wait: Wait) -> io::Result<()> {
        let deadline = wait.deadline();
        let deadline_ptr = deadline.as_ref().map_or(ptr::null(), ptr::from_ref);
        // SAFETY: `self.mqd` is open; `message` is valid for reads of its
        // length; `deadline_ptr` is null (no deadline) or points to a valid
        // timespec that outlives the call.
        check(unsafe {
            libc::mq_timedsend(
                self.mqd,
                message.as_ptr().cast(),
                message.len(),
                priority,
                deadline_ptr,
            )
        })
        .map(drop)
    }

    /// Receives the oldest message of the highest priority into `buf`, which
    /// must hold at least the queue's max_message_size bytes (else EMSGSIZE);
    /// returns (length, priority). Other errors as for `send`.
    pub(crate) fn receive(&self, buf: &mut [u8], wait: Wait) -> io::Result<(usize, u32)> {
        let deadline = wait.deadline();
        let deadline_ptr = deadline.as_ref().map_or(ptr::null(), ptr::from_ref);
        let mut priority: libc::c_uint = 0;
        // SAFETY: `self.mqd` is open; `buf` is valid for writes of its length
        // and the kernel writes at most that many bytes; `priority` is a
        // valid, writable c_uint; `deadline_ptr` as in `send`.
        let len = unsafe {
            libc::mq_timedreceive(
                self.mqd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &raw mut priority,
                deadline_ptr,
            )
        };
        match usize::try_from(len) {
            Ok(len) => Ok((len, priority)),
            Err(_) => Err(io::Error::last_os_error()),
        }
    }
}

// `Drop` (mq_close) is in `notify`: closing a descriptor settles this
// process's notification request for the queue.

pub(crate) fn unlink(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string.
    check(unsafe { libc::mq_unlink(name.as_ptr()) }).map(drop)
}

/// The signals reserved for applications: SIGRTMIN..=SIGRTMAX (glibc keeps
/// the first few real-time signals for itself, so these are functions).
pub(crate) fn realtime_signals() -> (i32, i32) {
    (libc::SIGRTMIN(), libc::SIGRTMAX())
}

/// `sysconf(_SC_MQ_PRIO_MAX)`, or None if the system does not say.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn priority_limit() -> Option<libc::c_long> {
    // SAFETY: sysconf has no preconditions.
    let limit = unsafe { libc::sysconf(libc::_SC_MQ_PRIO_MAX) };
    (limit > 0).then_some(limit)
}

fn zeroed_attr() -> libc::mq_attr {
    // SAFETY: mq_attr is a plain C struct of integers; all zeroes is valid.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_max_matches_the_system() {
        let limit = priority_limit().expect("sysconf(_SC_MQ_PRIO_MAX)");
        assert_eq!(u32::try_from(limit - 1), Ok(PRIORITY_MAX));
    }

    #[test]
    fn realtime_signals_are_a_range() {
        let (min, max) = realtime_signals();
        assert!(0 < min && min < max, "{min}..={max}");
    }
}
