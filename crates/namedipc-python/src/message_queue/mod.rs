//! `namedipc.MessageQueue`: posix_ipc 1.3's MessageQueue, without its
//! crashes: any bad message raises, a pending callback notification keeps
//! what it needs alive, and a received message holds only its own bytes.
//!
//! Over 500 lines because posix_ipc's class has some thirty methods and
//! properties, and PyO3 wants a class's methods in one `#[pymethods]` block
//! (several need its `multiple-pymethods` feature and the `inventory` crate);
//! what is not a method lives in `buffers.rs` and `notify.rs`.

use std::os::fd::{AsRawFd, IntoRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use namedipc::flags::O_NONBLOCK;
use namedipc::mqueue::{self, Limits, MessageQueue, PRIORITY_MAX};
use namedipc::Error;
use namedipc::{ObjectKind, Owner, Trust};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PySlice, PyString, PyTuple, PyType};

use crate::aio;
use crate::args::{self, Negative, Target, Timeout, RANDOM_PREFIX};
use crate::errors::{self, to_py_err, Direction, GaveUp};
use crate::init::Handle;
use crate::pickling::{self, qualified_name};
use crate::wait::{Attempt, OnSignal, Undo, Wait};

mod buffers;
mod notify;
mod slot;

use buffers::{bytes_like, message_bytes, writable_view};
use notify::{callback_and_param, run_callback};
use slot::Slot;

const KIND: ObjectKind = ObjectKind::MessageQueue;

/// The queue as pending callback notifications hold it: shared by the
/// handle and its callbacks, emptied by `close()`.
type Pinned = Arc<Mutex<Option<Arc<MessageQueue>>>>;

/// The system's defaults for new queues, read once when the module loads
/// (posix_ipc bakes in the values of the machine it was built on).
static DEFAULTS: OnceLock<Limits> = OnceLock::new();

fn defaults() -> &'static Limits {
    DEFAULTS.get_or_init(mqueue::system_limits)
}

/// What `__init__` opened: the queue until `close()`, the rest kept after
/// it for `name`, `repr` and the like. The whole of it lives under the
/// handle's one mutex (no set-once cell beside it, paid for on every open);
/// what a call needs is copied out under the lock, which is never held
/// while Python code runs or a thread waits.
struct Opened {
    /// The name, with exactly one leading slash: the caller's own str when
    /// it has that form (kept, not copied), else one made from the queue's.
    name: Py<PyString>,
    mode: u32,
    /// The queue's owner and mode, read from the descriptor when first
    /// asked (posix_ipc's open reads nothing) and kept for after `close()`.
    owner: Option<Owner>,
    read: bool,
    write: bool,
    max_messages: usize,
    max_message_size: usize,
    created: bool,
    /// Closed by `close()`. Each call that uses the queue outside the lock
    /// works on its own clone, so `close()` closes the descriptor only when
    /// the last call using it has returned: a descriptor number is never
    /// reused under a thread still waiting on it.
    queue: Slot,
}

#[pyclass(module = "namedipc", name = "MessageQueue", frozen, subclass, weakref)]
pub(crate) struct PyMessageQueue {
    /// `None` until `__init__` has run.
    state: Mutex<Option<Opened>>,
    /// A max_message_size buffer reused by receives; the bytes returned are
    /// copied out at their exact length.
    scratch: Mutex<Vec<u8>>,
    /// The descriptor's number was handed out (`.mqd`, `fileno()`): from
    /// then on the user may have closed it or handed it on, so collecting
    /// the object must not close that number (posix_ipc never closes it).
    exposed: AtomicBool,
    /// What keeps the descriptor open for pending callback notifications
    /// (so that deleting the object does not cancel them): each callback
    /// holds this slot, not the queue, and `close()` empties it, so that the
    /// descriptor closes in `close()` and not later in a callback's thread,
    /// where its close would end a request asked for after `close()`.
    /// Made by the first callback request, so that a handle that never asks
    /// for one allocates nothing for it.
    pinned: OnceLock<Pinned>,
}

impl Drop for PyMessageQueue {
    /// Collected without close(): a descriptor whose number was handed out
    /// is left open, as posix_ipc leaves it; one never handed out is closed.
    fn drop(&mut self) {
        if !*self.exposed.get_mut() {
            return;
        }
        let slot = self
            .state
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .map_or(Slot::Closed, |opened| opened.queue.take());
        // A pending callback notification may hold the other reference; then
        // the descriptor closes with it, when the callback has run.
        let queue = match slot {
            Slot::Own(queue) => Some(queue),
            Slot::Shared(queue) => Arc::try_unwrap(queue).ok(),
            Slot::Closed => None,
        };
        if let Some(queue) = queue {
            let _left_open = queue.into_raw_fd();
        }
    }
}

/// Locks a mutex that guards plain data (a panic cannot leave it half-updated).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[allow(clippy::too_many_arguments)] // posix_ipc's constructor
impl PyMessageQueue {
    /// A handle `__init__` has not run on, as `__new__` makes it.
    pub(crate) fn unopened() -> Self {
        Self {
            state: Mutex::new(None),
            scratch: Mutex::new(Vec::new()),
            exposed: AtomicBool::new(false),
            pinned: OnceLock::new(),
        }
    }

    /// `__init__`'s body: the arguments checked, then the open. The
    /// constructor's fast path (`fast_path.rs`) calls it with the handle it
    /// has just made, `Handle::New`, whose state is stored without its lock.
    pub(crate) fn init(
        handle: Handle<'_, Self>,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        flags: Option<&Bound<'_, PyAny>>,
        mode: Option<&Bound<'_, PyAny>>,
        max_messages: Option<&Bound<'_, PyAny>>,
        max_message_size: Option<&Bound<'_, PyAny>>,
        read: Option<&Bound<'_, PyAny>>,
        write: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let name = args::optional_name(name)?;
        let limit = i64::from(i32::MAX);
        let flags = args::flags(flags)?;
        let mode = args::mode(mode)?;
        let defaults = defaults();
        let max_messages = args::int_or(
            max_messages,
            i64::try_from(defaults.default_max_messages).unwrap_or(limit),
            "max_messages",
            1,
            limit,
        )?;
        let max_message_size = args::int_or(
            max_message_size,
            i64::try_from(defaults.default_max_message_size).unwrap_or(limit),
            "max_message_size",
            1,
            limit,
        )?;
        let read = read.map_or(Ok(true), PyAnyMethods::is_truthy)?;
        let write = write.map_or(Ok(true), PyAnyMethods::is_truthy)?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // ranges checked above
        Self::open(
            handle,
            py,
            name,
            flags,
            mode,
            max_messages as usize,
            max_message_size as usize,
            read,
            write,
        )
    }

    fn open(
        handle: Handle<'_, Self>,
        py: Python<'_>,
        name: Option<Bound<'_, PyString>>,
        flags: i64,
        mode: u32,
        max_messages: usize,
        max_message_size: usize,
        read: bool,
        write: bool,
    ) -> PyResult<()> {
        args::require_creat_with_excl(flags, KIND)?;
        if !read && !write {
            return Err(PyValueError::new_err(
                "at least one of read or write must be True",
            ));
        }
        // The given name's text is read before the lock is taken (see below).
        let target = args::target(name, flags, KIND)?;
        let text = match &target {
            Target::Random => "",
            Target::Named(given, _) => args::text(given)?,
        };
        // posix_ipc's ways: any owner, and the umask narrows the mode.
        let options = MessageQueue::options()
            .trust(Trust::anyone())
            .apply_umask(true)
            .mode(mode)
            .max_messages(max_messages)
            .max_message_size(max_message_size)
            .read(read)
            .write(write)
            .blocking(flags & i64::from(O_NONBLOCK) == 0);
        // A shared handle's lock is held while the queue is opened, so that
        // of two racing __init__ calls the second opens (or creates)
        // nothing. No Python code runs under it, nor anything that could
        // start the garbage collector (whose finalizers might call this very
        // handle): the open makes system calls, a str is no container, and
        // the core's error becomes Python's after the lock.
        let failed = {
            let mut state = handle.state(|this| lock(&this.state), |this| &mut this.state);
            if state.is_some() {
                drop(state);
                return Err(errors::already_initialised(KIND));
            }
            let opened = match &target {
                Target::Random => options.create_random(RANDOM_PREFIX),
                Target::Named(_, existence) => options.existence(*existence).open(text),
            };
            match opened {
                Ok(queue) => {
                    // The queue shows its name with exactly one leading
                    // slash: the name given is kept, not copied, when it
                    // already has that form.
                    let name = match &target {
                        Target::Named(given, _) if text == queue.name() => given.clone(),
                        _ => PyString::new(py, queue.name()),
                    };
                    let opened = Opened {
                        name: name.unbind(),
                        mode,
                        owner: None,
                        read,
                        write,
                        max_messages: queue.max_messages(),
                        max_message_size: queue.max_message_size(),
                        created: queue.created(),
                        queue: Slot::Own(queue),
                    };
                    // Empty, as checked above: forgetting the old value
                    // spares the code that drops an `Opened`.
                    std::mem::forget(state.replace(opened));
                    return Ok(());
                }
                Err(e) => e,
            }
        };
        Err(to_py_err(failed))
    }

    /// `f` of what `__init__` opened, under the lock; TypeError if
    /// `__init__` never ran. `f` only reads, copies or clones.
    fn with<R>(&self, f: impl FnOnce(&mut Opened) -> R) -> PyResult<R> {
        match lock(&self.state).as_mut() {
            Some(opened) => Ok(f(opened)),
            None => Err(errors::uninitialised(KIND)),
        }
    }

    /// The name (the str kept).
    fn name_str<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        self.with(|opened| opened.name.clone_ref(py).into_bound(py))
    }

    /// The queue's owner and mode: kept, or read now from the open descriptor.
    fn owner(&self, py: Python<'_>) -> PyResult<Owner> {
        let (owner, queue) = self.with(|opened| (opened.owner, opened.queue.share()))?;
        if let Some(owner) = owner {
            return Ok(owner);
        }
        let Some(queue) = queue else {
            let name = self.name_str(py)?;
            return Err(errors::owner_not_read(py, KIND, name.to_str()?, "close()"));
        };
        let owner = queue.owner().map_err(to_py_err)?;
        self.with(|opened| *opened.owner.get_or_insert(owner))
    }

    /// The first step of `close()`: a queue no call ever used outside the
    /// lock closes here, at once (nobody waits on it, no callback holds it,
    /// no receive filled the scratch buffer), and closing the descriptor
    /// ends the process's request on the queue, in the kernel and in the
    /// core's registry alike; a shared one is returned for
    /// [`Self::close_shared`]. ExistentialError if it is closed already.
    /// Runs no Python code (`fast_path.rs` calls it without PyO3).
    pub(crate) fn take_queue(&self) -> PyResult<Option<Arc<MessageQueue>>> {
        match self.with(|opened| opened.queue.take())? {
            Slot::Closed => Err(self.closed_error()),
            Slot::Own(queue) => {
                drop(queue);
                Ok(None)
            }
            Slot::Shared(queue) => Ok(Some(queue)),
        }
    }

    /// The rest of `close()` for a queue that calls may hold.
    pub(crate) fn close_shared(&self, queue: Arc<MessageQueue>) {
        // Threads waiting on this handle return at once, sending or taking
        // nothing, and raise ExistentialError (`is_open` is false now).
        queue.end_waits();
        // A pending callback holds the queue open: cancel it first, so that
        // the descriptor closes now (or when the last waiter returns).
        queue.cancel_notification();
        // Callbacks whose message already arrived still run, but no longer
        // hold the descriptor open: it closes now (or when the last waiter
        // returns), before anything the caller does after close().
        if let Some(pinned) = self.pinned.get() {
            let pinned = lock(pinned).take();
            drop(pinned);
        }
        drop(queue);
        *lock(&self.scratch) = Vec::new();
    }

    /// ExistentialError: the handle is closed.
    fn closed_error(&self) -> PyErr {
        Python::attach(|py| {
            let name = match self.name_str(py) {
                Ok(name) => name,
                Err(err) => return err,
            };
            match name.to_str() {
                Ok(name) => errors::closed(KIND, name),
                Err(err) => err,
            }
        })
    }

    /// The open queue, or ExistentialError after `close()`.
    fn queue(&self) -> PyResult<Arc<MessageQueue>> {
        self.with(|opened| opened.queue.share())?
            .ok_or_else(|| self.closed_error())
    }

    fn is_open(&self) -> bool {
        lock(&self.state)
            .as_ref()
            .is_some_and(|opened| opened.queue.is_open())
    }

    /// The open queue and its name, if this handle may `direction` on it.
    fn queue_for<'py>(
        &self,
        py: Python<'py>,
        direction: Direction,
    ) -> PyResult<(Arc<MessageQueue>, Bound<'py, PyString>)> {
        let (queue, name, allowed) = self.with(|opened| {
            let allowed = match direction {
                Direction::Send => opened.write,
                Direction::Receive => opened.read,
            };
            (opened.queue.share(), opened.name.clone_ref(py), allowed)
        })?;
        let name = name.into_bound(py);
        match queue {
            None => Err(self.closed_error()),
            Some(queue) if allowed => Ok((queue, name)),
            Some(_) => Err(errors::queue_not_open_for(py, name.to_str()?, direction)),
        }
    }

    /// Runs `attempt` until it moves a message: at once if it can, else
    /// waiting as `timeout` says, detached from the interpreter.
    fn transfer<T: Send>(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyString>,
        timeout: Timeout,
        direction: Direction,
        attempt: impl FnMut(Attempt) -> namedipc::Result<Option<T>> + Send,
    ) -> PyResult<T> {
        let name = name.to_str()?;
        let moved = Wait {
            kind: KIND,
            name,
            on_signal: OnSignal::Raise,
            is_open: || self.is_open(),
            fail: |e| match e {
                // Only a wait through a handle with block=False ends so.
                Error::Busy { .. } => errors::queue_busy(py, name, direction, GaveUp::NonBlocking),
                e => to_py_err(e),
            },
            // A message that moved has moved: the caller gets it.
            undo: Undo::NEVER,
        }
        .run(py, timeout, attempt)?;
        moved.ok_or_else(|| {
            let why = match timeout {
                Timeout::NoWait => GaveUp::NoWait,
                Timeout::For(d) => GaveUp::TimedOut(d),
                Timeout::Forever => GaveUp::TimedOut(Duration::MAX),
            };
            errors::queue_busy(py, name, direction, why)
        })
    }

    /// Receives one message into the reusable buffer and hands it to `deliver`.
    fn receive_with<R>(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
        deliver: impl FnOnce(&[u8], u32) -> PyResult<R>,
    ) -> PyResult<R> {
        let timeout = args::timeout(timeout, Negative::Reject)?;
        let (queue, name) = self.queue_for(py, Direction::Receive)?;
        let mut buf = std::mem::take(&mut *lock(&self.scratch));
        if buf.len() < queue.max_message_size() {
            // The first receive, or another thread is using the cached buffer.
            buf = queue.new_buffer();
        }
        let received = self.transfer(
            py,
            &name,
            timeout,
            Direction::Receive,
            |attempt| match attempt {
                Attempt::Now => queue.try_receive(&mut buf),
                Attempt::Wait(limit) => queue.receive_interruptible(&mut buf, limit),
            },
        );
        let result = received.and_then(|got| deliver(&buf[..got.len], got.priority));
        let mut scratch = lock(&self.scratch);
        if scratch.is_empty() && self.is_open() {
            *scratch = buf;
        }
        result
    }
}

#[pymethods]
impl PyMessageQueue {
    #[new]
    #[pyo3(
        signature = (*_args, **_kwargs),
        text_signature = "(name, flags=0, mode=0o600, max_messages=namedipc._namedipc.QUEUE_MESSAGES_MAX_DEFAULT, max_message_size=namedipc._namedipc.QUEUE_MESSAGE_SIZE_MAX_DEFAULT, read=True, write=True)"
    )]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self::unopened()
    }

    #[pyo3(signature = (
        name, flags = None, mode = None, max_messages = None, max_message_size = None,
        read = None, write = None
    ))]
    #[allow(clippy::too_many_arguments)] // posix_ipc's constructor
    pub(crate) fn __init__(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        flags: Option<&Bound<'_, PyAny>>,
        mode: Option<&Bound<'_, PyAny>>,
        max_messages: Option<&Bound<'_, PyAny>>,
        max_message_size: Option<&Bound<'_, PyAny>>,
        read: Option<&Bound<'_, PyAny>>,
        write: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        Self::init(
            Handle::Shared(self),
            py,
            name,
            flags,
            mode,
            max_messages,
            max_message_size,
            read,
            write,
        )
    }

    /// Sends a message (bytes, a str as UTF-8, or any bytes-like object)
    /// with a priority from 0 to QUEUE_PRIORITY_MAX; higher priorities are
    /// received first. timeout None waits for room as long as it takes, 0
    /// never waits, > 0 waits at most that many seconds; BusyError when the
    /// queue stays full.
    #[pyo3(
        signature = (message, timeout = None, priority = None),
        text_signature = "(self, /, message, timeout=None, priority=0)"
    )]
    fn send(
        &self,
        py: Python<'_>,
        message: &Bound<'_, PyAny>,
        timeout: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let converted;
        let bytes: &[u8] = if let Ok(b) = message.cast::<PyBytes>() {
            b.as_bytes()
        } else if let Ok(s) = message.cast::<PyString>() {
            s.to_str()?.as_bytes()
        } else {
            converted = bytes_like(message)?;
            converted.as_bytes()
        };
        let timeout = args::timeout(timeout, Negative::Reject)?;
        let priority = args::int_or(priority, 0, "priority", 0, i64::from(PRIORITY_MAX))?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // range checked above
        let priority = priority as u32;
        let (queue, name) = self.queue_for(py, Direction::Send)?;
        self.transfer(py, &name, timeout, Direction::Send, |attempt| {
            let sent = match attempt {
                Attempt::Now => queue.try_send(bytes, priority),
                Attempt::Wait(limit) => queue.send_interruptible(bytes, priority, limit),
            };
            sent.map(|sent| sent.then_some(()))
        })
    }

    /// Receives the oldest message of the highest priority as (bytes,
    /// priority). timeout as for send(); BusyError when the queue stays empty.
    #[pyo3(signature = (timeout = None))]
    fn receive<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Bound<'py, PyBytes>, u32)> {
        self.receive_with(py, timeout, |message, priority| {
            Ok((PyBytes::new(py, message), priority))
        })
    }

    /// Receives a message into `buffer` (a writable bytes-like object of at
    /// least max_message_size bytes, e.g. a bytearray) and returns (nbytes,
    /// priority): the message is buffer[:nbytes]. timeout as for receive().
    #[pyo3(signature = (buffer, timeout = None))]
    fn receive_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(usize, u32)> {
        let (max_message_size, name) =
            self.with(|opened| (opened.max_message_size, opened.name.clone_ref(py)))?;
        // Checked before a message is taken from the queue, so that a buffer
        // that cannot hold it never costs one.
        let view = writable_view(buffer, max_message_size, name.bind(py).to_str()?)?;
        self.receive_with(py, timeout, |message, priority| {
            let stop = isize::try_from(message.len()).unwrap_or(isize::MAX);
            let part = view.get_item(PySlice::new(py, 0, stop, 1))?;
            PyBuffer::<u8>::get(&part)?.copy_from_slice(py, message)?;
            Ok((message.len(), priority))
        })
    }

    /// Awaitable send: as send(), but waits for room on the running event
    /// loop, watching the queue's descriptor (no thread). The message is
    /// taken as it is at the call.
    #[pyo3(
        signature = (message, *, priority = None, timeout = None),
        text_signature = "(self, /, message, *, priority=0, timeout=None)"
    )]
    fn send_async<'py>(
        slf: &Bound<'py, Self>,
        message: &Bound<'py, PyAny>,
        priority: Option<&Bound<'py, PyAny>>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let message = message_bytes(message)?;
        let priority = args::int_or(priority, 0, "priority", 0, i64::from(PRIORITY_MAX))?;
        let timeout = aio::seconds(args::timeout(timeout, Negative::Reject)?);
        aio::coroutine(
            intern!(slf.py(), "send_async"),
            (slf, message, priority, timeout),
        )
    }

    /// Awaitable receive: as receive(), but waits for a message on the
    /// running event loop, watching the queue's descriptor (no thread).
    #[pyo3(signature = (timeout = None))]
    fn receive_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = aio::seconds(args::timeout(timeout, Negative::Reject)?);
        aio::coroutine(intern!(slf.py(), "receive_async"), (slf, timeout))
    }

    /// Asks for notification when a message arrives in the empty queue:
    /// None cancels, an int is a signal number to send to this process, a
    /// (callable, param) tuple calls callable(param) in a new thread. A
    /// request fires once; the kernel keeps one per queue.
    #[pyo3(signature = (notification = None))]
    fn request_notification(
        &self,
        py: Python<'_>,
        notification: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let queue = self.queue()?;
        let name = queue.name();
        let Some(notification) = notification.filter(|n| !n.is_none()) else {
            queue.cancel_notification();
            return Ok(());
        };
        let requested = if notification.is_instance_of::<PyInt>() {
            let max = *mqueue::user_signals().end();
            let signal = args::int_in_range(notification, "a notification signal", 1, max.into())?;
            #[allow(clippy::cast_possible_truncation)] // range checked above
            queue.notify_by_signal(signal as i32)
        } else {
            let (callable, param) = callback_and_param(notification)?;
            let pinned = self.pinned.get_or_init(Pinned::default);
            *lock(pinned) = Some(Arc::clone(&queue));
            let keep = Arc::clone(pinned);
            queue.notify_by_thread(move || run_callback(callable, param, keep))
        };
        requested.map_err(|e| match e {
            Error::Busy { .. } => errors::queue_notification_taken(py, name),
            e => to_py_err(e),
        })
    }

    /// Closes this handle; the queue itself lives on until unlinked. Ends
    /// this process's notification request on the queue, as closing any
    /// descriptor of it does.
    fn close(&self) -> PyResult<()> {
        if let Some(queue) = self.take_queue()? {
            self.close_shared(queue);
        }
        Ok(())
    }

    /// Removes the queue's name; handles already open keep working.
    pub(crate) fn unlink(&self, py: Python<'_>) -> PyResult<()> {
        mqueue::unlink(self.name_str(py)?.to_str()?).map_err(to_py_err)
    }

    /// The queue descriptor, for select/poll; -1 once closed (as posix_ipc).
    fn fileno(&self) -> PyResult<i32> {
        self.mqd()
    }

    #[getter]
    fn mqd(&self) -> PyResult<i32> {
        let fd = self.with(|opened| opened.queue.get().map_or(-1, AsRawFd::as_raw_fd))?;
        if fd >= 0 {
            self.exposed.store(true, Ordering::Relaxed);
        }
        Ok(fd)
    }

    #[getter]
    fn name(&self, py: Python<'_>) -> PyResult<Py<PyString>> {
        Ok(self.name_str(py)?.unbind())
    }

    /// Whether this handle created the queue (not in posix_ipc).
    #[getter]
    fn created(&self) -> PyResult<bool> {
        self.with(|opened| opened.created)
    }

    /// Whether close() was called (not in posix_ipc).
    #[getter]
    fn closed(&self) -> PyResult<bool> {
        self.with(|opened| !opened.queue.is_open())
    }

    #[getter]
    fn mode(&self) -> PyResult<u32> {
        self.with(|opened| opened.mode)
    }

    /// The owner's uid, read when first asked and kept (not in posix_ipc).
    #[getter]
    fn uid(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.owner(py)?.uid)
    }

    /// The queue's gid, read when first asked and kept (not in posix_ipc).
    #[getter]
    fn gid(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.owner(py)?.gid)
    }

    /// The queue's permission bits, after the umask, read when first asked
    /// and kept (not in posix_ipc; mode is the one asked for).
    #[getter]
    fn file_mode(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.owner(py)?.mode)
    }

    #[getter]
    fn max_messages(&self) -> PyResult<usize> {
        self.with(|opened| opened.max_messages)
    }

    #[getter]
    fn max_message_size(&self) -> PyResult<usize> {
        self.with(|opened| opened.max_message_size)
    }

    #[getter]
    fn current_messages(&self) -> PyResult<usize> {
        self.queue()?.current_messages().map_err(to_py_err)
    }

    /// Whether send() and receive() may wait (False: they raise BusyError
    /// at once instead).
    #[getter]
    fn get_block(&self) -> PyResult<bool> {
        self.queue()?.is_blocking().map_err(to_py_err)
    }

    #[setter]
    fn set_block(&self, block: &Bound<'_, PyAny>) -> PyResult<()> {
        let block = block.is_truthy()?;
        self.queue()?.set_blocking(block).map_err(to_py_err)
    }

    fn __str__(&self, py: Python<'_>) -> PyResult<Py<PyString>> {
        self.name(py)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let (name, mode, max_message_size, max_messages, read, write) =
            slf.get().with(|opened| {
                (
                    opened.name.clone_ref(py),
                    opened.mode,
                    opened.max_message_size,
                    opened.max_messages,
                    opened.read,
                    opened.write,
                )
            })?;
        let python_bool = |b: bool| if b { "True" } else { "False" };
        Ok(format!(
            "{}({:?}, mode={mode:04o}, max_message_size={max_message_size}, max_messages={max_messages}, read={}, write={})",
            qualified_name(&slf.get_type())?,
            name.bind(py).to_str()?,
            python_bool(read),
            python_bool(write),
        ))
    }

    /// Pickles by name: unpickling opens the same queue, with the same
    /// read/write access.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let args = slf
            .get()
            .with(|opened| (opened.name.clone_ref(py), opened.read, opened.write))?;
        pickling::reduce(slf, "_reopen_message_queue", args)
    }
}

/// Unpickling helper: a `cls` instance opened on the existing queue `name`,
/// without calling a subclass's `__init__` (whose signature may differ).
#[pyfunction]
pub(crate) fn _reopen_message_queue<'py>(
    cls: &Bound<'py, PyType>,
    name: &Bound<'py, PyAny>,
    read: bool,
    write: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let name = args::name_str(name)?;
    let defaults = defaults();
    pickling::reopen(cls, |obj| {
        let this = obj.cast::<PyMessageQueue>()?.get();
        PyMessageQueue::open(
            Handle::Shared(this),
            obj.py(),
            Some(name),
            0,
            0o600,
            defaults.default_max_messages,
            defaults.default_max_message_size,
            read,
            write,
        )
    })
}

/// Removes the message queue `name`; ExistentialError if there is none.
#[pyfunction]
fn unlink_message_queue(name: &Bound<'_, PyAny>) -> PyResult<()> {
    mqueue::unlink(&args::name(name)?).map_err(to_py_err)
}

/// The constants `lazy_constant` makes.
pub(crate) const LAZY_CONSTANTS: [&str; 2] = [
    "QUEUE_MESSAGES_MAX_DEFAULT",
    "QUEUE_MESSAGE_SIZE_MAX_DEFAULT",
];

/// The constant `name` if it is one read from the system on first use
/// (`/proc/sys/fs/mqueue`: four files, which an import should not read);
/// the module's `__getattr__` asks.
pub(crate) fn lazy_constant<'py>(
    py: Python<'py>,
    name: &str,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let value = match name {
        "QUEUE_MESSAGES_MAX_DEFAULT" => defaults().default_max_messages,
        "QUEUE_MESSAGE_SIZE_MAX_DEFAULT" => defaults().default_max_message_size,
        _ => return Ok(None),
    };
    Ok(Some(value.into_pyobject(py)?.into_any()))
}

/// Adds the message queue functions and constants to the module (the class
/// and the constants of `lazy_constant` are made on first use, lib.rs).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let signals = mqueue::user_signals();
    m.add_function(wrap_pyfunction!(unlink_message_queue, m)?)?;
    m.add_function(wrap_pyfunction!(_reopen_message_queue, m)?)?;
    m.add("MESSAGE_QUEUES_SUPPORTED", true)?;
    m.add("QUEUE_PRIORITY_MAX", PRIORITY_MAX)?;
    m.add("USER_SIGNAL_MIN", *signals.start())?;
    m.add("USER_SIGNAL_MAX", *signals.end())?;
    Ok(())
}
