//! A crash-safe named counting semaphore: when a process that holds a slot
//! dies — `SIGKILL`, OOM killer, a segfault — its slot comes back to the
//! waiters within about a millisecond.
//!
//! The semaphore is one file in `/dev/shm`, mapped by every process that
//! opens it. Each handle registers a *process record* in that file and holds
//! an open-file-description (OFD) lock on a byte that belongs to the record
//! for its whole life; the kernel drops that lock however the process ends,
//! so whoever can take it knows the record's owner is gone and may give its
//! slots back. Every transition is a single compare-and-swap on one word;
//! docs/robust-semaphore.md describes the layout, each transition and why a
//! crash at any step is safe.
//!
//! Slots are owned by the handle (one registration), and a handle belongs
//! to the process that opened it: open a name once per process and share
//! the handle between threads (it is `Sync`).
//!
//! ```
//! use namedipc::Existence;
//! use namedipc::robust::RobustSemaphore;
//!
//! # let name = format!("/namedipc-doc-robust-{}", std::process::id());
//! let gpu = RobustSemaphore::options()
//!     .existence(Existence::LinkOrCreate)
//!     .initial_value(2)
//!     .open(&name)?;
//! gpu.acquire()?;
//! assert_eq!(gpu.value()?, 1);
//! assert_eq!(gpu.holders()?[0].pid, std::process::id());
//! gpu.release()?;
//! # gpu.unlink()?;
//! # Ok::<(), namedipc::Error>(())
//! ```

mod attachment;
mod by_name;
mod crash;
mod file;
mod layout;
mod protocol;
mod registry;

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::{Error, ObjectKind, Result};
use crate::existence::{self, Existence, Object};
use crate::sys::monotonic_now;

use attachment::{attach, Attachment};
pub use by_name::{inspect, names, remove_if_unused, unlink, Snapshot};
use file::{checked_path, NewFile};
pub use layout::{MAX_RECORDS, MAX_SLOTS};
use protocol::RegisterError;

pub(crate) const KIND: ObjectKind = ObjectKind::RobustSemaphore;

/// How many times an open starts again because the name was removed (by a
/// last process detaching) between opening the file and registering in it.
const STALE_RETRIES: usize = 100;

/// One slot held at the time of a [`RobustSemaphore::holders`] call.
///
/// ```
/// use namedipc::robust::RobustSemaphore;
///
/// # let name = format!("/namedipc-doc-robust-holder-{}", std::process::id());
/// let sem = RobustSemaphore::options().open(&name)?;
/// sem.acquire()?;
/// let holder = &sem.holders()?[0];
/// assert!(holder.alive && holder.pid == std::process::id());
/// # sem.unlink()?;
/// # Ok::<(), namedipc::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// Process id of the holder, as the holder saw it (in its PID namespace).
    pub pid: u32,
    /// Real user id of the holder.
    pub uid: u32,
    /// When the slot was taken (wall clock).
    pub since: SystemTime,
    /// False if the holder has died and its slot is about to be reclaimed.
    pub alive: bool,
}

/// How to open or create a [`RobustSemaphore`].
///
/// ```
/// use namedipc::Existence;
/// use namedipc::robust::RobustSemaphore;
///
/// # let name = format!("/namedipc-doc-robust-options-{}", std::process::id());
/// let sem = RobustSemaphore::options()
///     .existence(Existence::RaiseIfExists)
///     .initial_value(3)
///     .records(16)
///     .mode(0o600)
///     .open(&name)?;
/// assert_eq!(sem.value()?, 3);
/// # Ok::<(), namedipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RobustSemaphoreOptions {
    existence: Existence,
    initial_value: u32,
    records: u32,
    mode: u32,
    persistent: bool,
}

impl Default for RobustSemaphoreOptions {
    fn default() -> Self {
        Self {
            existence: Existence::LinkOrCreate,
            initial_value: 1,
            records: 128,
            mode: 0o600,
            persistent: false,
        }
    }
}

impl RobustSemaphoreOptions {
    /// What to do if the name does, or does not, exist (default
    /// [`Existence::LinkOrCreate`]).
    ///
    /// ```
    /// use namedipc::Existence;
    /// let options = namedipc::robust::RobustSemaphore::options().existence(Existence::RaiseIfNotExists);
    /// # let _ = options;
    /// ```
    #[must_use]
    pub fn existence(mut self, existence: Existence) -> Self {
        self.existence = existence;
        self
    }

    /// The number of slots of a new semaphore, all free at first: its
    /// initial and maximum value (1 to 65536, default 1), which
    /// [`RobustSemaphore::slots`] reports. Ignored when an existing
    /// semaphore is opened: it keeps its own.
    ///
    /// ```
    /// let options = namedipc::robust::RobustSemaphore::options().initial_value(4);
    /// # let _ = options;
    /// ```
    #[must_use]
    pub fn initial_value(mut self, initial_value: u32) -> Self {
        self.initial_value = initial_value;
        self
    }

    /// How many processes a new semaphore admits at once (1 to 65536,
    /// default 128). Ignored when an existing semaphore is opened.
    ///
    /// ```
    /// let options = namedipc::robust::RobustSemaphore::options().records(1024);
    /// # let _ = options;
    /// ```
    #[must_use]
    pub fn records(mut self, records: u32) -> Self {
        self.records = records;
        self
    }

    /// Permission bits of a new semaphore's file (default 0o600; the umask applies).
    ///
    /// ```
    /// let options = namedipc::robust::RobustSemaphore::options().mode(0o660);
    /// # let _ = options;
    /// ```
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Whether a new semaphore stays when the last process detaches from it
    /// (default `false`: it is removed then, see
    /// [`RobustSemaphore::close`]). Ignored when an existing one is opened.
    ///
    /// ```
    /// let options = namedipc::robust::RobustSemaphore::options().persistent(true);
    /// # let _ = options;
    /// ```
    #[must_use]
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// Opens or creates the semaphore `name` and attaches this process to it.
    ///
    /// Fails with [`Error::Corrupt`] if the file at the name is not a valid
    /// robust semaphore of this version (its size and header are checked
    /// before any offset in it is used).
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-open-{}", std::process::id());
    /// let sem = RobustSemaphore::options().initial_value(2).open(&name)?;
    /// assert!(sem.created());
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn open(&self, name: &str) -> Result<RobustSemaphore> {
        let path = checked_path(name)?;
        if self.initial_value == 0 || self.initial_value > MAX_SLOTS {
            return Err(Error::InvalidArgument(format!(
                "the initial value (the number of slots) must be between 1 and {MAX_SLOTS}, not {}",
                self.initial_value
            )));
        }
        if self.records == 0 || self.records > MAX_RECORDS {
            return Err(Error::InvalidArgument(format!(
                "records must be between 1 and {MAX_RECORDS}, not {}",
                self.records
            )));
        }
        existence::check_mode(self.mode)?;
        let new = NewFile {
            slots: self.initial_value,
            records: self.records,
            mode: self.mode,
            persistent: self.persistent,
        };
        for _ in 0..STALE_RETRIES {
            let (opened, created) = Object {
                kind: KIND,
                name,
                create: || file::create(name, &path, &new),
                open: || file::open(name, &path, true),
                unlink: || file::remove(name, &path),
            }
            .open(self.existence)?;
            match attach(opened) {
                Ok(attachment) => {
                    return Ok(RobustSemaphore {
                        attachment,
                        open: AtomicBool::new(true),
                        created,
                    })
                }
                // Removed by its last user between our open and our
                // registration: the name is free again, start over.
                Err(RegisterError::Stale) => {}
                Err(RegisterError::Failed(e)) => return Err(e),
            }
        }
        Err(Error::Contended {
            kind: KIND,
            name: name.to_owned(),
            what: format!("removed {STALE_RETRIES} times while this process opened it"),
        })
    }
}

/// A crash-safe semaphore handle; see the [module docs](self).
///
/// ```
/// use namedipc::robust::RobustSemaphore;
/// use std::time::Duration;
///
/// # let name = format!("/namedipc-doc-robust-type-{}", std::process::id());
/// let sem = RobustSemaphore::options().initial_value(1).open(&name)?;
/// assert!(sem.try_acquire()?);
/// assert!(!sem.acquire_timeout(Duration::from_millis(5))?);
/// sem.release()?;
/// # Ok::<(), namedipc::Error>(())
/// ```
#[derive(Debug)]
pub struct RobustSemaphore {
    /// Shared by every handle of this process on the same file.
    attachment: Arc<Attachment>,
    open: AtomicBool,
    created: bool,
}

impl RobustSemaphore {
    /// Options for opening or creating a semaphore.
    ///
    /// ```
    /// let options = namedipc::robust::RobustSemaphore::options();
    /// # let _ = options;
    /// ```
    #[must_use]
    pub fn options() -> RobustSemaphoreOptions {
        RobustSemaphoreOptions::default()
    }

    /// Opens the existing semaphore `name`
    /// ([`Error::NotFound`] if there is none).
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-open2-{}", std::process::id());
    /// let first = RobustSemaphore::options().open(&name)?;
    /// let second = RobustSemaphore::open(&name)?;
    /// assert!(!second.created());
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self> {
        Self::options()
            .existence(Existence::RaiseIfNotExists)
            .open(name)
    }

    /// This handle's attachment, if the handle is open.
    #[inline]
    fn attachment(&self) -> Result<&Attachment> {
        if self.open.load(Ordering::Relaxed) {
            Ok(&self.attachment)
        } else {
            Err(self.closed_error())
        }
    }

    #[cold]
    fn closed_error(&self) -> Error {
        Error::Closed {
            kind: KIND,
            name: self.attachment.name().to_owned(),
        }
    }

    /// Takes a slot, waiting as long as it takes.
    ///
    /// Fails with [`Error::NotFound`] or [`Error::Corrupt`] if the name was
    /// removed or replaced since this handle opened it, and with
    /// [`Error::Closed`] if another thread closes the handle meanwhile.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-acquire-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// sem.acquire()?;
    /// sem.release()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<()> {
        self.wait(None).map(drop)
    }

    /// Takes a slot if one is free now (after giving back the slots of dead
    /// holders); `Ok(false)` if none is.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-try-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// assert!(sem.try_acquire()?);
    /// assert!(!sem.try_acquire()?);
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<bool> {
        self.attachment()?.try_acquire()
    }

    /// Takes a slot, waiting at most `timeout`; `Ok(false)` if none came
    /// free in time. Never returns `false` before `timeout` has passed.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    /// use std::time::Duration;
    ///
    /// # let name = format!("/namedipc-doc-robust-timeout-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// assert!(sem.acquire_timeout(Duration::from_millis(10))?);
    /// assert!(!sem.acquire_timeout(Duration::from_millis(10))?);
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait(Some(timeout))
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        if self.try_acquire()? {
            return Ok(true);
        }
        if timeout == Some(Duration::ZERO) {
            return Ok(false);
        }
        let deadline = timeout.and_then(|t| monotonic_now().checked_add(t));
        let attachment = self.attachment()?;
        let taken = attachment.wait(deadline, || !self.is_closed())?;
        if taken && self.is_closed() {
            // Another thread closed this handle while this one waited:
            // nobody could release the slot through it, so give it back.
            let _ = attachment.release(1);
            return Err(self.closed_error());
        }
        Ok(taken)
    }

    /// Gives back one slot that this process holds; fails with
    /// [`Error::InvalidArgument`] if it holds none (ownership is per
    /// process: any handle or thread of the process may release a slot the
    /// process took, but not a slot another process holds).
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-release-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// assert!(sem.release().is_err());
    /// sem.acquire()?;
    /// sem.release()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.attachment()?.release(1)
    }

    /// Gives back `n` slots that this process holds, all or none: if it
    /// holds fewer than `n`, fails with [`Error::InvalidArgument`] (as
    /// [`Self::release`] does when it holds none) and gives back nothing,
    /// also while other threads of the process release slots at the same
    /// time. `n` must be at least 1.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-release-many-{}", std::process::id());
    /// let sem = RobustSemaphore::options().initial_value(3).open(&name)?;
    /// sem.acquire()?;
    /// sem.acquire()?;
    /// sem.release_many(2)?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn release_many(&self, n: u32) -> Result<()> {
        let attachment = self.attachment()?;
        if n == 0 {
            return Err(Error::InvalidArgument(format!(
                "release_many(0) on robust semaphore '{}': the number of slots to give back must be at least 1",
                attachment.name()
            )));
        }
        attachment.release(n)
    }

    /// The number of free slots now.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-value-{}", std::process::id());
    /// let sem = RobustSemaphore::options().initial_value(2).open(&name)?;
    /// sem.acquire()?;
    /// assert_eq!(sem.value()?, 1);
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn value(&self) -> Result<u32> {
        Ok(self.attachment()?.value())
    }

    /// The number of slots: the most processes inside at once.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-slots-{}", std::process::id());
    /// let sem = RobustSemaphore::options().initial_value(3).open(&name)?;
    /// assert_eq!(sem.slots(), 3);
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    #[must_use]
    pub fn slots(&self) -> u32 {
        self.attachment.slots()
    }

    /// Who holds slots now, one entry per held slot. A holder shown dead
    /// has died and its slot is about to be reclaimed.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-holders-{}", std::process::id());
    /// let sem = RobustSemaphore::options().initial_value(2).open(&name)?;
    /// assert!(sem.holders()?.is_empty());
    /// sem.acquire()?;
    /// assert_eq!(sem.holders()?.len(), 1);
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn holders(&self) -> Result<Vec<Holder>> {
        self.attachment()?.holders()
    }

    /// The name as given when opening.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-name-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// assert_eq!(sem.name(), name);
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        self.attachment.name()
    }

    /// Whether this handle created the semaphore.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-created-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// assert!(sem.created());
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    #[must_use]
    pub fn created(&self) -> bool {
        self.created
    }

    /// Removes the name if it still refers to this handle's file, even while
    /// other processes use it (their next acquire fails with
    /// [`Error::NotFound`]); a new semaphore may then be created under the name.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-unlink-{}", std::process::id());
    /// let sem = RobustSemaphore::options().persistent(true).open(&name)?;
    /// sem.unlink()?;
    /// assert!(sem.acquire().is_err());
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn unlink(&self) -> Result<()> {
        self.attachment.unlink()
    }

    /// Closes this handle. When it was this process's last open handle on
    /// the semaphore, the process detaches: the slots it still holds are
    /// given back, and unless the semaphore was created persistent, its
    /// name is removed if no other process is attached — race-free: a
    /// process that opens the name at the same moment either attaches
    /// before (and the name stays) or finds it gone and creates a new one.
    /// Later calls on this handle fail with [`Error::Closed`]. Dropping the
    /// handle closes it.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-close-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// sem.close();
    /// assert!(sem.value().is_err());
    /// assert!(RobustSemaphore::open(&name).is_err()); // removed: nobody was attached
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn close(&self) {
        if self.open.swap(false, Ordering::AcqRel) {
            self.attachment.close_handle();
        }
    }

    /// Whether [`Self::close`] was called.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-closed-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// assert!(!sem.is_closed());
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    #[must_use]
    pub fn is_closed(&self) -> bool {
        !self.open.load(Ordering::Acquire)
    }

    /// A new descriptor, without close-on-exec, of the open file description
    /// that carries this process's liveness lock. A child process that keeps
    /// it open (also across `exec`) keeps this process's registration alive:
    /// if this process dies first, its slots stay held until the child ends
    /// too. Used by `namedipc run` so that the command keeps its slot even if
    /// `namedipc` itself is killed. Close it in the parent after spawning.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-inherit-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// let fd = sem.inheritable_lock()?;
    /// # drop(fd);
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn inheritable_lock(&self) -> Result<OwnedFd> {
        self.attachment()?.inheritable_lock()
    }
}

impl Clone for RobustSemaphore {
    /// Another handle of this process on the same semaphore (sharing its
    /// slots); it must be closed (or dropped) too before the process detaches.
    fn clone(&self) -> Self {
        self.attachment.add_handle();
        Self {
            attachment: Arc::clone(&self.attachment),
            open: AtomicBool::new(!self.is_closed()),
            created: false,
        }
    }
}

impl Drop for RobustSemaphore {
    /// Closes the handle ([`RobustSemaphore::close`]).
    fn drop(&mut self) {
        self.close();
    }
}
