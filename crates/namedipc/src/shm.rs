//! POSIX shared memory segments: a block of memory that unrelated processes
//! map by name, compatible with C programs that call `shm_open` on the same
//! name, and safe mappings of it whose lifetime is tied to the handle.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::error::{Error, ObjectKind, Result};
use crate::existence::{self, Existence, Object};
use crate::paths::{self, FileType, Identity};
use crate::sys;
use crate::sys::shm::RawMapping;

const KIND: ObjectKind = ObjectKind::SharedMemory;

/// The largest size a segment can have: what the OS's `off_t` holds.
pub const MAX_SIZE: u64 = i64::MAX.unsigned_abs();

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
    /// alone). At most [`MAX_SIZE`]; needs read-write access.
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
        let c_name = paths::to_c_name(KIND, name)?;
        self.check_arguments(name)?;
        let (fd, created) = Object {
            kind: KIND,
            name,
            create: || self.create(name, &c_name),
            open: || self.open_existing(name, &c_name),
            unlink: || unlink_c(name, &c_name),
        }
        .open(self.existence)?;
        self.finish(fd, name, c_name, created)
    }

    /// Creates a segment under a fresh random name, `prefix` followed by 16
    /// random characters taken from the OS's CSPRNG.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn create_random(&self, prefix: &str) -> Result<SharedMemory> {
        existence::create_random(KIND, prefix, |name| {
            let c_name = paths::to_c_name(KIND, name)?;
            self.check_arguments(name)?;
            let fd = self.create(name, &c_name)?;
            self.finish(fd, name, c_name, true)
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

    fn open_existing(&self, name: &str, c_name: &CString) -> Result<OwnedFd> {
        sys::shm::open(c_name, None, self.read_only, self.truncate).map_err(|e| open_error(name, e))
    }

    fn create(&self, name: &str, c_name: &CString) -> Result<OwnedFd> {
        sys::shm::open(c_name, Some(self.mode), self.read_only, self.truncate)
            .map_err(|e| open_error(name, e))
    }

    /// Checks what was opened and applies the size.
    fn finish(
        &self,
        fd: OwnedFd,
        name: &str,
        c_name: CString,
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
                        let _ = sys::shm::unlink(&c_name);
                    }
                }
                return Err(Error::from_os("ftruncate", KIND, name, e));
            }
        }
        Ok(SharedMemory {
            fd,
            name: name.to_owned(),
            c_name,
            read_only: self.read_only,
            created,
        })
    }
}

fn open_error(name: &str, e: io::Error) -> Error {
    // The name is valid by now, so glibc's EINVAL means a directory there,
    // which says nothing useful on its own.
    if e.raw_os_error() == Some(libc::EINVAL) {
        let at_name = paths::file_path(KIND, name).and_then(|path| FileType::at(&path));
        if let Some(file_type) = at_name.filter(|&t| t != FileType::Regular) {
            return not_regular(name, file_type);
        }
    }
    Error::from_os("shm_open", KIND, name, e)
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
    name: String,
    c_name: CString,
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

    /// Maps the whole segment, as long as it is now, for reading.
    ///
    /// The mapping cannot outlive this handle, and while it lives the handle
    /// cannot be resized; see [`Mapping`] for what other processes can do.
    ///
    /// # Errors
    /// [`Error::Os`] if mmap fails: ENOMEM, or EOVERFLOW for a segment
    /// larger than this process's address space.
    pub fn map(&self) -> Result<Mapping<'_>> {
        Ok(Mapping {
            raw: self.map_raw(false)?,
            _handle: PhantomData,
        })
    }

    /// Maps the whole segment, as long as it is now, for reading and writing.
    /// Needs a read-write handle.
    ///
    /// It takes `&mut self` so that one handle never hands out two mutable
    /// slices of the same bytes.
    ///
    /// ```compile_fail,E0597
    /// # use namedipc::shm::SharedMemory;
    /// let bytes = {
    ///     let mut shm = SharedMemory::create("/never-made", 10).unwrap();
    ///     shm.map_mut().unwrap() // error: `shm` does not live long enough
    /// };
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a read-only handle; as [`Self::map`].
    pub fn map_mut(&mut self) -> Result<MappingMut<'_>> {
        if self.read_only {
            return Err(Error::InvalidArgument(format!(
                "shared memory segment '{}' was opened read-only; open it read-write to map it for writing",
                self.name
            )));
        }
        Ok(MappingMut {
            raw: self.map_raw(true)?,
            _handle: PhantomData,
        })
    }

    /// Removes the name; handles and mappings that exist keep working, and
    /// the memory is freed when the last of them is gone.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the name was already removed.
    pub fn unlink(&self) -> Result<()> {
        unlink_c(&self.name, &self.c_name)
    }

    fn map_raw(&self, writable: bool) -> Result<RawMapping> {
        let size = self.size()?;
        // Longer than this process's address space: mmap's own errno for it.
        let len = usize::try_from(size)
            .map_err(|_| self.os("mmap", io::Error::from_raw_os_error(libc::EOVERFLOW)))?;
        RawMapping::new(self.fd.as_fd(), len, writable).map_err(|e| self.os("mmap", e))
    }

    fn stat(&self) -> Result<sys::FileStat> {
        sys::fstat(self.fd.as_fd()).map_err(|e| self.os("fstat", e))
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

/// A read-only mapping of a whole segment, made by [`SharedMemory::map`];
/// unmapped when dropped. It dereferences to `[u8]`.
///
/// **Shared means shared.** Other processes (and other handles in this
/// one) may write these bytes at any moment, even while you hold a `&[u8]`
/// of them, so two reads of the same byte can differ; use the bytes as
/// untrusted input and agree on a protocol (e.g. a semaphore) with the other
/// side. If another process *shrinks* the segment, touching bytes past the
/// new end kills this process with SIGBUS. The `memmap2` crate marks its
/// constructors `unsafe` for these reasons; namedipc documents them instead,
/// as the multiprocessing module does for Python.
///
/// ```
/// # use namedipc::shm::SharedMemory;
/// # let name = format!("/namedipc-doc-shm-{}-{}", line!(), std::process::id());
/// let shm = SharedMemory::create(&name, 16)?;
/// let bytes = shm.map()?;
/// assert_eq!(bytes.len(), 16);
/// assert!(bytes.iter().all(|&b| b == 0));
/// # drop(bytes);
/// # shm.unlink()?;
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// It cannot outlive the handle it was made from:
///
/// ```compile_fail,E0505
/// # use namedipc::shm::SharedMemory;
/// let shm = SharedMemory::create("/never-made", 16).unwrap();
/// let bytes = shm.map().unwrap();
/// drop(shm); // error: cannot move out of `shm` because it is borrowed
/// let _ = bytes[0];
/// ```
pub struct Mapping<'a> {
    raw: RawMapping,
    _handle: PhantomData<&'a SharedMemory>,
}

impl Deref for Mapping<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.raw.as_slice()
    }
}

impl AsRef<[u8]> for Mapping<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for Mapping<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// A read-write mapping of a whole segment, made by
/// [`SharedMemory::map_mut`]; unmapped when dropped. It dereferences to
/// `[u8]`, mutably too. The caveats of [`Mapping`] apply: other processes
/// may read and write the same bytes at any moment.
///
/// ```
/// # use namedipc::shm::SharedMemory;
/// # let name = format!("/namedipc-doc-shm-{}-{}", line!(), std::process::id());
/// let mut shm = SharedMemory::create(&name, 4)?;
/// let mut bytes = shm.map_mut()?;
/// bytes.copy_from_slice(b"ping");
/// assert_eq!(&bytes[..], b"ping");
/// # drop(bytes);
/// # shm.unlink()?;
/// # Ok::<(), namedipc::Error>(())
/// ```
pub struct MappingMut<'a> {
    raw: RawMapping,
    _handle: PhantomData<&'a mut SharedMemory>,
}

impl Deref for MappingMut<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.raw.as_slice()
    }
}

impl DerefMut for MappingMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.raw.as_mut_slice()
    }
}

impl AsRef<[u8]> for MappingMut<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for MappingMut<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl fmt::Debug for MappingMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappingMut")
            .field("len", &self.len())
            .finish_non_exhaustive()
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
    let c_name = paths::to_c_name(KIND, name)?;
    unlink_c(name, &c_name)
}

fn unlink_c(name: &str, c_name: &CString) -> Result<()> {
    sys::shm::unlink(c_name).map_err(|e| Error::from_os("shm_unlink", KIND, name, e))
}
