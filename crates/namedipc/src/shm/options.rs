//! Opening and creating a segment: the options, their checks, and what is
//! checked of the file that was opened.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use super::{check_size, read_only_resize, unlink_c, SharedMemory, KIND};
use crate::error::{Error, Result};
use crate::existence::{self, Existence, Object};
use crate::paths::{self, FileType, Identity};
use crate::sys;

/// Options for opening or creating a [`SharedMemory`] segment.
///
/// ```
/// use namedipc::{Existence, SharedMemory};
///
/// # let name = format!("/namedipc-doc-shm-options-{}", std::process::id());
/// let shm = SharedMemory::options()
///     .existence(Existence::RaiseIfExists)
///     .mode(0o600)
///     .size(4096)
///     .open(&name)?;
/// assert_eq!(shm.size()?, 4096);
/// # shm.unlink()?;
/// # Ok::<(), namedipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SharedMemoryOptions {
    existence: Existence,
    mode: u32,
    size: Option<u64>,
    read_only: bool,
    truncate: bool,
}

impl Default for SharedMemoryOptions {
    fn default() -> Self {
        Self {
            existence: Existence::LinkOrCreate,
            mode: 0o600,
            size: None,
            read_only: false,
            truncate: false,
        }
    }
}

impl SharedMemoryOptions {
    /// What to do if the segment does or does not exist (default:
    /// [`Existence::LinkOrCreate`]).
    #[must_use]
    pub fn existence(mut self, existence: Existence) -> Self {
        self.existence = existence;
        self
    }

    /// Permission bits for a new segment, before the umask (default `0o600`).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the segment's size to `len` bytes once it is open, whether this
    /// handle created it or opened an existing one (default: leave the size
    /// alone). At most [`MAX_SIZE`](super::MAX_SIZE); needs read-write access.
    #[must_use]
    pub fn size(mut self, len: u64) -> Self {
        self.size = Some(len);
        self
    }

    /// Opens the segment for reading only (default `false`). Such a handle
    /// can [`SharedMemory::map`] but not [`SharedMemory::map_mut`] or resize.
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Truncates an existing segment to 0 bytes on opening (`O_TRUNC`),
    /// before [`Self::size`] applies (default `false`).
    #[must_use]
    pub fn truncate(mut self, truncate: bool) -> Self {
        self.truncate = truncate;
        self
    }

    /// Opens or creates the segment `name`, as [`Self::existence`] says,
    /// then sets its size if [`Self::size`] asks for one.
    ///
    /// If setting the size fails, a segment this call created is removed
    /// again (only while the name still refers to it); an existing segment
    /// is left exactly as it was.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidArgument`] (mode or size out
    /// of range, a size with read-only access), [`Error::AlreadyExists`],
    /// [`Error::NotFound`], [`Error::PermissionDenied`], [`Error::Corrupt`]
    /// (a directory, symbolic link or other non-regular file at the name),
    /// or [`Error::Os`].
    pub fn open(&self, name: &str) -> Result<SharedMemory> {
        paths::with_c_name(KIND, name, |c_name| {
            self.check_arguments(name)?;
            let (fd, created) = Object {
                kind: KIND,
                name,
                create: || self.create(name, c_name),
                open: || self.open_existing(name, c_name),
                unlink: || unlink_c(name, c_name),
            }
            .open(self.existence)?;
            self.finish(fd, name, c_name, created)
        })
    }

    /// Creates a segment under a fresh random name, `prefix` followed by 16
    /// random characters taken from the OS's CSPRNG.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn create_random(&self, prefix: &str) -> Result<SharedMemory> {
        existence::create_random(KIND, prefix, |name| {
            paths::with_c_name(KIND, name, |c_name| {
                self.check_arguments(name)?;
                let fd = self.create(name, c_name)?;
                self.finish(fd, name, c_name, true)
            })
        })
    }

    fn check_arguments(&self, name: &str) -> Result<()> {
        existence::check_mode(self.mode)?;
        if let Some(len) = self.size {
            check_size(len)?;
            if self.read_only {
                return Err(read_only_resize(name, len));
            }
        }
        Ok(())
    }

    fn open_existing(&self, name: &str, c_name: &CStr) -> Result<OwnedFd> {
        sys::shm::open(c_name, None, self.read_only, self.truncate).map_err(|e| open_error(name, e))
    }

    fn create(&self, name: &str, c_name: &CStr) -> Result<OwnedFd> {
        sys::shm::open(c_name, Some(self.mode), self.read_only, self.truncate)
            .map_err(|e| open_error(name, e))
    }

    /// Checks what was opened and applies the size.
    fn finish(
        &self,
        fd: OwnedFd,
        name: &str,
        c_name: &CStr,
        created: bool,
    ) -> Result<SharedMemory> {
        if !created {
            // What an exclusive create made is a new regular file; what was
            // already at the name may be anything. The fstat is skipped on
            // create because it is a measurable share of a create cycle.
            let stat =
                sys::fstat(fd.as_fd()).map_err(|e| Error::from_os("fstat", KIND, name, e))?;
            let file_type = FileType::from_mode(stat.mode);
            if file_type != FileType::Regular {
                // Only a read-only open gets this far with a directory; a FIFO,
                // socket or device gets here either way.
                return Err(not_regular(name, file_type));
            }
        }
        if let Some(len) = self.size {
            if let Err(e) = sys::shm::truncate(fd.as_fd(), len) {
                // posix_ipc removes the segment here, even one that another
                // process created and uses. Only our own new segment goes,
                // and only while the name still refers to it.
                if created {
                    let ours = sys::fstat(fd.as_fd())
                        .ok()
                        .map(|stat| Identity::of_stat(&stat));
                    if ours.is_some() && identity_at(name) == ours {
                        let _ = sys::shm::unlink(c_name);
                    }
                }
                return Err(Error::from_os("ftruncate", KIND, name, e));
            }
        }
        Ok(SharedMemory {
            fd,
            name: name.to_owned(),
            read_only: self.read_only,
            created,
        })
    }
}

fn open_error(name: &str, e: io::Error) -> Error {
    // The name is valid by now, so glibc's EINVAL means a directory there
    // (glibc turns EISDIR into EINVAL), and ENXIO a socket (or a device
    // without its driver): neither says anything useful on its own. What is
    // at the name now tells which, unless it was replaced meanwhile.
    let guess = match e.raw_os_error() {
        Some(libc::EINVAL) => FileType::Directory,
        Some(libc::ENXIO) => FileType::Socket,
        _ => return Error::from_os("shm_open", KIND, name, e),
    };
    let at_name = paths::file_path(KIND, name).and_then(|path| FileType::at(&path));
    not_regular(
        name,
        at_name.filter(|&t| t != FileType::Regular).unwrap_or(guess),
    )
}

fn not_regular(name: &str, file_type: FileType) -> Error {
    Error::Corrupt {
        kind: KIND,
        name: name.to_owned(),
        reason: format!("the name is {}, not a regular file", file_type.describe()),
    }
}

/// The identity of the file the segment `name` refers to now, where this
/// platform keeps it at a path and something is there.
fn identity_at(name: &str) -> Option<Identity> {
    let path = paths::file_path(KIND, name)?;
    Identity::at(&path).ok().flatten()
}
