//! POSIX shared memory: shm_open, shm_unlink, ftruncate, and an owned mmap
//! region that is unmapped on drop. Callers above this module never see
//! a raw pointer: they get slices whose lifetime is that of the region.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use super::{check, retry_on_interrupt};

/// How [`open`] treats the name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Open {
    /// Open an existing segment.
    Existing,
    /// Create a new one with these permission bits (EEXIST if the name is taken).
    CreateExclusive(u32),
    /// `O_CREAT` without `O_EXCL`, as posix_ipc's `O_CREAT` open does, with
    /// no permission bits for a segment it would create: for the kernel's
    /// `fs.protected_regular` check on an existing segment of another user.
    CreateIfMissing,
}

/// Opens the segment `name` as `how` says. `name` is what
/// `paths::with_segment_c_name` made: on Linux the segment's file path
/// (glibc's `shm_open` is an `open` of that very path with `O_NOFOLLOW` and
/// `O_CLOEXEC`, after copying the name into it: this skips the copy),
/// elsewhere the name for `shm_open`.
pub(crate) fn open(name: &CStr, how: Open, read_only: bool, truncate: bool) -> io::Result<OwnedFd> {
    let mut oflag = if read_only {
        libc::O_RDONLY
    } else {
        libc::O_RDWR
    };
    // A FIFO or device node planted at the name would make open() block for
    // ever; with O_NONBLOCK it returns and the caller rejects the file type
    // (musl's shm_open always adds it, for the same reason). On a regular
    // file the flag changes nothing.
    oflag |= libc::O_NONBLOCK;
    if truncate {
        oflag |= libc::O_TRUNC;
    }
    let mode = match how {
        Open::CreateExclusive(mode) => {
            oflag |= libc::O_CREAT | libc::O_EXCL;
            mode
        }
        Open::CreateIfMissing => {
            oflag |= libc::O_CREAT;
            0
        }
        Open::Existing => 0,
    };
    retry_on_interrupt(|| {
        let fd = if OPENS_BY_PATH {
            // SAFETY: `name` is a valid NUL-terminated path; open reads its
            // variadic mode (an unsigned int, which `mode` is) only with
            // O_CREAT.
            check(unsafe {
                libc::open(
                    name.as_ptr(),
                    oflag | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    mode,
                )
            })?
        } else {
            // SAFETY: `name` is a valid NUL-terminated string; the libc crate
            // declares shm_open with a fixed mode_t argument, which is what we
            // pass (it is read only with O_CREAT). glibc adds O_NOFOLLOW and
            // O_CLOEXEC.
            check(unsafe { libc::shm_open(name.as_ptr(), oflag, mode as libc::mode_t) })?
        };
        // SAFETY: open or shm_open just returned this descriptor, so nothing
        // else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })
}

/// Whether [`open`] and [`unlink`] take the segment's file path (Linux,
/// where every segment is a file in `/dev/shm`) rather than its name.
pub(crate) const OPENS_BY_PATH: bool = cfg!(target_os = "linux");

/// Removes the segment `name` (a path or a name, as for [`open`]).
pub(crate) fn unlink(name: &CStr) -> io::Result<()> {
    if OPENS_BY_PATH {
        // SAFETY: `name` is a valid NUL-terminated path.
        return check(unsafe { libc::unlink(name.as_ptr()) })
            .map(drop)
            .map_err(|e| {
                // As glibc's shm_unlink reports a sticky directory's refusal.
                if e.raw_os_error() == Some(libc::EPERM) {
                    io::Error::from_raw_os_error(libc::EACCES)
                } else {
                    e
                }
            });
    }
    // SAFETY: `name` is a valid NUL-terminated string.
    check(unsafe { libc::shm_unlink(name.as_ptr()) }).map(drop)
}

/// Sets the size of the segment behind `fd` to `len` bytes.
pub(crate) fn truncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    retry_on_interrupt(|| {
        // SAFETY: `fd` is open for the duration of the borrow; ftruncate takes
        // no pointers.
        check(unsafe { libc::ftruncate(fd.as_raw_fd(), len) }).map(drop)
    })
}

/// A shared mapping of a whole segment, unmapped on drop.
#[derive(Debug)]
pub(crate) struct RawMapping {
    /// Start of the mapping; dangling (and never unmapped) when `len` is 0,
    /// since mmap refuses zero-length mappings.
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: the region is plain memory owned by this value until drop; shared
// access from several threads is through `&[u8]`, mutable access needs
// `&mut self`.
unsafe impl Send for RawMapping {}
// SAFETY: as above; `&RawMapping` only hands out shared slices.
unsafe impl Sync for RawMapping {}

impl RawMapping {
    /// Maps the first `len` bytes of `fd` shared, for reading, and for
    /// writing too if `writable` (which needs a descriptor open read-write).
    pub(crate) fn new(fd: BorrowedFd<'_>, len: usize, writable: bool) -> io::Result<Self> {
        if len == 0 {
            return Ok(Self {
                ptr: NonNull::dangling(),
                len,
                writable,
            });
        }
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a null address lets the kernel choose where, so no existing
        // mapping is replaced; `fd` is open for the call; the result is
        // checked against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(ptr.cast::<u8>())
            .map(|ptr| Self { ptr, len, writable })
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for reads of `len` bytes (or dangling and
        // well aligned with `len == 0`) until drop, which cannot happen while
        // the returned borrow lives. Other processes may write these bytes at
        // any time; the public mapping types document that caveat.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, writable. Panics on a read-only mapping, where a write
    /// would kill the process with SIGSEGV.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        assert!(self.writable, "a read-only mapping cannot be written");
        // SAFETY: as in `as_slice`, and the mapping is PROT_WRITE; `&mut self`
        // makes this the only slice of this mapping alive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for RawMapping {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: `ptr`/`len` are exactly what mmap returned, and no slice
            // of the region can outlive `self`.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}
