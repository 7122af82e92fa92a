//! A process's attachment to one semaphore file: its mapping, its process
//! record (registration) and the protocol's transitions. Every handle a
//! process opens on the same file shares one attachment, so slots belong to
//! the process, not to a handle.
//!
//! Forks: a registry of this process's attachments lets a `pthread_atfork`
//! child handler give the child's copies of their descriptor *and mapping*
//! a new open file description of the same file (the mapping holds a
//! reference to the description too, and OFD locks live as long as the
//! description does), so a child never keeps its parent's liveness locks
//! alive; a child that uses an inherited handle registers itself anew.

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use super::file::{self, os_error, MappedFile};
use super::layout::{
    self, FLAG_PERSISTENT, FLAG_REMOVED, GEN_MASK, H_FLAGS, H_RECLAIMED, H_SEQ, H_WAITERS,
    LOCK_BASE, R_PID, R_STATE, R_UID, S_OWNER, S_SINCE,
};
use super::{crash, Holder, KIND};
use crate::error::{Error, Result};
use crate::paths::Identity;
use crate::sys::robust::{self as os, Lock, SharedMap};
use crate::sys::{coarse_realtime_now, monotonic_now};

/// How long a waiter sleeps before it looks for dead holders again: the
/// bound on how late a dead holder's slot is noticed while someone waits.
pub(super) const POLL: Duration = Duration::from_millis(1);

/// An acquire that does not wait compares the name's inode with its file's
/// when the coarse clock has moved this far since the last comparison
/// (every wait compares it before and after sleeping).
const RECHECK_NS: u64 = 10_000_000;

type Registry = Vec<Weak<Attachment>>;

/// This process's attachments (weak: a handle's drop ends one). Every
/// registration change happens while holding it, and a fork waits for it.
static REGISTRY: Mutex<Registry> = Mutex::new(Vec::new());

/// Bumped in every forked child: a registration made under another value
/// belongs to an ancestor.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The registry, held by the forking thread from just before a fork
    /// until just after it (in the parent and in the child).
    static HELD_OVER_FORK: RefCell<Option<MutexGuard<'static, Registry>>> =
        const { RefCell::new(None) };
}

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

extern "C" fn before_fork() {
    let held = registry();
    HELD_OVER_FORK.with(|slot| *slot.borrow_mut() = Some(held));
}

extern "C" fn after_fork_in_parent() {
    HELD_OVER_FORK.with(|slot| drop(slot.borrow_mut().take()));
}

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
    HELD_OVER_FORK.with(|slot| {
        let held = slot.borrow_mut().take();
        for attachment in held
            .iter()
            .flat_map(|list| list.iter().filter_map(Weak::upgrade))
        {
            if attachment.token.load(Ordering::Relaxed) != 0 {
                attachment.separate_from_parent();
            }
        }
    });
}

/// Installs the fork handlers once per process; `name` is the semaphore
/// being opened, for the error.
fn install_fork_handlers(name: &str) -> Result<()> {
    static INSTALLED: OnceLock<std::result::Result<(), i32>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            os::at_fork(before_fork, after_fork_in_parent, after_fork_in_child)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))
        })
        .map_err(|errno| {
            os_error(
                name,
                "pthread_atfork",
                std::io::Error::from_raw_os_error(errno),
            )
        })
}

/// Why [`attach`] did not attach.
pub(super) enum AttachError {
    /// The name was removed (or replaced) between opening the file and
    /// registering in it: open the name again.
    Stale,
    Failed(Error),
}

impl From<Error> for AttachError {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

/// One process's view of one semaphore file.
#[derive(Debug)]
pub(super) struct Attachment {
    pub(super) name: String,
    pub(super) path: String,
    /// Its open file description carries the liveness lock of `record`.
    file: File,
    map: SharedMap,
    identity: Identity,
    pub(super) slots: u32,
    records: u32,
    /// This process's record and token; the token is 0 while not registered.
    record: AtomicU32,
    token: AtomicU64,
    /// [`FORK_GENERATION`] when it registered.
    fork_generation: AtomicU64,
    /// Open handles of this process that share it (changed under the registry).
    handles: AtomicUsize,
    /// Where the last successful acquire found a free slot.
    hint: AtomicU32,
    /// When (coarse monotonic ns) the name's inode was last compared.
    checked_at: AtomicU64,
    /// In a forked child whose copy could not be given its own open file
    /// description: unusable here.
    lost: AtomicBool,
}

/// Finds this process's attachment to the file `opened`, or makes one by
/// registering a process record in it.
pub(super) fn attach(
    name: &str,
    path: &str,
    opened: MappedFile,
) -> std::result::Result<Arc<Attachment>, AttachError> {
    install_fork_handlers(name)?;
    let mut list = registry();
    list.retain(|weak| weak.strong_count() > 0);
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    if let Some(existing) = list
        .iter()
        .filter_map(Weak::upgrade)
        .find(|a| a.identity == opened.identity && a.registered_in(generation))
    {
        // `opened` is closed on return; it carries no lock.
        existing.handles.fetch_add(1, Ordering::Relaxed);
        return Ok(existing);
    }
    let MappedFile {
        file,
        map,
        slots,
        records,
        identity,
    } = opened;
    let attachment = Arc::new(Attachment {
        name: name.to_owned(),
        path: path.to_owned(),
        file,
        map,
        identity,
        slots,
        records,
        record: AtomicU32::new(0),
        token: AtomicU64::new(0),
        fork_generation: AtomicU64::new(generation),
        handles: AtomicUsize::new(1),
        hint: AtomicU32::new(0),
        checked_at: AtomicU64::new(0),
        lost: AtomicBool::new(false),
    });
    attachment.register()?;
    list.push(Arc::downgrade(&attachment));
    Ok(attachment)
}

impl Attachment {
    fn registered_in(&self, generation: u64) -> bool {
        self.token.load(Ordering::Relaxed) != 0
            && self.fork_generation.load(Ordering::Relaxed) == generation
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

    fn flags(&self) -> u32 {
        self.map.load_u32(H_FLAGS, Ordering::Acquire)
    }

    fn lock_byte(&self, r: u32, op: Lock) -> std::io::Result<bool> {
        os::ofd_lock(self.file.as_fd(), LOCK_BASE + u64::from(r), op)
    }

    fn not_found(&self) -> Error {
        Error::NotFound {
            kind: KIND,
            name: self.name.clone(),
        }
    }

    /// Takes a free process record: one whose lock byte nobody holds. Runs
    /// under the registry lock.
    fn register(&self) -> std::result::Result<(), AttachError> {
        for r in 0..self.records {
            // A lock we get is a record nobody lives in (or a reclaimer
            // briefly holds: then we move on).
            if !self
                .lock_byte(r, Lock::Exclusive)
                .map_err(|e| os_error(&self.name, "fcntl", e))?
            {
                continue;
            }
            crash::crash_point!("register.locked");
            // A remover unlinks the name only while it holds every record's
            // byte; now that we hold one, the name stays as it is until we
            // let go. If it no longer refers to this file, start again.
            let current = Identity::at(&self.path);
            if self.flags() & FLAG_REMOVED != 0
                || !matches!(current, Ok(Some(id)) if id == self.identity)
            {
                let _ = self.lock_byte(r, Lock::Unlock);
                return Err(match current {
                    Err(e) => AttachError::Failed(os_error(&self.name, "stat", e)),
                    Ok(_) => AttachError::Stale,
                });
            }
            let state = self.state(r).load(Ordering::Acquire);
            let generation = state >> 1;
            if state & 1 == 1 {
                // Its last owner died: give back what it held.
                self.free_owner(r, generation);
            }
            let generation = (generation + 1) & GEN_MASK;
            let rec = layout::record(r);
            self.map
                .u32_at(rec + R_PID)
                .store(std::process::id(), Ordering::Relaxed);
            self.map
                .u32_at(rec + R_UID)
                .store(os::uid(), Ordering::Relaxed);
            self.state(r).store(generation << 1 | 1, Ordering::Release);
            crash::crash_point!("register.done");
            self.record.store(r, Ordering::Relaxed);
            self.hint.store(0, Ordering::Relaxed);
            self.fork_generation
                .store(FORK_GENERATION.load(Ordering::Relaxed), Ordering::Relaxed);
            self.token
                .store(layout::token(r, generation), Ordering::Release);
            return Ok(());
        }
        Err(AttachError::Failed(Error::InvalidArgument(format!(
            "all {} process records of robust semaphore '{}' are in use; close some handles or create it with more records",
            self.records, self.name
        ))))
    }

    /// This process's token, registering anew first in a forked child.
    /// The fast path is three relaxed loads.
    #[inline]
    pub(super) fn token(&self) -> Result<u64> {
        let token = self.token.load(Ordering::Acquire);
        if token != 0
            && self.fork_generation.load(Ordering::Relaxed)
                == FORK_GENERATION.load(Ordering::Relaxed)
        {
            return Ok(token);
        }
        self.token_slow()
    }

    #[cold]
    fn token_slow(&self) -> Result<u64> {
        let _list = registry();
        let generation = FORK_GENERATION.load(Ordering::Relaxed);
        if self.fork_generation.load(Ordering::Relaxed) != generation {
            // A forked child: the parent's registration is not ours.
            self.token.store(0, Ordering::Relaxed);
            self.register_in_child()?;
        }
        match self.token.load(Ordering::Acquire) {
            0 => Err(Error::InvalidArgument(format!(
                "robust semaphore '{}' is not open in this process; open it again",
                self.name
            ))),
            token => Ok(token),
        }
    }

    /// Runs in a forked child, from the fork handler: gives the child's
    /// copies of the descriptor and the mapping a new open file description
    /// of the same file, holding no lock. If that fails, the mapping becomes
    /// anonymous memory and the descriptor `/dev/null`, and the handle is
    /// unusable in this child; either way the parent's description, and its
    /// locks, no longer depend on this process.
    fn separate_from_parent(&self) {
        if self.reopen_in_place().is_err() {
            self.lost.store(true, Ordering::Relaxed);
            let _ = self.map.detach_in_place();
            let _ = os::cover_with_null(self.file.as_fd());
        }
    }

    fn reopen_in_place(&self) -> std::io::Result<()> {
        let fresh = File::from(os::reopen(self.file.as_fd())?);
        let meta = fresh.metadata()?;
        if Identity::of(&meta) != self.identity {
            return Err(std::io::Error::from_raw_os_error(libc::ESTALE));
        }
        self.map.remap_in_place(fresh.as_fd())?;
        os::replace_fd(self.file.as_fd(), fresh.as_fd())
    }

    /// In a forked child: register in the file (the fork handler already
    /// gave this process its own open file description of it).
    fn register_in_child(&self) -> Result<()> {
        if self.lost.load(Ordering::Relaxed) {
            return Err(Error::InvalidArgument(format!(
                "robust semaphore '{}' could not be reopened in this forked child; open it again by name",
                self.name
            )));
        }
        match self.register() {
            Ok(()) => Ok(()),
            Err(AttachError::Stale) => Err(self.not_found()),
            Err(AttachError::Failed(e)) => Err(e),
        }
    }

    /// Fails with [`Error::NotFound`] once the name was removed through
    /// namedipc (a flag in the file: no syscall), and, when the clock has
    /// moved by [`RECHECK_NS`] (either way: `now` is the coarse wall clock,
    /// read once per acquire) since the last look, if the name no longer
    /// refers to this file (removed or replaced behind namedipc's back: one
    /// `lstat`).
    #[inline]
    pub(super) fn check_still_named(&self, now: u64) -> Result<()> {
        if self.flags() & FLAG_REMOVED != 0 {
            return Err(self.not_found());
        }
        let last = self.checked_at.load(Ordering::Relaxed);
        if now.abs_diff(last) < RECHECK_NS {
            return Ok(());
        }
        self.check_identity()?;
        self.checked_at.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Fails if the name no longer refers to this file (removed by any
    /// means, or replaced). One `lstat`: used where a wait is about to
    /// happen anyway, and by `holders`.
    pub(super) fn check_identity(&self) -> Result<()> {
        if self.flags() & FLAG_REMOVED != 0 {
            return Err(self.not_found());
        }
        match Identity::at(&self.path).map_err(|e| os_error(&self.name, "stat", e))? {
            Some(id) if id == self.identity => Ok(()),
            Some(_) => Err(file::corrupt(
                &self.name,
                "the name now refers to another file than the one this handle opened (it was removed and created again); open it again",
            )),
            None => Err(self.not_found()),
        }
    }

    fn wake(&self, n: u32) {
        self.seq().fetch_add(1, Ordering::SeqCst);
        // A wake-up that fails is caught by the waiters' poll.
        let _ = os::futex_wake(self.seq(), i32::try_from(n).unwrap_or(i32::MAX));
    }

    /// Frees every slot that holds `token`. Returns how many.
    fn free_token(&self, token: u64) -> u32 {
        let freed = (0..self.slots)
            .filter(|&i| {
                self.owner(i)
                    .compare_exchange(token, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .count();
        u32::try_from(freed).unwrap_or(u32::MAX)
    }

    /// Frees the slots of record `r`'s registration `generation`, whose
    /// owner is dead (the caller holds `r`'s lock byte).
    fn free_owner(&self, r: u32, generation: u64) -> u32 {
        let freed = self.free_token(layout::token(r, generation));
        if freed > 0 {
            self.map
                .u64_at(H_RECLAIMED)
                .fetch_add(u64::from(freed), Ordering::Relaxed);
            self.wake(freed);
        }
        freed
    }

    /// Gives back the slots of dead holders: of registrations that ended
    /// (orphans: a slot taken by a thread racing its process's close), and
    /// of records whose owner died (their lock byte can be taken). Looks
    /// only at records that hold a slot. Returns how many slots it freed.
    pub(super) fn reclaim(&self) -> u32 {
        let mine = self.record.load(Ordering::Relaxed);
        let mut total = 0;
        for i in 0..self.slots {
            let token = self.owner(i).load(Ordering::Acquire);
            if token == 0 || token == self.token.load(Ordering::Relaxed) {
                continue;
            }
            let (r, generation) = layout::split_token(token);
            let Some(r) = u32::try_from(r).ok().filter(|&r| r < self.records) else {
                // A token naming no record: nobody can ever release it.
                total += self.free_orphan(i, token);
                continue;
            };
            if self.state(r).load(Ordering::Acquire) != (generation << 1 | 1) {
                // That registration has ended: the slot is an orphan.
                total += self.free_orphan(i, token);
                continue;
            }
            if r == mine {
                continue;
            }
            // An error is treated like a live owner: never reclaim on doubt.
            if !self.lock_byte(r, Lock::Exclusive).unwrap_or(false) {
                continue;
            }
            crash::crash_point!("reclaim.locked");
            let state = self.state(r).load(Ordering::Acquire);
            if state & 1 == 1 {
                total += self.free_owner(r, state >> 1);
                crash::crash_point!("reclaim.freed");
                self.state(r)
                    .store((((state >> 1) + 1) & GEN_MASK) << 1, Ordering::Release);
            }
            let _ = self.lock_byte(r, Lock::Unlock);
        }
        total
    }

    fn free_orphan(&self, i: u32, token: u64) -> u32 {
        if self
            .owner(i)
            .compare_exchange(token, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.map.u64_at(H_RECLAIMED).fetch_add(1, Ordering::Relaxed);
            self.wake(1);
            1
        } else {
            0
        }
    }

    /// Takes a free slot with one CAS, if there is one; `now` (the coarse
    /// wall clock, ns) goes into its `since`.
    #[inline]
    pub(super) fn try_take(&self, token: u64, now: u64) -> bool {
        let start = self.hint.load(Ordering::Relaxed);
        for k in 0..self.slots {
            let i = (start + k) % self.slots;
            let owner = self.owner(i);
            if owner.load(Ordering::Relaxed) == 0
                && owner
                    .compare_exchange(0, token, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                crash::crash_point!("acquire.taken");
                self.map
                    .u64_at(layout::slot(self.records, i) + S_SINCE)
                    .store(now, Ordering::Relaxed);
                if i != start {
                    self.hint.store(i, Ordering::Relaxed);
                }
                return true;
            }
        }
        false
    }

    /// Waits for a slot until `deadline` (monotonic; `None`: for ever), or
    /// until `is_open` says the waiting handle was closed ([`Error::Closed`]).
    pub(super) fn wait(
        &self,
        token: u64,
        deadline: Option<Duration>,
        is_open: impl Fn() -> bool,
    ) -> Result<bool> {
        self.check_identity()?;
        self.waiters().fetch_add(1, Ordering::SeqCst);
        let result = (|| loop {
            let seq = self.seq().load(Ordering::SeqCst);
            if self.try_take(token, wall_clock_ns()) {
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
            if os::futex_wait(self.seq(), seq, slice).is_err() {
                // No futex here (a seccomp filter, say): sleep instead,
                // never spin.
                std::thread::sleep(slice);
            }
            if !is_open() {
                return Err(Error::Closed {
                    kind: KIND,
                    name: self.name.clone(),
                });
            }
            self.reclaim();
            self.check_identity()?;
        })();
        self.waiters().fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Gives back one slot holding `token`; false if none does.
    #[inline]
    pub(super) fn give_back(&self, token: u64) -> bool {
        let start = self.hint.load(Ordering::Relaxed);
        for k in 0..self.slots {
            let i = (start + k) % self.slots;
            if self
                .owner(i)
                .compare_exchange(token, 0, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                crash::crash_point!("release.freed");
                if self.waiters().load(Ordering::SeqCst) != 0 {
                    self.wake(1);
                }
                return true;
            }
        }
        false
    }

    /// The number of free slots now.
    pub(super) fn value(&self) -> u32 {
        let free = (0..self.slots)
            .filter(|&i| self.owner(i).load(Ordering::Acquire) == 0)
            .count();
        u32::try_from(free).unwrap_or(u32::MAX)
    }

    /// Who holds slots now.
    pub(super) fn holders(&self) -> Vec<Holder> {
        let mine = self.token.load(Ordering::Relaxed);
        holders_of(&self.map, self.slots, self.records, |token, r| {
            token == mine
                || os::ofd_locked_by_other(self.file.as_fd(), LOCK_BASE + u64::from(r))
                    .unwrap_or(true)
        })
    }

    /// A descriptor of the description that carries this process's liveness
    /// lock, without close-on-exec.
    pub(super) fn inheritable_lock(&self) -> Result<std::os::fd::OwnedFd> {
        self.token()?;
        os::dup_inheritable(self.file.as_fd()).map_err(|e| os_error(&self.name, "fcntl", e))
    }

    /// A handle of this process opened it again.
    pub(super) fn add_handle(&self) {
        let _list = registry();
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// A handle of this process closed it. When it was the last one, the
    /// process detaches: its slots and record are given back, and unless the
    /// semaphore is persistent the file is removed if no other process is
    /// attached (see [`file::remove_if_unused`]).
    pub(super) fn close_handle(&self) {
        let _list = registry();
        if self.handles.fetch_sub(1, Ordering::Relaxed) != 1 {
            return;
        }
        let token = self.token.swap(0, Ordering::AcqRel);
        if token == 0
            || self.fork_generation.load(Ordering::Relaxed)
                != FORK_GENERATION.load(Ordering::Relaxed)
        {
            // Not registered, or registered by a parent process: not ours.
            return;
        }
        let freed = self.free_token(token);
        crash::crash_point!("close.freed");
        let r = self.record.load(Ordering::Relaxed);
        let (_, generation) = layout::split_token(token);
        self.state(r)
            .store(((generation + 1) & GEN_MASK) << 1, Ordering::Release);
        if self.flags() & FLAG_PERSISTENT == 0 {
            let _ = file::remove_if_unused(
                &self.name,
                &self.path,
                self.file.as_fd(),
                self.records,
                self.identity,
                &self.map,
            );
        }
        let _ = self.lock_byte(r, Lock::Unlock);
        if freed > 0 {
            self.wake(freed);
        }
    }
}

/// The coarse wall clock in ns since the Unix epoch: no syscall.
#[inline]
pub(super) fn wall_clock_ns() -> u64 {
    u64::try_from(coarse_realtime_now().as_nanos()).unwrap_or(u64::MAX)
}

/// The holders recorded in a mapped file; `alive(token, record)` says
/// whether the registered owner of a held slot is alive.
pub(super) fn holders_of(
    map: &SharedMap,
    slots: u32,
    records: u32,
    alive: impl Fn(u64, u32) -> bool,
) -> Vec<Holder> {
    let mut holders = Vec::new();
    for i in 0..slots {
        let slot = layout::slot(records, i);
        let token = map.load_u64(slot + S_OWNER, Ordering::Acquire);
        if token == 0 {
            continue;
        }
        let since = std::time::UNIX_EPOCH
            + Duration::from_nanos(map.load_u64(slot + S_SINCE, Ordering::Relaxed));
        let (r, generation) = layout::split_token(token);
        let Some(r) = u32::try_from(r).ok().filter(|&r| r < records) else {
            holders.push(Holder {
                pid: 0,
                uid: 0,
                since,
                alive: false,
            });
            continue;
        };
        let rec = layout::record(r);
        let registered = map.load_u64(rec + R_STATE, Ordering::Acquire) == (generation << 1 | 1);
        holders.push(Holder {
            pid: map.load_u32(rec + R_PID, Ordering::Relaxed),
            uid: map.load_u32(rec + R_UID, Ordering::Relaxed),
            since,
            alive: registered && alive(token, r),
        });
    }
    holders
}
