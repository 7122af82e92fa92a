//! `namedipc.RedisSemaphore`: the counting semaphore on a Redis server
//! (`namedipc::redis`), with RobustSemaphore's manners. Every call that
//! talks to the server runs detached from the interpreter; a wait re-attaches
//! only to run signal handlers (Ctrl-C ends it, and no slot stays taken).
//!
//! One handle may hold several grants (threads, asyncio tasks). Each grant
//! is remembered with its owner, the thread and asyncio task that took it:
//! `fence`, `slot`, `lost` and `release()` speak of the owner's latest grant
//! still held, else (for the properties) of the handle's only grant, else
//! (for `release()`) of its oldest.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, UNIX_EPOCH};

use namedipc::redis::{Grant, Lease, RedisSemaphore, DEFAULT_CONNECT_TIMEOUT, DEFAULT_LEASE};
use namedipc::{Error, ObjectKind};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use crate::args::{self, Negative, Timeout};
use crate::errors::{self, to_py_err};
use crate::exit;
use crate::init::InitOnce;
use crate::pickling::{self, qualified_name};

const KIND: ObjectKind = ObjectKind::RedisSemaphore;

/// The environment variable naming the server when no `url` is given.
const URL_VARIABLE: &str = "NAMEDIPC_REDIS";

/// The largest slot count a new semaphore may have (the core's).
const MAX_SLOTS: i64 = namedipc::redis::MAX_SLOTS as i64;

/// The bounds of `lease` and `connect_timeout`, in seconds: a lease much
/// shorter than a round trip could never be renewed, and one beyond a day
/// is a mistake rather than a plan.
const MIN_LEASE: f64 = 0.01;
const MAX_LEASE: f64 = 86_400.0;
const MAX_CONNECT_TIMEOUT: f64 = 3_600.0;

/// Who took a grant: the thread, and the asyncio task it ran in (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    thread: ThreadId,
    task: usize,
}

#[pyclass(
    module = "namedipc",
    name = "RedisSemaphore",
    frozen,
    subclass,
    weakref
)]
pub(crate) struct PyRedisSemaphore {
    sem: InitOnce<Arc<RedisSemaphore>>,
    /// The grants taken through this handle with their owners, oldest first;
    /// entries the core no longer holds (closed, released elsewhere) are
    /// ignored and dropped when met.
    owners: Mutex<Vec<(Owner, Grant)>>,
}

/// A grant handed from the thread that waited for it to the asyncio task
/// that asked (through the future's result).
#[pyclass(module = "namedipc", name = "_RedisGrant", frozen)]
pub(crate) struct GrantToken(Grant);

impl PyRedisSemaphore {
    fn sem(&self) -> PyResult<&Arc<RedisSemaphore>> {
        self.sem.get()
    }

    /// The semaphore, or ExistentialError if the handle is closed.
    fn open_sem(&self) -> PyResult<&Arc<RedisSemaphore>> {
        let sem = self.sem()?;
        if sem.is_closed() {
            return Err(errors::closed(KIND, sem.name()));
        }
        Ok(sem)
    }

    fn owners(&self) -> MutexGuard<'_, Vec<(Owner, Grant)>> {
        self.owners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers `grant` as the caller's latest.
    fn adopt(&self, py: Python<'_>, grant: Grant) {
        let owner = owner(py);
        self.owners().push((owner, grant));
    }

    fn forget(&self, grant: Grant) {
        self.owners().retain(|(_, g)| *g != grant);
    }

    /// The caller's latest grant still held; else, if `only_one`, the
    /// handle's grant when it holds exactly one, or else its oldest.
    fn current(&self, py: Python<'_>, sem: &RedisSemaphore, fallback: Fallback) -> Option<Grant> {
        let held = sem.held();
        if held.is_empty() {
            self.owners().clear();
            return None;
        }
        let me = owner(py);
        let mut owners = self.owners();
        owners.retain(|(_, g)| held.contains(g));
        if let Some((_, grant)) = owners.iter().rev().find(|(o, _)| *o == me) {
            return Some(*grant);
        }
        match fallback {
            Fallback::OnlyOne if held.len() == 1 => Some(held[0]),
            Fallback::OnlyOne => None,
            Fallback::Oldest => Some(held[0]),
        }
    }

    /// Takes a slot: at once, or waiting as `timeout` says, detached.
    fn acquire_for(&self, py: Python<'_>, timeout: Timeout) -> PyResult<bool> {
        let sem = self.open_sem()?;
        let grant = match timeout {
            Timeout::NoWait => py.detach(|| sem.try_acquire()).map_err(to_py_err)?,
            Timeout::For(limit) => wait(py, sem, Some(limit))?,
            Timeout::Forever => wait(py, sem, None)?,
        };
        let Some(grant) = grant else {
            return Ok(false);
        };
        // A signal that came meanwhile would raise in the caller before it
        // learns what it holds: its handler runs here, and if it raises, the
        // slot goes back first.
        if let Err(raised) = py.check_signals() {
            let _ = py.detach(|| sem.release(grant));
            return Err(raised);
        }
        self.adopt(py, grant);
        Ok(true)
    }

    /// Gives back `grant` (the caller checked that the handle holds it).
    fn release_grant(&self, py: Python<'_>, sem: &RedisSemaphore, grant: Grant) -> PyResult<()> {
        let released = py.detach(|| sem.release(grant));
        match released {
            // Lost or not held: either way it is no longer this handle's.
            Ok(()) | Err(Error::LeaseLost { .. } | Error::NotHeld { .. }) => self.forget(grant),
            // Unreachable: the handle still holds it; a later release may work.
            Err(_) => {}
        }
        released.map_err(to_py_err)
    }

    /// Gives back a grant nobody will learn of (best effort).
    fn give_back(&self, py: Python<'_>, grant: Grant) -> PyResult<()> {
        let sem = self.sem()?;
        let _ = py.detach(|| sem.release(grant));
        self.forget(grant);
        Ok(())
    }

    fn nothing_held(sem: &RedisSemaphore) -> PyErr {
        PyValueError::new_err(format!(
            "redis semaphore '{}': this handle holds no slot to release (released more often than acquired)",
            sem.name()
        ))
    }
}

/// What `current` falls back on when the caller holds no grant of its own.
#[derive(Clone, Copy)]
enum Fallback {
    /// The handle's grant if it holds exactly one (for the properties).
    OnlyOne,
    /// The handle's oldest grant (for `release()`).
    Oldest,
}

/// Waits for a slot up to `timeout`, detached; signal handlers run at least
/// every 50 ms (the core's `keep_waiting`), and one that raises ends the
/// wait with its exception and no slot taken.
fn wait(
    py: Python<'_>,
    sem: &RedisSemaphore,
    timeout: Option<Duration>,
) -> PyResult<Option<Grant>> {
    let mut raised: Option<PyErr> = None;
    let outcome = py.detach(|| {
        sem.acquire_while(timeout, &mut || {
            !sem.is_closed()
                && Python::attach(|py| match py.check_signals() {
                    Ok(()) => true,
                    Err(e) => {
                        raised = Some(e);
                        false
                    }
                })
        })
    });
    match outcome {
        Ok(grant) => Ok(grant),
        Err(Error::Interrupted { .. }) => Err(raised.unwrap_or_else(|| {
            if sem.is_closed() {
                errors::closed_while_waiting(py, KIND, sem.name())
            } else {
                errors::interrupted(KIND, sem.name())
            }
        })),
        Err(e) => Err(to_py_err(e)),
    }
}

/// The caller: this thread, and the asyncio task running in it, if any.
fn owner(py: Python<'_>) -> Owner {
    Owner {
        thread: std::thread::current().id(),
        task: current_task(py),
    }
}

/// `id()` of the asyncio task running in this thread, 0 if none. Only a
/// program that imported asyncio can be in a task, so nothing is imported here.
fn current_task(py: Python<'_>) -> usize {
    let find = || -> PyResult<usize> {
        let Some(asyncio) = py
            .import("sys")?
            .getattr("modules")?
            .cast_into::<PyDict>()?
            .get_item("asyncio")?
        else {
            return Ok(0);
        };
        let running = asyncio.call_method0("_get_running_loop")?;
        if running.is_none() {
            return Ok(0);
        }
        let task = asyncio.call_method1("current_task", (running,))?;
        Ok(if task.is_none() {
            0
        } else {
            task.as_ptr() as usize
        })
    };
    find().unwrap_or(0)
}

/// The server's URL: `url` if given, else `$NAMEDIPC_REDIS`, else the default.
fn url_arg(url: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
    let allowed = "url must be a str such as 'redis://127.0.0.1:6379/0' (or None: $NAMEDIPC_REDIS, then redis://127.0.0.1:6379/0)";
    let url = match url.filter(|u| !u.is_none()) {
        Some(url) => url
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("{allowed}, not {}", args::type_name(url))))?
            .to_str()?
            .to_owned(),
        None => match std::env::var(URL_VARIABLE) {
            Ok(url) if !url.is_empty() => url,
            _ => namedipc::redis::DEFAULT_URL.to_owned(),
        },
    };
    if url.contains('\0') {
        return Err(PyValueError::new_err(format!(
            "url must not contain NUL characters: {:?}",
            namedipc::redis::redacted(&url)
        )));
    }
    Ok(url)
}

/// A duration in seconds, `what` in `min..=max` (a finite real number):
/// `default` when omitted.
fn seconds_arg(
    obj: Option<&Bound<'_, PyAny>>,
    what: &str,
    default: Duration,
    min: f64,
    max: f64,
) -> PyResult<Duration> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(default);
    };
    let allowed = format!("{what} must be a number of seconds between {min} and {max}");
    let is_number = obj.is_instance_of::<PyFloat>()
        || obj.is_instance_of::<PyInt>()
        || obj.hasattr("__float__")?;
    if !is_number || obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{allowed}, not {}",
            args::type_name(obj)
        )));
    }
    let seconds: f64 = obj.extract().unwrap_or(f64::INFINITY); // an int too large for a float
    if !(min..=max).contains(&seconds) {
        return Err(PyValueError::new_err(format!(
            "{allowed}, not {}",
            obj.repr()?
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

static LEASE_CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The fields of `namedipc.Lease`, with their docs.
const LEASE_FIELDS: [(&str, &str); 6] = [
    ("host", "Host name of the holder's machine."),
    ("pid", "Process id of the holder on its host."),
    (
        "since",
        "When the slot was taken, in seconds since the epoch, by the server's clock.",
    ),
    (
        "expires_in",
        "Seconds the lease has left, by the server's clock, at the time of the call.",
    ),
    (
        "fence",
        "The grant's fencing token: larger than every token given before.",
    ),
    ("slot", "The slot held, 0 to slots - 1."),
];

/// `namedipc.Lease`, a named tuple made on first use (so that importing
/// namedipc imports no `collections`).
fn lease_class(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    let cls = LEASE_CLASS.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("module", "namedipc")?;
        let fields: Vec<&str> = LEASE_FIELDS.iter().map(|(field, _)| *field).collect();
        let cls = py
            .import("collections")?
            .getattr("namedtuple")?
            .call(("Lease", fields), Some(&kwargs))?
            .cast_into::<PyType>()?;
        cls.setattr(
            "__doc__",
            "One holder of a RedisSemaphore at the time of the call: Lease(host, pid, since, expires_in, fence, slot).",
        )?;
        for (field, doc) in LEASE_FIELDS {
            cls.getattr(field)?.setattr("__doc__", doc)?;
        }
        Ok(cls.unbind())
    })?;
    Ok(cls.bind(py))
}

/// `_lease_class()`: `namedipc.Lease` (the package's `__getattr__` asks for it).
#[pyfunction]
fn _lease_class(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    lease_class(py).cloned()
}

fn lease_tuple<'py>(py: Python<'py>, lease: &Lease) -> PyResult<Bound<'py, PyAny>> {
    let since = lease
        .since
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    lease_class(py)?.call1((
        lease.host.as_str(),
        lease.pid,
        since,
        lease.expires_in.as_secs_f64(),
        lease.fence,
        lease.slot,
    ))
}

/// The asyncio faces, a few lines of Python compiled on first use: the
/// wait runs in a thread of its own (the core's wait, detached), which
/// hands its outcome to the task's loop; a task cancelled at any point
/// leaves no slot taken.
const AIO_CODE: &std::ffi::CStr = cr#"
import asyncio
import threading


async def acquire(sem, timeout):
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    waiter = threading.Thread(
        target=sem._wait_for_async, args=(loop, future, timeout), name=f"namedipc-redis-aio {sem.name}", daemon=True
    )
    waiter.start()
    try:
        grant = await future
    except BaseException:
        # Cancelled just after the hand-over: the slot goes back.
        if future.done() and not future.cancelled() and future.exception() is None:
            sem._give_back(future.result())
        raise
    return sem._adopt(grant)


async def aenter(sem):
    await acquire(sem, None)
    return sem


async def aexit(sem):
    grant = sem._current_grant()
    # A release is a round trip (or a connect timeout): not on the loop.
    await asyncio.get_running_loop().run_in_executor(None, sem._release_grant, grant)
"#;

static AIO: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn aio_call<'py>(
    py: Python<'py>,
    function: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    let module = AIO.get_or_try_init(py, || {
        PyModule::from_code(
            py,
            AIO_CODE,
            c"namedipc/redis_aio.py",
            c"namedipc._redis_aio",
        )
        .map(Bound::unbind)
    })?;
    module.bind(py).getattr(function)?.call1(args)
}

#[pymethods]
impl PyRedisSemaphore {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs), text_signature = "(name, value=1, *, url=None, lease=10.0, connect_timeout=5.0)")]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self {
            sem: InitOnce::new(KIND),
            owners: Mutex::new(Vec::new()),
        }
    }

    #[pyo3(signature = (name, value = None, *, url = None, lease = None, connect_timeout = None))]
    fn __init__(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        url: Option<&Bound<'_, PyAny>>,
        lease: Option<&Bound<'_, PyAny>>,
        connect_timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        slf.get().sem.ensure_unset()?;
        let name = args::name(name)?;
        let slots = u32::try_from(args::int_or(value, 1, "value", 1, MAX_SLOTS)?).unwrap_or(1); // range checked
        let url = url_arg(url)?;
        let lease = seconds_arg(lease, "lease", DEFAULT_LEASE, MIN_LEASE, MAX_LEASE)?;
        let connect_timeout = seconds_arg(
            connect_timeout,
            "connect_timeout",
            DEFAULT_CONNECT_TIMEOUT,
            MIN_LEASE,
            MAX_CONNECT_TIMEOUT,
        )?;
        let sem = py
            .detach(|| {
                RedisSemaphore::options()
                    .url(&url)
                    .initial_value(slots)
                    .lease(lease)
                    .connect_timeout(connect_timeout)
                    .open(&name)
            })
            .map_err(to_py_err)?;
        slf.get().sem.set(Arc::new(sem))?;
        // Give back what it holds at exit even if a thread still holds the handle then.
        exit::close_at_exit(slf.as_any())
    }

    /// Takes one slot, as threading.Semaphore.acquire does: True when taken,
    /// False when blocking=False and none is free, or when timeout passes.
    /// Waits without the interpreter lock; Ctrl-C ends the wait promptly.
    #[pyo3(signature = (blocking = true, timeout = None))]
    fn acquire(
        &self,
        py: Python<'_>,
        blocking: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let timeout = args::threading_timeout(blocking, timeout)?;
        self.acquire_for(py, timeout)
    }

    /// Gives back the slot the calling thread (or task) took last, else the
    /// handle's oldest: ValueError if the handle holds none, LeaseLost if the
    /// lease was lost (then nothing is freed: the slot may be another's now).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let sem = self.open_sem()?;
        let grant = self
            .current(py, sem, Fallback::Oldest)
            .ok_or_else(|| Self::nothing_held(sem))?;
        self.release_grant(py, sem, grant)
    }

    /// The fencing token of the caller's slot (None unless held).
    #[getter]
    fn fence(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        let sem = self.sem()?;
        Ok(self.current(py, sem, Fallback::OnlyOne).map(|g| g.fence))
    }

    /// The caller's slot, 0 to slots - 1 (None unless held).
    #[getter]
    fn slot(&self, py: Python<'_>) -> PyResult<Option<u32>> {
        let sem = self.sem()?;
        Ok(self.current(py, sem, Fallback::OnlyOne).map(|g| g.slot))
    }

    /// Whether the lease of the caller's slot is lost: its local deadline
    /// passed without a renewal, or the server said it expired.
    #[getter]
    fn lost(&self, py: Python<'_>) -> PyResult<bool> {
        let sem = self.sem()?;
        Ok(self
            .current(py, sem, Fallback::OnlyOne)
            .is_some_and(|g| sem.is_lost(g)))
    }

    /// Free slots now, by the server's clock (a round trip).
    #[getter]
    fn value(&self, py: Python<'_>) -> PyResult<u32> {
        let sem = self.open_sem()?;
        py.detach(|| sem.value()).map_err(to_py_err)
    }

    /// The number of slots.
    #[getter]
    fn slots(&self) -> PyResult<u32> {
        Ok(self.sem()?.slots())
    }

    #[getter]
    fn name(&self) -> PyResult<&str> {
        Ok(self.sem()?.name())
    }

    /// The server's URL, as given.
    #[getter]
    fn url(&self) -> PyResult<&str> {
        Ok(self.sem()?.url())
    }

    /// The lease of each slot taken, in seconds.
    #[getter]
    fn lease(&self) -> PyResult<f64> {
        Ok(self.sem()?.lease().as_secs_f64())
    }

    /// Whether this handle created the semaphore on the server.
    #[getter]
    fn created(&self) -> PyResult<bool> {
        Ok(self.sem()?.created())
    }

    #[getter]
    fn closed(&self) -> PyResult<bool> {
        Ok(self.sem()?.is_closed())
    }

    /// Who holds slots now, by the server's clock: a list of
    /// Lease(host, pid, since, expires_in, fence, slot).
    fn holders<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let sem = self.open_sem()?;
        let leases = py.detach(|| sem.holders()).map_err(to_py_err)?;
        let items = leases
            .iter()
            .map(|lease| lease_tuple(py, lease))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// Gives back every slot the handle holds (best effort) and stops
    /// renewing. Closing twice is harmless.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let sem = self.sem()?;
        py.detach(|| sem.close());
        self.owners().clear();
        Ok(())
    }

    /// Awaitable acquire: True when a slot is taken, False when timeout
    /// (seconds; None: no limit) passes first. The wait runs in a thread
    /// and does not block the event loop; a cancelled wait leaves no slot taken.
    #[pyo3(signature = (timeout = None))]
    fn acquire_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = crate::aio::seconds(args::timeout(timeout, Negative::NoWait)?);
        slf.get().open_sem()?;
        aio_call(slf.py(), "acquire", (slf, timeout))
    }

    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.get().open_sem()?;
        aio_call(slf.py(), "aenter", (slf,))
    }

    #[pyo3(signature = (*_exc_info))]
    fn __aexit__<'py>(
        slf: &Bound<'py, Self>,
        _exc_info: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        aio_call(slf.py(), "aexit", (slf,))
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().acquire_for(slf.py(), Timeout::Forever)?;
        Ok(slf.clone())
    }

    /// Gives the slot back; LeaseLost if its lease was lost meanwhile (with
    /// the block's own exception, if any, as its context).
    #[pyo3(signature = (*exc_info))]
    fn __exit__(&self, py: Python<'_>, exc_info: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release(py).inspect_err(|err| {
            if let Ok(exc) = exc_info.get_item(1) {
                if !exc.is_none() {
                    let _ = err.value(py).setattr("__context__", exc);
                }
            }
        })
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let sem = slf.get().sem()?;
        let state = if sem.is_closed() {
            "closed".to_owned()
        } else {
            format!("slots={}, held here={}", sem.slots(), sem.held().len())
        };
        let name = PyString::new(slf.py(), sem.name()).repr()?;
        Ok(format!(
            "<{} {name} on {} at {:#x}: {state}>",
            qualified_name(&slf.get_type())?,
            namedipc::redis::redacted(sem.url()),
            slf.as_ptr() as usize
        ))
    }

    /// Pickles by url and name (with the lease and slot count): unpickling
    /// opens the same semaphore on the same server, holding none of this
    /// handle's slots.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let sem = slf.get().sem()?;
        pickling::reduce(
            slf,
            "_reopen_redis_semaphore",
            (
                sem.name(),
                sem.url(),
                sem.slots(),
                sem.lease().as_secs_f64(),
            ),
        )
    }

    // -- the asyncio glue's hooks (AIO_CODE) ------------------------------------

    /// In the waiter thread: waits for a slot, detached, while the task's
    /// future is pending, then hands the outcome to the loop.
    fn _wait_for_async(
        slf: &Bound<'_, Self>,
        event_loop: &Bound<'_, PyAny>,
        future: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let py = slf.py();
        let sem = Arc::clone(slf.get().sem()?);
        let pending: Py<PyAny> = future.clone().unbind();
        let outcome = py.detach(|| {
            if timeout == Some(0.0) {
                return sem.try_acquire();
            }
            sem.acquire_while(timeout.map(Duration::from_secs_f64), &mut || {
                !sem.is_closed()
                    && Python::attach(|py| {
                        pending
                            .bind(py)
                            .call_method0("done")
                            .and_then(|done| done.is_truthy())
                            .is_ok_and(|done| !done)
                    })
            })
        });
        let result: Bound<'_, PyAny> = match outcome {
            // The task gave up meanwhile: the slot goes back from here, not
            // through a loop that may be busy.
            Ok(Some(grant)) if future.call_method0("done")?.is_truthy()? => {
                let _ = py.detach(|| sem.release(grant));
                return Ok(());
            }
            Ok(Some(grant)) => Bound::new(py, GrantToken(grant))?.into_any(),
            Ok(None) => py.None().into_bound(py),
            // The task stopped waiting (its future is done): nobody to tell.
            Err(Error::Interrupted { .. }) if !sem.is_closed() => return Ok(()),
            Err(Error::Interrupted { .. }) => errors::closed_while_waiting(py, KIND, sem.name())
                .into_value(py)
                .into_bound(py)
                .into_any(),
            Err(e) => to_py_err(e).into_value(py).into_bound(py).into_any(),
        };
        let hand_over = slf.getattr("_hand_over")?;
        if event_loop
            .call_method1("call_soon_threadsafe", (hand_over, future, &result))
            .is_err()
        {
            // The loop is closed: nobody will take the slot.
            if let Ok(token) = result.cast::<GrantToken>() {
                let grant = token.get().0;
                let _ = py.detach(|| sem.release(grant));
            }
        }
        Ok(())
    }

    /// On the task's loop: the outcome is the task's if it still waits; a
    /// slot nobody waits for any more goes back.
    fn _hand_over(
        &self,
        py: Python<'_>,
        future: &Bound<'_, PyAny>,
        result: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if future.call_method0("done")?.is_truthy()? {
            if let Ok(token) = result.cast::<GrantToken>() {
                self.give_back(py, token.get().0)?;
            }
            return Ok(());
        }
        if result.is_instance_of::<pyo3::exceptions::PyBaseException>() {
            future.call_method1("set_exception", (result,))?;
        } else {
            future.call_method1("set_result", (result,))?;
        }
        Ok(())
    }

    /// In the task: the grant is now the task's (True), or the wait timed out (None: False).
    fn _adopt(&self, py: Python<'_>, grant: Option<&Bound<'_, GrantToken>>) -> bool {
        grant.is_some_and(|token| {
            self.adopt(py, token.get().0);
            true
        })
    }

    /// Gives back a grant nobody will learn of (best effort).
    fn _give_back(&self, py: Python<'_>, token: &GrantToken) -> PyResult<()> {
        self.give_back(py, token.0)
    }

    /// The grant `async with` gives back at its end (as release() picks it).
    fn _current_grant(&self, py: Python<'_>) -> PyResult<GrantToken> {
        let sem = self.open_sem()?;
        self.current(py, sem, Fallback::Oldest)
            .map(GrantToken)
            .ok_or_else(|| Self::nothing_held(sem))
    }

    /// Gives back `token`'s grant (in an executor thread, for `async with`).
    fn _release_grant(&self, py: Python<'_>, token: &GrantToken) -> PyResult<()> {
        let sem = self.open_sem()?;
        self.release_grant(py, sem, token.0)
    }
}

/// Unpickling helper: a `cls` instance on the semaphore `name` at `url`.
#[pyfunction]
fn _reopen_redis_semaphore<'py>(
    cls: &Bound<'py, PyType>,
    name: &str,
    url: &str,
    slots: u32,
    lease: f64,
) -> PyResult<Bound<'py, PyAny>> {
    pickling::reopen(cls, |obj| {
        let py = obj.py();
        let this = obj.cast::<PyRedisSemaphore>()?.get();
        this.sem.ensure_unset()?;
        let lease = Duration::try_from_secs_f64(lease).map_err(|_| {
            PyValueError::new_err(format!(
                "lease must be a number of seconds > 0, not {lease}"
            ))
        })?;
        let sem = py
            .detach(|| {
                RedisSemaphore::options()
                    .url(url)
                    .initial_value(slots)
                    .lease(lease)
                    .open(name)
            })
            .map_err(to_py_err)?;
        this.sem.set(Arc::new(sem))?;
        exit::close_at_exit(obj)
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRedisSemaphore>()?;
    m.add_function(wrap_pyfunction!(_reopen_redis_semaphore, m)?)?;
    m.add_function(wrap_pyfunction!(_lease_class, m)?)?;
    Ok(())
}
