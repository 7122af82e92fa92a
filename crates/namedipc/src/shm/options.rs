//! Opening and creating a segment: the options, their checks, and what is
//! checked of the file that was opened.

use std::borrow::Cow;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;

use super::{check_size, read_only_resize, unlink_c, SharedMemory, KIND};
use crate::error::{Error, Result};
use crate::existence::{self, Existence, Object};
use crate::ownership::{NewObject, Owner, Trust};
use crate::paths::{self, FileType, Identity};
use crate::sys;
use crate::sys::shm::Open;

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
    group: Option<u32>,
    apply_umask: bool,
    trust: Trust,
    size: Option<u64>,
    read_only: bool,
    truncate: bool,
}

impl Default for SharedMemoryOptions {
    fn default() -> Self {
        Self {
            existence: Existence::LinkOrCreate,
            mode: 0o600,
            group: None,
            apply_umask: false,
            trust: Trust::new(),
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

    /// Permission bits for a new segment (default `0o600`), exactly: the
    /// umask does not narrow them unless [`Self::apply_umask`] says so (a
    /// new segment appears at its name with the umask's bits and gets these
    /// at once). An existing segment keeps its own.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Lets the kernel's umask narrow [`Self::mode`], as `shm_open` does
    /// (posix_ipc's behaviour; default `false`).
    #[must_use]
    pub fn apply_umask(mut self, apply: bool) -> Self {
        self.apply_umask = apply;
        self
    }

    /// Gives a new segment the group `gid`, and trusts existing ones of
    /// that group ([`Trust::group`]). This process must be a member of the
    /// group, or root.
    #[must_use]
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// Whom an existing segment may belong to (default [`Trust::new`]: this
    /// user or root, and not writable by others). Checked on every segment
    /// the handle opens, not on one it creates.
    #[must_use]
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
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
    /// [`Error::NotFound`], [`Error::PermissionDenied`] (also where
    /// `shm_open` with `O_CREAT` would fail: `LinkOrCreate` on another
    /// user's segment under the kernel's `fs.protected_regular`),
    /// [`Error::Untrusted`] (an existing segment whose owner or mode
    /// [`Self::trust`] refuses), [`Error::Corrupt`] (a directory, symbolic
    /// link or other non-regular file at the name; where the open reads
    /// nothing of the file, see [`SharedMemory::owner`], a FIFO or device
    /// is found by the first call that needs the file instead), or
    /// [`Error::Os`].
    pub fn open(&self, name: &str) -> Result<SharedMemory> {
        if self.is_plain_open() {
            return self.open_plain(name);
        }
        paths::with_segment_c_name(name, |c_name| {
            self.check_arguments(name)?;
            // Borrowed unless a group widens it: most opens copy nothing.
            let trust = match self.group {
                Some(gid) => Cow::Owned(self.trust.clone().group(gid)),
                None => Cow::Borrowed(&self.trust),
            };
            let as_creat = self.existence == Existence::LinkOrCreate;
            let ((fd, owner), created) = Object {
                kind: KIND,
                name,
                create: || self.create(name, c_name),
                open: || self.open_existing(name, c_name, &trust, as_creat),
                unlink: || unlink_c(name, c_name),
            }
            .open(self.existence)?;
            self.finish(fd, owner, name, c_name, created)
        })
    }

    /// Creates a segment under a fresh random name, `prefix` followed by 16
    /// random characters taken from the OS's CSPRNG.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn create_random(&self, prefix: &str) -> Result<SharedMemory> {
        existence::create_random(KIND, prefix, |name| {
            paths::with_segment_c_name(name, |c_name| {
                self.check_arguments(name)?;
                let (fd, owner) = self.create(name, c_name)?;
                self.finish(fd, owner, name, c_name, true)
            })
        })
    }

    /// Whether these options open an existing segment and do nothing else:
    /// no owner to check, no size to set, no truncation, no group (which
    /// would widen the trust). posix_ipc's `SharedMemory(name)` is such an
    /// open, and the commonest of all.
    fn is_plain_open(&self) -> bool {
        self.existence == Existence::RaiseIfNotExists
            && self.trust.is_anyone()
            && self.group.is_none()
            && self.size.is_none()
            && !self.truncate
    }

    /// [`Self::open`] of plain-open options: the one `shm_open`, without
    /// the existence loop and the checks that only a create, a size or an
    /// owner needs (the mode is still checked, as every open checks it).
    fn open_plain(&self, name: &str) -> Result<SharedMemory> {
        existence::check_mode(self.mode)?;
        paths::with_segment_c_name(name, |c_name| {
            let fd = sys::shm::open(c_name, Open::Existing, self.read_only, false)
                .map_err(|e| open_error(name, e))?;
            Ok(SharedMemory {
                fd,
                owner: OnceLock::new(),
                name: paths::KeptName::new(name),
                read_only: self.read_only,
                created: false,
            })
        })
    }

    fn new_object(&self) -> NewObject {
        NewObject {
            mode: self.mode,
            group: self.group,
            apply_umask: self.apply_umask,
        }
    }

    fn check_arguments(&self, name: &str) -> Result<()> {
        existence::check_mode(self.mode)?;
        self.new_object().check_group()?;
        if let Some(len) = self.size {
            check_size(len)?;
            if self.read_only {
                return Err(read_only_resize(name, len));
            }
        }
        Ok(())
    }

    /// Opens the existing segment, and checks what it is (a regular file)
    /// and whom it belongs to, with the one fstat of the open; its owner,
    /// or `None` where nothing needs it yet: a handle that trusts anyone
    /// makes posix_ipc's calls only (its first use checks the file).
    /// `as_creat`: the open stands for posix_ipc's `O_CREAT` open, which
    /// the kernel refuses on another user's segment under
    /// `fs.protected_regular`; namedipc must not do better than that.
    fn open_existing(
        &self,
        name: &str,
        c_name: &CStr,
        trust: &Trust,
        as_creat: bool,
    ) -> Result<(OwnedFd, Option<Owner>)> {
        // A segment is truncated only once its type and owner are checked,
        // so that a refused one is left as it was (a read-only handle
        // cannot ftruncate: it keeps O_TRUNC).
        let truncate_later = self.truncate && !self.read_only;
        let fd = sys::shm::open(
            c_name,
            Open::Existing,
            self.read_only,
            self.truncate && !truncate_later,
        )
        .map_err(|e| open_error(name, e))?;
        if trust.is_anyone() && !as_creat && !truncate_later {
            return Ok((fd, None));
        }
        let stat = sys::fstat(fd.as_fd()).map_err(|e| Error::from_os("fstat", KIND, name, e))?;
        // Only a read-only open gets this far with a directory; a FIFO,
        // socket or device gets here either way.
        check_regular(name, &stat)?;
        let owner = Owner::of_stat(&stat);
        trust.check(KIND, name, owner)?;
        // Root owns /dev/shm, so the kernel lets O_CREAT reach root's
        // segments; for another user's (rare), ask it what O_CREAT would
        // meet, on the segment now at the name.
        if as_creat && owner.uid != 0 && owner.uid != sys::geteuid() {
            self.open_as_creat(name, c_name, &stat)?;
        }
        if truncate_later {
            sys::shm::truncate(fd.as_fd(), 0)
                .map_err(|e| Error::from_os("ftruncate", KIND, name, e))?;
        }
        Ok((fd, Some(owner)))
    }

    /// Opens the segment `name` once more with `O_CREAT` (no `O_EXCL`), as
    /// `shm_open` with `O_CREAT` would: `Ok` if the kernel lets that reach
    /// the file `opened` describes. If the name has changed meanwhile,
    /// [`Error::NotFound`], so that the caller's loop starts over (after
    /// removing a segment this probe itself created).
    fn open_as_creat(&self, name: &str, c_name: &CStr, opened: &sys::FileStat) -> Result<()> {
        let probe = sys::shm::open(c_name, Open::CreateIfMissing, self.read_only, false)
            .map_err(|e| open_error(name, e))?;
        let stat = sys::fstat(probe.as_fd()).map_err(|e| Error::from_os("fstat", KIND, name, e))?;
        if Identity::of_stat(&stat) == Identity::of_stat(opened) {
            return Ok(());
        }
        // Another segment is at the name now. One the probe made itself is
        // ours, empty and without permission bits: it goes again.
        let made_by_probe =
            stat.uid == sys::geteuid() && stat.size == 0 && Owner::of_stat(&stat).mode == 0;
        if made_by_probe && identity_at(name) == Some(Identity::of_stat(&stat)) {
            let _ = sys::shm::unlink(c_name);
        }
        Err(Error::NotFound {
            kind: KIND,
            name: name.to_owned(),
        })
    }

    /// Creates the segment exclusively and gives it the group and exact
    /// mode asked for; a segment that cannot get them is removed again. Its
    /// owner, or `None` where nothing is to be settled (the umask's mode, no
    /// group): the first use reads it then.
    fn create(&self, name: &str, c_name: &CStr) -> Result<(OwnedFd, Option<Owner>)> {
        let fd = sys::shm::open(
            c_name,
            Open::CreateExclusive(self.mode),
            self.read_only,
            self.truncate,
        )
        .map_err(|e| open_error(name, e))?;
        let new = self.new_object();
        if !new.needs_settling() {
            return Ok((fd, None));
        }
        match new.settle(fd.as_fd(), KIND, name) {
            Ok((owner, _)) => Ok((fd, Some(owner))),
            Err(e) => {
                remove_if_ours(&fd, name, c_name);
                Err(e)
            }
        }
    }

    /// Applies the size to what was opened or created.
    fn finish(
        &self,
        fd: OwnedFd,
        owner: Option<Owner>,
        name: &str,
        c_name: &CStr,
        created: bool,
    ) -> Result<SharedMemory> {
        if let Some(len) = self.size {
            if let Err(e) = sys::shm::truncate(fd.as_fd(), len) {
                // posix_ipc removes the segment here, even one that another
                // process created and uses. Only our own new segment goes,
                // and only while the name still refers to it.
                if created {
                    remove_if_ours(&fd, name, c_name);
                }
                return Err(Error::from_os("ftruncate", KIND, name, e));
            }
        }
        Ok(SharedMemory {
            fd,
            owner: owner.map_or_else(OnceLock::new, OnceLock::from),
            name: paths::KeptName::new(name),
            read_only: self.read_only,
            created,
        })
    }
}

fn open_error(name: &str, e: io::Error) -> Error {
    // The name is valid by now, so EISDIR (or glibc's shm_open's EINVAL,
    // which it turns EISDIR into) means a directory there, and ENXIO a
    // socket (or a device without its driver): neither says anything useful
    // on its own. What is at the name now tells which, unless it was
    // replaced meanwhile.
    let guess = match e.raw_os_error() {
        Some(libc::EISDIR | libc::EINVAL) => FileType::Directory,
        Some(libc::ENXIO) => FileType::Socket,
        _ => return Error::from_os("shm_open", KIND, name, e),
    };
    let at_name = paths::file_path(KIND, name).and_then(|path| FileType::at(&path));
    not_regular(
        name,
        at_name.filter(|&t| t != FileType::Regular).unwrap_or(guess),
    )
}

/// `Corrupt` unless `stat` (of the segment `name`) is a regular file's.
pub(super) fn check_regular(name: &str, stat: &sys::FileStat) -> Result<()> {
    match FileType::from_mode(stat.mode) {
        FileType::Regular => Ok(()),
        other => Err(not_regular(name, other)),
    }
}

fn not_regular(name: &str, file_type: FileType) -> Error {
    Error::Corrupt {
        kind: KIND,
        name: name.to_owned(),
        reason: format!("the name is {}, not a regular file", file_type.describe()),
    }
}

/// Removes the name `name` if it still refers to the segment open at `fd`
/// (one this call created and must not leave behind).
fn remove_if_ours(fd: &OwnedFd, name: &str, c_name: &CStr) {
    let ours = sys::fstat(fd.as_fd())
        .ok()
        .map(|stat| Identity::of_stat(&stat));
    if ours.is_some() && identity_at(name) == ours {
        let _ = sys::shm::unlink(c_name);
    }
}

/// The identity of the file the segment `name` refers to now, where this
/// platform keeps it at a path and something is there.
fn identity_at(name: &str) -> Option<Identity> {
    let path = paths::file_path(KIND, name)?;
    Identity::at(&path).ok().flatten()
}
