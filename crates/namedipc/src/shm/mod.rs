//! POSIX shared memory segments: a block of memory that unrelated processes
//! map by name, compatible with C programs that call `shm_open` on the same
//! name, and safe mappings of it whose lifetime is tied to the handle.
//!
//! The handle and its size are here; opening is in `options`, the mappings
//! in `mapping`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use crate::error::{Error, ObjectKind, Result};
use crate::existence::Existence;
use crate::ownership::Owner;
use crate::paths;
use crate::sys;

mod mapping;
mod options;

pub use mapping::{Mapping, MappingMut};
pub use options::SharedMemoryOptions;

const KIND: ObjectKind = ObjectKind::SharedMemory;

/// The largest size a segment can have: what the OS's `off_t` holds.
pub const MAX_SIZE: u64 = i64::MAX.unsigned_abs();

fn check_size(len: u64) -> Result<()> {
    if len > MAX_SIZE {
        return Err(Error::InvalidArgument(format!(
            "size must be between 0 and {MAX_SIZE} bytes, not {len}"
        )));
    }
    Ok(())
}

fn read_only_resize(name: &str, len: u64) -> Error {
    Error::InvalidArgument(format!(
        "cannot set the size of shared memory segment '{name}' to {len} bytes through a read-only handle; open it read-write to resize it (the segment was left as it was)"
    ))
}

/// A POSIX shared memory segment: an open handle on it.
///
/// The segment lives on after the handle is dropped, until [`Self::unlink`]
/// (or [`unlink`]) removes its name and the last handle and mapping are gone.
///
/// ```
/// use namedipc::SharedMemory;
///
/// # let name = format!("/namedipc-doc-shm-{}", std::process::id());
/// let mut writer = SharedMemory::create(&name, 4096)?;
/// writer.map_mut()?[..5].copy_from_slice(b"hello");
///
/// let reader = SharedMemory::open(&name)?; // e.g. in another process
/// assert_eq!(&reader.map()?[..5], b"hello");
/// reader.unlink()?;
/// # Ok::<(), namedipc::Error>(())
/// ```
#[derive(Debug)]
pub struct SharedMemory {
    fd: OwnedFd,
    /// The owner and mode: from the fstat at open or create, or, where
    /// neither had a use for them (see [`Self::owner`]), from the first
    /// fstat a call makes, which also checks the file type.
    owner: OnceLock<Owner>,
    name: paths::KeptName,
    read_only: bool,
    created: bool,
}

impl SharedMemory {
    /// Options for opening or creating a segment.
    #[must_use]
    pub fn options() -> SharedMemoryOptions {
        SharedMemoryOptions::default()
    }

    /// Opens the existing segment `name` for reading and writing.
    ///
    /// # Errors
    /// [`Error::NotFound`] if it does not exist; see [`SharedMemoryOptions::open`].
    pub fn open(name: &str) -> Result<Self> {
        Self::options()
            .existence(Existence::RaiseIfNotExists)
            .open(name)
    }

    /// Creates the segment `name`, `len` bytes long (zero-filled), with mode `0o600`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if the name is taken; see [`SharedMemoryOptions::open`].
    pub fn create(name: &str, len: u64) -> Result<Self> {
        Self::options()
            .existence(Existence::RaiseIfExists)
            .size(len)
            .open(name)
    }

    /// The name, as given when the segment was opened.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this handle created the segment (rather than opening an existing one).
    #[must_use]
    pub fn created(&self) -> bool {
        self.created
    }

    /// Who owns the segment and its mode, as they were when this handle
    /// first read them. That is at open or create, unless nothing there
    /// needed them, as in posix_ipc's open, which reads neither: an existing
    /// segment opened with [`Trust::anyone`](crate::Trust::anyone) (and
    /// without [`Existence::LinkOrCreate`] or a truncation), or a new one
    /// made with the umask's mode and no group. Then the first call that
    /// needs the file (this one, [`Self::size`], a mapping) reads them with
    /// one fstat, and checks that the segment is a regular file.
    ///
    /// # Errors
    /// Only where that first read happens here: [`Error::Corrupt`] if the
    /// segment is a FIFO or device, not a regular file; [`Error::Os`] if
    /// the OS fails unexpectedly.
    pub fn owner(&self) -> Result<Owner> {
        if let Some(owner) = self.owner.get() {
            return Ok(*owner);
        }
        let stat = self.stat()?;
        Ok(*self.owner.get_or_init(|| Owner::of_stat(&stat)))
    }

    /// Whether the handle was opened for reading only.
    #[must_use]
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The segment's size now, in bytes. Any process may resize it at any
    /// moment, so this can differ from the length of an earlier mapping.
    ///
    /// # Errors
    /// [`Error::Os`] only if the OS fails unexpectedly.
    pub fn size(&self) -> Result<u64> {
        Ok(self.stat()?.size)
    }

    /// Sets the segment's size to `len` bytes (new bytes are zero).
    ///
    /// It takes `&mut self` so that no mapping made through this handle can
    /// be alive while the segment shrinks under it. Mappings made through
    /// *other* handles or processes have no such protection: touching bytes
    /// past the new end kills the process with SIGBUS.
    ///
    /// ```compile_fail,E0502
    /// # use namedipc::shm::SharedMemory;
    /// # let mut shm = SharedMemory::create("/never-made", 10).unwrap();
    /// let bytes = shm.map().unwrap();
    /// shm.resize(0).unwrap(); // error: `shm` is borrowed by `bytes`
    /// let _ = bytes[9];
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a read-only handle or a `len` above
    /// [`MAX_SIZE`]; [`Error::Os`] if the OS refuses (e.g. EFBIG over a
    /// file size limit).
    pub fn resize(&mut self, len: u64) -> Result<()> {
        if self.read_only {
            return Err(read_only_resize(&self.name, len));
        }
        check_size(len)?;
        sys::shm::truncate(self.fd.as_fd(), len).map_err(|e| self.os("ftruncate", e))
    }

    /// Removes the name; handles and mappings that exist keep working, and
    /// the memory is freed when the last of them is gone.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the name was already removed.
    pub fn unlink(&self) -> Result<()> {
        // The C name is made here, not kept from the open: an open is
        // common, an unlink through the handle rare.
        unlink(&self.name)
    }

    /// The fstat of the segment. The first one of a handle whose open read
    /// nothing also checks that it is a regular file (a FIFO or device
    /// cannot be mapped) and keeps its owner.
    fn stat(&self) -> Result<sys::FileStat> {
        let stat = sys::fstat(self.fd.as_fd()).map_err(|e| self.os("fstat", e))?;
        if self.owner.get().is_none() {
            options::check_regular(&self.name, &stat)?;
            let _ = self.owner.set(Owner::of_stat(&stat));
        }
        Ok(stat)
    }

    fn os(&self, operation: &'static str, e: io::Error) -> Error {
        Error::from_os(operation, KIND, &self.name, e)
    }
}

/// The segment's file descriptor, e.g. for `fstat` or another mmap.
impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The segment's file descriptor as a number, valid while the handle lives.
impl AsRawFd for SharedMemory {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Gives up the handle, keeping its file descriptor open.
impl From<SharedMemory> for OwnedFd {
    fn from(shm: SharedMemory) -> Self {
        shm.fd
    }
}

/// Removes the segment `name` without opening it. Processes that have it
/// open or mapped keep using it.
///
/// ```
/// # let name = format!("/namedipc-doc-shm-unlink-{}", std::process::id());
/// # namedipc::SharedMemory::create(&name, 1)?;
/// namedipc::shm::unlink(&name)?;
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidName`], [`Error::NotFound`], [`Error::PermissionDenied`].
pub fn unlink(name: &str) -> Result<()> {
    paths::with_segment_c_name(name, |c_name| unlink_c(name, c_name))
}

fn unlink_c(name: &str, c_name: &CStr) -> Result<()> {
    sys::shm::unlink(c_name).map_err(|e| Error::from_os("shm_unlink", KIND, name, e))
}
