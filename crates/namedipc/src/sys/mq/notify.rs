//! The notifications of a queue (mq_notify), and the dispatch of thread
//! notifications: glibc calls a C function in a new thread with a number,
//! never a pointer, so that a late or cancelled notification can never reach
//! freed memory. The registry of waiting callbacks lives here, with the
//! descriptor's close, because the kernel ends a process's request when any
//! of its descriptors on the queue closes, and the registry must follow.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::RawQueue;
use crate::sys::check;

/// Which queue a descriptor refers to: the device and inode of the queue's
/// file in the kernel's mqueue file system, the same for every descriptor
/// on it. The registry's key; nothing above this module sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct QueueKey {
    dev: u64,
    ino: u64,
}

impl QueueKey {
    pub(super) fn of(stat: &crate::sys::FileStat) -> Self {
        Self {
            dev: stat.dev,
            ino: stat.ino,
        }
    }
}

impl RawQueue {
    /// Asks for `signal` when a message arrives in the empty queue,
    /// replacing this process's earlier request for the queue.
    pub(crate) fn notify_signal(&self, signal: libc::c_int) -> io::Result<()> {
        may_have_requests();
        let event = NotifyEvent::signal(signal);
        let (result, replaced) = {
            let mut pending = pending();
            let replaced = self.end_request(&mut pending);
            (self.request(&event), replaced)
        };
        // Dropped outside the lock: a callback may own anything, even a
        // queue handle whose drop takes the lock.
        drop(replaced);
        result
    }

    /// Asks for `callback` to run in a new thread when a message arrives in
    /// the empty queue, replacing this process's earlier request for the
    /// queue. The callback is dropped unrun if the request is cancelled or
    /// replaced, or a descriptor of the queue is closed in this process,
    /// before a message arrives.
    pub(crate) fn notify_thread(&self, callback: Callback) -> io::Result<()> {
        may_have_requests();
        let queue = self.key()?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let event = NotifyEvent::thread(id);
        let (result, replaced, failed) = {
            let mut pending = pending();
            let replaced = self.end_request(&mut pending);
            // Registered before the kernel request, so that a notification
            // firing at once finds it (the dispatcher waits for the lock).
            pending.push(Pending {
                id,
                queue,
                callback,
            });
            let result = self.request(&event);
            let failed = result.is_err().then(|| take_by_id(&mut pending, id));
            (result, replaced, failed)
        };
        drop(replaced);
        drop(failed);
        result
    }

    /// Cancels this process's request for the queue, whichever descriptor
    /// made it, as the kernel keeps one request per queue. A callback whose
    /// message has already arrived still runs.
    pub(crate) fn cancel_notification(&self) {
        let cancelled = {
            let mut pending = pending();
            if pending.is_empty() {
                // No callback anywhere in the process: at most a signal
                // request, and none at all if nothing in the process can have
                // made one (as when a handle is closed without ever asking).
                if MAY_HAVE_REQUESTS.load(Ordering::Acquire) {
                    self.cancel_kernel_request();
                }
                None
            } else {
                self.end_request(&mut pending)
            }
        };
        drop(cancelled);
    }

    /// Ends this process's kernel request for the queue and takes its
    /// callback out of `pending`, unless a message already used the request
    /// up: then the callback is on its way to the dispatcher and stays.
    fn end_request(&self, pending: &mut Vec<Pending>) -> Option<Callback> {
        // Without a key (fstat failed) no callback can be matched to the queue.
        let queue = self.key().ok();
        let waiting =
            queue.is_some_and(|queue| has_callback(pending, queue)) && self.request_registered();
        self.cancel_kernel_request();
        if waiting {
            queue.and_then(|queue| take_latest(pending, queue))
        } else {
            None
        }
    }

    /// Whether the kernel holds a notification request for the queue. With
    /// one of our callbacks pending it is ours: another process can only
    /// register after ours is used up, in the instant before it is dispatched.
    fn request_registered(&self) -> bool {
        // SIGEV_NONE registers a request that notifies nobody: EBUSY if one
        // is registered; else it took the free slot, which we give back.
        match self.request(&NotifyEvent::none()) {
            Ok(()) => {
                self.cancel_kernel_request();
                false
            }
            Err(_) => true,
        }
    }

    fn request(&self, event: &NotifyEvent) -> io::Result<()> {
        // SAFETY: `self.mqd` is open; `event` is laid out as glibc's struct
        // sigevent (asserted below) and outlives the call; glibc copies what
        // it needs before returning.
        check(unsafe { libc::mq_notify(self.mqd, ptr::from_ref(event).cast()) }).map(drop)
    }

    /// Removes the kernel's request for the queue if this process made it
    /// (mq_notify(NULL) does nothing for another process's request).
    fn cancel_kernel_request(&self) {
        // SAFETY: `self.mqd` is open; a null sigevent means "cancel". It can
        // only fail with EBADF, which the open descriptor rules out.
        unsafe { libc::mq_notify(self.mqd, ptr::null()) };
    }
}

// The close lives here, as it settles this process's request for the queue.
impl Drop for RawQueue {
    fn drop(&mut self) {
        let cancelled = {
            let mut pending = pending();
            // Closing any descriptor of a queue ends the process's request
            // on it (the kernel's mqueue_flush_file): settle the callback in
            // the same step, so that the registry matches the kernel. With
            // no callback pending anywhere, the close alone is enough.
            let cancelled = if pending.is_empty() {
                None
            } else {
                self.end_request(&mut pending)
            };
            // SAFETY: the descriptor came from a successful mq_open and, as
            // we own it exclusively here, no other thread can be using it.
            unsafe { libc::mq_close(self.mqd) };
            cancelled
        };
        drop(cancelled);
    }
}

/// Whether this process may hold a notification request on some queue:
/// set once a handle asks for one, or hands its descriptor out (whoever has
/// it may call mq_notify), and never cleared. Until then cancelling has
/// nothing to cancel and makes no call.
static MAY_HAVE_REQUESTS: AtomicBool = AtomicBool::new(false);

/// Notes that this process may from now on hold notification requests made
/// outside [`RawQueue::notify_signal`] and [`RawQueue::notify_thread`]:
/// through a descriptor handed out.
pub(crate) fn may_have_requests() {
    MAY_HAVE_REQUESTS.store(true, Ordering::Release);
}

/// What a thread notification runs.
pub(crate) type Callback = Box<dyn FnOnce() + Send + 'static>;

/// A callback waiting for its notification.
struct Pending {
    id: usize,
    queue: QueueKey,
    callback: Callback,
}

/// Callbacks by id: per queue, the one the kernel may hold a request for,
/// and any used up but not yet dispatched. A handful in all, hence a Vec.
static PENDING: Mutex<Vec<Pending>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

fn pending() -> MutexGuard<'static, Vec<Pending>> {
    // No callback ever runs under the lock, so a poisoned lock only means a
    // panic in the few lines above, which leave the Vec consistent.
    PENDING.lock().unwrap_or_else(PoisonError::into_inner)
}

fn has_callback(pending: &[Pending], queue: QueueKey) -> bool {
    pending.iter().any(|p| p.queue == queue)
}

/// Takes the queue's newest callback, the only one the kernel may still
/// hold a request for; older ones were used up and await the dispatcher.
fn take_latest(pending: &mut Vec<Pending>, queue: QueueKey) -> Option<Callback> {
    let index = (0..pending.len())
        .filter(|&i| pending[i].queue == queue)
        .max_by_key(|&i| pending[i].id)?;
    Some(pending.swap_remove(index).callback)
}

fn take_by_id(pending: &mut Vec<Pending>, id: usize) -> Option<Callback> {
    let index = pending.iter().position(|p| p.id == id)?;
    Some(pending.swap_remove(index).callback)
}

/// Runs in the thread glibc starts for a SIGEV_THREAD notification.
extern "C" fn run_notification(value: libc::sigval) {
    let id = value.sival_ptr.addr();
    let callback = take_by_id(&mut pending(), id);
    if let Some(callback) = callback {
        // A panic must not unwind into glibc's thread start routine.
        let _ = catch_unwind(AssertUnwindSafe(callback));
    }
}

/// glibc's `struct sigevent` with the members of its union that
/// SIGEV_THREAD uses, which the libc crate does not expose.
#[repr(C)]
struct NotifyEvent {
    value: libc::sigval,
    signo: libc::c_int,
    notify: libc::c_int,
    function: Option<extern "C" fn(libc::sigval)>,
    attributes: *mut libc::pthread_attr_t,
    _padding: [usize; NOTIFY_EVENT_PADDING],
}

/// Pointer-sized words after `attributes` up to glibc's 64-byte sigevent.
const NOTIFY_EVENT_PADDING: usize = if cfg!(target_pointer_width = "64") {
    4
} else {
    11
};

const _: () = {
    assert!(std::mem::size_of::<NotifyEvent>() == std::mem::size_of::<libc::sigevent>());
    assert!(
        std::mem::offset_of!(NotifyEvent, signo)
            == std::mem::offset_of!(libc::sigevent, sigev_signo)
    );
    assert!(
        std::mem::offset_of!(NotifyEvent, notify)
            == std::mem::offset_of!(libc::sigevent, sigev_notify)
    );
    // glibc's union starts where the libc crate puts `sigev_notify_thread_id`.
    assert!(
        std::mem::offset_of!(NotifyEvent, function)
            == std::mem::offset_of!(libc::sigevent, sigev_notify_thread_id)
    );
};

impl NotifyEvent {
    fn none() -> Self {
        Self {
            notify: libc::SIGEV_NONE,
            ..Self::signal(0)
        }
    }

    fn signal(signal: libc::c_int) -> Self {
        Self {
            value: libc::sigval {
                sival_ptr: ptr::null_mut(),
            },
            signo: signal,
            notify: libc::SIGEV_SIGNAL,
            function: None,
            attributes: ptr::null_mut(),
            _padding: [0; NOTIFY_EVENT_PADDING],
        }
    }

    fn thread(id: usize) -> Self {
        Self {
            // An id, not a pointer: the dispatcher looks it up, so a
            // notification for a callback already dropped finds nothing.
            value: libc::sigval {
                sival_ptr: ptr::without_provenance_mut(id),
            },
            signo: 0,
            notify: libc::SIGEV_THREAD,
            function: Some(run_notification),
            attributes: ptr::null_mut(),
            _padding: [0; NOTIFY_EVENT_PADDING],
        }
    }
}
