//! `namedipc.NamedSemaphore`: a named semaphore with threading.Semaphore's
//! manners (acquire returns a bool, release takes n) and explicit
//! ownership: the handle that created it removes it when closed.

use namedipc::{Existence, ObjectKind, Semaphore, Trust};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::aio;
use crate::args::{self, Timeout};
use crate::errors::to_py_err;
use crate::exit;
use crate::handle::SemSlot;
use crate::pickling::{self, qualified_name};
use crate::wait::OnSignal;

const KIND: ObjectKind = ObjectKind::Semaphore;

/// The values of `NamedSemaphore.Flags` (an IntEnum in Python), shared by
/// RobustSemaphore.
pub(crate) fn existence(flag: i64) -> PyResult<Existence> {
    Ok(match flag {
        0 => Existence::RaiseIfExists,
        1 => Existence::LinkOrCreate,
        2 => Existence::RaiseIfNotExists,
        3 => Existence::UnlinkAndCreate,
        _ => {
            return Err(PyValueError::new_err(format!(
                "handle_existence must be a NamedSemaphore.Flags member (RAISE_IF_EXISTS, \
                 LINK_OR_CREATE, RAISE_IF_NOT_EXISTS or UNLINK_AND_CREATE), not {flag}"
            )))
        }
    })
}

#[pyclass(
    module = "namedipc",
    name = "NamedSemaphore",
    frozen,
    subclass,
    weakref
)]
pub(crate) struct PyNamedSemaphore {
    slot: SemSlot,
}

/// Whom a NamedSemaphore trusts and what a new one gets, from its arguments.
#[derive(Default)]
pub(crate) struct Sharing {
    /// `group=`: the gid a new semaphore gets, and whose semaphores are trusted.
    pub(crate) group: Option<u32>,
    /// `trust_owners=`: other owners trusted.
    pub(crate) owners: Vec<u32>,
}

impl Sharing {
    /// Reads `group=` and `trust_owners=`.
    pub(crate) fn from_args(
        group: Option<&Bound<'_, PyAny>>,
        trust_owners: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(Self {
            group: group.map(args::group).transpose()?.flatten(),
            owners: trust_owners
                .map(args::trust_owners)
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// The default trust, these owners, and others' writes where the mode
    /// asked for grants them itself (the group is the options' to add).
    pub(crate) fn trust(&self, mode: u32) -> Trust {
        self.owners
            .iter()
            .fold(Trust::new(), |trust, &uid| trust.owner(uid))
            .world_writable(mode & 0o002 != 0)
    }
}

impl PyNamedSemaphore {
    fn open(
        &self,
        name: &str,
        initial_value: u32,
        existence: Existence,
        mode: u32,
        unlink_on_close: bool,
        sharing: &Sharing,
    ) -> PyResult<()> {
        let mut options = Semaphore::options()
            .existence(existence)
            .initial_value(initial_value)
            .mode(mode)
            .trust(sharing.trust(mode))
            .unlink_on_drop(unlink_on_close);
        if let Some(gid) = sharing.group {
            options = options.group(gid);
        }
        let sem = options.open(name).map_err(to_py_err)?;
        let file_mode = sem.owner().mode;
        self.slot.install(sem, file_mode)
    }
}

#[pymethods]
impl PyNamedSemaphore {
    /// `namedipc.Flags` (the existence flags), made on first use.
    #[classattr]
    #[pyo3(name = "Flags")]
    fn flags_attribute(py: Python<'_>) -> Py<PyAny> {
        crate::flags_attribute(py)
    }

    #[new]
    #[pyo3(signature = (*_args, **_kwargs), text_signature = "(name, value=1, handle_existence=NamedSemaphore.Flags.LINK_OR_CREATE, mode=0o600, unlink_on_close=True, *, initial_value=None, group=None, trust_owners=())")]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self {
            slot: SemSlot::new(KIND),
        }
    }

    #[pyo3(
        signature = (name, value = None, handle_existence = None, mode = None, unlink_on_close = true, *, initial_value = None, group = None, trust_owners = None)
    )]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn __init__(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        handle_existence: Option<&Bound<'_, PyAny>>,
        mode: Option<&Bound<'_, PyAny>>,
        unlink_on_close: bool,
        initial_value: Option<&Bound<'_, PyAny>>,
        group: Option<&Bound<'_, PyAny>>,
        trust_owners: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        slf.get().slot.ensure_uninitialised()?;
        // One leading slash, as named-semaphores shows it ("imports" is "/imports").
        let name = namedipc::paths::canonical(&args::name(name)?);
        // `value` is the rule's name (threading.Semaphore(value));
        // `initial_value=` is named-semaphores' spelling, accepted as well.
        let initial_value = match (value, initial_value) {
            (Some(_), Some(_)) => {
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "pass value or initial_value (the same thing, named-semaphores' spelling), not both",
                ))
            }
            (Some(value), None) => args::count(Some(value), "value", 1)?,
            (None, initial_value) => args::count(initial_value, "initial_value", 1)?,
        };
        let existence = existence(args::int_or(handle_existence, 1, "handle_existence", 0, 3)?)?;
        let mode = args::mode(mode)?;
        let sharing = Sharing::from_args(group, trust_owners)?;
        let this = slf.get();
        this.open(
            &name,
            initial_value,
            existence,
            mode,
            unlink_on_close,
            &sharing,
        )?;
        // A creator removes its name when closed: also at exit, if a thread
        // still holds the handle then.
        if unlink_on_close && this.slot.created()? {
            exit::close_at_exit(slf.as_any())?;
        }
        Ok(())
    }

    /// Takes one slot, as threading.Semaphore.acquire does: True when taken,
    /// False when blocking=False and none is free, or when timeout passes.
    #[pyo3(signature = (blocking = true, timeout = None))]
    fn acquire(
        &self,
        py: Python<'_>,
        blocking: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let timeout = args::threading_timeout(blocking, timeout)?;
        self.slot.acquire(py, timeout, OnSignal::Resume)
    }

    /// Gives back n slots (n >= 1), all or none: ValueError, and nothing
    /// given back, if that would pass SEMAPHORE_VALUE_MAX.
    #[pyo3(signature = (n = None), text_signature = "(self, n=1)")]
    fn release(&self, py: Python<'_>, n: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let Some(n) = n else {
            return self.slot.release();
        };
        let n = args::int_or(
            Some(n),
            1,
            "n",
            1,
            i64::from(namedipc::semaphore::VALUE_MAX),
        )?;
        let n = u32::try_from(n).unwrap_or(u32::MAX); // range checked above
        self.slot.with(|sem| release_many(py, sem, n))?
    }

    /// Closes this handle. If it created the semaphore (and unlink_on_close
    /// was left True), the semaphore's name is removed too. Closing twice is harmless.
    fn close(&self) {
        self.slot.close();
    }

    /// Removes the semaphore's name now; handles already open keep working.
    fn unlink(&self) -> PyResult<()> {
        self.slot.unlink()
    }

    #[getter]
    fn name(&self) -> PyResult<&str> {
        self.slot.name()
    }

    /// Free slots now (it may change at any moment).
    #[getter]
    fn value(&self) -> PyResult<u32> {
        self.slot.value()
    }

    /// Whether this handle created the semaphore.
    #[getter]
    fn created(&self) -> PyResult<bool> {
        self.slot.created()
    }

    #[getter]
    fn closed(&self) -> bool {
        !self.slot.is_open()
    }

    /// The semaphore's permission bits (as file_mode).
    #[getter]
    fn mode(&self) -> PyResult<u32> {
        self.slot.mode()
    }

    /// The owner's uid, when this handle opened the semaphore.
    #[getter]
    fn uid(&self) -> PyResult<u32> {
        Ok(self.slot.owner()?.uid)
    }

    /// The semaphore's gid, when this handle opened it.
    #[getter]
    fn gid(&self) -> PyResult<u32> {
        Ok(self.slot.owner()?.gid)
    }

    /// The semaphore's permission bits, when this handle opened it.
    #[getter]
    fn file_mode(&self) -> PyResult<u32> {
        Ok(self.slot.owner()?.mode)
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get()
            .slot
            .acquire(slf.py(), Timeout::Forever, OnSignal::Resume)?;
        Ok(slf.clone())
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, _exc_info: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.slot.release()
    }

    /// Awaitable acquire: True when a slot is taken, False when timeout
    /// (seconds; None: no limit) passes first. Waiting takes one thread per
    /// semaphore object, shared by all its waiters, only while some wait;
    /// a cancelled wait leaves no slot taken.
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

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        let state = match this.slot.with(Semaphore::value) {
            Ok(Ok(value)) => format!("value={value}"),
            Ok(Err(_)) => "value=?".to_owned(),
            Err(_) => "closed".to_owned(),
        };
        let name = pyo3::types::PyString::new(slf.py(), this.slot.name()?).repr()?;
        Ok(format!(
            "<{} {name} at {:#x}: {state}>",
            qualified_name(&slf.get_type())?,
            slf.as_ptr() as usize
        ))
    }

    /// Pickles by name: unpickling opens the same semaphore (value
    /// untouched), as a handle that did not create it.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        pickling::reduce(slf, "_reopen_named_semaphore", (slf.get().slot.name()?,))
    }
}

/// Gives `n` slots back, all or none. The OS gives them back one at a time,
/// some 5 ns each, so a large `n` takes seconds: it runs without the GIL in
/// chunks, and between chunks the signal handlers run; if one raises (Ctrl-C),
/// the slots given so far are taken back (those another process took
/// meanwhile stay given) and the exception propagates.
fn release_many(py: Python<'_>, sem: &Semaphore, n: u32) -> PyResult<()> {
    /// About a millisecond of posts.
    const CHUNK: u32 = 1 << 18;
    if n <= CHUNK {
        return py.detach(|| sem.release_many(n)).map_err(to_py_err);
    }
    // All or none: refuse before giving anything back.
    let value = sem.value().map_err(to_py_err)?;
    if u64::from(value) + u64::from(n) > u64::from(namedipc::semaphore::VALUE_MAX) {
        return sem.release_many(n).map_err(to_py_err); // reports the overflow, gives nothing
    }
    let mut given = 0;
    while given < n {
        let chunk = CHUNK.min(n - given);
        py.detach(|| sem.release_many(chunk)).map_err(to_py_err)?;
        given += chunk;
        if let Err(raised) = py.check_signals() {
            py.detach(|| {
                for _ in 0..given {
                    if !matches!(sem.try_acquire(), Ok(true)) {
                        break;
                    }
                }
            });
            return Err(raised);
        }
    }
    Ok(())
}

/// Unpickling helper: a `cls` instance opened on the existing semaphore `name`.
#[pyfunction]
pub(crate) fn _reopen_named_semaphore<'py>(
    cls: &Bound<'py, PyType>,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    pickling::reopen(cls, |obj| {
        obj.cast::<PyNamedSemaphore>()?.get().open(
            name,
            0,
            Existence::RaiseIfNotExists,
            0o600,
            false,
            &Sharing::default(),
        )
    })
}
