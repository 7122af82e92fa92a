//! A process's attachment to one semaphore file: the mapped file, the
//! process's registration in it, and what the process keeps between the
//! protocol's transitions. Every handle a process opens on the same file
//! shares one attachment (found through the registry), so slots belong to
//! the process, not to a handle.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use super::file::MappedFile;
use super::layout::LOCK_BASE;
use super::protocol::{wall_clock_ns, RegisterError, Registration, Slept};
use super::{registry, watch, Holder, KIND};
use crate::error::{Error, Result};
use crate::paths::Identity;
use crate::sys::monotonic_now;
use crate::sys::robust as os;

/// A waiter sleeps this long on the futex alone before it counts on the
/// watcher (or, where there are no pidfds, polls): a wait that a release
/// ends sooner — the common hand-off between busy processes — never
/// touches the watcher. A holder that dies meanwhile is found at its end.
const GRACE: Duration = Duration::from_millis(1);
/// Where there are no pidfds, a waiter past its grace looks for dead
/// holders this often (it polls).
const POLL: Duration = Duration::from_millis(1);

/// An acquire that does not wait compares the name's inode with its file's
/// when the coarse clock has moved this far since the last comparison
/// (every wait compares it before and after sleeping).
const RECHECK_NS: u64 = 10_000_000;

/// Makes this process's releases of one semaphore take turns. A spin lock
/// rather than a `Mutex`: the fork handler must be able to open it in a
/// child, where the thread that held it at the fork does not exist. It is
/// held for one pass over the slots, without a wait or a syscall but the
/// futex wake of a release.
#[derive(Debug, Default)]
struct ReleaseLock(AtomicBool);

impl ReleaseLock {
    fn lock(&self) -> ReleaseTurn<'_> {
        let mut spins = 0u32;
        while self
            .0
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            if spins < 100 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        ReleaseTurn(&self.0)
    }
}

/// A release's turn; the next one's begins when it drops.
struct ReleaseTurn<'a>(&'a AtomicBool);

impl Drop for ReleaseTurn<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// One process's view of one semaphore file.
#[derive(Debug)]
pub(super) struct Attachment {
    file: MappedFile,
    /// This process's record and token; the token is 0 while not registered.
    record: AtomicU32,
    token: AtomicU64,
    /// [`registry::fork_generation`] when it registered.
    fork_generation: AtomicU64,
    /// Open handles of this process that share it (changed under the registry).
    handles: AtomicUsize,
    /// Held by a release while it gives slots back, see [`Self::release`].
    releasing: ReleaseLock,
    /// Where the last successful acquire found a free slot.
    hint: AtomicU32,
    /// When (coarse monotonic ns) the name's inode was last compared.
    checked_at: AtomicU64,
    /// In a forked child that could not be attached to the file at the
    /// fork, and for which the handle is unusable: why. Set only by the
    /// fork handler in the child, read under the registry's lock.
    lost: OnceLock<Lost>,
    /// The watcher of this attachment while it runs (watch.rs). Locked
    /// only under the registry's lock, which a fork holds: so it is never
    /// held at a fork, and the child can reset it.
    watcher: Mutex<Option<Arc<watch::Shared>>>,
}

/// What one waiting thread keeps from the start of its wait to its end,
/// over the sleeps of one wait (and the calls of a [`super::Waiter`]).
#[derive(Debug)]
pub(super) struct WaitState {
    mine: Registration,
    /// When it began (monotonic).
    started: Duration,
    /// The watcher it counts on, once past its grace.
    watcher: Option<Arc<watch::Shared>>,
    /// Past its grace without a watcher: polling.
    polling: bool,
    /// `seq` when it last asked the watcher for a new look.
    kicked_at: Option<u32>,
}

/// Why an inherited attachment is unusable in a forked child.
#[derive(Debug)]
enum Lost {
    /// Registering the child before the fork failed (in the parent).
    Attach(Error),
    /// Moving the child's copies onto its own description failed: the
    /// errno.
    Separate(i32),
}

/// The registration a forking process made for its child, through a new
/// open file description of the file that carries the record's lock: the
/// child takes it over (see [`Attachment::separate_from_parent`]); the
/// parent closes its copy of the descriptor after the fork, so that the
/// lock lives exactly as long as the child keeps the description.
#[derive(Debug)]
pub(super) struct ForkReservation {
    fd: OwnedFd,
    registration: Registration,
}

/// A copy of an error kept in an attachment, to be returned by every call
/// that needs the registration (errors are not `Clone`: an OS error keeps
/// its errno, and any other kind its text); `name` is the semaphore's.
fn copy_of(e: &Error, name: &str) -> Error {
    match e {
        Error::NotFound { kind, name } => Error::NotFound {
            kind: *kind,
            name: name.clone(),
        },
        Error::Busy { kind, name, reason } => Error::Busy {
            kind: *kind,
            name: name.clone(),
            reason: *reason,
        },
        Error::PermissionDenied { kind, name, errno } => Error::PermissionDenied {
            kind: *kind,
            name: name.clone(),
            errno: *errno,
        },
        Error::Corrupt { kind, name, reason } => Error::Corrupt {
            kind: *kind,
            name: name.clone(),
            reason: reason.clone(),
        },
        Error::Os {
            operation,
            kind,
            name,
            source,
        } => Error::Os {
            operation,
            kind: *kind,
            name: name.clone(),
            source: source.raw_os_error().map_or_else(
                || io::Error::new(source.kind(), source.to_string()),
                io::Error::from_raw_os_error,
            ),
        },
        other => Error::Os {
            operation: "attach at fork",
            kind: KIND,
            name: name.to_owned(),
            source: io::Error::other(other.to_string()),
        },
    }
}

/// Finds this process's attachment to the file `opened`, or makes one by
/// registering a process record in it.
pub(super) fn attach(opened: MappedFile) -> std::result::Result<Arc<Attachment>, RegisterError> {
    registry::install_fork_handlers(&opened.name)?;
    let mut registry = registry::lock();
    if let Some(existing) = registry.find(opened.identity) {
        // `opened` is closed on return; it carries no lock.
        existing.handles.fetch_add(1, Ordering::Relaxed);
        return Ok(existing);
    }
    let attachment = Arc::new(Attachment {
        file: opened,
        record: AtomicU32::new(0),
        token: AtomicU64::new(0),
        fork_generation: AtomicU64::new(registry::fork_generation()),
        handles: AtomicUsize::new(1),
        releasing: ReleaseLock::default(),
        hint: AtomicU32::new(0),
        checked_at: AtomicU64::new(0),
        lost: OnceLock::new(),
        watcher: Mutex::new(None),
    });
    attachment.register()?;
    registry.add(&attachment);
    Ok(attachment)
}

impl Attachment {
    pub(super) fn name(&self) -> &str {
        &self.file.name
    }

    pub(super) fn file(&self) -> &MappedFile {
        &self.file
    }

    /// The watcher slot; the caller holds the registry's lock.
    fn watcher_slot(&self) -> MutexGuard<'_, Option<Arc<watch::Shared>>> {
        self.watcher.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn slots(&self) -> u32 {
        self.file.slots
    }

    pub(super) fn identity(&self) -> Identity {
        self.file.identity
    }

    pub(super) fn registered_in(&self, generation: u64) -> bool {
        self.token.load(Ordering::Relaxed) != 0
            && self.fork_generation.load(Ordering::Relaxed) == generation
    }

    /// Registers in the file and remembers the registration. Runs under
    /// the registry's lock.
    fn register(&self) -> std::result::Result<(), RegisterError> {
        let Registration { record, token } = self.file.register()?;
        self.record.store(record, Ordering::Relaxed);
        self.hint.store(0, Ordering::Relaxed);
        self.fork_generation
            .store(registry::fork_generation(), Ordering::Relaxed);
        self.token.store(token, Ordering::Release);
        Ok(())
    }

    /// This process's registration, registering anew first in a forked
    /// child. The fast path is three relaxed loads.
    #[inline]
    pub(super) fn registration(&self) -> Result<Registration> {
        let token = self.token.load(Ordering::Acquire);
        if token != 0 && self.fork_generation.load(Ordering::Relaxed) == registry::fork_generation()
        {
            return Ok(Registration {
                record: self.record.load(Ordering::Relaxed),
                token,
            });
        }
        self.registration_slow()
    }

    #[cold]
    fn registration_slow(&self) -> Result<Registration> {
        let _registry = registry::lock();
        if let Some(lost) = self.lost.get() {
            return Err(self.lost_error(lost));
        }
        match self.token.load(Ordering::Acquire) {
            token
                if token != 0
                    && self.fork_generation.load(Ordering::Relaxed)
                        == registry::fork_generation() =>
            {
                Ok(Registration {
                    record: self.record.load(Ordering::Relaxed),
                    token,
                })
            }
            // Detached by the close of this process's last handle, which
            // another thread did after this one found its handle open.
            _ => Err(Error::Closed {
                kind: KIND,
                name: self.name().to_owned(),
            }),
        }
    }

    #[cold]
    fn lost_error(&self, lost: &Lost) -> Error {
        match lost {
            Lost::Attach(e) => copy_of(e, self.name()),
            Lost::Separate(errno) => self
                .file
                .os_error("reopen after fork", io::Error::from_raw_os_error(*errno)),
        }
    }

    /// Runs in the parent, from the fork handler before a fork, under the
    /// registry's lock: registers the child-to-be in the file, through a new
    /// open file description of it (`/proc/self/fd`, even if unlinked) that
    /// then carries the child's record lock, so that the child is attached
    /// from the fork on — before this process could close its own handle
    /// and find itself the last user. `None` if this process is not
    /// attached (nothing for the child to inherit).
    pub(super) fn reserve_for_child(&self) -> Option<Result<ForkReservation>> {
        if !self.registered_in(registry::fork_generation()) {
            return None;
        }
        Some((|| {
            let fresh = File::from(
                os::reopen(self.file.file.as_fd())
                    .map_err(|e| self.file.os_error("reopen for fork", e))?,
            );
            let meta = fresh
                .metadata()
                .map_err(|e| self.file.os_error("fstat", e))?;
            if Identity::of(&meta) != self.file.identity {
                return Err(self.file.os_error(
                    "reopen for fork",
                    io::Error::from_raw_os_error(libc::ESTALE),
                ));
            }
            let registration = match self.file.register_through(fresh.as_fd()) {
                Ok(registration) => registration,
                Err(RegisterError::Stale) => return Err(self.file.not_found()),
                Err(RegisterError::Failed(e)) => return Err(e),
            };
            Ok(ForkReservation {
                fd: OwnedFd::from(fresh),
                registration,
            })
        })())
    }

    /// Runs in a forked child, from the fork handler (`reservation`: what
    /// [`Self::reserve_for_child`] made before the fork): moves the child's
    /// copies of the descriptor and the mapping onto the description that
    /// carries the child's own record lock, and makes that registration
    /// this attachment's — the inherited handles are the child's handles
    /// from the fork on, holding none of the parent's slots. If there is no
    /// reservation or a step fails, the mapping becomes anonymous memory
    /// and the descriptor `/dev/null`, and the handle is unusable in this
    /// child (a clear error); either way the parent's description, and its
    /// locks, no longer depend on this process.
    pub(super) fn separate_from_parent(&self, reservation: Option<Result<ForkReservation>>) {
        // A release in another thread of the parent is no release here.
        self.releasing.0.store(false, Ordering::Relaxed);
        // Nor is its watcher thread here: the next wait starts one. (Its
        // descriptors stay open in the child until it execs.)
        if let Some(theirs) = self.watcher_slot().take() {
            std::mem::forget(theirs);
        }
        // The parent's registration is not the child's.
        if self.token.swap(0, Ordering::Relaxed) == 0 {
            // Not attached in the parent: its description carries no lock.
            return;
        }
        let outcome = match reservation {
            Some(Ok(reserved)) => self
                .move_onto(reserved.fd.as_fd())
                .map(|()| reserved.registration)
                .map_err(|e| Lost::Separate(e.raw_os_error().unwrap_or(libc::EIO))),
            Some(Err(e)) => Err(Lost::Attach(e)),
            None => Err(Lost::Separate(libc::ENOLCK)),
        };
        // The reservation's descriptor (if any) was dropped above: the
        // description lives on in the attachment's descriptor and mapping.
        match outcome {
            Ok(mine) => {
                self.file.set_pid(mine.record);
                self.record.store(mine.record, Ordering::Relaxed);
                self.hint.store(0, Ordering::Relaxed);
                self.fork_generation
                    .store(registry::fork_generation(), Ordering::Relaxed);
                self.token.store(mine.token, Ordering::Release);
            }
            Err(lost) => {
                let _ = self.lost.set(lost);
                let _ = self.file.map.detach_in_place();
                let _ = os::cover_with_null(self.file.file.as_fd());
            }
        }
    }

    /// Maps the file again in place through `fresh` (the same file) and
    /// moves the descriptor onto it.
    fn move_onto(&self, fresh: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
        self.file.map.remap_in_place(fresh)?;
        os::replace_fd(self.file.file.as_fd(), fresh)
    }

    /// Fails with [`Error::NotFound`] once the name was removed through
    /// namedipc (a flag in the file: no syscall), and, when the clock has
    /// moved by [`RECHECK_NS`] (either way: `now` is the coarse wall clock,
    /// read once per acquire) since the last look, if the name no longer
    /// refers to this file (removed or replaced behind namedipc's back: one
    /// `lstat`).
    #[inline]
    fn check_still_named(&self, now: u64) -> Result<()> {
        if self.file.flags() & super::layout::FLAG_REMOVED != 0 {
            return Err(self.file.not_found());
        }
        let last = self.checked_at.load(Ordering::Relaxed);
        if now.abs_diff(last) < RECHECK_NS {
            return Ok(());
        }
        self.file.check_named()?;
        self.checked_at.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Takes a slot if one is free now, after giving back the slots of dead
    /// holders if none is.
    #[inline]
    pub(super) fn try_acquire(&self) -> Result<bool> {
        let mine = self.registration()?;
        let now = wall_clock_ns();
        self.check_still_named(now)?;
        if self.take(mine, now)? {
            return Ok(true);
        }
        Ok(self.file.reclaim(mine) > 0 && self.take(mine, now)?)
    }

    /// Takes a free slot for `mine`, if there is one. A thread that took
    /// one as another closed the process's last handle (which detached
    /// meanwhile, and may have passed this slot by) gives it back: a slot
    /// under an ended registration would wait for a reclaimer, whom no
    /// death wakes (the process lives on).
    #[inline]
    fn take(&self, mine: Registration, now: u64) -> Result<bool> {
        if !self.file.try_take(mine.token, now, &self.hint) {
            return Ok(false);
        }
        if self.token.load(Ordering::SeqCst) != mine.token {
            self.file.give_back(mine.token, 1, &self.hint);
            return Err(Error::Closed {
                kind: KIND,
                name: self.name().to_owned(),
            });
        }
        Ok(true)
    }

    /// Begins a wait: counts a waiter in the file (until [`Self::end_wait`]).
    pub(super) fn begin_wait(&self) -> Result<WaitState> {
        let mine = self.registration()?;
        self.file.begin_wait()?;
        Ok(WaitState {
            mine,
            started: monotonic_now(),
            watcher: None,
            polling: false,
            kicked_at: None,
        })
    }

    /// Ends a wait that [`Self::begin_wait`] began.
    pub(super) fn end_wait(&self, state: &mut WaitState) {
        if let Some(watcher) = state.watcher.take() {
            let _registry = registry::lock();
            if watcher.engaged.fetch_sub(1, Ordering::SeqCst) == 1 {
                // The watcher lingers a moment, then ends.
                watcher.kick();
            }
        }
        self.file.end_wait();
    }

    /// Waits for a slot until `deadline` (monotonic; `None`: for ever), or
    /// until `is_open` says the waiting handle was closed ([`Error::Closed`]),
    /// or, if `interruptible`, a signal handler ran ([`Error::Interrupted`]).
    /// Sleeps on the futex, which every free wakes; past its grace it counts
    /// on the watcher for holders' deaths (watch.rs).
    pub(super) fn wait(
        self: &Arc<Self>,
        state: &mut WaitState,
        deadline: Option<Duration>,
        interruptible: bool,
        is_open: impl Fn() -> bool,
    ) -> Result<bool> {
        let mine = state.mine;
        loop {
            let seq = self.file.wake_seq();
            if self.take(mine, wall_clock_ns())? {
                return Ok(true);
            }
            if !is_open() {
                return Err(Error::Closed {
                    kind: KIND,
                    name: self.name().to_owned(),
                });
            }
            let now = monotonic_now();
            let mut sleep = match deadline {
                None => None,
                Some(deadline) => match deadline.checked_sub(now).filter(|d| !d.is_zero()) {
                    None => return Ok(false),
                    left => left,
                },
            };
            if let Some(watcher) = &state.watcher {
                // Woken, and no slot: the holders changed (or it was a
                // signal, a timeout): the watcher must know the new ones.
                if state.kicked_at != Some(seq) {
                    state.kicked_at = Some(seq);
                    watcher.kick();
                }
            } else if state.polling {
                sleep = Some(sleep.map_or(POLL, |s| s.min(POLL)));
            } else {
                let waited = now.saturating_sub(state.started);
                if waited >= GRACE {
                    // A holder that died during the grace.
                    if self.file.reclaim(mine) > 0 {
                        continue;
                    }
                    match self.engage() {
                        Some(watcher) => {
                            state.kicked_at = Some(seq);
                            state.watcher = Some(watcher);
                        }
                        None => state.polling = true,
                    }
                    continue;
                }
                let rest = GRACE.saturating_sub(waited);
                sleep = Some(sleep.map_or(rest, |s| s.min(rest)));
            }
            if self.file.sleep(seq, sleep) == Slept::Interrupted && interruptible {
                return Err(Error::Interrupted {
                    kind: KIND,
                    name: self.name().to_owned(),
                });
            }
            if state.polling {
                self.file.reclaim(mine);
            }
            self.file.check_named()?;
        }
    }

    /// Counts one more waiter on this attachment's watcher, starting it if
    /// none runs, and asks it for a look at the holders; `None` where
    /// there are no pidfds (or no thread could be started): poll then.
    fn engage(self: &Arc<Self>) -> Option<Arc<watch::Shared>> {
        if !watch::supported() {
            return None;
        }
        let _registry = registry::lock();
        let mut slot = self.watcher_slot();
        if let Some(watcher) = slot.as_ref() {
            watcher.engaged.fetch_add(1, Ordering::SeqCst);
            watcher.kick();
            return Some(Arc::clone(watcher));
        }
        let watcher = watch::start(self).ok()?;
        *slot = Some(Arc::clone(&watcher));
        Some(watcher)
    }

    /// Run by the watcher `watcher` when it has had no waiters for a while:
    /// whether it may end (no waiter arrived meanwhile), in which case the
    /// attachment forgets it.
    pub(super) fn stop_watching(&self, watcher: &Arc<watch::Shared>) -> bool {
        let _registry = registry::lock();
        let mut slot = self.watcher_slot();
        if watcher.engaged.load(Ordering::SeqCst) != 0 {
            return false;
        }
        if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, watcher)) {
            *slot = None;
        }
        true
    }

    /// Wakes every waiter: a handle of this process was closed, and its
    /// waiters must see it.
    pub(super) fn wake_waiters(&self) {
        self.file.wake_if_waited();
    }

    /// Gives back `n` (at least 1) slots that this process holds, all or
    /// none: if it holds fewer, fails with [`Error::InvalidArgument`] and
    /// gives back nothing.
    ///
    /// The process's releases take turns (a lock of this attachment, held
    /// for one pass over the slots). While one runs, the slots with this
    /// process's token can only become more (other threads may acquire;
    /// only a release or the detach of the process gives its slots back,
    /// and a live holder's slots are never reclaimed), so slots counted
    /// first are there to be given back next.
    #[inline]
    pub(super) fn release(&self, n: u32) -> Result<()> {
        let mine = self.registration()?;
        let _turn = self.releasing.lock();
        if n > 1 {
            let held = self.file.count_held(mine.token, n);
            if held < n {
                return Err(self.holds_fewer(held, n));
            }
        }
        let freed = self.file.give_back(mine.token, n, &self.hint);
        if freed == n {
            return Ok(());
        }
        if self.token.load(Ordering::Acquire) != mine.token {
            // Another thread closed this process's last handle meanwhile
            // (it found its handle open before): detaching gave every slot
            // of this process back.
            return Err(Error::Closed {
                kind: KIND,
                name: self.name().to_owned(),
            });
        }
        if n == 1 {
            return Err(self.holds_fewer(0, 1));
        }
        // Counted under the turn, then gone: something that is not
        // namedipc wrote the file.
        Err(self.file.corrupt(format!(
            "{} of the {n} slots this process was giving back were freed by another writer of the file meanwhile",
            n - freed
        )))
    }

    #[cold]
    fn holds_fewer(&self, held: u32, n: u32) -> Error {
        let name = self.name();
        Error::InvalidArgument(if n == 1 {
            format!(
                "this process holds no slot of robust semaphore '{name}', so it cannot release one"
            )
        } else {
            let holds = match held {
                0 => "no slot".to_owned(),
                1 => "1 slot".to_owned(),
                _ => format!("{held} slots"),
            };
            format!(
                "this process holds {holds} of robust semaphore '{name}', so it cannot release {n}; it released none"
            )
        })
    }

    /// The number of free slots now.
    pub(super) fn value(&self) -> u32 {
        self.file.value()
    }

    /// Who holds slots now.
    pub(super) fn holders(&self) -> Result<Vec<Holder>> {
        let mine = self.registration()?;
        Ok(self.file.holders(Some(mine)))
    }

    /// Removes the name if it still refers to this file.
    pub(super) fn unlink(&self) -> Result<()> {
        self.file.check_named()?;
        super::file::remove(&self.file.name, &self.file.path)
    }

    /// A new read-only open file description of this file, without
    /// close-on-exec, that holds a read lock on this process's record's
    /// liveness byte: whoever keeps it keeps the registration alive, and
    /// can neither write the file nor release the slots through it. This
    /// process's own lock on the byte becomes a read lock too (atomically:
    /// the byte is never unlocked meanwhile), so that both may hold it.
    pub(super) fn inheritable_lock(&self) -> Result<OwnedFd> {
        let mine = self.registration()?;
        let fresh = File::from(
            os::reopen_read_only_inheritable(self.file.file.as_fd())
                .map_err(|e| self.file.os_error("reopen", e))?,
        );
        let meta = fresh
            .metadata()
            .map_err(|e| self.file.os_error("fstat", e))?;
        if Identity::of(&meta) != self.file.identity {
            return Err(self
                .file
                .os_error("reopen", io::Error::from_raw_os_error(libc::ESTALE)));
        }
        let byte = LOCK_BASE + u64::from(mine.record);
        let shared = |fd| {
            match os::ofd_lock(fd, byte, os::Lock::Shared) {
                Ok(true) => Ok(()),
                // Only a write lock of another description could refuse it,
                // and this description holds the byte.
                Ok(false) => Err(io::Error::from_raw_os_error(libc::EAGAIN)),
                Err(e) => Err(e),
            }
            .map_err(|e| self.file.os_error("fcntl", e))
        };
        shared(self.file.file.as_fd())?;
        shared(fresh.as_fd())?;
        Ok(OwnedFd::from(fresh))
    }

    /// A handle of this process opened it again.
    pub(super) fn add_handle(&self) {
        let _registry = registry::lock();
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// A handle of this process closed it. When it was the last one, the
    /// process detaches: its slots and record are given back, and unless the
    /// semaphore is persistent the file is removed if no other process is
    /// attached.
    pub(super) fn close_handle(&self) {
        let _registry = registry::lock();
        if self.handles.fetch_sub(1, Ordering::Relaxed) != 1 {
            return;
        }
        let token = self.token.swap(0, Ordering::SeqCst);
        if token == 0 || self.fork_generation.load(Ordering::Relaxed) != registry::fork_generation()
        {
            // Not registered, or registered by a parent process: not ours.
            return;
        }
        self.file.detach(Registration {
            record: self.record.load(Ordering::Relaxed),
            token,
        });
    }
}
