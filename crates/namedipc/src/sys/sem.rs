//! POSIX named semaphores (sem_open and friends), and the layout of the
//! file glibc keeps behind each name, which the layer above checks before
//! sem_open maps it.

use std::ffi::CStr;
use std::io;
use std::ptr::NonNull;
use std::time::Duration;

use super::{check, retry_on_interrupt, to_timespec};

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

/// An open named semaphore; `sem_close`d on drop.
#[derive(Debug)]
pub(crate) struct RawSemaphore {
    sem: NonNull<libc::sem_t>,
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
            .map(|sem| Self { sem })
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
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
        // SAFETY: the pointer came from a successful sem_open and, as we own
        // it exclusively here, no other thread can be using it.
        unsafe { libc::sem_close(self.sem.as_ptr()) };
    }
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
