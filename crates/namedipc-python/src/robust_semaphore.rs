//! `namedipc.RobustSemaphore`: the crash-safe semaphore with
//! threading.BoundedSemaphore's manners, per process: a process releases
//! only slots it holds, from any of its threads or handles.

use std::time::UNIX_EPOCH;

use namedipc::robust::{Holder, RobustSemaphore, Waiter};
use namedipc::Existence;
use namedipc::ObjectKind;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};

use crate::aio;
use crate::args::{self, Timeout};
use crate::errors::to_py_err;
use crate::exit;
use crate::init::InitOnce;
use crate::named_semaphore::{existence, Sharing};
use crate::pickling::{self, qualified_name};
use crate::wait::{Attempt, OnSignal, Slices, Undo, Wait};

const KIND: ObjectKind = ObjectKind::RobustSemaphore;

#[pyclass(
    module = "namedipc",
    name = "RobustSemaphore",
    frozen,
    subclass,
    weakref
)]
pub(crate) struct PyRobustSemaphore {
    sem: InitOnce<RobustSemaphore>,
}

/// How a new semaphore is made (ignored when an existing one is opened),
/// and whom an existing one may belong to.
struct New {
    slots: u32,
    records: u32,
    mode: u32,
    persistent: bool,
    sharing: Sharing,
}

impl PyRobustSemaphore {
    fn open(&self, name: &str, existence: Existence, new: &New) -> PyResult<()> {
        self.sem.ensure_unset()?;
        let mut options = RobustSemaphore::options()
            .existence(existence)
            .initial_value(new.slots)
            .records(new.records)
            .mode(new.mode)
            .trust(new.sharing.trust(new.mode))
            .persistent(new.persistent);
        if let Some(gid) = new.sharing.group {
            options = options.group(gid);
        }
        let sem = options.open(name).map_err(to_py_err)?;
        self.sem.set(sem).map(drop)
    }

    /// The handle, whether open or closed (calls on a closed one fail in the core).
    fn sem(&self) -> PyResult<&RobustSemaphore> {
        self.sem.get()
    }

    fn acquire_for(&self, py: Python<'_>, timeout: Timeout) -> PyResult<bool> {
        let sem = self.sem()?;
        let name = sem.name();
        // One wait in the core over all the slices (the watcher of holders'
        // deaths stays with it), ended when the acquire returns. A signal
        // ends a slice at once (Error::Interrupted); even without a
        // deadline it is sliced, as the backstop for a signal that landed
        // just before the sleep.
        let mut waiter: Option<Waiter<'_>> = None;
        // Made when the wait first has to sleep.
        let mut slices: Option<Slices> = None;
        let taken = Wait {
            kind: KIND,
            name,
            on_signal: OnSignal::Resume,
            is_open: || !sem.is_closed(),
            fail: to_py_err,
            // Taken, but a signal handler raised: give it back. (The core
            // gives back a slot taken through a handle closed meanwhile.)
            undo: Undo::IfHandlerRaises(|()| sem.release()),
        }
        .run(py, timeout, |attempt| {
            let taken = match attempt {
                Attempt::Now => sem.try_acquire(),
                Attempt::Wait(limit) => {
                    let backstop = slices
                        // (Detached here: a thread still waiting as the
                        // interpreter shuts down cannot attach any more.)
                        .get_or_insert_with(|| {
                            Python::try_attach(Slices::begin).unwrap_or_else(Slices::fixed)
                        })
                        .next();
                    let slice = limit.map_or(backstop, |l| l.min(backstop));
                    match &mut waiter {
                        Some(waiter) => waiter.acquire_interruptible(Some(slice)),
                        None => sem
                            .waiter()
                            .and_then(|w| waiter.insert(w).acquire_interruptible(Some(slice))),
                    }
                }
            };
            taken.map(|taken| taken.then_some(()))
        })?;
        Ok(taken.is_some())
    }
}

static HOLDER_CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The fields of `namedipc.Holder`, with their docs.
const HOLDER_FIELDS: [(&str, &str); 4] = [
    (
        "pid",
        "Process id of the holder (as the holder saw it, in its PID namespace).",
    ),
    ("uid", "Real user id of the holder."),
    (
        "since",
        "When the slot was taken, in seconds since the epoch (as time.time()).",
    ),
    (
        "alive",
        "False if the holder has died; its slot is about to be given back.",
    ),
];

/// `namedipc.Holder`, a named tuple (`collections.namedtuple`, so it
/// unpacks, compares and prints as users expect), made on first use: the
/// module's `__getattr__` or the first `holders()`, so that importing
/// namedipc does not import collections.
pub(crate) fn holder_class(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    let cls = HOLDER_CLASS.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("module", "namedipc")?;
        let fields: Vec<&str> = HOLDER_FIELDS.iter().map(|(field, _)| *field).collect();
        let cls = py
            .import("collections")?
            .getattr("namedtuple")?
            .call(("Holder", fields), Some(&kwargs))?
            .cast_into::<PyType>()?;
        cls.setattr(
            "__doc__",
            "One slot of a RobustSemaphore held at the time of the call: Holder(pid, uid, since, alive).",
        )?;
        for (field, doc) in HOLDER_FIELDS {
            cls.getattr(field)?.setattr("__doc__", doc)?;
        }
        Ok(cls.unbind())
    })?;
    Ok(cls.bind(py))
}

/// `namedipc.Holder(pid, uid, since, alive)`.
fn holder_tuple<'py>(py: Python<'py>, holder: &Holder) -> PyResult<Bound<'py, PyAny>> {
    let cls = holder_class(py)?;
    let since = holder
        .since
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    cls.call1((holder.pid, holder.uid, since, holder.alive))
}

#[pymethods]
impl PyRobustSemaphore {
    /// `namedipc.Flags` (the existence flags), made on first use.
    #[classattr]
    #[pyo3(name = "Flags")]
    fn flags_attribute(py: Python<'_>) -> Py<PyAny> {
        crate::flags_attribute(py)
    }

    #[new]
    #[pyo3(signature = (*_args, **_kwargs), text_signature = "(name, value=1, handle_existence=RobustSemaphore.Flags.LINK_OR_CREATE, mode=0o600, *, records=128, persistent=False, group=None, trust_owners=())")]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self {
            sem: InitOnce::new(KIND),
        }
    }

    #[pyo3(
        signature = (name, value = None, handle_existence = None, mode = None, *, records = None, persistent = None, group = None, trust_owners = None)
    )]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn __init__(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        handle_existence: Option<&Bound<'_, PyAny>>,
        mode: Option<&Bound<'_, PyAny>>,
        records: Option<&Bound<'_, PyAny>>,
        persistent: Option<&Bound<'_, PyAny>>,
        group: Option<&Bound<'_, PyAny>>,
        trust_owners: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        slf.get().sem.ensure_unset()?;
        let name = args::name(name)?;
        let max = i64::from(namedipc::robust::MAX_SLOTS);
        let new = New {
            slots: u32::try_from(args::int_or(value, 1, "value", 1, max)?).unwrap_or(1),
            records: u32::try_from(args::int_or(
                records,
                128,
                "records",
                1,
                i64::from(namedipc::robust::MAX_RECORDS),
            )?)
            .unwrap_or(128),
            mode: args::mode(mode)?,
            persistent: args::flag(persistent, "persistent")?,
            sharing: Sharing::from_args(group, trust_owners)?,
        };
        let existence = existence(args::int_or(handle_existence, 1, "handle_existence", 0, 3)?)?;
        slf.get().open(&name, existence, &new)?;
        // Detach at exit even if a thread still holds the handle then.
        exit::close_at_exit(slf.as_any())
    }

    /// Takes one slot for this process, as threading.Semaphore.acquire
    /// does: True when taken, False when blocking=False and none is free, or
    /// when timeout passes. A slot whose holder died comes back on its own.
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

    /// Gives back n slots this process holds (n >= 1), all or none:
    /// ValueError, and nothing given back, if it holds fewer (like
    /// threading.BoundedSemaphore released too often).
    #[pyo3(signature = (n = None), text_signature = "(self, n=1)")]
    fn release(&self, n: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let sem = self.sem()?;
        match n {
            None => sem.release(),
            Some(n) => {
                let n = args::int_or(Some(n), 1, "n", 1, i64::from(sem.slots()))?;
                sem.release_many(u32::try_from(n).unwrap_or(u32::MAX)) // range checked above
            }
        }
        .map_err(to_py_err)
    }

    /// Who holds slots now: a list of Holder(pid, uid, since, alive).
    fn holders<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let holders = self.sem()?.holders().map_err(to_py_err)?;
        let items = holders
            .iter()
            .map(|h| holder_tuple(py, h))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// Closes this handle. When it is the process's last handle on the
    /// semaphore, the slots the process still holds are given back, and
    /// (unless it was created persistent) the semaphore is removed if no
    /// other process uses it. Closing twice is harmless.
    fn close(&self) -> PyResult<()> {
        self.sem()?.close();
        Ok(())
    }

    /// Removes the semaphore's name now, even while other processes use
    /// it (their next acquire raises NotFoundError).
    fn unlink(&self) -> PyResult<()> {
        self.sem()?.unlink().map_err(to_py_err)
    }

    #[getter]
    fn name(&self) -> PyResult<&str> {
        Ok(self.sem()?.name())
    }

    /// Free slots now (it may change at any moment).
    #[getter]
    fn value(&self) -> PyResult<u32> {
        self.sem()?.value().map_err(to_py_err)
    }

    /// The number of slots: the semaphore's maximum value.
    #[getter]
    fn slots(&self) -> PyResult<u32> {
        Ok(self.sem()?.slots())
    }

    /// Whether this handle created the semaphore.
    #[getter]
    fn created(&self) -> PyResult<bool> {
        Ok(self.sem()?.created())
    }

    #[getter]
    fn closed(&self) -> PyResult<bool> {
        Ok(self.sem()?.is_closed())
    }

    /// The permission bits of the semaphore's file (as file_mode): exactly
    /// the mode asked for when this handle created it.
    #[getter]
    fn mode(&self) -> PyResult<u32> {
        Ok(self.sem()?.owner().mode)
    }

    /// The uid of the file's owner, when this handle opened it.
    #[getter]
    fn uid(&self) -> PyResult<u32> {
        Ok(self.sem()?.owner().uid)
    }

    /// The file's gid, when this handle opened it.
    #[getter]
    fn gid(&self) -> PyResult<u32> {
        Ok(self.sem()?.owner().gid)
    }

    /// The file's permission bits, when this handle opened it.
    #[getter]
    fn file_mode(&self) -> PyResult<u32> {
        Ok(self.sem()?.owner().mode)
    }

    /// Awaitable acquire: True when a slot is taken, False when timeout
    /// (seconds; None: no limit) passes first. A slot whose holder died
    /// comes back as in acquire(); a cancelled wait leaves no slot taken.
    #[pyo3(signature = (timeout = None))]
    fn acquire_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        aio::acquire_async(slf.as_any(), timeout)
    }

    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        aio::aenter(slf.as_any())
    }

    #[pyo3(signature = (*_exc_info))]
    fn __aexit__<'py>(
        slf: &Bound<'py, Self>,
        _exc_info: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        aio::aexit(slf.as_any())
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().acquire_for(slf.py(), Timeout::Forever)?;
        Ok(slf.clone())
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, _exc_info: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release(None)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let sem = slf.get().sem()?;
        let state = match sem.value() {
            Ok(value) => format!("value={value}/{}", sem.slots()),
            Err(_) => "closed".to_owned(),
        };
        let name = pyo3::types::PyString::new(slf.py(), sem.name()).repr()?;
        Ok(format!(
            "<{} {name} at {:#x}: {state}>",
            qualified_name(&slf.get_type())?,
            slf.as_ptr() as usize
        ))
    }

    /// Pickles by name: unpickling opens the same semaphore in the other
    /// process (which holds none of this process's slots), trusting what
    /// this handle accepted: the owner it found, and others' writes if the
    /// mode it found grants them.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let sem = slf.get().sem()?;
        let owner = sem.owner();
        pickling::reduce(
            slf,
            "_reopen_robust_semaphore",
            (sem.name(), owner.uid, owner.mode & 0o002 != 0),
        )
    }
}

/// Unpickling helper: a `cls` instance attached to the existing semaphore
/// `name`, trusting also `owner` and, if `world_writable`, others' writes.
#[pyfunction]
#[pyo3(signature = (cls, name, owner = None, world_writable = false))]
pub(crate) fn _reopen_robust_semaphore<'py>(
    cls: &Bound<'py, PyType>,
    name: &str,
    owner: Option<u32>,
    world_writable: bool,
) -> PyResult<Bound<'py, PyAny>> {
    pickling::reopen(cls, |obj| {
        obj.cast::<PyRobustSemaphore>()?.get().open(
            name,
            Existence::RaiseIfNotExists,
            &New {
                slots: 1,
                records: 1,
                mode: 0o600,
                persistent: false,
                sharing: Sharing {
                    group: None,
                    owners: owner.into_iter().collect(),
                    world_writable,
                },
            },
        )?;
        exit::close_at_exit(obj)
    })
}

/// Removes the robust semaphore `name` now, even while processes use it
/// (their next acquire raises NotFoundError); NotFoundError if there is none.
#[pyfunction]
fn unlink_robust_semaphore(name: &Bound<'_, PyAny>) -> PyResult<()> {
    namedipc::robust::unlink(&args::name(name)?).map_err(to_py_err)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The class itself is made on first use (lib.rs, LAZY_CLASSES).
    m.add_function(wrap_pyfunction!(_reopen_robust_semaphore, m)?)?;
    m.add_function(wrap_pyfunction!(unlink_robust_semaphore, m)?)?;
    Ok(())
}
