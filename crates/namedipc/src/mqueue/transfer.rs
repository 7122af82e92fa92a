//! Sending and receiving: each in four flavours (as long as it takes, not
//! at all, at most a timeout, until a signal), all through one wait loop.

use std::io;
use std::time::Duration;

use super::MessageQueue;
use crate::deadline::{self, Deadline, OnSignal};
use crate::error::{BusyReason, Error, Result};
use crate::sys;
use crate::sys::mq::Wait;

/// The highest priority a message can have (`MQ_PRIO_MAX - 1`, 32767 on Linux).
/// Higher priorities are received first.
pub const PRIORITY_MAX: u32 = sys::mq::PRIORITY_MAX;

/// Where a received message ended up: its length in the buffer, and its
/// priority (the module's example shows one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Received {
    /// The message is `buf[..len]`.
    pub len: usize,
    /// The priority it was sent with.
    pub priority: u32,
}

impl MessageQueue {
    /// Sends `message` with `priority` (0 to [`PRIORITY_MAX`]), waiting as
    /// long as it takes for room. Signals do not end the wait.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (message too long, priority too high, or
    /// the handle was opened without write access), [`Error::Busy`] if the
    /// handle does not block and the queue is full.
    pub fn send(&self, message: &[u8], priority: u32) -> Result<()> {
        self.check_send(message, priority)?;
        self.send_until(message, priority, None, OnSignal::KeepWaiting)
            .map(drop)
    }

    /// Sends `message` if there is room now: `Ok(false)` if the queue is full.
    ///
    /// # Errors
    /// As [`Self::send`], except that a full queue is `Ok(false)`.
    pub fn try_send(&self, message: &[u8], priority: u32) -> Result<bool> {
        self.check_send(message, priority)?;
        match sys::retry_on_interrupt(|| self.raw.send(message, priority, Wait::Never)) {
            Ok(()) => Ok(true),
            // Full: EAGAIN from a handle that does not block, ETIMEDOUT from one that does.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) || is_timeout(&e) => Ok(false),
            Err(e) => Err(self.os("mq_send", e)),
        }
    }

    /// Sends `message`, waiting at most `timeout` for room: `Ok(false)` when
    /// the time is up. Signals do not end the wait early.
    ///
    /// # Errors
    /// As [`Self::send`].
    pub fn send_timeout(&self, message: &[u8], priority: u32, timeout: Duration) -> Result<bool> {
        self.check_send(message, priority)?;
        let deadline = Deadline::after(timeout);
        self.send_until(message, priority, Some(deadline), OnSignal::KeepWaiting)
    }

    /// Sends `message`, waiting at most `timeout` (`None`: no limit) for
    /// room, and returns [`Error::Interrupted`] as soon as a signal handler
    /// has run, so that the caller can act on the signal and then call again
    /// with the time that is left. `Ok(false)` means the time is up, or
    /// [`Self::end_waits`] was called: then nothing is sent.
    ///
    /// ```
    /// # let name = format!("/namedipc-doc-mq-intr-{}", std::process::id());
    /// # let queue = namedipc::MessageQueue::create(&name)?;
    /// use namedipc::Error;
    /// let sent = loop {
    ///     match queue.send_interruptible(b"job", 0, None) {
    ///         Err(Error::Interrupted { .. }) => continue, // act on the signal, then go on
    ///         other => break other?,
    ///     }
    /// };
    /// # queue.unlink()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Interrupted`]; otherwise as [`Self::send`].
    pub fn send_interruptible(
        &self,
        message: &[u8],
        priority: u32,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        self.check_send(message, priority)?;
        let deadline = timeout.map(Deadline::after);
        let sent = self.wait_endably(true, deadline, || {
            timed_out_as_none(self.raw.send(message, priority, Wait::Never))
        });
        self.sent(sent)
    }

    /// A buffer to receive into: [`Self::max_message_size`] zero bytes.
    #[must_use]
    pub fn new_buffer(&self) -> Vec<u8> {
        vec![0; self.max_message_size]
    }

    /// Receives the oldest message of the highest priority into `buf`,
    /// waiting as long as it takes for one. `buf` must hold at least
    /// [`Self::max_message_size`] bytes, as the OS requires. Signals do not
    /// end the wait.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (buffer too small, or the handle was
    /// opened without read access), [`Error::Busy`] if the handle does not
    /// block and the queue is empty.
    pub fn receive(&self, buf: &mut [u8]) -> Result<Received> {
        self.check_receive(buf)?;
        self.receive_until(buf, None, OnSignal::KeepWaiting)?
            .ok_or_else(|| self.busy(BusyReason::Empty))
    }

    /// Receives a message if there is one now: `Ok(None)` if the queue is empty.
    ///
    /// # Errors
    /// As [`Self::receive`], except that an empty queue is `Ok(None)`.
    pub fn try_receive(&self, buf: &mut [u8]) -> Result<Option<Received>> {
        self.check_receive(buf)?;
        match sys::retry_on_interrupt(|| self.raw.receive(buf, Wait::Never)) {
            // Empty: EAGAIN from a handle that does not block, ETIMEDOUT from one that does.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) || is_timeout(&e) => Ok(None),
            other => self.received(other.map(Some)),
        }
    }

    /// Receives a message, waiting at most `timeout` for one: `Ok(None)`
    /// when the time is up. Signals do not end the wait early.
    ///
    /// # Errors
    /// As [`Self::receive`].
    pub fn receive_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<Received>> {
        self.check_receive(buf)?;
        let deadline = Deadline::after(timeout);
        self.receive_until(buf, Some(deadline), OnSignal::KeepWaiting)
    }

    /// Receives a message, waiting at most `timeout` (`None`: no limit), and
    /// returns [`Error::Interrupted`] as soon as a signal handler has run.
    /// `Ok(None)` means the time is up, or [`Self::end_waits`] was called:
    /// then no message is taken.
    ///
    /// # Errors
    /// [`Error::Interrupted`]; otherwise as [`Self::receive`].
    pub fn receive_interruptible(
        &self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<Option<Received>> {
        self.check_receive(buf)?;
        let deadline = timeout.map(Deadline::after);
        let received = self.wait_endably(false, deadline, || {
            timed_out_as_none(self.raw.receive(buf, Wait::Never))
        });
        self.received(received)
    }

    fn check_send(&self, message: &[u8], priority: u32) -> Result<()> {
        if !self.write {
            return Err(Error::InvalidArgument(format!(
                "message queue '{}' was opened without write access; open it with write access to send",
                self.name
            )));
        }
        if message.len() > self.max_message_size {
            return Err(Error::InvalidArgument(format!(
                "a message of {} bytes is too long for message queue '{}', whose max_message_size is {}",
                message.len(),
                self.name,
                self.max_message_size
            )));
        }
        if priority > PRIORITY_MAX {
            return Err(Error::InvalidArgument(format!(
                "priority must be between 0 and {PRIORITY_MAX}, not {priority}"
            )));
        }
        Ok(())
    }

    fn check_receive(&self, buf: &[u8]) -> Result<()> {
        if !self.read {
            return Err(Error::InvalidArgument(format!(
                "message queue '{}' was opened without read access; open it with read access to receive",
                self.name
            )));
        }
        if buf.len() < self.max_message_size {
            return Err(Error::InvalidArgument(format!(
                "a buffer of {} bytes is too small for message queue '{}': receiving needs at least max_message_size ({}) bytes",
                buf.len(),
                self.name,
                self.max_message_size
            )));
        }
        Ok(())
    }

    /// Sends, waiting for room until `deadline` (`None`: no limit) and
    /// treating signals as `on_signal` says: `Ok(false)` when the time is up.
    fn send_until(
        &self,
        message: &[u8],
        priority: u32,
        deadline: Option<Deadline>,
        on_signal: OnSignal,
    ) -> Result<bool> {
        let sent = deadline::wait_until(deadline, on_signal, |deadline| {
            timed_out_as_none(self.raw.send(message, priority, wait(deadline)))
        });
        self.sent(sent)
    }

    /// Maps the outcome of a send: `Ok(false)` when the time ran out.
    fn sent(&self, result: io::Result<Option<()>>) -> Result<bool> {
        match result {
            Ok(sent) => Ok(sent.is_some()),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Err(self.busy(BusyReason::Full)),
            Err(e) => Err(self.os("mq_send", e)),
        }
    }

    /// Receives, waiting for a message until `deadline` (`None`: no limit)
    /// and treating signals as `on_signal` says: `Ok(None)` when the time is up.
    fn receive_until(
        &self,
        buf: &mut [u8],
        deadline: Option<Deadline>,
        on_signal: OnSignal,
    ) -> Result<Option<Received>> {
        let received = deadline::wait_until(deadline, on_signal, |deadline| {
            timed_out_as_none(self.raw.receive(buf, wait(deadline)))
        });
        self.received(received)
    }

    /// Maps the outcome of a receive: `Ok(None)` when the time ran out.
    fn received(&self, result: io::Result<Option<(usize, u32)>>) -> Result<Option<Received>> {
        match result {
            Ok(got) => Ok(got.map(|(len, priority)| Received { len, priority })),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Err(self.busy(BusyReason::Empty)),
            Err(e) => Err(self.os("mq_receive", e)),
        }
    }
}

/// The wait to hand an OS call for `deadline` (`None`: no limit).
fn wait(deadline: Option<Deadline>) -> Wait {
    deadline.map_or(Wait::Forever, |deadline| Wait::Until(deadline.at()))
}

/// A call's timeout (ETIMEDOUT) as `Ok(None)`, for [`deadline::wait_until`].
fn timed_out_as_none<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(done) => Ok(Some(done)),
        Err(e) if is_timeout(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_timeout(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ETIMEDOUT)
}
