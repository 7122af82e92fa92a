//! POSIX named semaphores: a counter in the kernel's shared memory that
//! unrelated processes find by name, compatible with C programs that call
//! `sem_open` on the same name.

use std::borrow::Cow;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::deadline::{self, Deadline, OnSignal};
use crate::error::{Error, ObjectKind, Result};
pub use crate::existence::Existence;
use crate::existence::{self, Object};
use crate::ownership::{NewObject, Owner, Trust};
use crate::paths;
use crate::sys;
use crate::sys::sem::{OpenFlags, RawSemaphore};

mod file;

// The check inventory runs on each semaphore's file before reading it.
pub(crate) use file::check_file;

const KIND: ObjectKind = ObjectKind::Semaphore;

/// The largest value a semaphore can hold (`SEM_VALUE_MAX`).
pub const VALUE_MAX: u32 = sys::sem::VALUE_MAX;

/// Options for opening or creating a [`Semaphore`].
///
/// ```
/// use namedipc::{Existence, Semaphore};
///
/// # let name = format!("/namedipc-doc-options-{}", std::process::id());
/// let sem = Semaphore::options()
///     .existence(Existence::RaiseIfExists)
///     .initial_value(2)
///     .mode(0o600)
///     .unlink_on_drop(true)
///     .open(&name)?;
/// assert_eq!(sem.value()?, 2);
/// # Ok::<(), namedipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SemaphoreOptions {
    existence: Existence,
    mode: u32,
    group: Option<u32>,
    apply_umask: bool,
    trust: Trust,
    initial_value: u32,
    unlink_on_drop: bool,
}

impl Default for SemaphoreOptions {
    fn default() -> Self {
        Self {
            existence: Existence::LinkOrCreate,
            mode: 0o600,
            group: None,
            apply_umask: false,
            trust: Trust::new(),
            initial_value: 1,
            unlink_on_drop: false,
        }
    }
}

impl SemaphoreOptions {
    /// What to do if the semaphore does or does not exist (default: [`Existence::LinkOrCreate`]).
    #[must_use]
    pub fn existence(mut self, existence: Existence) -> Self {
        self.existence = existence;
        self
    }

    /// Permission bits for a new semaphore (default `0o600`), exactly: the
    /// umask does not narrow them unless [`Self::apply_umask`] says so. They
    /// are set before the semaphore appears at its name. An existing
    /// semaphore keeps its own.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Lets the kernel's umask narrow [`Self::mode`], as `sem_open` does
    /// (posix_ipc's behaviour; default `false`).
    #[must_use]
    pub fn apply_umask(mut self, apply: bool) -> Self {
        self.apply_umask = apply;
        self
    }

    /// Gives a new semaphore the group `gid` (before it appears at its
    /// name), and trusts existing ones of that group ([`Trust::group`]).
    /// This process must be a member of the group, or root.
    #[must_use]
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// Whom an existing semaphore may belong to (default [`Trust::new`]:
    /// this user or root, and not writable by others). Checked on every
    /// semaphore the handle opens, not on one it creates.
    #[must_use]
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// The value of a new semaphore (default 1); at most [`VALUE_MAX`].
    #[must_use]
    pub fn initial_value(mut self, value: u32) -> Self {
        self.initial_value = value;
        self
    }

    /// Whether dropping a handle that *created* the semaphore also removes
    /// its name (default `false`). A handle that only opened it never does.
    ///
    /// The name is removed only if it still refers to the semaphore this
    /// handle created (same file identity), so a semaphore that another
    /// process has since put under the name is left alone — barring a
    /// replacement in the instant between that check and the removal.
    ///
    /// Hazard: once the name is removed, processes that still have the
    /// semaphore open keep using the old one, while a newcomer that creates
    /// the name gets a new, separate semaphore. Use this only when every
    /// user is gone by the time the creator drops its handle.
    #[must_use]
    pub fn unlink_on_drop(mut self, unlink: bool) -> Self {
        self.unlink_on_drop = unlink;
        self
    }

    /// Opens or creates the semaphore `name`, as [`Self::existence`] says.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidArgument`] (mode or value out
    /// of range), [`Error::AlreadyExists`], [`Error::NotFound`],
    /// [`Error::PermissionDenied`], [`Error::Untrusted`] (an existing
    /// semaphore whose owner or mode [`Self::trust`] refuses),
    /// [`Error::Corrupt`] (the file at the name is not a semaphore), or
    /// [`Error::Os`].
    pub fn open(&self, name: &str) -> Result<Semaphore> {
        // Both C strings are made on the stack: an open is common, and two
        // heap copies of the name were a measurable part of it.
        paths::with_c_name(KIND, name, |c_name| {
            self.check_arguments()?;
            // Where glibc keeps a file behind the name, the core opens and
            // maps it itself (file.rs says why); elsewhere sem_open does.
            paths::with_file_path_c(KIND, name, |path| {
                let trust = self.effective_trust();
                let ((raw, owner, identity), created) = Object {
                    kind: KIND,
                    name,
                    create: || self.create_raw(name, c_name, path),
                    open: || {
                        open_existing(name, c_name, path, &trust)
                            .map(|(raw, owner)| (raw, owner, None))
                    },
                    unlink: || unlink_c(name, c_name),
                }
                .open(self.existence)?;
                Ok(self.handle(raw, owner, identity, name, created))
            })
        })
    }

    /// The trust asked for, widened by the group asked for.
    /// The trust, borrowed unless a group widens it: most opens copy nothing.
    fn effective_trust(&self) -> Cow<'_, Trust> {
        match self.group {
            Some(gid) => Cow::Owned(self.trust.clone().group(gid)),
            None => Cow::Borrowed(&self.trust),
        }
    }

    fn new_object(&self) -> NewObject {
        NewObject {
            mode: self.mode,
            group: self.group,
            apply_umask: self.apply_umask,
        }
    }

    /// Creates a semaphore under a fresh random name, `prefix` followed by
    /// 16 random characters taken from the OS's CSPRNG.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn create_random(&self, prefix: &str) -> Result<Semaphore> {
        self.check_arguments()?;
        existence::create_random(KIND, prefix, |name| {
            paths::with_c_name(KIND, name, |c_name| {
                paths::with_file_path_c(KIND, name, |path| {
                    let (raw, owner, identity) = self.create_raw(name, c_name, path)?;
                    Ok(self.handle(raw, owner, identity, name, true))
                })
            })
        })
    }

    fn check_arguments(&self) -> Result<()> {
        if self.initial_value > VALUE_MAX {
            return Err(Error::InvalidArgument(format!(
                "initial_value must be between 0 and {VALUE_MAX}, not {}",
                self.initial_value
            )));
        }
        existence::check_mode(self.mode)?;
        self.new_object().check_group()
    }

    fn handle(
        &self,
        raw: RawSemaphore,
        owner: Owner,
        identity: Option<paths::Identity>,
        name: &str,
        created: bool,
    ) -> Semaphore {
        // The identity of the file this handle created, to recognise it at
        // drop: from the creating call where it made the file itself, else
        // looked up right after creation.
        let unlink_on_drop = (self.unlink_on_drop && created)
            .then(|| identity.or_else(|| file::identity(name)))
            .flatten()
            .map(|file| (file, std::process::id()));
        Semaphore {
            raw,
            owner,
            name: name.to_owned(),
            created,
            unlink_on_drop,
            name_released: AtomicBool::new(false),
        }
    }

    fn create_raw(
        &self,
        name: &str,
        c_name: &CStr,
        path: Option<&CStr>,
    ) -> Result<(RawSemaphore, Owner, Option<paths::Identity>)> {
        if let Some(path) = path {
            return file::create(name, path, self.new_object(), self.initial_value)
                .map(|(raw, owner, identity)| (raw, owner, Some(identity)));
        }
        // No file to set a group or mode on, or to ask for its owner:
        // sem_open applies the umask, and the owner is what was asked for.
        let flags = OpenFlags::CreateExclusive {
            mode: self.mode,
            value: self.initial_value,
        };
        RawSemaphore::open(c_name, flags)
            .map(|raw| (raw, self.new_object().assumed_owner(), None))
            .map_err(|e| Error::from_os("sem_open", KIND, name, e))
    }
}

/// Opens an existing semaphore, checking its owner against `trust` where a
/// file shows the owner.
fn open_existing(
    name: &str,
    c_name: &CStr,
    path: Option<&CStr>,
    trust: &Trust,
) -> Result<(RawSemaphore, Owner)> {
    if let Some(path) = path {
        return file::open(name, path, trust);
    }
    // Where semaphores have no file, the owner cannot be seen: assumed ours.
    let assumed = NewObject {
        mode: 0,
        group: None,
        apply_umask: true,
    }
    .assumed_owner();
    RawSemaphore::open(c_name, OpenFlags::Existing)
        .map(|raw| (raw, assumed))
        .map_err(|e| Error::from_os("sem_open", KIND, name, e))
}

/// A POSIX named semaphore.
///
/// Any number of threads may share one handle (`&Semaphore` is enough for
/// every operation); dropping the handle closes it.
///
/// ```
/// use std::time::Duration;
/// use namedipc::Semaphore;
///
/// # let name = format!("/namedipc-doc-sem-{}", std::process::id());
/// let sem = Semaphore::create(&name, 2)?;
/// sem.acquire()?;                  // takes a slot, waiting for one if need be
/// assert!(sem.try_acquire()?);     // takes the other one
/// assert!(!sem.acquire_timeout(Duration::from_millis(1))?); // none left
/// sem.release_many(2)?;            // gives both back
/// assert_eq!(sem.value()?, 2);
/// sem.unlink()?;
/// # Ok::<(), namedipc::Error>(())
/// ```
#[derive(Debug)]
pub struct Semaphore {
    raw: RawSemaphore,
    /// The owner and mode, from the fstat at open or create.
    owner: Owner,
    name: String,
    created: bool,
    /// The identity of the file this handle created, and the creating
    /// process, when dropping it should remove the name.
    unlink_on_drop: Option<(paths::Identity, u32)>,
    /// Set once [`Semaphore::unlink_if_owner`] has run.
    name_released: AtomicBool,
}

impl Semaphore {
    /// Options for opening or creating a semaphore.
    #[must_use]
    pub fn options() -> SemaphoreOptions {
        SemaphoreOptions::default()
    }

    /// Opens the existing semaphore `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`] if it does not exist; see [`SemaphoreOptions::open`].
    pub fn open(name: &str) -> Result<Self> {
        Self::options()
            .existence(Existence::RaiseIfNotExists)
            .open(name)
    }

    /// Creates the semaphore `name` with `value` free slots and mode `0o600`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if the name is taken; see [`SemaphoreOptions::open`].
    pub fn create(name: &str, value: u32) -> Result<Self> {
        Self::options()
            .existence(Existence::RaiseIfExists)
            .initial_value(value)
            .open(name)
    }

    /// The name, as given when the semaphore was opened.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this handle created the semaphore (rather than opening an existing one).
    #[must_use]
    pub fn created(&self) -> bool {
        self.created
    }

    /// Who owns the semaphore and its mode, as they were when this handle
    /// opened or created it. (Where the platform keeps no file behind a
    /// semaphore, this process's ids and the mode asked for.)
    #[must_use]
    pub fn owner(&self) -> Owner {
        self.owner
    }

    /// Takes one slot if one is free, without waiting: `Ok(true)` if taken.
    ///
    /// # Errors
    /// [`Error::Os`] only if the OS fails unexpectedly.
    pub fn try_acquire(&self) -> Result<bool> {
        self.raw.try_wait().map_err(|e| self.os("sem_trywait", e))
    }

    /// Waits as long as it takes to take one slot. Signals do not end the wait.
    ///
    /// # Errors
    /// [`Error::Os`] only if the OS fails unexpectedly.
    pub fn acquire(&self) -> Result<()> {
        self.acquire_until(None, OnSignal::KeepWaiting).map(drop)
    }

    /// Waits at most `timeout` to take one slot: `Ok(true)` if taken,
    /// `Ok(false)` when the time is up. Signals do not end the wait early.
    ///
    /// # Errors
    /// [`Error::Os`] only if the OS fails unexpectedly.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        self.acquire_until(Some(Deadline::after(timeout)), OnSignal::KeepWaiting)
    }

    /// Waits to take one slot for at most `timeout` (`None`: no limit) and
    /// returns [`Error::Interrupted`] as soon as a signal handler has run, so
    /// that the caller can act on the signal and then call again with the
    /// time that is left. `Ok(false)` means the time is up.
    ///
    /// ```
    /// # let name = format!("/namedipc-doc-sem-intr-{}", std::process::id());
    /// # let sem = namedipc::Semaphore::create(&name, 1)?;
    /// use namedipc::Error;
    /// let taken = loop {
    ///     match sem.acquire_interruptible(None) {
    ///         Err(Error::Interrupted { .. }) => continue, // act on the signal, then wait again
    ///         other => break other?,
    ///     }
    /// };
    /// # sem.unlink()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Interrupted`], or [`Error::Os`] if the OS fails unexpectedly.
    pub fn acquire_interruptible(&self, timeout: Option<Duration>) -> Result<bool> {
        self.acquire_until(timeout.map(Deadline::after), OnSignal::Return)
    }

    /// Takes one slot, waiting until `deadline` (`None`: no limit) and
    /// treating signals as `on_signal` says: `Ok(false)` when the time is up.
    fn acquire_until(&self, deadline: Option<Deadline>, on_signal: OnSignal) -> Result<bool> {
        deadline::wait_until(deadline, on_signal, |deadline| {
            let taken = self.raw.wait_until(deadline.map(Deadline::at))?;
            Ok(taken.then_some(()))
        })
        .map(|taken| taken.is_some())
        .map_err(|e| {
            let operation = if deadline.is_some() {
                sys::sem::TIMED_WAIT
            } else {
                "sem_wait"
            };
            self.os(operation, e)
        })
    }

    /// Gives one slot back.
    ///
    /// # Errors
    /// [`Error::Overflow`] if the value is already [`VALUE_MAX`].
    pub fn release(&self) -> Result<()> {
        self.raw.post().map_err(|e| {
            if e.raw_os_error() == Some(libc::EOVERFLOW) {
                self.overflow()
            } else {
                self.os("sem_post", e)
            }
        })
    }

    /// Gives `n` slots back, all or none: if that would raise the value
    /// past [`VALUE_MAX`], returns [`Error::Overflow`] and leaves the value
    /// as it was.
    ///
    /// The OS gives slots back one at a time, so other processes may see
    /// them arrive one by one. Should another process's release take the
    /// value to the maximum while this call gives slots back, the call takes
    /// back the ones it gave (at the maximum they are free) and reports
    /// [`Error::Overflow`].
    ///
    /// # Errors
    /// [`Error::Overflow`] if the value would pass [`VALUE_MAX`].
    pub fn release_many(&self, n: u32) -> Result<()> {
        if n > VALUE_MAX.saturating_sub(self.value()?) {
            return Err(self.overflow());
        }
        for given in 0..n {
            if let Err(e) = self.release() {
                if matches!(e, Error::Overflow { .. }) {
                    // A concurrent release got there first: none, not some.
                    for _ in 0..given {
                        if !self.try_acquire()? {
                            break;
                        }
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// The number of free slots now (it may change at any moment).
    ///
    /// # Errors
    /// [`Error::Os`] only if the OS fails unexpectedly.
    pub fn value(&self) -> Result<u32> {
        self.raw.value().map_err(|e| self.os("sem_getvalue", e))
    }

    /// Removes the name; processes that have the semaphore open keep using
    /// it, and it is destroyed when the last of them closes it.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the name was already removed.
    pub fn unlink(&self) -> Result<()> {
        // The C name is made here, not kept from the open: an open is
        // common, an unlink through the handle rare.
        unlink(&self.name)
    }

    /// What dropping the handle does early: if this handle created the
    /// semaphore with [`SemaphoreOptions::unlink_on_drop`], removes the name
    /// — but only while it still refers to the semaphore this handle
    /// created, and only in the process that created it (a forked child's
    /// copy of the handle never removes it). Runs at most once; returns
    /// whether it removed the name.
    pub fn unlink_if_owner(&self) -> bool {
        let Some((ours, creator)) = self.unlink_on_drop else {
            return false;
        };
        if std::process::id() != creator {
            return false;
        }
        if self.name_released.swap(true, Ordering::AcqRel) {
            return false;
        }
        // Someone else may have removed or replaced it: nothing to report then.
        file::identity(&self.name) == Some(ours)
            && paths::with_c_name(KIND, &self.name, |c_name| {
                sys::sem::unlink(c_name).map_err(|e| self.os("sem_unlink", e))
            })
            .is_ok()
    }

    fn overflow(&self) -> Error {
        Error::Overflow {
            kind: KIND,
            name: self.name.clone(),
            max: VALUE_MAX,
        }
    }

    fn os(&self, operation: &'static str, e: std::io::Error) -> Error {
        Error::from_os(operation, KIND, &self.name, e)
    }
}

impl Drop for Semaphore {
    fn drop(&mut self) {
        self.unlink_if_owner();
    }
}

/// Removes the semaphore `name` without opening it.
///
/// ```
/// # let name = format!("/namedipc-doc-unlink-{}", std::process::id());
/// # namedipc::Semaphore::create(&name, 1)?;
/// namedipc::semaphore::unlink(&name)?;
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidName`], [`Error::NotFound`], [`Error::PermissionDenied`].
pub fn unlink(name: &str) -> Result<()> {
    paths::with_c_name(KIND, name, |c_name| unlink_c(name, c_name))
}

fn unlink_c(name: &str, c_name: &CStr) -> Result<()> {
    sys::sem::unlink(c_name).map_err(|e| Error::from_os("sem_unlink", KIND, name, e))
}
