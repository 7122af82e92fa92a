//! Where every named object lives and what its name means: the name rules
//! and their normalisation, the directory and file prefixes behind each kind,
//! the identity of the file a name points at, and random names drawn from the
//! OS's CSPRNG (never from the clock, so processes started in the same second
//! do not pick the same name). Every other module asks this one; none spells
//! a path or a prefix of its own.

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use crate::error::{Error, ObjectKind, Result};
use crate::sys;

/// The directory in which Linux keeps shared memory segments, glibc keeps
/// named semaphores, and namedipc keeps robust semaphores.
pub const SHM_DIR: &str = "/dev/shm";

/// [`SHM_DIR`] as a C string, for the calls that create a file in it.
pub(crate) const SHM_DIR_C: &CStr = c"/dev/shm";

/// Prefix of a named semaphore's file in [`SHM_DIR`] (glibc's): the semaphore
/// `/jobs` is `/dev/shm/sem.jobs`.
pub const SEMAPHORE_FILE_PREFIX: &str = "sem.";

/// Prefix of a robust semaphore's file in [`SHM_DIR`]: the semaphore `/jobs`
/// lives in `/dev/shm/namedipc-robust.jobs`.
pub const ROBUST_FILE_PREFIX: &str = "namedipc-robust.";

/// Prefix of the temporary name a new robust semaphore file is written under
/// before it is linked to its real name.
pub const ROBUST_TEMP_PREFIX: &str = ".namedipc-robust-tmp.";

/// The longest name glibc accepts for a semaphore (NAME_MAX less "sem.").
const SEMAPHORE_NAME_MAX: usize = NAME_MAX - SEMAPHORE_FILE_PREFIX.len();
/// The longest name for a shared memory segment or message queue (NAME_MAX).
const NAME_MAX: usize = 255;
/// The longest name for a robust semaphore: NAME_MAX less its file prefix.
pub(crate) const ROBUST_NAME_MAX: usize = NAME_MAX - ROBUST_FILE_PREFIX.len();

const RANDOM_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Which file a name points at: its device and inode. Two lookups that give
/// the same identity saw the same file, so a file removed and created again
/// at the name is told apart from the one a handle opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Identity {
    /// The device (st_dev).
    pub(crate) dev: u64,
    /// The inode (st_ino).
    pub(crate) ino: u64,
}

impl Identity {
    /// The identity of the file `meta` describes.
    pub(crate) fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// The identity of the open file `stat` describes (from [`sys::fstat`]).
    pub(crate) fn of_stat(stat: &sys::FileStat) -> Self {
        Self {
            dev: stat.dev,
            ino: stat.ino,
        }
    }

    /// What `path` points at now, without following a symbolic link; `None`
    /// if nothing is there.
    pub(crate) fn at(path: &str) -> io::Result<Option<Self>> {
        match fs::symlink_metadata(path) {
            Ok(meta) => Ok(Some(Self::of(&meta))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// What kind of file is at a name, for messages ("… is a directory").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileType {
    /// A regular file: what every object of ours is.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A FIFO.
    Fifo,
    /// A UNIX socket.
    Socket,
    /// A block or character device.
    Device,
}

impl FileType {
    /// The type of the file `meta` describes (from `symlink_metadata` or `fstat`).
    pub(crate) fn of(meta: &fs::Metadata) -> Self {
        let t = meta.file_type();
        if t.is_file() {
            Self::Regular
        } else if t.is_dir() {
            Self::Directory
        } else if t.is_symlink() {
            Self::Symlink
        } else if t.is_fifo() {
            Self::Fifo
        } else if t.is_socket() {
            Self::Socket
        } else {
            Self::Device
        }
    }

    /// The type named by the `S_IFMT` bits of a `st_mode`.
    pub(crate) fn from_mode(mode: u32) -> Self {
        match mode & libc::S_IFMT {
            libc::S_IFREG => Self::Regular,
            libc::S_IFDIR => Self::Directory,
            libc::S_IFLNK => Self::Symlink,
            libc::S_IFIFO => Self::Fifo,
            libc::S_IFSOCK => Self::Socket,
            _ => Self::Device,
        }
    }

    /// The type of whatever is at `path` (not following a link), if anything is.
    pub(crate) fn at(path: &str) -> Option<Self> {
        fs::symlink_metadata(path).ok().map(|meta| Self::of(&meta))
    }

    /// "a directory", "a FIFO", …: how a message names it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Regular => "a regular file",
            Self::Directory => "a directory",
            Self::Symlink => "a symbolic link",
            Self::Fifo => "a FIFO",
            Self::Socket => "a socket",
            Self::Device => "a device",
        }
    }
}

/// The part of `name` after its leading slashes: "/jobs" and "jobs" are both "jobs".
pub(crate) fn body(name: &str) -> &str {
    // Byte by byte: names are short, and every open checks one.
    let slashes = name.bytes().take_while(|&b| b == b'/').count();
    &name[slashes..]
}

/// `name` with exactly one leading slash, as it is shown and stored.
#[must_use]
pub fn canonical(name: &str) -> String {
    let body = body(name);
    let mut canonical = String::with_capacity(body.len() + 1);
    canonical.push('/');
    canonical.push_str(body);
    canonical
}

/// How many bytes of a name a handle keeps inside itself; longer names go
/// on the heap. Nearly every name fits, so that opening and closing a
/// handle allocate nothing for its name.
const INLINE_NAME: usize = 62;

/// A handle's own copy of its name: inside the handle up to
/// [`INLINE_NAME`] bytes, on the heap beyond. Reads as the `str` it was
/// made from.
#[derive(Clone)]
pub(crate) enum KeptName {
    Inline(arrayvec::ArrayString<INLINE_NAME>),
    Heap(Box<str>),
}

impl KeptName {
    /// `name`, as it is.
    pub(crate) fn new(name: &str) -> Self {
        Self::joined("", name)
    }

    /// `name` with exactly one leading slash, as [`canonical`] spells it.
    pub(crate) fn canonical(name: &str) -> Self {
        Self::joined("/", body(name))
    }

    fn joined(head: &str, tail: &str) -> Self {
        let mut inline = arrayvec::ArrayString::new();
        if inline.try_push_str(head).is_ok() && inline.try_push_str(tail).is_ok() {
            Self::Inline(inline)
        } else {
            Self::Heap([head, tail].concat().into_boxed_str())
        }
    }
}

impl std::ops::Deref for KeptName {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Self::Inline(name) => name,
            Self::Heap(name) => name,
        }
    }
}

impl std::fmt::Debug for KeptName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl std::fmt::Display for KeptName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

/// The file in [`SHM_DIR`] behind the object `name` of `kind`, where there is
/// one on this platform (a message queue has none: it lives in mqueue's own
/// namespace). The name is not checked here.
pub(crate) fn file_path(kind: ObjectKind, name: &str) -> Option<String> {
    let prefix = file_prefix(kind)?;
    let body = body(name);
    // One byte to spare, so that `file_path_c` adds its NUL without moving it.
    let mut path = String::with_capacity(SHM_DIR.len() + 1 + prefix.len() + body.len() + 1);
    path.push_str(SHM_DIR);
    path.push('/');
    path.push_str(prefix);
    path.push_str(body);
    Some(path)
}

fn file_prefix(kind: ObjectKind) -> Option<&'static str> {
    match kind {
        ObjectKind::Semaphore if cfg!(all(target_os = "linux", target_env = "gnu")) => {
            Some(SEMAPHORE_FILE_PREFIX)
        }
        // Where segments are files there, sys::shm opens them by that path.
        ObjectKind::SharedMemory if sys::shm::OPENS_BY_PATH => Some(""),
        ObjectKind::RobustSemaphore => Some(ROBUST_FILE_PREFIX),
        _ => None,
    }
}

/// [`file_path`] as a C string. `name` must have passed [`to_c_name`]
/// (so it holds no NUL).
pub(crate) fn file_path_c(kind: ObjectKind, name: &str) -> Option<CString> {
    file_path(kind, name).and_then(|path| CString::new(path).ok())
}

// The longest file path (the directory, its slash, and a file name of at
// most NAME_MAX bytes) fits where `with_file_path_c` builds it.
const _: () = assert!(SHM_DIR.len() + 1 + NAME_MAX < sys::c_str::CAPACITY);

/// What precedes the body in [`file_path`], as one C string: [`SHM_DIR`],
/// its slash and [`file_prefix`] (one copy for the paths built on the stack).
fn file_head_c(kind: ObjectKind) -> Option<&'static CStr> {
    Some(match file_prefix(kind)? {
        SEMAPHORE_FILE_PREFIX => c"/dev/shm/sem.",
        ROBUST_FILE_PREFIX => c"/dev/shm/namedipc-robust.",
        _ => c"/dev/shm/",
    })
}

/// Checks `name` and runs `f` with [`file_path`] as a C string made on the
/// stack (`None` where the kind has no file on this platform), as
/// [`with_c_name`] does for the name: every semaphore open needs both.
pub(crate) fn with_file_path_c<R>(
    kind: ObjectKind,
    name: &str,
    f: impl FnOnce(Option<&CStr>) -> Result<R>,
) -> Result<R> {
    let body = checked_body(kind, name)?;
    let Some(head) = file_head_c(kind) else {
        return f(None);
    };
    // Always room: the name rules keep prefix and body within NAME_MAX bytes.
    sys::c_str::with_joined(
        head,
        body,
        |path| f(Some(path)),
        || Err(invalid_name(kind, name)),
    )
}

/// A fresh temporary path for a new semaphore's file, in [`SHM_DIR`] with
/// glibc's prefix (glibc's sem_open writes a new semaphore under such a
/// name too before linking it to its own), for systems where the file
/// cannot be made without a name.
pub(crate) fn semaphore_temp_path() -> io::Result<CString> {
    let name = random_name(ObjectKind::Semaphore, "/tmp.").map_err(|e| match e {
        Error::Os { source, .. } => source,
        other => io::Error::other(other.to_string()),
    })?;
    file_path_c(ObjectKind::Semaphore, &name)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOTSUP))
}

/// The name of the object of `kind` whose file in [`SHM_DIR`] is called
/// `file_name`, if such a file can belong to that kind; the inverse of
/// [`file_path`].
pub(crate) fn name_of_file(kind: ObjectKind, file_name: &str) -> Option<String> {
    let body = match kind {
        ObjectKind::Semaphore => file_name.strip_prefix(SEMAPHORE_FILE_PREFIX)?,
        ObjectKind::RobustSemaphore => file_name.strip_prefix(ROBUST_FILE_PREFIX)?,
        ObjectKind::SharedMemory => file_name,
        ObjectKind::MessageQueue | ObjectKind::RedisSemaphore => return None,
    };
    (!body.is_empty()).then(|| format!("/{body}"))
}

/// The directory `SHM_DIR` as a path.
pub(crate) fn shm_dir() -> PathBuf {
    PathBuf::from(SHM_DIR)
}

/// Checks `name` and returns it as a C string.
///
/// A name is one or more leading slashes (by convention exactly one) and
/// then 1 to N bytes, none of them `/` or NUL. Like glibc, a name without
/// a leading slash is accepted and means the same.
pub(crate) fn to_c_name(kind: ObjectKind, name: &str) -> Result<CString> {
    check_name(kind, name)?;
    CString::new(name).map_err(|_| invalid_name(kind, name))
}

/// Checks `name` and runs `f` with it as a C string with exactly one
/// leading slash (the form mq_open wants; shm_open skips leading slashes, so
/// it opens the same segment), made on the stack: every open makes one, and
/// a heap allocation for it is a measurable share of opening an existing
/// object.
pub(crate) fn with_c_name<R>(
    kind: ObjectKind,
    name: &str,
    f: impl FnOnce(&CStr) -> Result<R>,
) -> Result<R> {
    let body = checked_body(kind, name)?;
    // Always room: the name rules keep every body within NAME_MAX bytes.
    sys::c_str::with_joined(c"/", body, f, || Err(invalid_name(kind, name)))
}

/// Checks the segment name `name` and runs `f` with what `sys::shm` opens
/// and removes it by, made on the stack: its file path where segments are
/// files in [`SHM_DIR`] (`sys::shm::OPENS_BY_PATH`, Linux: glibc's
/// `shm_open` opens that very path, and building it here spares glibc's
/// copy of the name), else its C name.
pub(crate) fn with_segment_c_name<R>(name: &str, f: impl FnOnce(&CStr) -> Result<R>) -> Result<R> {
    with_file_path_c(ObjectKind::SharedMemory, name, |path| match path {
        Some(path) => f(path),
        None => with_c_name(ObjectKind::SharedMemory, name, f),
    })
}

/// Checks `name` as [`to_c_name`] does, without making the C string.
pub(crate) fn check_name(kind: ObjectKind, name: &str) -> Result<()> {
    checked_body(kind, name).map(|_| ())
}

/// `name`'s body, checked: 1 to the kind's maximum of bytes, none of them
/// `/` or NUL. What precedes the body is slashes only, so the body is all
/// that can hold a NUL; one pass looks for both bytes, and the C strings
/// built from its result need no second one.
fn checked_body(kind: ObjectKind, name: &str) -> Result<sys::c_str::NulFree<'_>> {
    let body = body(name);
    if body.is_empty() || body.len() > name_max(kind) {
        return Err(invalid_name(kind, name));
    }
    sys::c_str::NulFree::check(body.as_bytes(), b'/').ok_or_else(|| invalid_name(kind, name))
}

fn name_max(kind: ObjectKind) -> usize {
    match kind {
        ObjectKind::Semaphore => SEMAPHORE_NAME_MAX,
        ObjectKind::SharedMemory | ObjectKind::MessageQueue => NAME_MAX,
        // A distributed semaphore takes the names a robust one does, so
        // one string can name both.
        ObjectKind::RobustSemaphore | ObjectKind::RedisSemaphore => ROBUST_NAME_MAX,
    }
}

fn invalid_name(kind: ObjectKind, name: &str) -> Error {
    Error::InvalidName {
        kind,
        name: name.to_owned(),
        rule: format!(
            "a name is '/' followed by 1 to {} bytes, none of them '/' or NUL, e.g. '/jobs'",
            name_max(kind)
        ),
    }
}

/// A fresh random name for an object of `kind`: `prefix` and 16 characters
/// of `[a-z0-9]` (about 82 bits), taken from the OS's CSPRNG.
pub(crate) fn random_name(kind: ObjectKind, prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 16];
    sys::fill_random(&mut bytes).map_err(|source| Error::Os {
        operation: "getrandom",
        kind,
        name: prefix.to_owned(),
        source,
    })?;
    let mut name = String::with_capacity(prefix.len() + bytes.len());
    name.push_str(prefix);
    name.extend(
        bytes
            .iter()
            .map(|b| char::from(RANDOM_ALPHABET[usize::from(*b) % RANDOM_ALPHABET.len()])),
    );
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_conventional_and_slashless_names() {
        assert!(to_c_name(ObjectKind::Semaphore, "/jobs").is_ok());
        assert!(to_c_name(ObjectKind::Semaphore, "jobs").is_ok());
        assert!(to_c_name(ObjectKind::Semaphore, &format!("/{}", "x".repeat(251))).is_ok());
    }

    #[test]
    fn rejects_bad_names_with_the_rule() {
        for bad in [
            "",
            "/",
            "//",
            "/a/b",
            "/a\0b",
            &format!("/{}", "x".repeat(252)),
        ] {
            let err = to_c_name(ObjectKind::Semaphore, bad).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}: {err}");
            assert!(
                err.to_string().contains("followed by 1 to 251 bytes"),
                "{err}"
            );
        }
    }

    #[test]
    fn paths_and_names_are_inverse() {
        for kind in [ObjectKind::SharedMemory, ObjectKind::RobustSemaphore] {
            let path = file_path(kind, "//jobs").unwrap();
            let file = path.strip_prefix("/dev/shm/").unwrap();
            assert_eq!(name_of_file(kind, file).as_deref(), Some("/jobs"));
        }
        assert_eq!(file_path(ObjectKind::MessageQueue, "/jobs"), None);
        assert_eq!(canonical("///jobs"), "/jobs");
        assert_eq!(SHM_DIR_C.to_str(), Ok(SHM_DIR));
    }

    #[test]
    fn kept_names_read_as_given_inline_or_on_the_heap() {
        let longest = format!("/{}", "é".repeat(127)); // 255 bytes
        let edge = "x".repeat(INLINE_NAME);
        let past_edge = "x".repeat(INLINE_NAME + 1);
        for name in [
            "/j",
            "jobs",
            "/ünï",
            edge.as_str(),
            past_edge.as_str(),
            &longest,
        ] {
            let kept = KeptName::new(name);
            assert_eq!(&*kept, name);
            assert_eq!(kept.to_string(), name);
            assert_eq!(format!("{kept:?}"), format!("{name:?}"));
            let inline = matches!(kept, KeptName::Inline(_));
            assert_eq!(inline, name.len() <= INLINE_NAME, "{name}");
            assert_eq!(&*KeptName::canonical(name), canonical(name));
            assert_eq!(&*kept.clone(), name);
        }
        assert_eq!(&*KeptName::canonical("///jobs"), "/jobs");
        // One byte past the inline room once the slash is added.
        let canonical_past = KeptName::canonical(&edge);
        assert!(matches!(canonical_past, KeptName::Heap(_)));
        assert_eq!(canonical_past.len(), INLINE_NAME + 1);
    }

    #[test]
    fn stack_paths_are_the_heap_paths() {
        let kinds = [
            ObjectKind::Semaphore,
            ObjectKind::SharedMemory,
            ObjectKind::RobustSemaphore,
            ObjectKind::MessageQueue,
        ];
        for kind in kinds {
            // The shortest name, and the longest each kind accepts.
            let longest = format!("//{}", "x".repeat(name_max(kind)));
            for name in ["/j", "jobs", &longest] {
                check_name(kind, name).unwrap();
                let on_stack = with_file_path_c(kind, name, |path| {
                    Ok(path.map(|p| p.to_str().unwrap().to_owned()))
                })
                .unwrap();
                assert_eq!(on_stack, file_path(kind, name), "{kind:?} {name:?}");
                let c_name = with_c_name(kind, name, |c| Ok(c.to_owned())).unwrap();
                assert_eq!(c_name.to_str().unwrap(), canonical(name));
            }
        }
    }

    #[test]
    fn a_segment_is_opened_by_its_file_path_where_it_has_one() {
        let kind = ObjectKind::SharedMemory;
        let longest = format!("//{}", "x".repeat(name_max(kind)));
        for name in ["/j", "jobs", &longest] {
            let by = with_segment_c_name(name, |c| Ok(c.to_str().unwrap().to_owned())).unwrap();
            let want = if sys::shm::OPENS_BY_PATH {
                file_path(kind, name).unwrap()
            } else {
                canonical(name)
            };
            assert_eq!(by, want, "{name:?}");
        }
        // The name is checked first, as by with_c_name.
        let too_long = format!("/{}", "x".repeat(name_max(kind) + 1));
        for bad in ["", "/", "/a/b", "/a\0b", too_long.as_str()] {
            let refused = with_segment_c_name(bad, |_| Ok(()));
            assert!(matches!(refused, Err(Error::InvalidName { .. })), "{bad:?}");
        }
    }

    #[test]
    fn random_names_differ_and_are_valid() {
        let a = random_name(ObjectKind::Semaphore, "/namedipc-").unwrap();
        let b = random_name(ObjectKind::Semaphore, "/namedipc-").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), "/namedipc-".len() + 16);
        assert!(to_c_name(ObjectKind::Semaphore, &a).is_ok());
    }
}
