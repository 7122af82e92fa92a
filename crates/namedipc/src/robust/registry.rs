//! This process's attachments, one per semaphore file, and what keeps them
//! right across `fork(2)`: a `pthread_atfork` prepare handler registers the
//! child-to-be in every file this process is attached to, through a new
//! open file description that carries the child's record lock, and the
//! child handler moves the child's copies of each attachment's descriptor
//! *and mapping* onto that description (the mapping holds a reference to
//! the description too, and OFD locks live as long as the description
//! does). So a child is attached — one of the users that keep a
//! non-persistent semaphore alive — from the fork on, before its parent can
//! close its own handle, and it never keeps its parent's liveness locks
//! alive (see attachment.rs).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use super::attachment::{Attachment, ForkReservation};
use super::KIND;
use crate::error::{Error, Result};
use crate::paths::Identity;
use crate::sys::robust as os;

/// This process's attachments (weak: a handle's drop ends one). Every
/// registration change happens while holding it, and a fork waits for it.
pub(super) struct Registry(Vec<Weak<Attachment>>);

static REGISTRY: Mutex<Registry> = Mutex::new(Registry(Vec::new()));

/// Bumped in every forked child: a registration made under another value
/// belongs to an ancestor.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// What the forking thread holds from just before a fork until just after
/// it (in the parent and in the child): the registry, and the registrations
/// made for the child.
struct HeldOverFork {
    registry: MutexGuard<'static, Registry>,
    reservations: Vec<(Arc<Attachment>, Result<ForkReservation>)>,
}

thread_local! {
    static HELD_OVER_FORK: RefCell<Option<HeldOverFork>> = const { RefCell::new(None) };
}

/// Locks the registry.
pub(super) fn lock() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many forks lie between the first process and this one.
#[inline]
pub(super) fn fork_generation() -> u64 {
    FORK_GENERATION.load(Ordering::Relaxed)
}

impl Registry {
    /// This process's attachment to the file `identity`, if it has one that
    /// this process (not an ancestor) registered.
    pub(super) fn find(&mut self, identity: Identity) -> Option<Arc<Attachment>> {
        self.0.retain(|weak| weak.strong_count() > 0);
        let generation = fork_generation();
        self.0
            .iter()
            .filter_map(Weak::upgrade)
            .find(|a| a.identity() == identity && a.registered_in(generation))
    }

    pub(super) fn add(&mut self, attachment: &Arc<Attachment>) {
        self.0.push(Arc::downgrade(attachment));
    }
}

extern "C" fn before_fork() {
    let registry = lock();
    let reservations = registry
        .0
        .iter()
        .filter_map(Weak::upgrade)
        .filter_map(|a| a.reserve_for_child().map(|r| (a, r)))
        .collect();
    HELD_OVER_FORK.with(|slot| {
        *slot.borrow_mut() = Some(HeldOverFork {
            registry,
            reservations,
        });
    });
}

/// Also runs when the fork failed: the registrations made for the child
/// then end with the parent's copies of their descriptors, like those of a
/// process that died.
extern "C" fn after_fork_in_parent() {
    HELD_OVER_FORK.with(|slot| drop(slot.borrow_mut().take()));
}

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
    HELD_OVER_FORK.with(|slot| {
        let Some(HeldOverFork {
            registry,
            mut reservations,
        }) = slot.borrow_mut().take()
        else {
            return;
        };
        for attachment in registry.0.iter().filter_map(Weak::upgrade) {
            let reservation = reservations
                .iter()
                .position(|(a, _)| Arc::ptr_eq(a, &attachment))
                .map(|i| reservations.swap_remove(i).1);
            attachment.separate_from_parent(reservation);
        }
        drop(registry);
    });
}

/// Installs the fork handlers once per process; `name` is the semaphore
/// being opened, for the error.
pub(super) fn install_fork_handlers(name: &str) -> Result<()> {
    static INSTALLED: OnceLock<std::result::Result<(), i32>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            os::at_fork(before_fork, after_fork_in_parent, after_fork_in_child)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))
        })
        .map_err(|errno| {
            Error::from_os(
                "pthread_atfork",
                KIND,
                name,
                std::io::Error::from_raw_os_error(errno),
            )
        })
}
