//! POSIX message queues: prioritised messages between unrelated processes,
//! found by name, compatible with C programs that call `mq_open` on the same
//! name. Waits measure their timeouts on the monotonic clock.
//!
//! The handle and its name are here; opening is in `options`, the system's
//! limits in `limits`, sending and receiving in `transfer`, notifications
//! in `notify`.
//!
//! ```
//! use namedipc::MessageQueue;
//!
//! # let name = format!("/namedipc-doc-mq-{}", std::process::id());
//! let queue = MessageQueue::create(&name)?;
//! queue.send(b"low", 1)?;
//! queue.send(b"high", 9)?;
//! let mut buf = queue.new_buffer();
//! let got = queue.receive(&mut buf)?; // the highest priority comes first
//! assert_eq!((&buf[..got.len], got.priority), (&b"high"[..], 9));
//! queue.unlink()?;
//! # Ok::<(), namedipc::Error>(())
//! ```

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, RawFd};
use std::sync::OnceLock;

use crate::error::{BusyReason, Error, ObjectKind, Result};
use crate::existence::Existence;
use crate::ownership::Owner;
use crate::paths;
use crate::sys;
use crate::sys::mq::RawQueue;

mod limits;
mod notify;
mod options;
mod transfer;
mod waits;

pub use limits::{system_limits, Limits};
pub use notify::user_signals;
pub use options::MessageQueueOptions;
pub use transfer::{Received, PRIORITY_MAX};

const KIND: ObjectKind = ObjectKind::MessageQueue;

/// A POSIX message queue.
///
/// Any number of threads may share one handle (`&MessageQueue` is enough
/// for every operation); dropping the handle closes it. On Linux the handle
/// is a file descriptor, usable with `poll`/`epoll` ([`AsFd`]).
///
/// Sends and receives come in four flavours: `send` waits as long as it
/// takes, `try_send` never waits, `send_timeout` waits at most a given time,
/// and `send_interruptible` also returns when a signal handler has run.
/// A handle that does not block ([`MessageQueue::set_blocking`]) never
/// waits: where a wait would begin, it returns [`Error::Busy`].
///
/// ```
/// use std::time::Duration;
/// use namedipc::MessageQueue;
///
/// # let name = format!("/namedipc-doc-mqtype-{}", std::process::id());
/// let queue = MessageQueue::options().max_messages(1).open(&name)?;
/// assert!(queue.try_send(b"one", 0)?);
/// assert!(!queue.send_timeout(b"two", 0, Duration::from_millis(10))?); // full
/// assert_eq!(queue.current_messages()?, 1);
/// # queue.unlink()?;
/// # Ok::<(), namedipc::Error>(())
/// ```
#[derive(Debug)]
pub struct MessageQueue {
    raw: RawQueue,
    name: paths::KeptName,
    read: bool,
    write: bool,
    max_messages: usize,
    max_message_size: usize,
    created: bool,
    /// The owner and mode: from the fstat at open or create, or, where the
    /// open had nothing to check them against, from the first
    /// [`Self::owner`].
    owner: OnceLock<Owner>,
    /// What ends the `*_interruptible` waits early: [`Self::end_waits`].
    waits: waits::Waits,
}

impl MessageQueue {
    /// Options for opening or creating a queue.
    #[must_use]
    pub fn options() -> MessageQueueOptions {
        MessageQueueOptions::default()
    }

    /// Opens the existing queue `name` for reading and writing.
    ///
    /// # Errors
    /// [`Error::NotFound`] if it does not exist; see [`MessageQueueOptions::open`].
    pub fn open(name: &str) -> Result<Self> {
        Self::options()
            .existence(Existence::RaiseIfNotExists)
            .open(name)
    }

    /// Creates the queue `name` with mode `0o600` and the system's default limits.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if the name is taken; see [`MessageQueueOptions::open`].
    pub fn create(name: &str) -> Result<Self> {
        Self::options()
            .existence(Existence::RaiseIfExists)
            .open(name)
    }

    /// The name, as given when the queue was opened.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this handle created the queue (rather than opening an existing one).
    #[must_use]
    pub fn created(&self) -> bool {
        self.created
    }

    /// Who owns the queue and its mode, as they were when this handle
    /// first read them. That is at open or create, unless nothing there
    /// needed them, as in posix_ipc's open, which reads neither: an existing
    /// queue opened with [`Trust::anyone`](crate::Trust::anyone), or a new
    /// one made with the umask's mode and no group. Then this call reads
    /// them, with one fstat, the first time.
    ///
    /// # Errors
    /// Only where that first read happens here: [`Error::Os`] if the OS
    /// fails unexpectedly.
    pub fn owner(&self) -> Result<Owner> {
        if let Some(owner) = self.owner.get() {
            return Ok(*owner);
        }
        let stat = sys::fstat(self.raw.as_fd()).map_err(|e| self.os("fstat", e))?;
        Ok(*self.owner.get_or_init(|| Owner::of_stat(&stat)))
    }

    /// How many messages the queue holds at most.
    #[must_use]
    pub fn max_messages(&self) -> usize {
        self.max_messages
    }

    /// The longest message the queue takes, in bytes.
    #[must_use]
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Whether this handle may receive.
    #[must_use]
    pub fn can_read(&self) -> bool {
        self.read
    }

    /// Whether this handle may send.
    #[must_use]
    pub fn can_write(&self) -> bool {
        self.write
    }

    /// How many messages are in the queue now (it may change at any moment).
    ///
    /// # Errors
    /// [`Error::Os`] only if the OS fails unexpectedly.
    pub fn current_messages(&self) -> Result<usize> {
        let attributes = self
            .raw
            .attributes()
            .map_err(|e| self.os("mq_getattr", e))?;
        Ok(usize::try_from(attributes.current_messages).unwrap_or(0))
    }

    /// Whether sends and receives through this handle may wait.
    ///
    /// # Errors
    /// [`Error::Os`] only if the OS fails unexpectedly.
    pub fn is_blocking(&self) -> Result<bool> {
        let attributes = self
            .raw
            .attributes()
            .map_err(|e| self.os("mq_getattr", e))?;
        Ok(!attributes.nonblocking)
    }

    /// Lets sends and receives through this handle wait, or not
    /// (`O_NONBLOCK`). A handle that does not block returns [`Error::Busy`]
    /// wherever it would wait. Other handles on the queue are not affected.
    ///
    /// # Errors
    /// [`Error::Os`] only if the OS fails unexpectedly.
    pub fn set_blocking(&self, blocking: bool) -> Result<()> {
        self.raw
            .set_nonblocking(!blocking)
            .map_err(|e| self.os("mq_setattr", e))
    }

    /// Removes the name; processes that have the queue open keep using it,
    /// and it is destroyed when the last of them closes it.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the name was already removed.
    pub fn unlink(&self) -> Result<()> {
        unlink(&self.name)
    }

    fn busy(&self, reason: BusyReason) -> Error {
        Error::Busy {
            kind: KIND,
            name: self.name.to_string(),
            reason,
        }
    }

    fn os(&self, operation: &'static str, e: io::Error) -> Error {
        Error::from_os(operation, KIND, &self.name, e)
    }
}

impl AsFd for MessageQueue {
    /// The queue descriptor, for `poll`/`epoll`: readable when a message is
    /// waiting, writable when there is room.
    fn as_fd(&self) -> BorrowedFd<'_> {
        // Whoever gets the descriptor may ask for notifications through it.
        sys::mq::may_have_requests();
        self.raw.as_fd()
    }
}

impl IntoRawFd for MessageQueue {
    /// Gives up the queue descriptor without closing it; the caller owns it
    /// (and closes it with `mq_close` or `close`).
    fn into_raw_fd(self) -> RawFd {
        sys::mq::may_have_requests();
        self.raw.into_raw_fd()
    }
}

impl AsRawFd for MessageQueue {
    /// The queue descriptor (`mqd_t`), valid while the handle lives.
    fn as_raw_fd(&self) -> RawFd {
        sys::mq::may_have_requests();
        self.raw.raw_fd()
    }
}

/// Removes the queue `name` without opening it.
///
/// ```
/// # let name = format!("/namedipc-doc-mqunlink-{}", std::process::id());
/// # namedipc::MessageQueue::create(&name)?;
/// namedipc::mqueue::unlink(&name)?;
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidName`], [`Error::NotFound`], [`Error::PermissionDenied`].
pub fn unlink(name: &str) -> Result<()> {
    paths::with_c_name(KIND, name, |c_name| unlink_c(name, c_name))
}

fn unlink_c(name: &str, c_name: &CStr) -> Result<()> {
    sys::mq::unlink(c_name).map_err(|e| Error::from_os("mq_unlink", KIND, name, e))
}
