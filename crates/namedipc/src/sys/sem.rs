//! POSIX named semaphores: the file glibc keeps behind each name, opened,
//! created and mapped here the way glibc's sem_open does it (so that C
//! programs calling sem_open on the same name share the semaphore), the
//! layout of that file, and sem_open itself for platforms that keep no file.
//! Waits and posts are glibc's own sem_* functions on the mapped `sem_t`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Mutex;
use std::time::Duration;

use super::{check, retry_on_interrupt, to_timespec, FileStat};

/// The largest value a semaphore can hold: SEM_VALUE_MAX, which glibc and
/// musl define as INT_MAX (the libc crate does not export it for Linux).
pub(crate) const VALUE_MAX: u32 = i32::MAX as u32;

/// The call behind a wait with a deadline, for error messages.
pub(crate) const TIMED_WAIT: &str = if cfg!(all(target_os = "linux", target_env = "gnu")) {
    "sem_clockwait"
} else {
    "sem_timedwait"
};

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    // glibc >= 2.30; the libc crate does not declare it for Linux.
    fn sem_clockwait(
        sem: *mut libc::sem_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// An open named semaphore: a `sem_t` in a shared mapping of the
/// semaphore's file, unmapped on drop, or one that sem_open returned,
/// `sem_close`d on drop.
#[derive(Debug)]
pub(crate) struct RawSemaphore {
    sem: NonNull<libc::sem_t>,
    /// Where `sem` came from, which says what dropping it does.
    origin: Origin,
}

/// Where a [`RawSemaphore`]'s `sem_t` came from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// sem_open: `sem_close`d on drop.
    SemOpen,
    /// Our own mapping of the file ([`RawSemaphore::map`]): unmapped on
    /// drop, or, for one made by [`RawSemaphore::map_file`], kept idle for
    /// reuse under the file it maps.
    Mapping { file: Option<FileId> },
}

/// A file's identity, as fstat gives it: its device and inode.
type FileId = (u64, u64);

/// How many mappings of semaphores that no handle in this process uses any
/// more are kept for reuse (see [`RawSemaphore::map_file`]).
const IDLE_LIMIT: usize = 8;

/// A mapping that no handle uses, of the file `file`.
struct IdleMapping {
    file: FileId,
    sem: NonNull<libc::sem_t>,
}

// SAFETY: an idle mapping is an address range that nothing in the process
// uses until `take_idle` hands it to one new handle; moving that address
// between threads is harmless.
unsafe impl Send for IdleMapping {}

/// The idle mappings, oldest first.
static IDLE: Mutex<Vec<IdleMapping>> = Mutex::new(Vec::new());

/// An idle mapping of the file `file`, taken out of [`IDLE`]; `None` if
/// there is none, or if another thread holds the list (never blocking, so
/// that a child forked while a thread held it cannot deadlock).
fn take_idle(file: FileId) -> Option<NonNull<libc::sem_t>> {
    let mut idle = IDLE.try_lock().ok()?;
    let at = idle.iter().position(|mapping| mapping.file == file)?;
    Some(idle.remove(at).sem)
}

/// Keeps `mapping` idle for reuse; returns what must be unmapped instead:
/// the oldest idle mapping if the list was full, or `mapping` itself if
/// another thread holds the list.
fn keep_idle(mapping: IdleMapping) -> Option<NonNull<libc::sem_t>> {
    let Ok(mut idle) = IDLE.try_lock() else {
        return Some(mapping.sem);
    };
    let evicted = (idle.len() >= IDLE_LIMIT).then(|| idle.remove(0).sem);
    idle.push(mapping);
    evicted
}

/// Unmaps one `sem_t` that [`RawSemaphore::map`] mapped.
fn unmap(sem: NonNull<libc::sem_t>) {
    // SAFETY: the pointer and length are exactly what mmap returned in
    // `RawSemaphore::map`, and the caller owns the mapping exclusively (a
    // handle being dropped, or one taken out of IDLE), so nothing else uses it.
    unsafe { libc::munmap(sem.as_ptr().cast(), SEM_LEN) };
}

// SAFETY: a POSIX semaphore is made for concurrent use by any number of
// threads and processes; the pointer stays valid until `Drop` runs, which
// needs exclusive ownership.
unsafe impl Send for RawSemaphore {}
// SAFETY: as above; every method takes `&self` and calls a thread-safe sem_* function.
unsafe impl Sync for RawSemaphore {}

/// How `RawSemaphore::open` treats the name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OpenFlags {
    /// Open an existing semaphore.
    Existing,
    /// Create a new one; fail with EEXIST if the name is taken.
    CreateExclusive { mode: u32, value: u32 },
}

impl RawSemaphore {
    pub(crate) fn open(name: &CStr, flags: OpenFlags) -> io::Result<Self> {
        let sem = match flags {
            // SAFETY: `name` is a valid NUL-terminated string; without O_CREAT
            // sem_open reads no variadic arguments.
            OpenFlags::Existing => unsafe { libc::sem_open(name.as_ptr(), 0) },
            OpenFlags::CreateExclusive { mode, value } => {
                // SAFETY: `name` is NUL-terminated; with O_CREAT sem_open reads
                // exactly a mode_t and an unsigned int, which is what we pass.
                unsafe {
                    libc::sem_open(
                        name.as_ptr(),
                        libc::O_CREAT | libc::O_EXCL,
                        mode as libc::mode_t,
                        value as libc::c_uint,
                    )
                }
            }
        };
        if sem == libc::SEM_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(sem)
            .map(|sem| Self {
                sem,
                origin: Origin::SemOpen,
            })
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// Maps the semaphore in the file `fd` (one `sem_t`, shared), as glibc's
    /// sem_open does once it has the file open. The caller has checked that
    /// the file is a regular file of [`FILE_LEN`] bytes.
    pub(crate) fn map(fd: BorrowedFd<'_>) -> io::Result<Self> {
        // SAFETY: a null address lets the kernel choose where, so no existing
        // mapping is replaced; `fd` is open for the call; the result is
        // checked against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SEM_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(ptr.cast::<libc::sem_t>())
            .map(|sem| Self {
                sem,
                origin: Origin::Mapping { file: None },
            })
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// [`RawSemaphore::map`] for the file `fd`, whose fstat is `stat`,
    /// reusing a mapping of that very file (device and inode) that no
    /// handle uses any more, if this process kept one: the same page of the
    /// same file, without the `mmap` now and the `munmap` at the last drop.
    /// Dropped, the mapping is kept idle (the oldest of [`IDLE_LIMIT`]
    /// unmapped) rather than unmapped.
    pub(crate) fn map_file(fd: BorrowedFd<'_>, stat: &FileStat) -> io::Result<Self> {
        let file = (stat.dev, stat.ino);
        let origin = Origin::Mapping { file: Some(file) };
        if let Some(sem) = take_idle(file) {
            return Ok(Self { sem, origin });
        }
        let mut mapped = Self::map(fd)?;
        mapped.origin = origin;
        Ok(mapped)
    }

    /// Takes the semaphore if it is free; `Ok(false)` if it is not.
    pub(crate) fn try_wait(&self) -> io::Result<bool> {
        let taken = retry_on_interrupt(|| {
            // SAFETY: `self.sem` is a live semaphore until drop.
            check(unsafe { libc::sem_trywait(self.sem.as_ptr()) })
        });
        match taken {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until the semaphore is taken (`Ok(true)`) or the monotonic clock
    /// reaches `deadline` (`Ok(false)`). A signal handler that runs during the
    /// wait ends it with an `Interrupted` error, so the caller can run its own
    /// signal logic and decide whether to go on.
    pub(crate) fn wait_until(&self, deadline: Option<Duration>) -> io::Result<bool> {
        let ret = match deadline {
            // SAFETY: `self.sem` is a live semaphore until drop.
            None => unsafe { libc::sem_wait(self.sem.as_ptr()) },
            Some(at) => {
                let abstime = to_timespec(at);
                self.clock_wait(&abstime)
            }
        };
        match check(ret) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ETIMEDOUT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn clock_wait(&self, abstime: &libc::timespec) -> libc::c_int {
        // SAFETY: `self.sem` is live; `abstime` is a valid timespec on CLOCK_MONOTONIC.
        unsafe { sem_clockwait(self.sem.as_ptr(), libc::CLOCK_MONOTONIC, abstime) }
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn clock_wait(&self, abstime: &libc::timespec) -> libc::c_int {
        // Without sem_clockwait, translate the monotonic deadline to the
        // realtime clock that sem_timedwait measures against.
        let at = Duration::new(abstime.tv_sec as u64, abstime.tv_nsec as u32);
        let remaining = at.saturating_sub(super::monotonic_now());
        let abs = to_timespec(super::clock_now(libc::CLOCK_REALTIME) + remaining);
        // SAFETY: `self.sem` is live; `abs` is a valid timespec.
        unsafe { libc::sem_timedwait(self.sem.as_ptr(), &abs) }
    }

    pub(crate) fn post(&self) -> io::Result<()> {
        // SAFETY: `self.sem` is a live semaphore until drop.
        check(unsafe { libc::sem_post(self.sem.as_ptr()) }).map(drop)
    }

    pub(crate) fn value(&self) -> io::Result<u32> {
        let mut value: libc::c_int = 0;
        // SAFETY: `self.sem` is live and `value` is a valid, writable int.
        check(unsafe { libc::sem_getvalue(self.sem.as_ptr(), &raw mut value) })?;
        // glibc never reports waiters as a negative value.
        Ok(u32::try_from(value).unwrap_or(0))
    }
}

impl Drop for RawSemaphore {
    fn drop(&mut self) {
        if let Origin::Mapping { file } = self.origin {
            // As we own the value exclusively here, no other thread can be
            // using the mapping.
            let unused = match file {
                Some(file) => keep_idle(IdleMapping {
                    file,
                    sem: self.sem,
                }),
                None => Some(self.sem),
            };
            if let Some(sem) = unused {
                unmap(sem);
            }
        } else {
            // SAFETY: the pointer came from a successful sem_open and, as we
            // own it exclusively here, no other thread can be using it.
            unsafe { libc::sem_close(self.sem.as_ptr()) };
        }
    }
}

/// The length of one `sem_t`, what a semaphore's file holds and is mapped.
const SEM_LEN: usize = std::mem::size_of::<libc::sem_t>();

/// Opens an existing semaphore's file at `path` for [`RawSemaphore::map`],
/// as glibc's sem_open does: read-write, never through a symbolic link
/// (ELOOP), and not blocking should a FIFO be at the name.
pub(crate) fn open_file(path: &CStr) -> io::Result<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
    retry_on_interrupt(|| {
        // SAFETY: `path` is a valid NUL-terminated string; without O_CREAT
        // open reads no mode argument.
        let fd = check(unsafe { libc::open(path.as_ptr(), flags) })?;
        // SAFETY: open just returned this descriptor, so nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })
}

/// What [`read_file`] read: the first bytes of a semaphore's file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileStart {
    /// How many bytes the file gave: [`FILE_LEN`] exactly for a file of one
    /// `sem_t`, as one byte more was asked for.
    pub(crate) len: u64,
    /// Its first [`FILE_WORDS_LEN`] bytes (zeroes past `len`).
    pub(crate) words: [u8; FILE_WORDS_LEN],
}

/// Reads the start of the file `fd` with one pread of one byte more than a
/// `sem_t`, so that the count also tells whether the file is exactly one
/// `sem_t` long: a regular file reads short only at its end. A FIFO or
/// other stream fails (ESPIPE). Reading through the descriptor rather than
/// the mapping spares a page fault, which costs more than the whole open.
pub(crate) fn read_file(fd: BorrowedFd<'_>) -> io::Result<FileStart> {
    let mut buf = [0u8; SEM_LEN + 1];
    let len = retry_on_interrupt(|| {
        // SAFETY: `fd` is open for the call; `buf` is valid for writes of
        // its length.
        let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        // Negative (-1) exactly when the call failed.
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    })?;
    let mut words = [0u8; FILE_WORDS_LEN];
    words.copy_from_slice(&buf[..FILE_WORDS_LEN]);
    Ok(FileStart {
        len: len as u64,
        words,
    })
}

/// Creates the semaphore's file at `path` (in the directory `dir`), with
/// permission bits `mode` (less the umask) and the value `value`, failing
/// with EEXIST if something is at the name; returns it mapped, and its
/// descriptor, which the caller may fstat and then closes. `prepare` runs on
/// the new file's descriptor before the file appears at the name (to set
/// its group and mode); its error ends the creation, leaving nothing behind.
///
/// As glibc's sem_open does, the file is complete (one initialised
/// `sem_t`) before it appears at the name, by a link that fails if the
/// name is taken: an unnamed file (O_TMPFILE) linked through
/// `/proc/self/fd`, or where either is missing, a file under a temporary
/// name from `temp_path`, linked and then removed.
pub(crate) fn create_file(
    dir: &CStr,
    path: &CStr,
    mode: u32,
    value: u32,
    temp_path: impl FnMut() -> io::Result<CString>,
    prepare: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<()>,
) -> io::Result<(RawSemaphore, OwnedFd)> {
    let initial = initial_bytes(value)?;
    match create_unnamed(dir, path, mode, &initial, prepare) {
        // Any other failure may be this system's lack of O_TMPFILE (or of
        // it on this file system) or of /proc, or a sandbox refusing the
        // link through /proc: glibc's way works wherever sem_open does, and
        // reports the real error where that was one.
        Err(e) if e.raw_os_error() != Some(libc::EEXIST) => {
            create_via_temp(path, mode, &initial, temp_path, prepare)
        }
        other => other,
    }
}

/// An initialised process-shared `sem_t` with `value`, as sem_open writes
/// it to a new file: zeroes, then sem_init.
pub(crate) fn initial_bytes(value: u32) -> io::Result<[u8; SEM_LEN]> {
    let mut sem = std::mem::MaybeUninit::<libc::sem_t>::zeroed();
    // SAFETY: `sem` is valid, writable memory for one sem_t; pshared 1 makes
    // a semaphore for use between processes, which is what a file holds.
    check(unsafe { libc::sem_init(sem.as_mut_ptr(), 1, value as libc::c_uint) })?;
    // SAFETY: the memory was zeroed and then initialised by sem_init: every
    // byte is initialised. A sem_t is plain data that may be copied (glibc's
    // and musl's sem_open write it to the file the same way).
    Ok(unsafe { std::mem::transmute::<libc::sem_t, [u8; SEM_LEN]>(sem.assume_init()) })
}

/// The first way of [`create_file`]: an unnamed file, linked through `/proc`.
pub(crate) fn create_unnamed(
    dir: &CStr,
    path: &CStr,
    mode: u32,
    initial: &[u8; SEM_LEN],
    prepare: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<()>,
) -> io::Result<(RawSemaphore, OwnedFd)> {
    let flags = libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC;
    let fd = retry_on_interrupt(|| {
        // SAFETY: `dir` is a valid NUL-terminated string; with O_TMPFILE
        // open reads exactly one mode_t argument, which is what we pass.
        let fd = check(unsafe { libc::open(dir.as_ptr(), flags, mode as libc::mode_t) })?;
        // SAFETY: open just returned this descriptor, so nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })?;
    write_all(fd.as_fd(), initial)?;
    prepare(fd.as_fd())?;
    let sem = RawSemaphore::map(fd.as_fd())?;
    // Linking an O_TMPFILE file by its descriptor (AT_EMPTY_PATH) needs
    // CAP_DAC_READ_SEARCH; through /proc it needs nothing.
    let proc_path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    retry_on_interrupt(|| {
        // SAFETY: both paths are valid NUL-terminated strings; AT_FDCWD
        // and the flag take no pointers.
        check(unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                proc_path.as_ptr(),
                libc::AT_FDCWD,
                path.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        })
    })?;
    Ok((sem, fd))
}

/// The second way of [`create_file`]: a file under a temporary name from
/// `temp_path`, linked to `path` and then removed.
pub(crate) fn create_via_temp(
    path: &CStr,
    mode: u32,
    initial: &[u8; SEM_LEN],
    mut temp_path: impl FnMut() -> io::Result<CString>,
    prepare: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<()>,
) -> io::Result<(RawSemaphore, OwnedFd)> {
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let (temp, fd) = loop {
        let temp = temp_path()?;
        let opened = retry_on_interrupt(|| {
            // SAFETY: `temp` is a valid NUL-terminated string; with O_CREAT
            // open reads exactly one mode_t argument, which is what we pass.
            let fd = check(unsafe { libc::open(temp.as_ptr(), flags, mode as libc::mode_t) })?;
            // SAFETY: open just returned this descriptor, so nothing else owns it.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        });
        match opened {
            Ok(fd) => break (temp, fd),
            // Another process's temporary file: draw another name.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
    };
    let linked = write_all(fd.as_fd(), initial)
        .and_then(|()| prepare(fd.as_fd()))
        .and_then(|()| RawSemaphore::map(fd.as_fd()))
        .and_then(|sem| {
            // SAFETY: both paths are valid NUL-terminated strings.
            check(unsafe { libc::link(temp.as_ptr(), path.as_ptr()) }).map(|_| sem)
        });
    // SAFETY: `temp` is a valid NUL-terminated string; the file is ours.
    unsafe { libc::unlink(temp.as_ptr()) };
    linked.map(|sem| (sem, fd))
}

fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let written = retry_on_interrupt(|| {
            // SAFETY: `fd` is open for the call; `bytes` is valid for reads
            // of its length.
            let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
            // Negative (-1) exactly when the call failed.
            usize::try_from(n).map_err(|_| io::Error::last_os_error())
        })?;
        if written == 0 {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        bytes = &bytes[written..];
    }
    Ok(())
}

pub(crate) fn unlink(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string.
    check(unsafe { libc::sem_unlink(name.as_ptr()) }).map(drop)
}

/// The length of the file glibc keeps behind a semaphore name: one `sem_t`.
pub(crate) const FILE_LEN: u64 = std::mem::size_of::<libc::sem_t>() as u64;

/// The fields of glibc's `struct new_sem`, as a semaphore's file holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileWords {
    /// The number of free slots.
    pub(crate) value: u32,
    /// The futex sharing flag: 0 for a semaphore shared between processes,
    /// 128 (FUTEX_PRIVATE_FLAG) for one of a single process.
    pub(crate) private: i32,
}

impl FileWords {
    /// Whether glibc could have written these words: a value within
    /// [`VALUE_MAX`] and one of the two sharing flags.
    pub(crate) fn plausible(self) -> bool {
        self.value <= VALUE_MAX && (self.private == 0 || self.private == 128)
    }
}

/// How many bytes of a semaphore's file [`decode_file`] reads.
pub(crate) const FILE_WORDS_LEN: usize = 16;

/// Decodes the start of a semaphore's file, in the layout of glibc's
/// `struct new_sem` on 64-bit targets: a u64 `data` (the value in its low 32
/// bits, the number of waiters in its high 32), then the i32 `private`.
/// `None` where this build does not know the layout.
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
#[allow(clippy::cast_possible_truncation)] // the value is `data`'s low half, on purpose
#[allow(clippy::unnecessary_wraps)] // `None` on the platforms whose layout is unknown
pub(crate) fn decode_file(bytes: &[u8; FILE_WORDS_LEN]) -> Option<FileWords> {
    let [d0, d1, d2, d3, d4, d5, d6, d7, p0, p1, p2, p3, ..] = *bytes;
    let data = u64::from_ne_bytes([d0, d1, d2, d3, d4, d5, d6, d7]);
    Some(FileWords {
        value: data as u32,
        private: i32::from_ne_bytes([p0, p1, p2, p3]),
    })
}

/// Elsewhere the layout is unknown: the size check must do.
#[cfg(not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")))]
pub(crate) fn decode_file(_bytes: &[u8; FILE_WORDS_LEN]) -> Option<FileWords> {
    None
}
