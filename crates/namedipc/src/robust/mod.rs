//! A crash-safe named counting semaphore: when a process that holds a slot
//! dies — `SIGKILL`, OOM killer, a segfault — its slot comes back to the
//! waiters within a fraction of a millisecond of its death.
//!
//! The semaphore is one file in `/dev/shm`, mapped by every process that
//! opens it. Each process registers a *process record* in that file and
//! holds an open-file-description (OFD) lock on a byte that belongs to the
//! record for as long as it has the semaphore open; the kernel drops that
//! lock however the process ends, so whoever can take it knows the record's
//! owner is gone and may give its slots back. Every transition is a single
//! compare-and-swap on one word; docs/robust-semaphore.md in the project's
//! documentation (<https://github.com/namedipc/namedipc/tree/main/docs>)
//! describes the layout, each transition and why a crash at any step is
//! safe.
//!
//! Slots belong to the process: every handle it opens on a name shares one
//! registration, and any of its threads may give back a slot any other took.
//!
//! ```
//! use namedipc::robust::RobustSemaphore;
//!
//! # let name = format!("/namedipc-doc-robust-{}", std::process::id());
//! // Every process runs the same line; the first one creates the semaphore.
//! let gpu = RobustSemaphore::options().initial_value(2).open(&name)?;
//! gpu.acquire()?;
//! // ... at most two processes are here at once, even if one is killed ...
//! gpu.release()?;
//! # Ok::<(), namedipc::Error>(())
//! ```

// The rooms: `options` (how a semaphore is opened or created), `layout`
// (where each word of the file is), `file` (creating, opening and checking
// the file, removing it), `protocol` (the transitions on the mapped file),
// `attachment` (a process's registration in one file), `registry` (the
// process's attachments, and fork), `by_name` (what needs only a name),
// `crash` (the points the crash tests kill a process at), `watch` (the
// thread that learns of holders' deaths while this process waits).
mod attachment;
mod by_name;
mod crash;
mod file;
mod layout;
mod options;
mod protocol;
mod registry;
mod snapshot;
mod watch;

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::{Error, ObjectKind, Result};
use crate::existence::Existence;
use crate::ownership::Owner;
use crate::sys::monotonic_now;

use attachment::{Attachment, WaitState};
pub use by_name::{inspect, names, remove_if_unused, unlink, Snapshot};
pub(crate) use file::marked_removed_reason;
pub use layout::{MAX_RECORDS, MAX_SLOTS};
pub use options::RobustSemaphoreOptions;

pub(crate) const KIND: ObjectKind = ObjectKind::RobustSemaphore;

/// One slot held at the time of a [`RobustSemaphore::holders`] call.
///
/// ```
/// use namedipc::robust::RobustSemaphore;
///
/// # let name = format!("/namedipc-doc-robust-holder-{}", std::process::id());
/// let sem = RobustSemaphore::options().open(&name)?;
/// sem.acquire()?;
/// for holder in sem.holders()? {
///     println!("pid {} since {:?}, alive: {}", holder.pid, holder.since, holder.alive);
/// }
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

/// A crash-safe semaphore handle; see the [module docs](self). `Send`,
/// `Sync` and `Clone` (another handle of this process, sharing its slots).
///
/// ```
/// use std::time::Duration;
/// use namedipc::robust::RobustSemaphore;
///
/// # let name = format!("/namedipc-doc-robust-type-{}", std::process::id());
/// let sem = RobustSemaphore::options().open(&name)?;
/// if sem.acquire_timeout(Duration::from_secs(5))? {
///     // ... holding the slot ...
///     sem.release()?;
/// }
/// # Ok::<(), namedipc::Error>(())
/// ```
#[derive(Debug)]
pub struct RobustSemaphore {
    /// Shared by every handle of this process on the same file.
    attachment: Arc<Attachment>,
    open: AtomicBool,
    created: bool,
    /// The file's owner and mode, from the fstat at this handle's open.
    owner: Owner,
}

impl RobustSemaphore {
    fn new(attachment: Arc<Attachment>, created: bool, owner: Owner) -> Self {
        Self {
            attachment,
            open: AtomicBool::new(true),
            created,
            owner,
        }
    }

    /// Options for opening or creating a semaphore.
    ///
    /// ```
    /// let options = namedipc::robust::RobustSemaphore::options();
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
    /// # let _creator = RobustSemaphore::options().open(&name)?;
    /// let sem = RobustSemaphore::open(&name)?;
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
    /// let got_one: bool = sem.try_acquire()?;
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
    /// use std::time::Duration;
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-timeout-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// let got_one: bool = sem.acquire_timeout(Duration::from_millis(10))?;
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
        self.waiter()?.wait_until(deadline, false)
    }

    /// A wait for a slot that may be spread over several calls, each of
    /// which returns [`Error::Interrupted`] when a signal handler has run
    /// (so that the caller can act on it, as a Python binding must), and
    /// which counts as one wait throughout: it counts among the semaphore's
    /// waiters, and keeps this process's watcher of holders' deaths, from
    /// its first call until it is dropped. Make it after a
    /// [`Self::try_acquire`] that found no free slot.
    ///
    /// ```
    /// use std::time::Duration;
    /// use namedipc::{Error, robust::RobustSemaphore};
    ///
    /// # let name = format!("/namedipc-doc-robust-waiter-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// let mut waiter = sem.waiter()?;
    /// let taken = loop {
    ///     match waiter.acquire_interruptible(Some(Duration::from_millis(200))) {
    ///         Err(Error::Interrupted { .. }) => continue, // act on the signal, then wait again
    ///         Ok(false) => continue,                      // or give up: the time is up
    ///         other => break other?,
    ///     }
    /// };
    /// # drop(waiter);
    /// # sem.release()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Closed`] if the handle is closed, [`Error::NotFound`] or
    /// [`Error::Corrupt`] if the name no longer refers to its file.
    pub fn waiter(&self) -> Result<Waiter<'_>> {
        let attachment = self.attachment()?;
        Ok(Waiter {
            sem: self,
            state: attachment.begin_wait()?,
        })
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
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// println!("{} of {} slots free", sem.value()?, sem.slots());
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn value(&self) -> Result<u32> {
        Ok(self.attachment()?.value())
    }

    /// The number of slots: the most holders at once (the initial value
    /// the semaphore was created with).
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-slots-{}", std::process::id());
    /// let sem = RobustSemaphore::options().initial_value(3).open(&name)?;
    /// let capacity: u32 = sem.slots();
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
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// println!("{:?}", sem.holders()?);
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn holders(&self) -> Result<Vec<Holder>> {
        self.attachment()?.holders()
    }

    /// The name, with one leading slash.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-name-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// println!("{}", sem.name());
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        self.attachment.name()
    }

    /// Whether this handle created the semaphore (rather than opening an
    /// existing one).
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-created-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// println!("created: {}", sem.created());
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    #[must_use]
    pub fn created(&self) -> bool {
        self.created
    }

    /// Who owns the semaphore's file and its mode (`st_mode & 0o7777`), as
    /// fstat reported them when this handle opened or created it.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-owner-{}", std::process::id());
    /// let sem = RobustSemaphore::options().mode(0o600).open(&name)?;
    /// let owner = sem.owner();
    /// assert_eq!((owner.uid, owner.mode), (namedipc::ownership::current_uid(), 0o600));
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    #[must_use]
    pub fn owner(&self) -> Owner {
        self.owner
    }

    /// Removes the name if it still refers to this handle's file, even while
    /// other processes use it (their next acquire fails with
    /// [`Error::NotFound`]); a new semaphore may then be created under the
    /// name. [`unlink`] does the same without a handle.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-unlink-{}", std::process::id());
    /// let sem = RobustSemaphore::options().persistent(true).open(&name)?;
    /// sem.unlink()?;
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
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn close(&self) {
        if self.open.swap(false, Ordering::SeqCst) {
            self.attachment.close_handle();
            // Threads waiting on this handle see it closed when they wake.
            self.attachment.wake_waiters();
        }
    }

    /// Whether [`Self::close`] was called.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-closed-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// println!("closed: {}", sem.is_closed());
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    #[must_use]
    pub fn is_closed(&self) -> bool {
        !self.open.load(Ordering::SeqCst)
    }

    /// A new descriptor, without close-on-exec, that keeps this process's
    /// registration alive: a new read-only open file description of the
    /// semaphore's file (the same inode, reopened through `/proc/self/fd`)
    /// holding a read (shared) lock on this process's liveness byte. A
    /// child process that keeps it open (also across `exec`) keeps this
    /// process's slots held if this process dies first, until the child
    /// ends too. The child cannot release them or corrupt the file through
    /// it: it may not write or truncate a read-only description, and
    /// unlocking or closing it drops only its own lock, while this
    /// process's lock (now a read lock as well) keeps the slots. Used by
    /// `namedipc run` so that the command keeps its slot even if
    /// `namedipc` itself is killed. Close it in the parent after spawning.
    ///
    /// ```
    /// use std::process::Command;
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-inherit-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// sem.acquire()?;
    /// let lock = sem.inheritable_lock()?;
    /// let mut child = Command::new("true").spawn().expect("spawn"); // inherits `lock`
    /// drop(lock);
    /// # child.wait().expect("wait");
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
            owner: self.owner,
        }
    }
}

/// A wait for a slot of a [`RobustSemaphore`], spread over calls; see
/// [`RobustSemaphore::waiter`]. It ends when dropped.
#[derive(Debug)]
pub struct Waiter<'a> {
    sem: &'a RobustSemaphore,
    state: WaitState,
}

impl Waiter<'_> {
    /// Waits for a slot for at most `timeout` (`None`: no limit); returns
    /// [`Error::Interrupted`] as soon as a signal handler has run, and
    /// `Ok(false)` when the time is up. A slot taken while another thread
    /// closed the handle is given back ([`Error::Closed`]).
    ///
    /// # Errors
    /// [`Error::Interrupted`], [`Error::Closed`], and as
    /// [`RobustSemaphore::acquire`].
    pub fn acquire_interruptible(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.and_then(|t| monotonic_now().checked_add(t));
        self.wait_until(deadline, true)
    }

    fn wait_until(&mut self, deadline: Option<Duration>, interruptible: bool) -> Result<bool> {
        let sem = self.sem;
        // A closed handle fails here (its attachment is only reached so).
        sem.attachment()?;
        let taken = sem
            .attachment
            .wait(&mut self.state, deadline, interruptible, || {
                !sem.is_closed()
            })?;
        if taken && sem.is_closed() {
            // Another thread closed this handle while this one waited:
            // nobody could release the slot through it, so give it back.
            let _ = sem.attachment.release(1);
            return Err(sem.closed_error());
        }
        Ok(taken)
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.sem.attachment.end_wait(&mut self.state);
    }
}

impl Drop for RobustSemaphore {
    /// Closes the handle ([`RobustSemaphore::close`]).
    fn drop(&mut self) {
        self.close();
    }
}
