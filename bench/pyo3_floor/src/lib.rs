//! `pyo3_floor.SharedMemory`: posix_ipc's `SharedMemory(name)` and
//! `close_fd()` as a PyO3 class that does nothing else: the same slots as
//! namedipc's class (a `__new__` taking anything, an `__init__` with
//! posix_ipc's five parameters, a frozen class with subclasses and weak
//! references), and the same calls to the kernel as posix_ipc's open (one
//! `openat` of `/dev/shm/NAME`, as glibc's `shm_open` makes it, and the
//! `close`). No checks, no owner, no errors but the OS's.
//!
//! Built with the feature `fstat`, the class also makes the one `fstat` of
//! the descriptor that namedipc's open makes where it reads the owner: the
//! least a PyO3 class can do for that open. A feature rather than a second
//! class, so that each build's one class is compiled (and inlined) alike.
//!
//! Built with the feature `handle`, the class does instead the least a
//! handle that a careful user can trust must do: it checks its arguments'
//! types and the name (1 to 255 bytes after the leading slashes, no `/` or
//! NUL among them), keeps the name (the caller's str), and refuses a second
//! `__init__`, all under the one mutex a handle shared between threads
//! needs anyway (no set-once cell of its own).

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

#[pyclass(frozen, subclass, weakref)]
struct SharedMemory {
    #[cfg(not(feature = "handle"))]
    file: Mutex<Option<File>>,
    #[cfg(feature = "handle")]
    state: Mutex<Option<Opened>>,
}

/// What the `handle` build's `__init__` opened and keeps.
#[cfg(feature = "handle")]
struct Opened {
    file: Option<File>,
    #[allow(dead_code)] // kept, as a handle's name is; never read here
    name: Py<PyString>,
}

#[pymethods]
impl SharedMemory {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self {
            #[cfg(not(feature = "handle"))]
            file: Mutex::new(None),
            #[cfg(feature = "handle")]
            state: Mutex::new(None),
        }
    }

    #[pyo3(signature = (name, flags = None, mode = None, size = None, read_only = None))]
    fn __init__(
        &self,
        name: &Bound<'_, PyString>,
        flags: Option<&Bound<'_, PyAny>>,
        mode: Option<&Bound<'_, PyAny>>,
        size: Option<&Bound<'_, PyAny>>,
        read_only: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        #[cfg(feature = "handle")]
        for arg in [flags, mode, size, read_only].into_iter().flatten() {
            if !arg.is_instance_of::<pyo3::types::PyInt>() {
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "flags, mode, size and read_only are ints",
                ));
            }
        }
        #[cfg(not(feature = "handle"))]
        let _ = (flags, mode, size, read_only);
        #[cfg(feature = "handle")]
        let given = name;
        let name = name.to_str()?.trim_start_matches('/').as_bytes();
        #[cfg(feature = "handle")]
        if name.is_empty() || name.len() > 255 || memchr::memchr2(b'/', 0, name).is_some() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "a name is '/' and 1 to 255 bytes, no '/' or NUL",
            ));
        }
        #[cfg(feature = "handle")]
        let mut state = self.state.lock().unwrap();
        #[cfg(feature = "handle")]
        if state.is_some() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "__init__ ran already",
            ));
        }
        // The path on the stack, as glibc builds it: no allocation.
        let mut path = [0u8; 9 + 255];
        let len = 9 + name.len();
        if len > path.len() {
            return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput).into());
        }
        path[..9].copy_from_slice(b"/dev/shm/");
        path[9..len].copy_from_slice(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(O_NOFOLLOW)
            .open(OsStr::from_bytes(&path[..len]))?;
        #[cfg(feature = "fstat")]
        fstat(&file)?;
        #[cfg(not(feature = "handle"))]
        {
            *self.file.lock().unwrap() = Some(file);
        }
        #[cfg(feature = "handle")]
        {
            *state = Some(Opened {
                file: Some(file),
                name: given.clone().unbind(),
            });
        }
        Ok(())
    }

    fn close_fd(&self) {
        #[cfg(not(feature = "handle"))]
        self.file.lock().unwrap().take();
        #[cfg(feature = "handle")]
        if let Some(opened) = self.state.lock().unwrap().as_mut() {
            opened.file.take();
        }
    }
}

/// One fstat of `file`, as namedipc's open makes it (the owner it reads is
/// not kept: only the call's cost matters here).
#[cfg(feature = "fstat")]
fn fstat(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `file` is open and `st` is writable memory for one `struct stat`.
    if unsafe { libc::fstat(file.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Linux's O_NOFOLLOW (what glibc's shm_open adds), spelled here so that
/// this measurement needs no crate but PyO3.
const O_NOFOLLOW: i32 = 0o400_000;

#[pymodule]
fn pyo3_floor(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SharedMemory>()
}
