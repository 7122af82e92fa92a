//! Opening and creating a message queue: the options, their checks, and
//! the limits a new queue asks the OS for.

use std::borrow::Cow;
use std::ffi::CStr;
use std::sync::OnceLock;

use super::limits::{system_limits, LIMITS_DIR};
use super::waits::Waits;
use super::{unlink_c, MessageQueue, KIND};
use crate::error::{Error, Result};
use crate::existence::{self, Existence, Object};
use crate::ownership::{NewObject, Owner, Trust};
use crate::paths;
use crate::sys;
use crate::sys::mq::{Create, RawQueue};

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
#[allow(clippy::struct_excessive_bools)] // one setter each, as the API rule has it
pub struct MessageQueueOptions {
    existence: Existence,
    mode: u32,
    group: Option<u32>,
    apply_umask: bool,
    trust: Trust,
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
            group: None,
            apply_umask: false,
            trust: Trust::new(),
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

    /// Permission bits for a new queue (default `0o600`), exactly: the
    /// umask does not narrow them unless [`Self::apply_umask`] says so (a
    /// new queue appears at its name with the umask's bits and gets these
    /// at once). An existing queue keeps its own.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Lets the kernel's umask narrow [`Self::mode`], as `mq_open` does
    /// (posix_ipc's behaviour; default `false`).
    #[must_use]
    pub fn apply_umask(mut self, apply: bool) -> Self {
        self.apply_umask = apply;
        self
    }

    /// Gives a new queue the group `gid`, and trusts existing ones of that
    /// group ([`Trust::group`]). This process must be a member of the
    /// group, or root.
    #[must_use]
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// Whom an existing queue may belong to (default [`Trust::new`]: this
    /// user or root, and not writable by others). Checked on every queue
    /// the handle opens, not on one it creates.
    #[must_use]
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
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
    /// [`Error::PermissionDenied`], [`Error::Untrusted`] (an existing
    /// queue whose owner or mode [`Self::trust`] refuses), or [`Error::Os`]
    /// (e.g. EMFILE when the user's `RLIMIT_MSGQUEUE` bytes are used up).
    pub fn open(&self, name: &str) -> Result<MessageQueue> {
        if self.is_plain_open() {
            // posix_ipc's `MessageQueue(name)`, the commonest open: the one
            // mq_open (and mq_getattr), without the existence loop.
            return paths::with_c_name(KIND, name, |c_name| {
                self.check_arguments()?;
                self.open_raw(name, c_name, false, &self.trust)
            });
        }
        paths::with_c_name(KIND, name, |c_name| {
            self.check_arguments()?;
            // Borrowed unless a group widens it: most opens copy nothing.
            let trust = match self.group {
                Some(gid) => Cow::Owned(self.trust.clone().group(gid)),
                None => Cow::Borrowed(&self.trust),
            };
            // LinkOrCreate too goes through the shared loop, so that `created`
            // is known for certain: an existing queue costs one mq_open, a new
            // one a failed open and an exclusive create.
            let (queue, _created) = Object {
                kind: KIND,
                name,
                create: || self.open_raw(name, c_name, true, &trust),
                open: || self.open_raw(name, c_name, false, &trust),
                unlink: || unlink_c(name, c_name),
            }
            .open(self.existence)?;
            Ok(queue)
        })
    }

    /// Creates a queue under a fresh random name, `prefix` followed by 16
    /// random characters taken from the OS's CSPRNG.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn create_random(&self, prefix: &str) -> Result<MessageQueue> {
        self.check_arguments()?;
        existence::create_random(KIND, prefix, |name| {
            paths::with_c_name(KIND, name, |c_name| {
                self.open_raw(name, c_name, true, &self.trust)
            })
        })
    }

    /// Whether these options open an existing queue and do nothing else:
    /// no owner to check and no group (which would widen the trust).
    fn is_plain_open(&self) -> bool {
        self.existence == Existence::RaiseIfNotExists
            && self.trust.is_anyone()
            && self.group.is_none()
    }

    fn check_arguments(&self) -> Result<()> {
        if !self.read && !self.write {
            return Err(Error::InvalidArgument(
                "a message queue handle must be open for reading, writing or both; read and write cannot both be false".to_owned(),
            ));
        }
        existence::check_mode(self.mode)?;
        if self.group.is_some() {
            self.new_object().check_group()?;
        }
        // Checked one by one, with the message made out of line: every
        // open pays for this, and the loop over the two with its
        // formatting inline took some 65 instructions (callgrind).
        check_limit("max_messages", self.max_messages)?;
        check_limit("max_message_size", self.max_message_size)
    }

    fn new_object(&self) -> NewObject {
        NewObject {
            mode: self.mode,
            group: self.group,
            apply_umask: self.apply_umask,
        }
    }

    /// One mq_open: an exclusive create if `create`, else an open of the
    /// existing queue, whose owner `trust` must accept; then one fstat (the
    /// owner; and where a new queue needs them, a fchown or fchmod) unless
    /// nothing needs the owner yet, and an mq_getattr unless the queue is
    /// new and its limits were given.
    fn open_raw(
        &self,
        name: &str,
        c_name: &CStr,
        create: bool,
        trust: &Trust,
    ) -> Result<MessageQueue> {
        let access = match (self.read, self.write) {
            (true, true) => libc::O_RDWR,
            (true, false) => libc::O_RDONLY,
            _ => libc::O_WRONLY,
        };
        // Only a new queue is given limits: an existing one keeps its own.
        let limits = if create { self.limits() } else { None };
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
        let owner = self.owner_of(&raw, name, c_name, create, trust)?;
        // A queue this call created has exactly the limits it asked for
        // (mq_open refuses any it cannot give): only a queue it found, or
        // one made with the system's defaults, is asked for them.
        let (max_messages, max_message_size) = if let Some(limits) = limits {
            limits
        } else {
            let attributes = raw
                .attributes()
                .map_err(|e| Error::from_os("mq_getattr", KIND, name, e))?;
            (attributes.max_messages, attributes.max_message_size)
        };
        Ok(MessageQueue {
            raw,
            // As C peers must spell it: mq_open wants exactly one leading slash.
            name: paths::KeptName::canonical(name),
            read: self.read,
            write: self.write,
            max_messages: usize::try_from(max_messages).unwrap_or(0),
            max_message_size: usize::try_from(max_message_size).unwrap_or(0),
            created: create,
            owner: owner.map_or_else(OnceLock::new, OnceLock::from),
            waits: Waits::default(),
        })
    }

    /// The owner of the queue just opened: checked against `trust` if it
    /// existed, given its group and exact mode if it is new (and removed
    /// again if it cannot get them). `None` where nothing needs it yet: an
    /// existing queue any owner may have, a new one with the umask's mode
    /// and no group; [`MessageQueue::owner`] reads it when asked.
    fn owner_of(
        &self,
        raw: &RawQueue,
        name: &str,
        c_name: &CStr,
        created: bool,
        trust: &Trust,
    ) -> Result<Option<Owner>> {
        if created {
            let new = self.new_object();
            if !new.needs_settling() {
                return Ok(None);
            }
            return new
                .settle(raw.as_fd(), KIND, name)
                .map(|(owner, _)| Some(owner))
                .inspect_err(|_| {
                    let _ = sys::mq::unlink(c_name);
                });
        }
        if trust.is_anyone() {
            return Ok(None);
        }
        let stat = sys::fstat(raw.as_fd()).map_err(|e| Error::from_os("fstat", KIND, name, e))?;
        let owner = Owner::of_stat(&stat);
        trust.check(KIND, name, owner)?;
        Ok(Some(owner))
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

/// A queue limit as given: at least 1, and no more than an `i64` holds.
fn check_limit(what: &'static str, value: Option<usize>) -> Result<()> {
    match value {
        Some(v) if v == 0 || i64::try_from(v).is_err() => Err(limit_error(what, v)),
        _ => Ok(()),
    }
}

#[cold]
#[inline(never)]
fn limit_error(what: &str, value: usize) -> Error {
    Error::InvalidArgument(format!("{what} must be at least 1, not {value}"))
}
