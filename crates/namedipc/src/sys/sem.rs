//! POSIX named semaphores (sem_open and friends), and a check of the file
//! glibc keeps behind each name, so that a truncated or foreign file is
//! reported instead of crashing the process with SIGBUS.

use std::ffi::CStr;
use std::io;
use std::ptr::NonNull;
use std::time::Duration;

use super::{check, retry_on_interrupt, to_timespec};

/// The largest value a semaphore can hold: SEM_VALUE_MAX, which glibc and
/// musl define as INT_MAX (the libc crate does not export it for Linux).
pub(crate) const VALUE_MAX: u32 = i32::MAX as u32;

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

/// Where glibc keeps the semaphore `name`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn file_path(name: &str) -> String {
    format!("/dev/shm/sem.{}", name.trim_start_matches('/'))
}

/// Which file a name refers to: (device, inode).
pub(crate) type FileIdentity = (u64, u64);

/// The identity of the file behind the semaphore `name`, if there is one.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn file_identity(name: &str) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(file_path(name)).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Checks the file glibc keeps for the semaphore `name` before it is mapped:
/// glibc maps whatever file is there, and touching a truncated one kills the
/// process with SIGBUS. `Err(reason)` says what is wrong; a missing or
/// unreadable file is left for sem_open to report.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn check_file(name: &str) -> Result<(), String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let path = file_path(name);
    let Ok(mut file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
    else {
        // Missing, unreadable, or a symbolic link (ELOOP): sem_open says which.
        return Ok(());
    };
    let Ok(meta) = file.metadata() else {
        return Ok(());
    };
    if !meta.file_type().is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    let expected = std::mem::size_of::<libc::sem_t>() as u64;
    if meta.len() != expected {
        return Err(format!(
            "{path} is {} bytes long; a semaphore's file is {expected} bytes",
            meta.len()
        ));
    }
    if cfg!(not(target_pointer_width = "64")) {
        // The field layout below is glibc's 64-bit one; elsewhere the size check must do.
        return Ok(());
    }
    let mut bytes = [0u8; 16];
    if file.read_exact(&mut bytes).is_err() {
        return Ok(());
    }
    // glibc's `struct new_sem` on 64-bit: u64 `data` (value in the low 32
    // bits, waiter count in the high 32), then i32 `private` (FUTEX_SHARED = 128).
    let value = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let private = i32::from_ne_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if value > VALUE_MAX || !(private == 0 || private == 128) {
        return Err(format!(
            "{path} does not hold a valid semaphore (value field {value}, sharing field {private})"
        ));
    }
    Ok(())
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn file_identity(_name: &str) -> Option<FileIdentity> {
    None
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn check_file(_name: &str) -> Result<(), String> {
    Ok(())
}
