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

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

#[pyclass(frozen, subclass, weakref)]
struct SharedMemory {
    file: Mutex<Option<File>>,
}

#[pymethods]
impl SharedMemory {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self {
            file: Mutex::new(None),
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
        let _ = (flags, mode, size, read_only);
        let name = name.to_str()?.trim_start_matches('/').as_bytes();
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
        *self.file.lock().unwrap() = Some(file);
        Ok(())
    }

    fn close_fd(&self) {
        self.file.lock().unwrap().take();
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
