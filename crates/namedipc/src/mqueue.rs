//! POSIX message queues: prioritised messages between unrelated processes,
//! found by name, compatible with C programs that call `mq_open` on the same
//! name. Waits measure their timeouts on the monotonic clock.
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

use std::ffi::CString;
use std::io;
use std::ops::RangeInclusive;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use crate::deadline::{self, Deadline, OnSignal};
use crate::error::{BusyReason, Error, ObjectKind, Result};
use crate::existence::{self, Existence, Object};
use crate::paths;
use crate::sys;
use crate::sys::mq::{Create, RawQueue, Wait};

const KIND: ObjectKind = ObjectKind::MessageQueue;

/// The highest priority a message can have (`MQ_PRIO_MAX - 1`, 32767 on Linux).
/// Higher priorities are received first.
pub const PRIORITY_MAX: u32 = sys::mq::PRIORITY_MAX;

/// Where Linux publishes its message queue limits.
const LIMITS_DIR: &str = "/proc/sys/fs/mqueue";

/// This system's limits for new queues, read from `/proc/sys/fs/mqueue` by
/// [`system_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// `max_messages` of a queue created without one (`msg_default`).
    pub default_max_messages: usize,
    /// `max_message_size` of a queue created without one (`msgsize_default`).
    pub default_max_message_size: usize,
    /// The largest `max_messages` an unprivileged process may ask for (`msg_max`).
    pub max_messages: usize,
    /// The largest `max_message_size` an unprivileged process may ask for (`msgsize_max`).
    pub max_message_size: usize,
}

/// Reads this system's limits for new queues. Where a file cannot be read
/// (an old kernel, a sandbox), Linux's built-in values stand in: 10 messages
/// of 8192 bytes.
///
/// ```
/// let limits = namedipc::mqueue::system_limits();
/// println!("new queues hold {} messages by default", limits.default_max_messages);
/// ```
#[must_use]
pub fn system_limits() -> Limits {
    let read = |file: &str, fallback: usize| {
        std::fs::read_to_string(format!("{LIMITS_DIR}/{file}"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .filter(|&value| value > 0)
            .unwrap_or(fallback)
    };
    Limits {
        default_max_messages: read("msg_default", 10),
        default_max_message_size: read("msgsize_default", 8192),
        max_messages: read("msg_max", 10),
        max_message_size: read("msgsize_max", 8192),
    }
}

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

/// Options for opening or creating a [`MessageQueue`].
///
/// ```
/// use namedipc::{Existence, MessageQueue};
///
/// # let name = format!("/namedipc-doc-mqopts-{}", std::process::id());
/// let queue = MessageQueue::options()
///     .existence(Existence::RaiseIfExists)
///     .max_messages(4)
///     .max_message_size(128)
///     .mode(0o600)
///     .open(&name)?;
/// assert_eq!((queue.max_messages(), queue.max_message_size()), (4, 128));
/// # queue.unlink()?;
/// # Ok::<(), namedipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MessageQueueOptions {
    existence: Existence,
    mode: u32,
    max_messages: Option<usize>,
    max_message_size: Option<usize>,
    read: bool,
    write: bool,
    blocking: bool,
}

impl Default for MessageQueueOptions {
    fn default() -> Self {
        Self {
            existence: Existence::LinkOrCreate,
            mode: 0o600,
            max_messages: None,
            max_message_size: None,
            read: true,
            write: true,
            blocking: true,
        }
    }
}

impl MessageQueueOptions {
    /// What to do if the queue does or does not exist (default: [`Existence::LinkOrCreate`]).
    #[must_use]
    pub fn existence(mut self, existence: Existence) -> Self {
        self.existence = existence;
        self
    }

    /// Permission bits for a new queue, before the umask (default `0o600`).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// How many messages a new queue holds (default: the system's, see
    /// [`system_limits`]). An existing queue keeps its own.
    #[must_use]
    pub fn max_messages(mut self, max_messages: usize) -> Self {
        self.max_messages = Some(max_messages);
        self
    }

    /// The longest message a new queue takes, in bytes (default: the
    /// system's, see [`system_limits`]). An existing queue keeps its own.
    #[must_use]
    pub fn max_message_size(mut self, max_message_size: usize) -> Self {
        self.max_message_size = Some(max_message_size);
        self
    }

    /// Whether the handle may receive (default `true`).
    #[must_use]
    pub fn read(mut self, read: bool) -> Self {
        self.read = read;
        self
    }

    /// Whether the handle may send (default `true`).
    #[must_use]
    pub fn write(mut self, write: bool) -> Self {
        self.write = write;
        self
    }

    /// Whether sends and receives may wait (default `true`); see
    /// [`MessageQueue::set_blocking`].
    #[must_use]
    pub fn blocking(mut self, blocking: bool) -> Self {
        self.blocking = blocking;
        self
    }

    /// Opens or creates the queue `name`, as [`Self::existence`] says.
    ///
    /// A name is `/` and then 1 to 255 bytes, none of them `/` or NUL; as
    /// for semaphores, leading slashes may be left out and mean the same.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidArgument`] (read and write
    /// both off, a limit of 0, or limits beyond what the system allows),
    /// [`Error::AlreadyExists`], [`Error::NotFound`],
    /// [`Error::PermissionDenied`], or [`Error::Os`] (e.g. EMFILE when the
    /// user's `RLIMIT_MSGQUEUE` bytes are used up).
    pub fn open(&self, name: &str) -> Result<MessageQueue> {
        let c_name = c_name(name)?;
        self.check_arguments()?;
        // LinkOrCreate too goes through the shared loop, exclusive create
        // first, so that `created` is known for certain; on an existing
        // queue that costs one mq_open failing with EEXIST.
        let (queue, _created) = Object {
            kind: KIND,
            name,
            create: || self.open_raw(name, &c_name, true),
            open: || self.open_raw(name, &c_name, false),
            unlink: || unlink_c(name, &c_name),
        }
        .open(self.existence)?;
        Ok(queue)
    }

    /// Creates a queue under a fresh random name, `prefix` followed by 16
    /// random characters taken from the OS's CSPRNG.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn create_random(&self, prefix: &str) -> Result<MessageQueue> {
        self.check_arguments()?;
        existence::create_random(KIND, prefix, |name| {
            self.open_raw(name, &c_name(name)?, true)
        })
    }

    fn check_arguments(&self) -> Result<()> {
        if !self.read && !self.write {
            return Err(Error::InvalidArgument(
                "a message queue handle must be open for reading, writing or both; read and write cannot both be false".to_owned(),
            ));
        }
        existence::check_mode(self.mode)?;
        for (what, value) in [
            ("max_messages", self.max_messages),
            ("max_message_size", self.max_message_size),
        ] {
            if value.is_some_and(|v| v == 0 || i64::try_from(v).is_err()) {
                return Err(Error::InvalidArgument(format!(
                    "{what} must be at least 1, not {}",
                    value.unwrap_or(0)
                )));
            }
        }
        Ok(())
    }

    /// One mq_open: an exclusive create if `create`, else an open of the
    /// existing queue.
    fn open_raw(&self, name: &str, c_name: &CString, create: bool) -> Result<MessageQueue> {
        let access = match (self.read, self.write) {
            (true, true) => libc::O_RDWR,
            (true, false) => libc::O_RDONLY,
            _ => libc::O_WRONLY,
        };
        let limits = self.limits();
        let new = create.then_some(Create {
            mode: self.mode,
            limits,
        });
        let raw = RawQueue::open(c_name, access, !self.blocking, new).map_err(|e| {
            // The name is valid by now: EINVAL means limits the system refuses.
            if e.raw_os_error() == Some(libc::EINVAL) && create && limits.is_some() {
                self.limits_error(name)
            } else {
                Error::from_os("mq_open", KIND, name, e)
            }
        })?;
        let attributes = raw
            .attributes()
            .map_err(|e| Error::from_os("mq_getattr", KIND, name, e))?;
        Ok(MessageQueue {
            raw,
            name: name.to_owned(),
            read: self.read,
            write: self.write,
            max_messages: usize::try_from(attributes.max_messages).unwrap_or(0),
            max_message_size: usize::try_from(attributes.max_message_size).unwrap_or(0),
            created: create,
        })
    }

    /// The limits to pass to mq_open: none when neither was set (the kernel
    /// then applies its defaults), else both, the missing one from /proc
    /// (read only then: four /proc reads cost more than the queue's creation).
    fn limits(&self) -> Option<(i64, i64)> {
        let (max_messages, max_message_size) = match (self.max_messages, self.max_message_size) {
            (None, None) => return None,
            (Some(messages), Some(size)) => (messages, size),
            (messages, size) => {
                let defaults = system_limits();
                (
                    messages.unwrap_or(defaults.default_max_messages),
                    size.unwrap_or(defaults.default_max_message_size),
                )
            }
        };
        Some((
            i64::try_from(max_messages).unwrap_or(i64::MAX),
            i64::try_from(max_message_size).unwrap_or(i64::MAX),
        ))
    }

    fn limits_error(&self, name: &str) -> Error {
        let system = system_limits();
        let (max_messages, max_message_size) = self.limits().unwrap_or_default();
        Error::InvalidArgument(format!(
            "cannot create message queue '{name}' with max_messages={max_messages} and \
             max_message_size={max_message_size}: this system allows at most {} messages of \
             at most {} bytes ({LIMITS_DIR}/msg_max and msgsize_max; only a privileged \
             process may exceed them)",
            system.max_messages, system.max_message_size
        ))
    }
}

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
    name: String,
    read: bool,
    write: bool,
    max_messages: usize,
    max_message_size: usize,
    created: bool,
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
    /// with the time that is left. `Ok(false)` means the time is up.
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
        self.send_until(message, priority, deadline, OnSignal::Return)
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
    /// `Ok(None)` means the time is up.
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
        self.receive_until(buf, deadline, OnSignal::Return)
    }

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
    /// or if another process made it.
    pub fn cancel_notification(&self) {
        self.raw.cancel_notification();
    }

    /// Removes the name; processes that have the queue open keep using it,
    /// and it is destroyed when the last of them closes it.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the name was already removed.
    pub fn unlink(&self) -> Result<()> {
        unlink(&self.name)
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
        match sent {
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

    fn notify_error(&self, e: io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::EBUSY) => self.busy(BusyReason::NotificationTaken),
            _ => self.os("mq_notify", e),
        }
    }

    fn busy(&self, reason: BusyReason) -> Error {
        Error::Busy {
            kind: KIND,
            name: self.name.clone(),
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
        self.raw.as_fd()
    }
}

impl AsRawFd for MessageQueue {
    /// The queue descriptor (`mqd_t`), valid while the handle lives.
    fn as_raw_fd(&self) -> RawFd {
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
    unlink_c(name, &c_name(name)?)
}

fn unlink_c(name: &str, c_name: &CString) -> Result<()> {
    sys::mq::unlink(c_name).map_err(|e| Error::from_os("mq_unlink", KIND, name, e))
}

/// Checks `name` and returns the C name glibc's mq_open wants: exactly one
/// leading slash (it rejects a name without one, where sem_open and
/// shm_open accept it).
fn c_name(name: &str) -> Result<CString> {
    paths::to_c_name(KIND, name)?;
    paths::to_c_name(KIND, &paths::canonical(name))
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
