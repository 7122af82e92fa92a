//! Waits on a queue descriptor that another thread can end: `ppoll` on the
//! queue (readable: a message waits; writable: there is room) together with
//! an eventfd that [`Waker::wake`] makes readable for good.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::RawQueue;
use crate::sys::{check, to_timespec};

/// An eventfd that, once woken, stays readable: every wait on it, now or
/// later, ends at once.
#[derive(Debug)]
pub(crate) struct Waker {
    fd: OwnedFd,
}

impl Waker {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory arguments; it returns a new
        // descriptor or -1.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Makes the eventfd readable; it is never read, so it stays so.
    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: the descriptor is open (owned by `self`); `one` is valid
        // for reads of 8 bytes, the size an eventfd write takes. It can only
        // fail with EAGAIN once the counter is near its maximum, when the
        // eventfd is readable anyway.
        unsafe { libc::write(self.fd.as_raw_fd(), (&raw const one).cast(), 8) };
    }
}

/// What ended a [`RawQueue::wait_ready`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// The queue may have what the caller waits for (another thread or
    /// process may take it first).
    Queue,
    /// The waker was woken.
    Woken,
    /// The timeout ran out.
    TimedOut,
}

impl RawQueue {
    /// Waits until the queue has a message (`for_room` false) or room
    /// (`for_room` true), `waker` is woken, or `timeout` (`None`: no limit)
    /// runs out. EINTR when a signal handler ran.
    pub(crate) fn wait_ready(
        &self,
        for_room: bool,
        waker: &Waker,
        timeout: Option<Duration>,
    ) -> io::Result<Ready> {
        let events = if for_room {
            libc::POLLOUT
        } else {
            libc::POLLIN
        };
        let mut fds = [
            libc::pollfd {
                fd: waker.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.mqd,
                events,
                revents: 0,
            },
        ];
        let timeout = timeout.map(to_timespec);
        let timeout_ptr = timeout
            .as_ref()
            .map_or(std::ptr::null(), std::ptr::from_ref);
        // SAFETY: `fds` is a valid, writable array of two pollfds on open
        // descriptors (both owned by values borrowed for the call);
        // `timeout_ptr` is null (no limit) or points to a timespec that
        // outlives the call; a null sigmask leaves the mask alone.
        let ready = check(unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout_ptr,
                std::ptr::null(),
            )
        })?;
        Ok(if fds[0].revents != 0 {
            Ready::Woken
        } else if ready == 0 {
            Ready::TimedOut
        } else {
            Ready::Queue
        })
    }
}
