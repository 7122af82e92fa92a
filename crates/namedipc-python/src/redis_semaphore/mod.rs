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
//!
//! The class and its methods are here; who owns which grant in `grants.rs`,
//! argument checks in `arguments.rs`, `namedipc.Lease` in `lease.rs`, the
//! asyncio glue in `asyncio.rs`, the module's functions in `functions.rs`.

mod arguments;
mod asyncio;
mod functions;
mod grants;
mod lease;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use namedipc::redis::{Grant, RedisSemaphore, DEFAULT_CONNECT_TIMEOUT, DEFAULT_LEASE};
use namedipc::{Error, ObjectKind};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use self::arguments::{connect_timeout_arg, seconds_arg, url_arg, MAX_LEASE, MAX_SLOTS, MIN_LEASE};
use self::asyncio::aio_call;
use self::grants::{Fallback, Owner};
use self::lease::lease_tuple;
use crate::args::{self, Negative, Timeout};
use crate::errors::{self, to_py_err};
use crate::exit;
use crate::init::InitOnce;
use crate::pickling::{self, qualified_name};

const KIND: ObjectKind = ObjectKind::RedisSemaphore;

/// A counting semaphore on a Redis server, shared across machines:
/// at most `slots` unexpired leases at once, by the server's clock.
///
/// RedisSemaphore(name, value=1, *, url=None, lease=10.0, connect_timeout=5.0)
/// opens the semaphore `name` ("/gpu") on the server at `url` (default:
/// $NAMEDIPC_REDIS, then redis://127.0.0.1:6379/0), creating it with `value`
/// slots if it does not exist. Each slot taken is a lease of `lease` seconds,
/// renewed in the background; `lost` says when it could not be, `fence` is
/// the slot's fencing token.
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
        let connect_timeout = connect_timeout_arg(connect_timeout)?;
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

    /// A health check: one PING on the handle's own connection (the one
    /// acquire and release use); returns its round trip in seconds.
    /// UnavailableError if the server cannot be reached, or does not answer
    /// within the connect timeout.
    fn ping(&self, py: Python<'_>) -> PyResult<f64> {
        let sem = self.open_sem()?;
        py.detach(|| sem.ping())
            .map(|rtt| rtt.as_secs_f64())
            .map_err(to_py_err)
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

    /// Removes the semaphore from the server now (every key of it): its
    /// holders' next renewal is refused, so they learn their leases are
    /// lost, and the next acquire creates it anew. NotFoundError if it is
    /// not there.
    fn unlink(&self, py: Python<'_>) -> PyResult<()> {
        let sem = self.open_sem()?;
        let (url, name) = (sem.url(), sem.name());
        py.detach(|| namedipc::redis::unlink(url, name, DEFAULT_CONNECT_TIMEOUT))
            .map_err(to_py_err)
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

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The class itself is made on first use (lib.rs, LAZY_CLASSES).
    m.add_function(wrap_pyfunction!(functions::_reopen_redis_semaphore, m)?)?;
    m.add_function(wrap_pyfunction!(lease::_lease_class, m)?)?;
    m.add_function(wrap_pyfunction!(functions::unlink_redis_semaphore, m)?)?;
    Ok(())
}
