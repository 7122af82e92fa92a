//! The file glibc keeps behind a semaphore's name (where [`paths::file_path`]
//! says): which file it is, its checks, and opening and creating it.
//!
//! glibc's sem_open maps whatever file is at the name, and touching a
//! truncated one kills the process with SIGBUS. So the core does what
//! sem_open does itself, checking on the way: it opens the file once, reads
//! that very descriptor (a regular file of exactly one `sem_t`, holding
//! words glibc could have written), and maps it. A file swapped in at the
//! name meanwhile is not the one checked and mapped, so there is no window
//! between check and use.

use std::ffi::CStr;
use std::fs;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::error::{Error, ObjectKind, Result};
use crate::ownership::{NewObject, Owner, Trust};
use crate::paths::{self, FileType, Identity};
use crate::sys;
use crate::sys::sem::RawSemaphore;

const KIND: ObjectKind = ObjectKind::Semaphore;

/// The identity of the file behind the semaphore `name`, where this
/// platform keeps one and something is there.
pub(super) fn identity(name: &str) -> Option<Identity> {
    let path = paths::file_path(KIND, name)?;
    Identity::at(&path).ok().flatten()
}

/// Opens the existing semaphore whose file is `path`: one open, one read,
/// one fstat and one mmap of the same descriptor, as many calls as sem_open
/// makes plus the read (the read shows the length and the words, the fstat
/// the owner, which `trust` must accept before the file is mapped). The
/// mmap is spared where this process kept an idle mapping of that very
/// file ([`RawSemaphore::map_file`]).
pub(super) fn open(name: &str, path: &CStr, trust: &Trust) -> Result<(RawSemaphore, Owner)> {
    let fd = sys::sem::open_file(path).map_err(|e| open_error(name, path, e))?;
    let start = match sys::sem::read_file(fd.as_fd()) {
        Ok(start) if start.len == sys::sem::FILE_LEN => start,
        // The wrong length, or no reading at all (a FIFO): fstat says what
        // the file is, for the message.
        read => {
            let stat =
                sys::fstat(fd.as_fd()).map_err(|e| Error::from_os("fstat", KIND, name, e))?;
            check_stat(&display(path), FileType::from_mode(stat.mode), stat.size)
                .map_err(|reason| corrupt(name, reason))?;
            // A regular file of the right length now, yet not when read: its
            // length changed under the open.
            return Err(match read {
                Ok(short) => corrupt(name, length_reason(&display(path), short.len)),
                Err(e) => Error::from_os("pread", KIND, name, e),
            });
        }
    };
    if let Some(words) = implausible(&start.words) {
        return Err(corrupt(name, words_reason(&display(path), words)));
    }
    let file = sys::fstat(fd.as_fd()).map_err(|e| Error::from_os("fstat", KIND, name, e))?;
    let owner = Owner::of_stat(&file);
    trust.check(KIND, name, owner)?;
    let sem = sys::sem::RawSemaphore::map_file(fd.as_fd(), &file)
        .map_err(|e| Error::from_os("mmap", KIND, name, e))?;
    Ok((sem, owner))
}

/// Creates the semaphore whose file is `path`, exclusively, with `value`,
/// and the mode and group `new` asks for (set before the file appears at
/// the name); returns it, its owner, and the identity of its file.
pub(super) fn create(
    name: &str,
    path: &CStr,
    new: NewObject,
    value: u32,
) -> Result<(RawSemaphore, Owner, Identity)> {
    // What the preparation found or why it failed, kept from inside the
    // call, which only passes an io::Error on.
    let mut settled: Option<Result<(Owner, Identity)>> = None;
    let mut prepare = |fd: std::os::fd::BorrowedFd<'_>| {
        let result = new.settle(fd, KIND, name);
        let failed = result.is_err();
        // From the descriptor, not the name: the file this call made, even
        // if another process has already replaced it at the name.
        settled = Some(result.map(|(owner, stat)| (owner, Identity::of_stat(&stat))));
        if failed {
            Err(io::Error::other("the new semaphore could not be prepared"))
        } else {
            Ok(())
        }
    };
    let made = sys::sem::create_file(
        paths::SHM_DIR_C,
        path,
        new.mode,
        value,
        paths::semaphore_temp_path,
        &mut prepare,
    );
    match (made, settled) {
        (_, Some(Err(e))) => Err(e),
        (Ok((sem, _fd)), Some(Ok((owner, identity)))) => Ok((sem, owner, identity)),
        (Err(e), _) => Err(Error::from_os("sem_open", KIND, name, e)),
        (Ok(_), None) => Err(Error::Os {
            operation: "sem_open",
            kind: KIND,
            name: name.to_owned(),
            source: io::Error::other("the new semaphore's file was not prepared"),
        }),
    }
}

/// What a failed open of the file means. A directory (EISDIR, as the open
/// asks for writing) or a socket or device (ENXIO) is a file that is not a
/// semaphore; a symbolic link (ELOOP) is reported as such by `from_os`.
fn open_error(name: &str, path: &CStr, e: io::Error) -> Error {
    let path = display(path);
    match e.raw_os_error() {
        Some(libc::EISDIR) => corrupt(name, not_regular_reason(&path, FileType::Directory)),
        // Which of the two it was, if it is still there to look at.
        Some(libc::ENXIO) => corrupt(
            name,
            match FileType::at(&path).filter(|&t| t != FileType::Regular) {
                Some(file_type) => not_regular_reason(&path, file_type),
                None => format!("{path} is a socket or a device, not a regular file"),
            },
        ),
        _ => Error::from_os("sem_open", KIND, name, e),
    }
}

fn corrupt(name: &str, reason: String) -> Error {
    Error::Corrupt {
        kind: KIND,
        name: name.to_owned(),
        reason,
    }
}

fn display(path: &CStr) -> String {
    path.to_string_lossy().into_owned()
}

fn not_regular_reason(path: &str, file_type: FileType) -> String {
    format!("{path} is {}, not a regular file", file_type.describe())
}

/// Checks what fstat says of a semaphore's file: a regular file of one `sem_t`.
fn check_stat(path: &str, file_type: FileType, len: u64) -> Result<(), String> {
    if file_type != FileType::Regular {
        return Err(not_regular_reason(path, file_type));
    }
    if len != sys::sem::FILE_LEN {
        return Err(length_reason(path, len));
    }
    Ok(())
}

fn length_reason(path: &str, len: u64) -> String {
    format!(
        "{path} is {len} bytes long; a semaphore's file is {} bytes",
        sys::sem::FILE_LEN
    )
}

/// The first words of a semaphore's file if glibc could not have written
/// them; `None` for valid ones, or a layout this build does not know (the
/// length check must do then).
fn implausible(bytes: &[u8; sys::sem::FILE_WORDS_LEN]) -> Option<sys::sem::FileWords> {
    sys::sem::decode_file(bytes).filter(|words| !words.plausible())
}

fn words_reason(path: &str, words: sys::sem::FileWords) -> String {
    format!(
        "{path} does not hold a valid semaphore (value field {}, sharing field {})",
        words.value, words.private
    )
}

/// Checks the file behind the semaphore `name` without mapping it, for the
/// inventory, which only reads it. `Err(reason)` says what is wrong; a
/// missing or unreadable file, or a platform that keeps no file, is left
/// for the caller to report.
pub(crate) fn check_file(name: &str) -> Result<(), String> {
    let Some(path) = paths::file_path(KIND, name) else {
        return Ok(());
    };
    let Ok(mut file) = fs::OpenOptions::new()
        .read(true)
        // O_NONBLOCK: a FIFO planted at the name must not block the open.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
    else {
        // A socket cannot be opened at all (ENXIO); anything else (missing,
        // unreadable, a symbolic link) is the caller's to report.
        return match FileType::at(&path) {
            Some(FileType::Socket) => Err(not_regular_reason(&path, FileType::Socket)),
            _ => Ok(()),
        };
    };
    let Ok(meta) = file.metadata() else {
        return Ok(());
    };
    check_stat(&path, FileType::of(&meta), meta.len())?;
    let mut bytes = [0u8; sys::sem::FILE_WORDS_LEN];
    if file.read_exact(&mut bytes).is_err() {
        return Ok(());
    }
    implausible(&bytes).map_or(Ok(()), |words| Err(words_reason(&path, words)))
}

/// The two ways `sys::sem::create_file` makes a file, each checked against
/// what glibc's own sem_open writes.
#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use std::ffi::CString;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::sys::sem::{create_unnamed, create_via_temp, initial_bytes, OpenFlags};

    /// A unique semaphore name and its file's path, removed on drop.
    struct TestName {
        name: String,
        path: CString,
    }

    impl TestName {
        fn new(label: &str) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("/namedipc-unit-{label}-{}-{n}", std::process::id());
            let path = paths::file_path_c(KIND, &name).unwrap();
            Self { name, path }
        }

        fn bytes(&self) -> Vec<u8> {
            fs::read(self.path.to_str().unwrap()).unwrap()
        }

        fn exists(&self) -> bool {
            fs::symlink_metadata(self.path.to_str().unwrap()).is_ok()
        }
    }

    impl Drop for TestName {
        fn drop(&mut self) {
            let _ = fs::remove_file(self.path.to_str().unwrap());
        }
    }

    /// What glibc's sem_open writes for a new semaphore of `value`.
    fn glibc_file(value: u32) -> Vec<u8> {
        let made = TestName::new("glibc");
        let c_name = paths::to_c_name(KIND, &made.name).unwrap();
        drop(
            RawSemaphore::open(&c_name, OpenFlags::CreateExclusive { mode: 0o600, value }).unwrap(),
        );
        made.bytes()
    }

    #[test]
    fn both_ways_of_creating_write_what_sem_open_writes() {
        for value in [0, 1, 7, sys::sem::VALUE_MAX] {
            let initial = initial_bytes(value).unwrap();
            let unnamed = TestName::new("unnamed");
            let (sem, _fd) = create_unnamed(
                paths::SHM_DIR_C,
                &unnamed.path,
                0o600,
                &initial,
                &mut |_| Ok(()),
            )
            .unwrap();
            assert_eq!(sem.value().unwrap(), value);
            assert_eq!(unnamed.bytes(), glibc_file(value), "{value}");

            let named = TestName::new("named");
            let scratch = TestName::new("scratch");
            let (sem, _fd) = create_via_temp(
                &named.path,
                0o600,
                &initial,
                || Ok(scratch.path.clone()),
                &mut |_| Ok(()),
            )
            .unwrap();
            assert_eq!(sem.value().unwrap(), value);
            assert_eq!(named.bytes(), glibc_file(value), "{value}");
            // The temporary name is gone again.
            assert!(!scratch.exists());
        }
    }

    #[test]
    fn a_taken_name_is_eexist_and_leaves_no_temporary_file() {
        let taken = TestName::new("taken");
        fs::write(taken.path.to_str().unwrap(), b"x").unwrap();
        let initial = initial_bytes(1).unwrap();
        let err = create_unnamed(paths::SHM_DIR_C, &taken.path, 0o600, &initial, &mut |_| {
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));

        let (busy, free) = (TestName::new("busy"), TestName::new("free"));
        fs::write(busy.path.to_str().unwrap(), b"").unwrap();
        // The first temporary name is taken: another one is drawn.
        let mut temps = vec![free.path.clone(), busy.path.clone()];
        let err = create_via_temp(
            &taken.path,
            0o600,
            &initial,
            || Ok(temps.pop().unwrap()),
            &mut |_| Ok(()),
        )
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
        assert!(temps.is_empty());
        assert!(!free.exists());
        assert_eq!(taken.bytes(), b"x");
        assert_eq!(busy.bytes(), b"");
    }

    #[test]
    fn a_mapped_semaphore_works_with_glibc_functions() {
        let made = TestName::new("mapped");
        let initial = initial_bytes(2).unwrap();
        let (created, _fd) =
            create_unnamed(paths::SHM_DIR_C, &made.path, 0o600, &initial, &mut |_| {
                Ok(())
            })
            .unwrap();
        let (opened, _) = open(&made.name, &made.path, &Trust::new()).unwrap();
        assert!(opened.try_wait().unwrap());
        assert_eq!(created.value().unwrap(), 1);
        created.post().unwrap();
        assert_eq!(opened.value().unwrap(), 2);
        let fd = sys::sem::open_file(&made.path).unwrap();
        let start = sys::sem::read_file(fd.as_fd()).unwrap();
        assert_eq!(start.len, sys::sem::FILE_LEN);
        assert_eq!(&start.words[..], &glibc_file(2)[..sys::sem::FILE_WORDS_LEN]);
    }
}
