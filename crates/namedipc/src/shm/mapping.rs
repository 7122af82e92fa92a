//! Mappings of a segment: read-only and read-write views of its bytes whose
//! lifetime is tied to the handle they were made from.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::os::fd::AsFd;

use super::SharedMemory;
use crate::error::{Error, Result};
use crate::sys::shm::RawMapping;

impl SharedMemory {
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

    fn map_raw(&self, writable: bool) -> Result<RawMapping> {
        let size = self.size()?;
        // Longer than this process's address space: mmap's own errno for it.
        let len = usize::try_from(size)
            .map_err(|_| self.os("mmap", io::Error::from_raw_os_error(libc::EOVERFLOW)))?;
        RawMapping::new(self.fd.as_fd(), len, writable).map_err(|e| self.os("mmap", e))
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
