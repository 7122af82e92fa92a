//! POSIX message queues (mq_open, mq_timedsend, mq_timedreceive, mq_notify
//! and friends), and the dispatch of thread notifications: glibc calls a C
//! function in a new thread with a number, never a pointer, so that a late or
//! cancelled notification can never reach freed memory.

use std::ffi::CStr;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{check, clock_now, to_timespec};

/// The highest priority a message can have, `MQ_PRIO_MAX - 1`. Linux fixes
/// `MQ_PRIO_MAX` at 32768 (`sysconf(_SC_MQ_PRIO_MAX)`, checked by a test).
pub(crate) const PRIORITY_MAX: u32 = 32767;

/// How long a send or receive may wait for room or for a message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all.
    Never,
    /// At most this long.
    For(Duration),
    /// As long as it takes.
    Forever,
}

impl Wait {
    /// The absolute CLOCK_REALTIME deadline that mq_timedsend and
    /// mq_timedreceive take; `None` waits without one.
    fn deadline(self) -> Option<libc::timespec> {
        match self {
            // The epoch itself: for a zero deadline the kernel answers
            // ETIMEDOUT at once, without arming a timer or sleeping.
            Self::Never => Some(libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }),
            Self::For(timeout) => Some(to_timespec(
                clock_now(libc::CLOCK_REALTIME).saturating_add(timeout),
            )),
            Self::Forever => None,
        }
    }
}

/// Which queue a descriptor refers to: (device, inode) of the queue's file
/// in the kernel's mqueue file system, the same for every descriptor on it.
pub(crate) type QueueIdentity = (u64, u64);

/// A queue's attributes, as `mq_getattr` reports them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attributes {
    pub(crate) nonblocking: bool,
    pub(crate) max_messages: libc::c_long,
    pub(crate) max_message_size: libc::c_long,
    pub(crate) current_messages: libc::c_long,
}

/// What `RawQueue::open` does when no queue has the name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Create {
    /// Fail with EEXIST if the name is taken.
    pub(crate) exclusive: bool,
    pub(crate) mode: u32,
    /// (max_messages, max_message_size); `None` takes the system defaults.
    pub(crate) limits: Option<(i64, i64)>,
}

/// An open message queue descriptor; `mq_close`d on drop.
#[derive(Debug)]
pub(crate) struct RawQueue {
    mqd: libc::mqd_t,
    /// Which queue this is, for the notification registry; taken (fstat) only
    /// when a thread notification is in play, as opens and closes are hot.
    identity: OnceLock<QueueIdentity>,
}

impl RawQueue {
    /// Opens the queue `name` (which must start with '/', as glibc requires)
    /// with `access` (O_RDONLY, O_WRONLY or O_RDWR).
    pub(crate) fn open(
        name: &CStr,
        access: libc::c_int,
        nonblocking: bool,
        create: Option<Create>,
    ) -> io::Result<Self> {
        let mut oflag = access;
        if nonblocking {
            oflag |= libc::O_NONBLOCK;
        }
        let mqd = match create {
            // SAFETY: `name` is a valid NUL-terminated string; without O_CREAT
            // mq_open reads no variadic arguments.
            None => unsafe { libc::mq_open(name.as_ptr(), oflag) },
            Some(create) => {
                oflag |= libc::O_CREAT;
                if create.exclusive {
                    oflag |= libc::O_EXCL;
                }
                let mut attr = zeroed_attr();
                let attr_ptr = match create.limits {
                    Some((max_messages, max_message_size)) => {
                        attr.mq_maxmsg = max_messages as libc::c_long;
                        attr.mq_msgsize = max_message_size as libc::c_long;
                        ptr::from_ref(&attr)
                    }
                    None => ptr::null(),
                };
                // SAFETY: `name` is NUL-terminated; with O_CREAT mq_open reads
                // exactly a mode_t and a `struct mq_attr *` (null: defaults),
                // which is what we pass; `attr` outlives the call.
                unsafe {
                    libc::mq_open(name.as_ptr(), oflag, create.mode as libc::mode_t, attr_ptr)
                }
            }
        };
        if mqd == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            mqd,
            identity: OnceLock::new(),
        })
    }

    /// The queue's identity, taken on first use.
    fn identity(&self) -> io::Result<QueueIdentity> {
        if let Some(identity) = self.identity.get() {
            return Ok(*identity);
        }
        let identity = identity(self.mqd)?;
        Ok(*self.identity.get_or_init(|| identity))
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.mqd
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: on Linux a queue descriptor is a file descriptor, and it
        // stays open until `self` is dropped, which the borrow prevents.
        unsafe { BorrowedFd::borrow_raw(self.mqd) }
    }

    pub(crate) fn attributes(&self) -> io::Result<Attributes> {
        let mut attr = zeroed_attr();
        // SAFETY: `self.mqd` is open; `attr` is a valid, writable mq_attr.
        check(unsafe { libc::mq_getattr(self.mqd, &raw mut attr) })?;
        Ok(Attributes {
            nonblocking: attr.mq_flags & libc::c_long::from(libc::O_NONBLOCK) != 0,
            max_messages: attr.mq_maxmsg,
            max_message_size: attr.mq_msgsize,
            current_messages: attr.mq_curmsgs,
        })
    }

    /// Sets or clears O_NONBLOCK, the only attribute mq_setattr changes.
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        let mut attr = zeroed_attr();
        if nonblocking {
            attr.mq_flags = libc::c_long::from(libc::O_NONBLOCK);
        }
        // SAFETY: `self.mqd` is open; `attr` is a valid mq_attr; the old
        // attributes are not asked for (null).
        check(unsafe { libc::mq_setattr(self.mqd, &raw const attr, ptr::null_mut()) }).map(drop)
    }

    /// Sends `message`. Errors: ETIMEDOUT when `wait` ran out, EAGAIN when
    /// the queue is full and the descriptor is non-blocking, EINTR when a
    /// signal handler ran, EMSGSIZE, EBADF (not open for writing).
    pub(crate) fn send(&self, message: &[u8], priority: u32, wait: Wait) -> io::Result<()> {
        let deadline = wait.deadline();
        let deadline_ptr = deadline.as_ref().map_or(ptr::null(), ptr::from_ref);
        // SAFETY: `self.mqd` is open; `message` is valid for reads of its
        // length; `deadline_ptr` is null (no deadline) or points to a valid
        // timespec that outlives the call.
        check(unsafe {
            libc::mq_timedsend(
                self.mqd,
                message.as_ptr().cast(),
                message.len(),
                priority,
                deadline_ptr,
            )
        })
        .map(drop)
    }

    /// Receives the oldest message of the highest priority into `buf`, which
    /// must hold at least the queue's max_message_size bytes (else EMSGSIZE);
    /// returns (length, priority). Other errors as for `send`.
    pub(crate) fn receive(&self, buf: &mut [u8], wait: Wait) -> io::Result<(usize, u32)> {
        let deadline = wait.deadline();
        let deadline_ptr = deadline.as_ref().map_or(ptr::null(), ptr::from_ref);
        let mut priority: libc::c_uint = 0;
        // SAFETY: `self.mqd` is open; `buf` is valid for writes of its length
        // and the kernel writes at most that many bytes; `priority` is a
        // valid, writable c_uint; `deadline_ptr` as in `send`.
        let len = unsafe {
            libc::mq_timedreceive(
                self.mqd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &raw mut priority,
                deadline_ptr,
            )
        };
        match usize::try_from(len) {
            Ok(len) => Ok((len, priority)),
            Err(_) => Err(io::Error::last_os_error()),
        }
    }

    /// Asks for `signal` when a message arrives in the empty queue,
    /// replacing this process's earlier request for the queue.
    pub(crate) fn notify_signal(&self, signal: libc::c_int) -> io::Result<()> {
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
        let queue = self.identity()?;
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
                // No callback anywhere in the process: at most a signal request.
                self.cancel_kernel_request();
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
        // Without an identity (fstat failed) no callback can be matched to the queue.
        let queue = self.identity().ok();
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

pub(crate) fn unlink(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string.
    check(unsafe { libc::mq_unlink(name.as_ptr()) }).map(drop)
}

/// The signals reserved for applications: SIGRTMIN..=SIGRTMAX (glibc keeps
/// the first few real-time signals for itself, so these are functions).
pub(crate) fn realtime_signals() -> (i32, i32) {
    (libc::SIGRTMIN(), libc::SIGRTMAX())
}

/// `sysconf(_SC_MQ_PRIO_MAX)`, or None if the system does not say.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn priority_limit() -> Option<libc::c_long> {
    // SAFETY: sysconf has no preconditions.
    let limit = unsafe { libc::sysconf(libc::_SC_MQ_PRIO_MAX) };
    (limit > 0).then_some(limit)
}

fn zeroed_attr() -> libc::mq_attr {
    // SAFETY: mq_attr is a plain C struct of integers; all zeroes is valid.
    unsafe { std::mem::zeroed() }
}

fn identity(mqd: libc::mqd_t) -> io::Result<QueueIdentity> {
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `mqd` is an open descriptor; `stat` is valid and writable.
    check(unsafe { libc::fstat(mqd, &raw mut stat) })?;
    Ok((stat.st_dev, stat.st_ino))
}

/// What a thread notification runs.
pub(crate) type Callback = Box<dyn FnOnce() + Send + 'static>;

/// A callback waiting for its notification.
struct Pending {
    id: usize,
    queue: QueueIdentity,
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

fn has_callback(pending: &[Pending], queue: QueueIdentity) -> bool {
    pending.iter().any(|p| p.queue == queue)
}

/// Takes the queue's newest callback, the only one the kernel may still
/// hold a request for; older ones were used up and await the dispatcher.
fn take_latest(pending: &mut Vec<Pending>, queue: QueueIdentity) -> Option<Callback> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_max_matches_the_system() {
        let limit = priority_limit().expect("sysconf(_SC_MQ_PRIO_MAX)");
        assert_eq!(u32::try_from(limit - 1), Ok(PRIORITY_MAX));
    }

    #[test]
    fn realtime_signals_are_a_range() {
        let (min, max) = realtime_signals();
        assert!(0 < min && min < max, "{min}..={max}");
    }
}
