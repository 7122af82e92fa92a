//! `namedipc.SharedMemory`: posix_ipc 1.3's SharedMemory, plus `.buf`, a
//! memoryview of one mapping made through Python's own mmap module (whose
//! export count refuses to unmap while a view is alive), `close()` and `with`.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::sync::{Mutex, MutexGuard, PoisonError};

use namedipc::flags::O_TRUNC;
use namedipc::shm::SharedMemory;
use namedipc::{ObjectKind, Owner, Trust};
use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PyString, PyTuple, PyType};

use crate::args::{self, Target, RANDOM_PREFIX};
use crate::errors::{self, to_py_err};
use crate::init::Handle;
use crate::pickling::{self, qualified_name};

const KIND: ObjectKind = ObjectKind::SharedMemory;

/// What `__init__` opened, and what `close_fd()` and `close()` take away.
/// The whole of it lives under the handle's one mutex: a second `__init__`
/// is refused under that lock before it opens anything, and nothing else
/// (no set-once cell beside it) is paid for on every open.
#[allow(clippy::struct_excessive_bools)] // four independent facts of one handle
struct Opened {
    /// The name as given: the caller's own str (kept, not copied), or the
    /// random name made for it.
    name: Py<PyString>,
    mode: u32,
    read_only: bool,
    created: bool,
    /// The segment's owner and mode, read from the descriptor when first
    /// asked (posix_ipc's open reads nothing) and kept for after `close()`.
    owner: Option<Owner>,
    /// The open segment; `None` after `close_fd()` or `close()`.
    shm: Option<SharedMemory>,
    /// The `mmap.mmap` behind `.buf`, made by the first `.buf` that found
    /// the segment non-empty; it holds its own duplicate of the descriptor.
    mapping: Option<Py<PyAny>>,
    closed: bool,
    /// The descriptor's number was handed out (`.fd`, `fileno()`): from then
    /// on the user may have closed it or handed it on, so collecting the
    /// object must not close that number (posix_ipc never closes it).
    exposed: bool,
}

impl Opened {
    /// The name, as text.
    fn name_text<'a>(&'a self, py: Python<'a>) -> PyResult<&'a str> {
        self.name.bind(py).to_str()
    }

    /// The open segment; ExistentialError after `close()` or `close_fd()`
    /// (`consequence` says what the latter leaves impossible).
    fn segment(&self, py: Python<'_>, consequence: &str) -> PyResult<&SharedMemory> {
        match &self.shm {
            Some(shm) => Ok(shm),
            None if self.closed => Err(errors::closed(KIND, self.name_text(py)?)),
            None => Err(errors::fd_closed(
                py,
                KIND,
                self.name_text(py)?,
                consequence,
            )),
        }
    }
}

/// A POSIX shared memory segment with posix_ipc 1.3's API, plus `buf` (a
/// memoryview of the whole segment), `close()` and `with`.
#[pyclass(module = "namedipc", name = "SharedMemory", frozen, subclass, weakref)]
pub(crate) struct PySharedMemory {
    /// `None` until `__init__` has run.
    state: Mutex<Option<Opened>>,
}

impl PySharedMemory {
    /// A handle `__init__` has not run on, as `__new__` makes it.
    pub(crate) fn unopened() -> Self {
        Self {
            state: Mutex::new(None),
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
        size: Option<&Bound<'_, PyAny>>,
        read_only: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let name = args::optional_name(name)?;
        let flags = args::flags(flags)?;
        let mode = args::mode(mode)?;
        let size = args::int_or(size, 0, "size", 0, i64::MAX)?;
        let read_only = args::flag(read_only, "read_only")?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // ranges checked above
        Self::open(handle, py, name, flags, mode, size as u64, read_only)
    }

    fn open(
        handle: Handle<'_, Self>,
        py: Python<'_>,
        name: Option<Bound<'_, PyString>>,
        flags: i64,
        mode: u32,
        size: u64,
        read_only: bool,
    ) -> PyResult<()> {
        args::require_creat_with_excl(flags, KIND)?;
        // The given name's text is read before the lock is taken: no Python
        // code, and nothing that could start the garbage collector (whose
        // finalizers might call this very handle), runs under the lock
        // during the open.
        let target = args::target(name, flags, KIND)?;
        let text = match &target {
            Target::Random => "",
            Target::Named(name, _) => args::text(name)?,
        };
        // posix_ipc's ways: any owner, and the umask narrows the mode.
        let mut options = SharedMemory::options()
            .trust(Trust::anyone())
            .apply_umask(true)
            .mode(mode)
            .read_only(read_only)
            .truncate(flags & i64::from(O_TRUNC) != 0);
        // posix_ipc: size 0 leaves the size alone.
        if size > 0 {
            options = options.size(size);
        }
        // The lock of a shared handle is held while the segment is opened,
        // so that of two racing __init__ calls the second opens (or
        // creates) nothing; its errors become Python's after it.
        let failed = {
            let mut state = handle.state(|this| this.lock(py), |this| &mut this.state);
            if state.is_some() {
                drop(state);
                return Err(errors::already_initialised(KIND));
            }
            let opened = match &target {
                // A str is no container: making one cannot start a collection.
                Target::Random => options
                    .create_random(RANDOM_PREFIX)
                    .map(|shm| (PyString::new(py, shm.name()), shm)),
                // The name given is the one the segment keeps, so the
                // caller's str is kept rather than a copy made from it.
                Target::Named(name, existence) => options
                    .existence(*existence)
                    .open(text)
                    .map(|shm| (name.clone(), shm)),
            };
            match opened {
                Ok((name, shm)) => {
                    let opened = Opened {
                        name: name.unbind(),
                        mode,
                        read_only,
                        created: shm.created(),
                        owner: None,
                        shm: Some(shm),
                        mapping: None,
                        closed: false,
                        exposed: false,
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

    /// The state, locked without ever blocking while attached to the
    /// interpreter: a thread holding the lock may be inside mmap with the
    /// GIL released. A panic cannot leave the state half-changed, so a
    /// poisoned lock is still good.
    fn lock(&self, py: Python<'_>) -> MutexGuard<'_, Option<Opened>> {
        self.state
            .lock_py_attached(py)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on what `__init__` opened, under the lock; TypeError if
    /// `__init__` never ran.
    fn with<R>(&self, py: Python<'_>, f: impl FnOnce(&mut Opened) -> PyResult<R>) -> PyResult<R> {
        match self.lock(py).as_mut() {
            Some(opened) => f(opened),
            None => Err(errors::uninitialised(KIND)),
        }
    }

    /// `close()` of a handle whose `.buf` was never made, for
    /// `fast_path.rs`: `None` if it needs the full path (a mapping to
    /// close, which calls into Python, or a handle `__init__` never ran).
    pub(crate) fn close_unmapped(&self, py: Python<'_>) -> Option<()> {
        let mut state = self.lock(py);
        let opened = state.as_mut().filter(|opened| opened.mapping.is_none())?;
        opened.shm = None;
        opened.closed = true;
        Some(())
    }

    /// The name (the str kept), or TypeError if `__init__` never ran.
    fn name_str(&self, py: Python<'_>) -> PyResult<Py<PyString>> {
        self.with(py, |opened| Ok(opened.name.clone_ref(py)))
    }

    /// The segment's owner and mode: kept, or read now from the open
    /// descriptor (the first time, which also checks the file type).
    fn owner(&self, py: Python<'_>) -> PyResult<Owner> {
        self.with(py, |opened| {
            if let Some(owner) = opened.owner {
                return Ok(owner);
            }
            let Some(shm) = &opened.shm else {
                let closed_by = if opened.closed {
                    "close()"
                } else {
                    "close_fd()"
                };
                return Err(errors::owner_not_read(
                    py,
                    KIND,
                    opened.name_text(py)?,
                    closed_by,
                ));
            };
            let owner = shm.owner().map_err(to_py_err)?;
            opened.owner = Some(owner);
            Ok(owner)
        })
    }
}

/// Maps the whole segment with Python's mmap (read-only if the handle is).
fn map(py: Python<'_>, shm: &SharedMemory, len: u64) -> PyResult<Py<PyAny>> {
    let mmap = py.import("mmap")?;
    let access = mmap.getattr(if shm.read_only() {
        "ACCESS_READ"
    } else {
        "ACCESS_WRITE"
    })?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("access", access)?;
    match mmap
        .getattr("mmap")?
        .call((shm.as_raw_fd(), len), Some(&kwargs))
    {
        Ok(mapping) => Ok(mapping.unbind()),
        Err(err) => {
            // An OSError (e.g. ENOMEM for a segment larger than the address
            // space) becomes the core's error, naming the segment.
            let errno = err
                .value(py)
                .getattr("errno")
                .ok()
                .and_then(|e| e.extract::<i32>().ok());
            match errno {
                Some(errno) => Err(to_py_err(namedipc::Error::Os {
                    operation: "mmap",
                    kind: ObjectKind::SharedMemory,
                    name: shm.name().to_owned(),
                    source: std::io::Error::from_raw_os_error(errno),
                })),
                None => Err(err),
            }
        }
    }
}

#[pymethods]
impl PySharedMemory {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs), text_signature = "(name, flags=0, mode=0o600, size=0, read_only=False)")]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self::unopened()
    }

    #[pyo3(signature = (name, flags = None, mode = None, size = None, read_only = None))]
    pub(crate) fn __init__(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        flags: Option<&Bound<'_, PyAny>>,
        mode: Option<&Bound<'_, PyAny>>,
        size: Option<&Bound<'_, PyAny>>,
        read_only: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        Self::init(Handle::Shared(self), py, name, flags, mode, size, read_only)
    }

    #[getter]
    fn name(&self, py: Python<'_>) -> PyResult<Py<PyString>> {
        self.name_str(py)
    }

    /// The mode given to the constructor (as posix_ipc reports it).
    #[getter]
    fn mode(&self, py: Python<'_>) -> PyResult<u32> {
        self.with(py, |opened| Ok(opened.mode))
    }

    /// The owner's uid, read when first asked and kept (not in posix_ipc).
    #[getter]
    fn uid(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.owner(py)?.uid)
    }

    /// The segment's gid, read when first asked and kept (not in posix_ipc).
    #[getter]
    fn gid(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.owner(py)?.gid)
    }

    /// The segment's permission bits, after the umask, read when first
    /// asked and kept (not in posix_ipc; mode is the one asked for).
    #[getter]
    fn file_mode(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.owner(py)?.mode)
    }

    /// Whether this handle created the segment (not in posix_ipc).
    #[getter]
    fn created(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |opened| Ok(opened.created))
    }

    /// Whether close() was called (not in posix_ipc).
    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |opened| Ok(opened.closed))
    }

    /// The file descriptor; -1 after close_fd() or close().
    #[getter]
    fn fd(&self, py: Python<'_>) -> PyResult<i32> {
        self.with(py, |opened| {
            let fd = opened.shm.as_ref().map_or(-1, AsRawFd::as_raw_fd);
            opened.exposed |= fd >= 0;
            Ok(fd)
        })
    }

    /// The segment's size now, in bytes (any process may change it).
    #[getter]
    fn size(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |opened| {
            opened
                .segment(py, "its size cannot be read")?
                .size()
                .map_err(to_py_err)
        })
    }

    /// A memoryview of the whole segment (read-only if the handle is),
    /// mapped once: as long as the segment was at the first access that
    /// found it non-empty.
    #[getter]
    fn buf<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyMemoryView>> {
        self.with(py, |opened| {
            if let Some(mapping) = &opened.mapping {
                return PyMemoryView::from(mapping.bind(py));
            }
            let shm = opened.segment(
                py,
                ".buf cannot map it (read .buf before close_fd() to keep a mapping)",
            )?;
            let len = shm.size().map_err(to_py_err)?;
            if len == 0 {
                // mmap cannot map 0 bytes. Nothing is cached, so that a later
                // access maps the segment once someone has given it a size.
                return if opened.read_only {
                    PyMemoryView::from(PyBytes::new(py, b"").as_any())
                } else {
                    PyMemoryView::from(PyByteArray::new(py, b"").as_any())
                };
            }
            let mapping = map(py, shm, len)?;
            let view = PyMemoryView::from(mapping.bind(py));
            opened.mapping = Some(mapping);
            view
        })
    }

    /// Returns the file descriptor (same as the fd property).
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        self.fd(py)
    }

    /// Closes the file descriptor; .buf, if already read, stays usable.
    /// Closing it twice is harmless, as in posix_ipc.
    pub(crate) fn close_fd(&self, py: Python<'_>) -> PyResult<()> {
        // Closed in place, under the lock, as close() does: a close(2) of
        // the segment's descriptor does not block, and the handle (some
        // hundred bytes) is not moved out to be dropped.
        self.with(py, |opened| {
            opened.shm = None;
            Ok(())
        })
    }

    /// Unmaps .buf and closes the file descriptor; the segment itself lives
    /// on until unlinked. BufferError while memoryviews of .buf exist.
    /// Closing twice is harmless.
    pub(crate) fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |opened| {
            if opened.closed {
                return Ok(());
            }
            if let Some(mapping) = &opened.mapping {
                if let Err(err) = mapping.bind(py).call_method0("close") {
                    if err.is_instance_of::<PyBufferError>(py) {
                        return Err(errors::views_alive(py, KIND, opened.name_text(py)?, err));
                    }
                    return Err(err);
                }
            }
            opened.mapping = None;
            opened.shm = None;
            opened.closed = true;
            Ok(())
        })
    }

    /// Removes the segment's name; handles and mappings that exist keep working.
    pub(crate) fn unlink(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |opened| {
            namedipc::shm::unlink(opened.name_text(py)?).map_err(to_py_err)
        })
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.close(py)
    }

    fn __str__(&self, py: Python<'_>) -> PyResult<Py<PyString>> {
        self.name(py)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let (name, mode) = slf
            .get()
            .with(py, |opened| Ok((opened.name.clone_ref(py), opened.mode)))?;
        Ok(format!(
            "{}({:?}, mode={:04o})",
            qualified_name(&slf.get_type())?,
            name.bind(py).to_str()?,
            mode
        ))
    }

    /// Pickles by name: unpickling opens the same segment, size untouched.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let args = slf.get().with(py, |opened| {
            Ok((opened.name.clone_ref(py), opened.mode, opened.read_only))
        })?;
        pickling::reduce(slf, "_reopen_shared_memory", args)
    }
}

impl Drop for PySharedMemory {
    /// Collected without close_fd() or close(): a descriptor whose number
    /// was handed out is left open, as posix_ipc leaves it (the user may have
    /// closed it already, and the number may now be another file's); one
    /// never handed out is closed with the handle.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(opened) = state.as_mut().filter(|opened| opened.exposed) {
            if let Some(shm) = opened.shm.take() {
                let _left_open = OwnedFd::from(shm).into_raw_fd();
            }
        }
    }
}

/// Unpickling helper: a `cls` instance opened on the existing segment
/// `name`, without calling a subclass's `__init__` (whose signature may differ).
#[pyfunction]
fn _reopen_shared_memory<'py>(
    cls: &Bound<'py, PyType>,
    name: &Bound<'py, PyAny>,
    mode: &Bound<'py, PyAny>,
    read_only: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let name = args::name_str(name)?;
    // A pickle is data from outside: its mode gets the constructor's checks
    // (ValueError or TypeError, never OverflowError).
    let mode = args::mode(Some(mode))?;
    pickling::reopen(cls, |obj| {
        let this = obj.cast::<PySharedMemory>()?.get();
        PySharedMemory::open(
            Handle::Shared(this),
            obj.py(),
            Some(name),
            0,
            mode,
            0,
            read_only,
        )
    })
}

/// Removes the shared memory segment `name`; ExistentialError if there is none.
#[pyfunction]
fn unlink_shared_memory(name: &Bound<'_, PyAny>) -> PyResult<()> {
    namedipc::shm::unlink(&args::name(name)?).map_err(to_py_err)
}

/// Adds the shared memory functions to the module (the class is made on
/// first use, lib.rs).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(unlink_shared_memory, m)?)?;
    m.add_function(wrap_pyfunction!(_reopen_shared_memory, m)?)?;
    Ok(())
}
