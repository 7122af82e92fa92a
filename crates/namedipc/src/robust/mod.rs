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
//!     .slots(2)
//!     .open(&name)?;
//! gpu.acquire()?;
//! assert_eq!(gpu.value()?, 1);
//! assert_eq!(gpu.holders()?[0].pid, std::process::id());
//! gpu.release()?;
//! # gpu.unlink()?;
//! # Ok::<(), namedipc::Error>(())
//! ```

mod layout;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, ObjectKind, Result};
use crate::existence::{self, Existence, Object};
use crate::name;
use crate::sys::monotonic_now;
use crate::sys::robust::{self as os, Lock, SharedMap};

use layout::{
    GEN_MASK, HEADER_LEN, H_HEADER_LEN, H_MAGIC, H_RECLAIMED, H_RECORDS, H_SEQ, H_SLOTS, H_VERSION,
    H_WAITERS, LOCK_BASE, MAGIC, MAX_RECORDS, MAX_SLOTS, R_PID, R_STATE, R_UID, S_OWNER, S_SINCE,
    VERSION,
};

/// Prefix of the file name in `/dev/shm`: the semaphore `/jobs` lives in
/// `/dev/shm/namedipc-robust.jobs`.
pub(crate) const FILE_PREFIX: &str = "namedipc-robust.";

/// Where the files live.
const DIRECTORY: &str = "/dev/shm";

/// How long a waiter sleeps before it looks for dead holders again: the
/// bound on how late a dead holder's slot is noticed while someone waits.
const POLL: Duration = Duration::from_millis(1);

const KIND: ObjectKind = ObjectKind::RobustSemaphore;

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
///     .slots(3)
///     .records(16)
///     .mode(0o600)
///     .open(&name)?;
/// assert_eq!(sem.value()?, 3);
/// # sem.unlink()?;
/// # Ok::<(), namedipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RobustSemaphoreOptions {
    existence: Existence,
    slots: u32,
    records: u32,
    mode: u32,
}

impl Default for RobustSemaphoreOptions {
    fn default() -> Self {
        Self {
            existence: Existence::LinkOrCreate,
            slots: 1,
            records: 128,
            mode: 0o600,
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

    /// The number of slots of a new semaphore: its initial and maximum value
    /// (1 to 65536, default 1). Ignored when an existing semaphore is opened.
    ///
    /// ```
    /// let options = namedipc::robust::RobustSemaphore::options().slots(4);
    /// # let _ = options;
    /// ```
    #[must_use]
    pub fn slots(mut self, slots: u32) -> Self {
        self.slots = slots;
        self
    }

    /// How many handles (processes) a new semaphore admits at once (1 to
    /// 65536, default 128). Ignored when an existing semaphore is opened.
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

    /// Opens or creates the semaphore `name` and registers this process in it.
    ///
    /// Fails with [`Error::Corrupt`] if the file at the name is not a valid
    /// robust semaphore of this version (its size and header are checked
    /// before any offset in it is used).
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-open-{}", std::process::id());
    /// let sem = RobustSemaphore::options().slots(2).open(&name)?;
    /// assert!(sem.created());
    /// # sem.unlink()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn open(&self, name: &str) -> Result<RobustSemaphore> {
        let path = file_path(name)?;
        if self.slots == 0 || self.slots > MAX_SLOTS {
            return Err(Error::InvalidArgument(format!(
                "slots must be between 1 and {MAX_SLOTS}, not {}",
                self.slots
            )));
        }
        if self.records == 0 || self.records > MAX_RECORDS {
            return Err(Error::InvalidArgument(format!(
                "records must be between 1 and {MAX_RECORDS}, not {}",
                self.records
            )));
        }
        existence::check_mode(self.mode)?;
        let (file, created) = Object {
            kind: KIND,
            name,
            create: || self.create_file(name, &path),
            open: || open_file(name, &path),
            unlink: || remove_path(name, &path),
        }
        .open(self.existence)?;
        RobustSemaphore::register(name.to_owned(), path, file, created)
    }

    /// Creates the file complete under a temporary name, then links it to
    /// `path`, so that no process ever sees a half-written file at the name.
    fn create_file(&self, name: &str, path: &str) -> Result<MappedFile> {
        let tmp = name::random_name(&format!("{DIRECTORY}/.namedipc-robust-tmp."))?;
        let os_err = |op, e| Error::from_os(op, KIND, name, e);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(self.mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&tmp)
            .map_err(|e| os_err("open", e))?;
        let result = (|| {
            let len = layout::file_len(self.slots, self.records);
            file.set_len(len as u64)
                .map_err(|e| os_err("ftruncate", e))?;
            let map = SharedMap::new(file.as_fd(), len).map_err(|e| os_err("mmap", e))?;
            map.u32_at(H_VERSION).store(VERSION, Ordering::Relaxed);
            map.u32_at(H_HEADER_LEN)
                .store(HEADER_LEN as u32, Ordering::Relaxed);
            map.u32_at(H_SLOTS).store(self.slots, Ordering::Relaxed);
            map.u32_at(H_RECORDS).store(self.records, Ordering::Relaxed);
            map.u64_at(H_MAGIC).store(MAGIC, Ordering::Release);
            // link(2) fails with EEXIST if the name is taken: exclusive create.
            fs::hard_link(&tmp, path).map_err(|e| os_err("link", e))?;
            let identity = identity(&file.metadata().map_err(|e| os_err("fstat", e))?);
            Ok(MappedFile {
                file,
                map,
                slots: self.slots,
                records: self.records,
                identity,
            })
        })();
        let _ = fs::remove_file(&tmp);
        result
    }
}

/// An open, checked semaphore file.
struct MappedFile {
    file: File,
    map: SharedMap,
    slots: u32,
    records: u32,
    identity: (u64, u64),
}

fn identity(meta: &fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// The file of the semaphore `name`, after checking the name.
fn file_path(name: &str) -> Result<String> {
    name::to_c_name(KIND, name)?;
    Ok(format!(
        "{DIRECTORY}/{FILE_PREFIX}{}",
        name.trim_start_matches('/')
    ))
}

fn remove_path(name: &str, path: &str) -> Result<()> {
    fs::remove_file(path).map_err(|e| Error::from_os("unlink", KIND, name, e))
}

fn corrupt(name: &str, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        kind: KIND,
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// Opens an existing file and checks its size and header before trusting
/// anything in it.
fn open_file(name: &str, path: &str) -> Result<MappedFile> {
    let os_err = |op, e| Error::from_os(op, KIND, name, e);
    // O_NOFOLLOW: a symlink at the name is refused (ELOOP -> Corrupt);
    // O_NONBLOCK: a FIFO planted at the name cannot block the open.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| os_err("open", e))?;
    let meta = file.metadata().map_err(|e| os_err("fstat", e))?;
    if !meta.file_type().is_file() {
        return Err(corrupt(name, "the name is not a regular file"));
    }
    let len = meta.len();
    let max = layout::file_len(MAX_SLOTS, MAX_RECORDS) as u64;
    if len < HEADER_LEN as u64 {
        return Err(corrupt(
            name,
            format!("the file has {len} bytes, fewer than the {HEADER_LEN}-byte header"),
        ));
    }
    if len > max {
        return Err(corrupt(
            name,
            format!("the file has {len} bytes, more than any robust semaphore"),
        ));
    }
    let map_len = usize::try_from(len).map_err(|_| corrupt(name, "the file is too large"))?;
    let map = SharedMap::new(file.as_fd(), map_len).map_err(|e| os_err("mmap", e))?;
    let (slots, records) = layout::check_header(
        len,
        map.u64_at(H_MAGIC).load(Ordering::Acquire),
        map.u32_at(H_VERSION).load(Ordering::Relaxed),
        map.u32_at(H_HEADER_LEN).load(Ordering::Relaxed),
        map.u32_at(H_SLOTS).load(Ordering::Relaxed),
        map.u32_at(H_RECORDS).load(Ordering::Relaxed),
    )
    .map_err(|reason| corrupt(name, reason))?;
    Ok(MappedFile {
        file,
        map,
        slots,
        records,
        identity: identity(&meta),
    })
}

/// A crash-safe named counting semaphore; see the [module docs](self).
///
/// ```
/// use namedipc::robust::RobustSemaphore;
/// use std::time::Duration;
///
/// # let name = format!("/namedipc-doc-robust-type-{}", std::process::id());
/// let sem = RobustSemaphore::options().slots(1).open(&name)?;
/// assert!(sem.try_acquire()?);
/// assert!(!sem.acquire_timeout(Duration::from_millis(5))?);
/// sem.release()?;
/// # sem.unlink()?;
/// # Ok::<(), namedipc::Error>(())
/// ```
#[derive(Debug)]
pub struct RobustSemaphore {
    name: String,
    path: String,
    /// Its open file description carries this handle's liveness lock.
    file: File,
    map: SharedMap,
    /// (device, inode) of the file this handle mapped.
    identity: (u64, u64),
    slots: u32,
    records: u32,
    /// The record this handle registered, and its token.
    record: u32,
    token: u64,
    /// The process that opened the handle.
    pid: u32,
    created: bool,
    /// Where the last successful acquire found a free slot.
    hint: AtomicU32,
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
    /// # first.unlink()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self> {
        Self::options()
            .existence(Existence::RaiseIfNotExists)
            .open(name)
    }

    /// Removes the semaphore `name` without opening it. Handles that have
    /// it open keep working on the removed file, but report the removal.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-remove-{}", std::process::id());
    /// drop(RobustSemaphore::options().open(&name)?);
    /// RobustSemaphore::remove(&name)?;
    /// assert!(RobustSemaphore::open(&name).is_err());
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn remove(name: &str) -> Result<()> {
        remove_path(name, &file_path(name)?)
    }

    fn register(name: String, path: String, opened: MappedFile, created: bool) -> Result<Self> {
        let MappedFile {
            file,
            map,
            slots,
            records,
            identity,
        } = opened;
        let mut sem = Self {
            name,
            path,
            file,
            map,
            identity,
            slots,
            records,
            record: u32::MAX,
            token: 0,
            pid: std::process::id(),
            created,
            hint: AtomicU32::new(0),
        };
        for r in 0..records {
            // A lock we get is a record nobody lives in (or a reclaimer
            // briefly holds: then we move on).
            if !os::ofd_lock(sem.file.as_fd(), LOCK_BASE + u64::from(r), Lock::Exclusive)
                .map_err(|e| Error::from_os("fcntl", KIND, &sem.name, e))?
            {
                continue;
            }
            let state = sem.state(r).load(Ordering::Acquire);
            let generation = state >> 1;
            if state & 1 == 1 {
                // Its last owner died: give back what it held.
                sem.free_owner(r, generation);
            }
            let generation = (generation + 1) & GEN_MASK;
            let rec = layout::record(r);
            sem.map
                .u32_at(rec + R_PID)
                .store(sem.pid, Ordering::Relaxed);
            sem.map
                .u32_at(rec + R_UID)
                .store(os::uid(), Ordering::Relaxed);
            sem.state(r).store(generation << 1 | 1, Ordering::Release);
            sem.record = r;
            sem.token = layout::token(r, generation);
            return Ok(sem);
        }
        Err(Error::InvalidArgument(format!(
            "all {records} process records of robust semaphore '{}' are in use; close some handles or create it with more records",
            sem.name
        )))
    }

    fn state(&self, r: u32) -> &AtomicU64 {
        self.map.u64_at(layout::record(r) + R_STATE)
    }

    fn owner(&self, i: u32) -> &AtomicU64 {
        self.map.u64_at(layout::slot(self.records, i) + S_OWNER)
    }

    fn seq(&self) -> &AtomicU32 {
        self.map.u32_at(H_SEQ)
    }

    fn waiters(&self) -> &AtomicU32 {
        self.map.u32_at(H_WAITERS)
    }

    fn wake(&self, n: u32) {
        self.seq().fetch_add(1, Ordering::SeqCst);
        os::futex_wake(self.seq(), i32::try_from(n).unwrap_or(i32::MAX));
    }

    /// Frees every slot that holds the token of record `r` in `generation`.
    /// Only called while holding `r`'s lock byte, i.e. when its owner is dead.
    fn free_owner(&self, r: u32, generation: u64) -> u32 {
        let token = layout::token(r, generation);
        let freed = (0..self.slots)
            .filter(|&i| {
                self.owner(i)
                    .compare_exchange(token, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .count();
        let freed = u32::try_from(freed).unwrap_or(u32::MAX);
        if freed > 0 {
            self.map
                .u64_at(H_RECLAIMED)
                .fetch_add(u64::from(freed), Ordering::Relaxed);
            self.wake(freed);
        }
        freed
    }

    /// Gives back the slots of every dead registered process. Returns how many.
    fn reclaim(&self) -> u32 {
        let mut total = 0;
        for r in (0..self.records).filter(|&r| r != self.record) {
            if self.state(r).load(Ordering::Acquire) & 1 == 0 {
                continue;
            }
            let byte = LOCK_BASE + u64::from(r);
            // An error is treated like a live owner: never reclaim on doubt.
            if !os::ofd_lock(self.file.as_fd(), byte, Lock::Exclusive).unwrap_or(false) {
                continue;
            }
            let state = self.state(r).load(Ordering::Acquire);
            if state & 1 == 1 {
                total += self.free_owner(r, state >> 1);
                self.state(r)
                    .store((((state >> 1) + 1) & GEN_MASK) << 1, Ordering::Release);
            }
            let _ = os::ofd_lock(self.file.as_fd(), byte, Lock::Unlock);
        }
        total
    }

    /// Takes a free slot with one CAS, if there is one.
    fn try_take(&self) -> bool {
        let start = self.hint.load(Ordering::Relaxed);
        for k in 0..self.slots {
            let i = (start + k) % self.slots;
            let owner = self.owner(i);
            if owner.load(Ordering::Relaxed) == 0
                && owner
                    .compare_exchange(0, self.token, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                self.map
                    .u64_at(layout::slot(self.records, i) + S_SINCE)
                    .store(now, Ordering::Relaxed);
                self.hint.store(i, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// Fails if this handle is used in a forked child, or if the name no
    /// longer refers to the file this handle uses (removed or replaced).
    fn check_usable(&self) -> Result<()> {
        if std::process::id() != self.pid {
            return Err(Error::InvalidArgument(format!(
                "robust semaphore '{}' was opened by process {}; a forked child must open it again",
                self.name, self.pid
            )));
        }
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if identity(&meta) == self.identity => Ok(()),
            Ok(_) => Err(corrupt(
                &self.name,
                "the name now refers to another file than the one this handle opened (it was removed and created again); open it again",
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound {
                kind: KIND,
                name: self.name.clone(),
            }),
            Err(e) => Err(Error::from_os("stat", KIND, &self.name, e)),
        }
    }

    /// Takes a slot, waiting as long as it takes.
    ///
    /// Fails with [`Error::NotFound`] or [`Error::Corrupt`] if the name was
    /// removed or replaced since this handle opened it.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-acquire-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// sem.acquire()?;
    /// sem.release()?;
    /// # sem.unlink()?;
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
    /// let sem = RobustSemaphore::options().slots(1).open(&name)?;
    /// assert!(sem.try_acquire()?);
    /// assert!(!sem.try_acquire()?);
    /// # sem.unlink()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Result<bool> {
        self.wait(Some(Duration::ZERO))
    }

    /// Takes a slot, waiting at most `timeout` (never less); `Ok(false)` if
    /// none became free in time. A slot held by a process that dies is
    /// given back while this waits, within about a millisecond.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    /// use std::time::{Duration, Instant};
    ///
    /// # let name = format!("/namedipc-doc-robust-timeout-{}", std::process::id());
    /// let sem = RobustSemaphore::options().slots(1).open(&name)?;
    /// sem.acquire()?;
    /// let start = Instant::now();
    /// assert!(!sem.acquire_timeout(Duration::from_millis(20))?);
    /// assert!(start.elapsed() >= Duration::from_millis(20));
    /// # sem.unlink()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait(Some(timeout))
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        self.check_usable()?;
        if self.try_take() || (self.reclaim() > 0 && self.try_take()) {
            return Ok(true);
        }
        if timeout == Some(Duration::ZERO) {
            return Ok(false);
        }
        let deadline = timeout.and_then(|t| monotonic_now().checked_add(t));
        self.waiters().fetch_add(1, Ordering::SeqCst);
        let result = (|| loop {
            let seq = self.seq().load(Ordering::SeqCst);
            if self.try_take() {
                return Ok(true);
            }
            let slice = match deadline {
                None => POLL,
                Some(deadline) => {
                    let now = monotonic_now();
                    if now >= deadline {
                        return Ok(false);
                    }
                    (deadline - now).min(POLL)
                }
            };
            os::futex_wait(self.seq(), seq, slice);
            self.reclaim();
            self.check_usable()?;
        })();
        self.waiters().fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Gives back one slot that this handle holds; fails with
    /// [`Error::InvalidArgument`] if it holds none (ownership is per
    /// process: a slot taken by another process cannot be released here).
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-release-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// assert!(sem.release().is_err());
    /// sem.acquire()?;
    /// sem.release()?;
    /// # sem.unlink()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        if std::process::id() != self.pid {
            return Err(Error::InvalidArgument(format!(
                "robust semaphore '{}' was opened by process {}; a forked child holds none of its slots",
                self.name, self.pid
            )));
        }
        let start = self.hint.load(Ordering::Relaxed);
        for k in 0..self.slots {
            let i = (start + k) % self.slots;
            if self
                .owner(i)
                .compare_exchange(self.token, 0, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                if self.waiters().load(Ordering::SeqCst) != 0 {
                    self.wake(1);
                }
                return Ok(());
            }
        }
        Err(Error::InvalidArgument(format!(
            "this process holds no slot of robust semaphore '{}', so it cannot release one",
            self.name
        )))
    }

    /// The number of free slots now.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-value-{}", std::process::id());
    /// let sem = RobustSemaphore::options().slots(2).open(&name)?;
    /// sem.acquire()?;
    /// assert_eq!(sem.value()?, 1);
    /// # sem.unlink()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn value(&self) -> Result<u32> {
        let free = (0..self.slots)
            .filter(|&i| self.owner(i).load(Ordering::Acquire) == 0)
            .count();
        Ok(u32::try_from(free).unwrap_or(u32::MAX))
    }

    /// Who holds slots now, one entry per held slot.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-holders-{}", std::process::id());
    /// let sem = RobustSemaphore::options().slots(2).open(&name)?;
    /// assert!(sem.holders()?.is_empty());
    /// sem.acquire()?;
    /// assert_eq!(sem.holders()?.len(), 1);
    /// # sem.unlink()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn holders(&self) -> Result<Vec<Holder>> {
        let mut holders = Vec::new();
        for i in 0..self.slots {
            let token = self.owner(i).load(Ordering::Acquire);
            if token == 0 {
                continue;
            }
            let since = UNIX_EPOCH
                + Duration::from_nanos(
                    self.map
                        .u64_at(layout::slot(self.records, i) + S_SINCE)
                        .load(Ordering::Relaxed),
                );
            let (r, generation) = layout::split_token(token);
            let Some(r) = u32::try_from(r).ok().filter(|&r| r < self.records) else {
                // A token naming no record: nobody can release it.
                holders.push(Holder {
                    pid: 0,
                    uid: 0,
                    since,
                    alive: false,
                });
                continue;
            };
            let rec = layout::record(r);
            let registered = self.state(r).load(Ordering::Acquire) == (generation << 1 | 1);
            let alive = if token == self.token {
                true
            } else {
                registered
                    && os::ofd_locked_by_other(self.file.as_fd(), LOCK_BASE + u64::from(r))
                        .unwrap_or(true)
            };
            holders.push(Holder {
                pid: self.map.u32_at(rec + R_PID).load(Ordering::Relaxed),
                uid: self.map.u32_at(rec + R_UID).load(Ordering::Relaxed),
                since,
                alive,
            });
        }
        Ok(holders)
    }

    /// The name as given when opening.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-name-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// assert_eq!(sem.name(), name);
    /// # sem.unlink()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this handle created the semaphore.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-created-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// assert!(sem.created());
    /// # sem.unlink()?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    #[must_use]
    pub fn created(&self) -> bool {
        self.created
    }

    /// Removes the name. This handle and other open ones keep the file, but
    /// their next acquire reports [`Error::NotFound`]; a new semaphore may be
    /// created under the name.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-unlink-{}", std::process::id());
    /// let sem = RobustSemaphore::options().open(&name)?;
    /// sem.unlink()?;
    /// assert!(sem.acquire().is_err());
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn unlink(&self) -> Result<()> {
        remove_path(&self.name, &self.path)
    }
}

impl Drop for RobustSemaphore {
    /// Gives back this handle's slots and its record. In a forked child it
    /// does nothing (the record belongs to the parent).
    fn drop(&mut self) {
        // Not registered (a failed open), or a forked child: nothing is ours.
        if self.token == 0 || std::process::id() != self.pid {
            return;
        }
        let freed = (0..self.slots)
            .filter(|&i| {
                self.owner(i)
                    .compare_exchange(self.token, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .count();
        let (_, generation) = layout::split_token(self.token);
        self.state(self.record)
            .store(((generation + 1) & GEN_MASK) << 1, Ordering::Release);
        let _ = os::ofd_lock(
            self.file.as_fd(),
            LOCK_BASE + u64::from(self.record),
            Lock::Unlock,
        );
        if freed > 0 {
            self.wake(u32::try_from(freed).unwrap_or(u32::MAX));
        }
    }
}
