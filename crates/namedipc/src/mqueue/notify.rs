//! A queue's notifications: a signal, or a callback in a new thread, when a
//! message arrives in the empty queue.

use std::io;
use std::ops::RangeInclusive;

use super::MessageQueue;
use crate::error::{BusyReason, Error, Result};
use crate::sys;

/// The signals left for applications (`SIGRTMIN..=SIGRTMAX`), the natural
/// choice for [`MessageQueue::notify_by_signal`].
///
/// ```
/// let signals = namedipc::mqueue::user_signals();
/// assert!(signals.start() < signals.end());
/// ```
#[must_use]
pub fn user_signals() -> RangeInclusive<i32> {
    let (min, max) = sys::mq::realtime_signals();
    min..=max
}

impl MessageQueue {
    /// Asks the OS to send `signal` to this process when a message arrives
    /// in the empty queue (and no receiver is waiting for it). A request
    /// fires once; it replaces this process's earlier request for the
    /// queue, and closing any handle on the queue in this process cancels it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a number that is not a signal,
    /// [`Error::Busy`] if another process has asked for notification on the
    /// queue (the OS keeps one request per queue).
    pub fn notify_by_signal(&self, signal: i32) -> Result<()> {
        let max = *user_signals().end();
        if !(1..=max).contains(&signal) {
            return Err(Error::InvalidArgument(format!(
                "a notification signal must be between 1 and {max}, not {signal}"
            )));
        }
        self.raw
            .notify_signal(signal)
            .map_err(|e| self.notify_error(e))
    }

    /// Runs `callback` in a new thread when a message arrives in the empty
    /// queue (and no receiver is waiting for it). A request fires once; it
    /// replaces this process's earlier request for the queue. `callback` is
    /// dropped without running if, before a message arrives, the request is
    /// cancelled or replaced, or any handle on the queue is closed in this
    /// process (closing ends the request in the kernel).
    ///
    /// ```
    /// # let name = format!("/namedipc-doc-mq-notify-{}", std::process::id());
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// let queue = namedipc::MessageQueue::create(&name)?;
    /// let (tx, rx) = mpsc::channel();
    /// queue.notify_by_thread(move || tx.send("a message arrived").unwrap())?;
    /// queue.send(b"hi", 0)?;
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "a message arrived");
    /// # queue.unlink()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Busy`] if another process has asked for notification on the queue.
    pub fn notify_by_thread(&self, callback: impl FnOnce() + Send + 'static) -> Result<()> {
        self.raw
            .notify_thread(Box::new(callback))
            .map_err(|e| self.notify_error(e))
    }

    /// Cancels this process's notification request for the queue, whichever
    /// handle made it; a thread callback is dropped without running, unless
    /// its message has already arrived. Does nothing if there is no request,
    /// or if another process made it. Until a handle in this process has
    /// asked for a notification or handed out its descriptor (through
    /// [`AsFd`](std::os::fd::AsFd) and the like), nothing can have made one,
    /// and this makes no system call: closing a handle never asked to notify
    /// costs no more than the close.
    pub fn cancel_notification(&self) {
        self.raw.cancel_notification();
    }

    fn notify_error(&self, e: io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::EBUSY) => self.busy(BusyReason::NotificationTaken),
            _ => self.os("mq_notify", e),
        }
    }
}
