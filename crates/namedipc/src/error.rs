//! The one error type of the crate. Each variant names the object it is
//! about, and OS failures keep their errno, so that a binding can map them
//! to its own exceptions without parsing messages.

use std::fmt;
use std::io;

/// What kind of object an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A POSIX named semaphore.
    Semaphore,
    /// A POSIX shared memory segment.
    SharedMemory,
    /// A POSIX message queue.
    MessageQueue,
    /// A crash-safe semaphore ([`crate::robust::RobustSemaphore`]).
    RobustSemaphore,
    /// A semaphore on a Redis server (`namedipc::redis::RedisSemaphore`,
    /// feature `redis`).
    RedisSemaphore,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Semaphore => "semaphore",
            Self::SharedMemory => "shared memory segment",
            Self::MessageQueue => "message queue",
            Self::RobustSemaphore => "robust semaphore",
            Self::RedisSemaphore => "redis semaphore",
        })
    }
}

/// Who owns a named object and its permission bits, as fstat(2) of the
/// descriptor the handle opened reported at open (or right after creating
/// it). Also `namedipc::ownership::Owner`; handles report it with `owner()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The owner's user id.
    pub uid: u32,
    /// The object's group id.
    pub gid: u32,
    /// The permission bits: `st_mode & 0o7777`.
    pub mode: u32,
}

/// Why [`Error::Untrusted`] refuses an object owned by another user who is not root.
pub(crate) const FOREIGN_OWNER: &str = "another user who is not root owns it";
/// Why [`Error::Untrusted`] refuses an object that "other" may write.
pub(crate) const OTHERS_MAY_WRITE: &str = "users other than its owner and group may write it";

/// The message of [`Error::Untrusted`]: the object, its owner, group and
/// mode, why it is refused, and what allows it.
fn untrusted_message(kind: ObjectKind, name: &str, owner: Owner, reason: &str) -> String {
    let user = crate::sys::users::user_name(owner.uid).ok().flatten();
    let group = crate::sys::users::group_name(owner.gid).ok().flatten();
    let named = |number: u32, name: &Option<String>| match name {
        Some(n) => format!("{number} ({n})"),
        None => number.to_string(),
    };
    let hint = if reason == OTHERS_MAY_WRITE {
        // Trusting an owner or a group does not help here: only a caller
        // that asks for a world-writable mode itself accepts one.
        "if it is shared with every user on purpose, ask for a mode that lets others write it \
         (mode=0o666, --mode 0666); otherwise remove it and create it again"
            .to_owned()
    } else if reason == FOREIGN_OWNER {
        let (user_py, user_cli) = match &user {
            Some(n) => (format!("'{n}'"), n.clone()),
            None => (owner.uid.to_string(), owner.uid.to_string()),
        };
        let (group_py, group_cli) = match &group {
            Some(n) => (format!("'{n}'"), n.clone()),
            None => (owner.gid.to_string(), owner.gid.to_string()),
        };
        format!(
            "if it is shared on purpose, trust its owner (trust_owners=[{user_py}], \
             --trust-owner {user_cli}) or its group (group={group_py}, --group {group_cli})"
        )
    } else {
        "it cannot be used safely: remove it and create it again".to_owned()
    };
    format!(
        "refusing the {kind} '{name}': it belongs to uid {}, group {}, mode {:04o}, and {reason}; \
         {hint}; see docs/security.md",
        named(owner.uid, &user),
        named(owner.gid, &group),
        owner.mode & 0o7777,
    )
}

/// What an [`Error::Busy`] ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusyReason {
    /// A semaphore had no free slot.
    NoSlot,
    /// A message queue had no message to receive.
    Empty,
    /// A message queue had no room for another message.
    Full,
    /// Every process record of a robust semaphore is in use: no room for
    /// another process now, until one of them closes.
    NoRecord,
    /// Another process has asked to be notified of a queue's messages, and
    /// the OS keeps one such request per queue.
    NotificationTaken,
}

impl BusyReason {
    /// What the message says of the object, after its kind and name.
    fn describe(self) -> &'static str {
        match self {
            Self::NoSlot => "is busy: no slot was free in the time allowed",
            Self::Empty => "is empty: no message arrived in the time allowed",
            Self::Full => "is full: no room was made in the time allowed",
            Self::NoRecord => {
                "is busy: every process record is in use; close it in other processes, \
                 or create it with more records"
            }
            Self::NotificationTaken => {
                "is busy: another process has asked to be notified of its messages, \
                 and the OS keeps one request per queue"
            }
        }
    }
}

/// Everything that can go wrong in namedipc.
///
/// ```
/// use namedipc::{Error, Semaphore};
///
/// match Semaphore::open("/namedipc-doc-error-missing") {
///     Err(Error::NotFound { name, .. }) => assert_eq!(name, "/namedipc-doc-error-missing"),
///     other => panic!("expected NotFound, got {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object was to be created, but the name is taken.
    #[error("{kind} '{name}' already exists; open it instead, remove it, or choose another name")]
    AlreadyExists {
        /// The kind of object.
        kind: ObjectKind,
        /// The name as given.
        name: String,
    },
    /// The object was to be opened, but nothing has that name.
    #[error("{kind} '{name}' does not exist; create it first, or check the name")]
    NotFound {
        /// The kind of object.
        kind: ObjectKind,
        /// The name as given.
        name: String,
    },
    /// The OS refused access (EACCES or EPERM).
    #[error("permission denied for {kind} '{name}': it belongs to another user or its mode forbids this access")]
    PermissionDenied {
        /// The kind of object.
        kind: ObjectKind,
        /// The name as given.
        name: String,
        /// The errno the OS reported.
        errno: i32,
    },
    /// An existing object could have been planted or tampered with: its
    /// owner or mode fails the handle's [`crate::ownership::Trust`]. The
    /// message names the owner, the group, the mode, `reason`, and how to
    /// allow such an object.
    #[error("{}", untrusted_message(*kind, name, *owner, reason))]
    Untrusted {
        /// The kind of object.
        kind: ObjectKind,
        /// The name as given.
        name: String,
        /// Its owner and mode, as fstat reported them.
        owner: Owner,
        /// Why it is refused, e.g. "another user who is not root owns it".
        reason: String,
    },
    /// A wait ended at its deadline, or an attempt that does not wait found
    /// no slot, no message or no room; `reason` says which.
    #[error("{kind} '{name}' {}", reason.describe())]
    Busy {
        /// The kind of object.
        kind: ObjectKind,
        /// The name as given.
        name: String,
        /// What the wait or the attempt ran into.
        reason: BusyReason,
    },
    /// A signal handler ran during a wait (EINTR).
    #[error("the wait on {kind} '{name}' was interrupted by a signal")]
    Interrupted {
        /// The kind of object.
        kind: ObjectKind,
        /// The name as given.
        name: String,
    },
    /// The name breaks the rules for names of this kind of object.
    #[error("invalid {kind} name {name:?}: {rule}")]
    InvalidName {
        /// The kind of object.
        kind: ObjectKind,
        /// The name as given.
        name: String,
        /// What a valid name looks like.
        rule: String,
    },
    /// An argument the caller passed breaks a rule, which the message
    /// states: a mode, size, limit, priority, signal or buffer out of range,
    /// or an operation the handle was not opened for (writing through a
    /// read-only handle). Never used for anything but the caller's arguments:
    /// what the OS or another process does is [`Error::Os`],
    /// [`Error::Contended`] or another variant.
    #[error("{0}")]
    InvalidArgument(String),
    /// The file behind the name is not a valid object of this kind.
    #[error("{kind} '{name}' is corrupt or not a {kind}: {reason}; remove it and create it again")]
    Corrupt {
        /// The kind of object.
        kind: ObjectKind,
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Releasing would raise a semaphore's value past its maximum (EOVERFLOW).
    #[error("{kind} '{name}' is at its maximum value ({max}); it cannot be released further")]
    Overflow {
        /// The kind of object.
        kind: ObjectKind,
        /// The name as given.
        name: String,
        /// The maximum value.
        max: u32,
    },
    /// The handle was closed.
    #[error("{kind} '{name}' has been closed; open it again to use it")]
    Closed {
        /// The kind of object.
        kind: ObjectKind,
        /// The name as given.
        name: String,
    },
    /// Other processes kept changing the object while this call tried to
    /// open, create or remove it, and the call gave up after a bounded number
    /// of attempts (a name removed and created again over and over). Trying
    /// again later can succeed.
    #[error("{kind} '{name}' kept changing under this call ({what}); try again")]
    Contended {
        /// The kind of object.
        kind: ObjectKind,
        /// The name as given.
        name: String,
        /// What kept happening.
        what: String,
    },
    /// The lease behind a grant of a redis semaphore was lost: it expired by
    /// the server's clock (or the semaphore was removed), or the client could
    /// not renew it before its local deadline. Nothing was freed for it.
    #[error(
        "lease of redis semaphore '{name}' was lost: it expired by the server's clock or could \
         not be renewed in time; the slot may already belong to another holder"
    )]
    LeaseLost {
        /// The name of the semaphore.
        name: String,
    },
    /// A server could not be reached or refused the client: connect timeout,
    /// a connection reset, a read that timed out, a failed authentication.
    #[error("redis server {url} is unavailable: {reason}")]
    Unavailable {
        /// The server's URL with any password replaced by `***`.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A release of a grant (a slot) that this handle does not hold.
    #[error("{kind} '{name}': this handle does not hold that slot (released already, or acquired through another handle)")]
    NotHeld {
        /// The kind of object.
        kind: ObjectKind,
        /// The name as given.
        name: String,
    },
    /// Any other failure of the OS.
    #[error("{operation} on {kind} '{name}' failed: {source}")]
    Os {
        /// The failing operation, e.g. `sem_open`.
        operation: &'static str,
        /// The kind of object.
        kind: ObjectKind,
        /// The name as given.
        name: String,
        /// The OS error, with its errno.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The errno behind the error, where the OS reported one.
    #[must_use]
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::AlreadyExists { .. } => Some(libc::EEXIST),
            Self::NotFound { .. } => Some(libc::ENOENT),
            Self::PermissionDenied { errno, .. } => Some(*errno),
            Self::Busy { .. } => Some(libc::EAGAIN),
            Self::Interrupted { .. } => Some(libc::EINTR),
            Self::Overflow { .. } => Some(libc::EOVERFLOW),
            Self::Os { source, .. } => source.raw_os_error(),
            Self::InvalidName { .. }
            | Self::InvalidArgument(_)
            | Self::Corrupt { .. }
            | Self::Contended { .. }
            | Self::LeaseLost { .. }
            | Self::Unavailable { .. }
            | Self::NotHeld { .. }
            | Self::Untrusted { .. }
            | Self::Closed { .. } => None,
        }
    }

    /// The name of the object the error is about, if it is about one.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::AlreadyExists { name, .. }
            | Self::NotFound { name, .. }
            | Self::PermissionDenied { name, .. }
            | Self::Untrusted { name, .. }
            | Self::Busy { name, .. }
            | Self::Interrupted { name, .. }
            | Self::InvalidName { name, .. }
            | Self::Corrupt { name, .. }
            | Self::Overflow { name, .. }
            | Self::Closed { name, .. }
            | Self::Contended { name, .. }
            | Self::LeaseLost { name }
            | Self::NotHeld { name, .. }
            | Self::Os { name, .. } => Some(name),
            Self::InvalidArgument(_) | Self::Unavailable { .. } => None,
        }
    }

    /// Classifies an OS error from `operation` on the object `name`.
    pub(crate) fn from_os(
        operation: &'static str,
        kind: ObjectKind,
        name: &str,
        source: io::Error,
    ) -> Self {
        let name = name.to_owned();
        match source.raw_os_error() {
            Some(libc::EEXIST) => Self::AlreadyExists { kind, name },
            Some(libc::ENOENT) => Self::NotFound { kind, name },
            Some(errno @ (libc::EACCES | libc::EPERM)) => {
                Self::PermissionDenied { kind, name, errno }
            }
            Some(libc::EINTR) => Self::Interrupted { kind, name },
            Some(libc::ELOOP) => Self::Corrupt {
                kind,
                name,
                reason: "the name is a symbolic link".to_owned(),
            },
            Some(libc::EISDIR) => Self::Corrupt {
                kind,
                name,
                reason: "the name is a directory".to_owned(),
            },
            _ => Self::Os {
                operation,
                kind,
                name,
                source,
            },
        }
    }
}

/// The result type of namedipc.
pub type Result<T, E = Error> = std::result::Result<T, E>;
