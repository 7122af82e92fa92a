//! `namedipc.Semaphore`: posix_ipc 1.3's Semaphore, argument for argument,
//! minus its crashes.

use namedipc::ObjectKind;
use namedipc::{Semaphore, Trust};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

use crate::args::{self, Negative, Target, Timeout, RANDOM_PREFIX};
use crate::errors::{self, to_py_err};
use crate::handle::SemSlot;
use crate::pickling::{self, qualified_name};
use crate::wait::OnSignal;

const KIND: ObjectKind = ObjectKind::Semaphore;

#[pyclass(module = "namedipc", name = "Semaphore", frozen, subclass, weakref)]
pub(crate) struct PySemaphore {
    slot: SemSlot,
    /// The message of this handle's BusyError, made the first time it is raised.
    busy: PyOnceLock<Py<PyString>>,
}

impl PySemaphore {
    /// A handle `__init__` has not run on, as `__new__` makes it.
    pub(crate) fn unopened() -> Self {
        Self {
            slot: SemSlot::new(KIND),
            busy: PyOnceLock::new(),
        }
    }

    fn open(&self, name: Option<&str>, flags: i64, mode: u32, initial_value: u32) -> PyResult<()> {
        // posix_ipc refuses O_EXCL alone, as SharedMemory and MessageQueue do.
        args::require_creat_with_excl(flags, KIND)?;
        // posix_ipc's ways: any owner, and the umask narrows the mode.
        let options = Semaphore::options()
            .trust(Trust::anyone())
            .apply_umask(true)
            .mode(mode)
            .initial_value(initial_value);
        let sem = match args::target(name, flags, KIND)? {
            Target::Random => options.create_random(RANDOM_PREFIX),
            Target::Named(name, existence) => options.existence(existence).open(name),
        }
        .map_err(to_py_err)?;
        self.slot.install(sem, mode)
    }

    /// The message of this handle's BusyError.
    fn busy_message(&self, py: Python<'_>) -> PyResult<&Py<PyString>> {
        let name = self.slot.name()?;
        Ok(self
            .busy
            .get_or_init(py, || errors::busy_message(py, KIND, name)))
    }

    /// The message of this handle's BusyError if one was raised before, for
    /// `fast_path.rs`, which raises it again without PyO3.
    pub(crate) fn made_busy_message(&self, py: Python<'_>) -> Option<&Py<PyString>> {
        self.busy.get(py)
    }

    /// `acquire()` without a timeout, for a caller that has just found no
    /// slot free with its own try (the fast path): waits as long as it takes.
    pub(crate) fn acquire_forever_after_try(&self, py: Python<'_>) -> PyResult<()> {
        if self
            .slot
            .acquire_after_try(py, Timeout::Forever, OnSignal::Raise)?
        {
            Ok(())
        } else {
            Err(errors::busy_with(py, self.busy_message(py)?))
        }
    }

    /// The semaphore if the handle is open, for `fast_path.rs` (which takes
    /// the full path, and its errors, otherwise).
    pub(crate) fn open_semaphore(&self) -> Option<&Semaphore> {
        self.slot.open_semaphore()
    }
}

#[pymethods]
impl PySemaphore {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs), text_signature = "(name, flags=0, mode=0o600, initial_value=0)")]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self::unopened()
    }

    #[pyo3(
        signature = (name, flags = None, mode = None, initial_value = None)
    )]
    pub(crate) fn __init__(
        &self,
        name: &Bound<'_, PyAny>,
        flags: Option<&Bound<'_, PyAny>>,
        mode: Option<&Bound<'_, PyAny>>,
        initial_value: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.slot.ensure_uninitialised()?;
        let name = args::optional_name(name)?;
        let flags = args::flags(flags)?;
        let mode = args::mode(mode)?;
        let initial_value = args::initial_value(initial_value, 0)?;
        // The caller's str, read in place: the semaphore keeps its own copy.
        let name = name.as_ref().map(args::text).transpose()?;
        self.open(name, flags, mode, initial_value)
    }

    /// Takes the semaphore. timeout None waits as long as it takes, 0 never
    /// waits, > 0 waits at most that many seconds; BusyError when it cannot.
    #[pyo3(signature = (timeout = None))]
    pub(crate) fn acquire(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let timeout = args::timeout(timeout, Negative::Reject)?;
        if self.slot.acquire(py, timeout, OnSignal::Raise)? {
            Ok(())
        } else {
            Err(errors::busy_with(py, self.busy_message(py)?))
        }
    }

    /// Gives the semaphore back (adds one to its value).
    pub(crate) fn release(&self) -> PyResult<()> {
        self.slot.release()
    }

    /// Closes this handle; the semaphore itself lives on until unlinked.
    pub(crate) fn close(&self) -> PyResult<()> {
        if self.slot.close() {
            Ok(())
        } else {
            Err(errors::closed(KIND, self.slot.name()?))
        }
    }

    /// Removes the semaphore's name; handles already open keep working.
    pub(crate) fn unlink(&self) -> PyResult<()> {
        self.slot.unlink()
    }

    #[getter]
    fn name(&self) -> PyResult<&str> {
        self.slot.name()
    }

    /// Whether this handle created the semaphore (not in posix_ipc).
    #[getter]
    fn created(&self) -> PyResult<bool> {
        self.slot.created()
    }

    /// Whether close() was called (not in posix_ipc).
    #[getter]
    fn closed(&self) -> bool {
        !self.slot.is_open()
    }

    /// The mode asked for, as posix_ipc reports it; file_mode is the semaphore's own.
    #[getter]
    fn mode(&self) -> PyResult<u32> {
        self.slot.mode()
    }

    /// The owner's uid, when this handle opened the semaphore (not in posix_ipc).
    #[getter]
    fn uid(&self) -> PyResult<u32> {
        Ok(self.slot.owner()?.uid)
    }

    /// The semaphore's gid, when this handle opened it (not in posix_ipc).
    #[getter]
    fn gid(&self) -> PyResult<u32> {
        Ok(self.slot.owner()?.gid)
    }

    /// The semaphore's permission bits, when this handle opened it, after
    /// the umask (not in posix_ipc).
    #[getter]
    fn file_mode(&self) -> PyResult<u32> {
        Ok(self.slot.owner()?.mode)
    }

    #[getter]
    fn value(&self) -> PyResult<u32> {
        self.slot.value()
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().acquire(slf.py(), None)?;
        Ok(slf.clone())
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, _exc_info: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }

    fn __str__(&self) -> PyResult<&str> {
        self.slot.name()
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        Ok(format!(
            "{}({:?}, mode={:04o})",
            qualified_name(&slf.get_type())?,
            this.slot.name()?,
            this.slot.mode()?
        ))
    }

    /// Pickles by name: unpickling opens the same semaphore, value untouched.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        pickling::reduce(slf, "_reopen_semaphore", (slf.get().slot.name()?,))
    }
}

/// Unpickling helper: a `cls` instance opened on the existing semaphore
/// `name`, without calling a subclass's `__init__` (whose signature may differ).
#[pyfunction]
pub(crate) fn _reopen_semaphore<'py>(
    cls: &Bound<'py, PyType>,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    pickling::reopen(cls, |obj| {
        obj.cast::<PySemaphore>()?
            .get()
            .open(Some(name), 0, 0o600, 0)
    })
}
