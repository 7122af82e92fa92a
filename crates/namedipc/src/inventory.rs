//! Finds the named IPC objects on this machine — POSIX semaphores, shared
//! memory segments and message queues, and robust semaphores — for the
//! `namedipc` command's `ls`, `info` and `rm`. POSIX has no call that lists
//! them; on Linux they are files, which this module reads without opening
//! an object for use (only a message queue's counters need `mq_open`).
//!
//! ```
//! use namedipc::{inventory, ObjectKind, Semaphore};
//!
//! # let name = format!("/namedipc-doc-inventory-{}", std::process::id());
//! let sem = Semaphore::create(&name, 3)?;
//! let found = inventory::find(&name)?;
//! assert_eq!(found.objects[0].kind, ObjectKind::Semaphore);
//! assert!(matches!(found.objects[0].details, inventory::Details::Semaphore { value: Some(3), .. }));
//! # sem.unlink()?;
//! # Ok::<(), namedipc::Error>(())
//! ```

use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, ObjectKind, Result};
use crate::existence::Existence;
use crate::mqueue::MessageQueue;
use crate::paths::{self, FileType};
use crate::robust::{self, Snapshot};

/// One named object.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Object {
    /// What kind of object it is.
    pub kind: ObjectKind,
    /// Its name, with the leading slash (`/jobs`).
    pub name: String,
    /// The file behind it, where there is one this process can see (a
    /// message queue has none while no mqueue file system is mounted).
    pub path: Option<PathBuf>,
    /// The user id of its owner, if known.
    pub uid: Option<u32>,
    /// Its permission bits (e.g. `0o600`), if known.
    pub mode: Option<u32>,
    /// When it was created: the file's birth time where the file system
    /// keeps one, else its last status change (creation, chmod, chown).
    pub created: Option<SystemTime>,
    /// What is known about its state.
    pub details: Details,
    /// Why some of the details are missing (unreadable, corrupt), if they are.
    pub problem: Option<String>,
}

/// The state of an [`Object`], by kind; `None` where it could not be read.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Details {
    /// A POSIX named semaphore.
    Semaphore {
        /// Its value.
        value: Option<u32>,
        /// How many threads are blocked waiting on it.
        waiters: Option<u32>,
    },
    /// A shared memory segment.
    SharedMemory {
        /// Its size in bytes.
        size: u64,
    },
    /// A message queue.
    MessageQueue {
        /// Messages in it now.
        messages: Option<u64>,
        /// How many messages it holds at most.
        max_messages: Option<u64>,
        /// Its longest message, in bytes.
        max_message_size: Option<u64>,
        /// Bytes queued (the mqueue file system's `QSIZE`).
        queued_bytes: Option<u64>,
    },
    /// A robust semaphore: its slots, the processes attached, its holders.
    RobustSemaphore(Option<Snapshot>),
}

/// What [`list`] and [`find`] found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Listing {
    /// The objects, by kind (semaphores, shared memory, message queues,
    /// robust semaphores), then by name.
    pub objects: Vec<Object>,
    /// Where the mqueue file system is mounted; `None` if it is not, and
    /// then message queues cannot be listed (only found by name).
    pub mqueue_dir: Option<PathBuf>,
}

/// What a file in [`paths::SHM_DIR`] is, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ShmFile {
    /// An object of this kind with this name (leading slash included).
    Named(ObjectKind, String),
    /// A robust semaphore being created (or left half-created by a crash).
    RobustTemporary,
}

/// What the file `file_name` in [`paths::SHM_DIR`] is; `None` for no object's.
fn classify(file_name: &str) -> Option<ShmFile> {
    if file_name.starts_with(paths::ROBUST_TEMP_PREFIX) {
        return Some(ShmFile::RobustTemporary);
    }
    // The prefixed kinds first: a segment's file has no prefix.
    [
        ObjectKind::Semaphore,
        ObjectKind::RobustSemaphore,
        ObjectKind::SharedMemory,
    ]
    .into_iter()
    .find_map(|kind| Some(ShmFile::Named(kind, paths::name_of_file(kind, file_name)?)))
}

/// The file in [`paths::SHM_DIR`] that holds the object `name` of `kind`, and
/// what that file's name means; the two differ when the file belongs to
/// another kind (the segment `/sem.x` would be the semaphore `/x`'s file).
fn shm_file(kind: ObjectKind, name: &str) -> Option<(PathBuf, ShmFile)> {
    let path = PathBuf::from(paths::file_path(kind, name)?);
    let meaning = classify(path.file_name()?.to_str()?)?;
    Some((path, meaning))
}

fn dir_error(operation: &'static str, kind: ObjectKind, dir: &Path, e: io::Error) -> Error {
    Error::Os {
        operation,
        kind,
        name: dir.display().to_string(),
        source: e,
    }
}

/// Every object this process can see: each regular file in [`paths::SHM_DIR`]
/// (`sem.NAME` is a semaphore, `namedipc-robust.NAME` a robust semaphore,
/// any other a shared memory segment; directories, symbolic links and other
/// special files are not IPC objects and are left out), and each message
/// queue if the mqueue file system is mounted.
///
/// ```
/// use namedipc::inventory;
/// use namedipc::shm::SharedMemory;
///
/// # let name = format!("/namedipc-doc-list-{}", std::process::id());
/// let shm = SharedMemory::create(&name, 4096)?;
/// let listing = inventory::list()?;
/// assert!(listing.objects.iter().any(|o| o.name == name));
/// # shm.unlink()?;
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// # Errors
/// [`Error::Os`] if [`paths::SHM_DIR`] or the mqueue directory cannot be read.
pub fn list() -> Result<Listing> {
    let mut objects = Vec::new();
    let dir = paths::shm_dir();
    let dir = dir.as_path();
    let entries =
        fs::read_dir(dir).map_err(|e| dir_error("opendir", ObjectKind::SharedMemory, dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| dir_error("readdir", ObjectKind::SharedMemory, dir, e))?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            // A name that is not UTF-8 cannot be given back to the OS as one.
            continue;
        };
        let Some(ShmFile::Named(kind, name)) = classify(&file_name) else {
            continue;
        };
        if let Some(object) = describe_shm_file(kind, &name, &entry.path()) {
            objects.push(object);
        }
    }
    let mqueue_dir = mqueue_dir();
    if let Some(mq_dir) = &mqueue_dir {
        let entries = fs::read_dir(mq_dir)
            .map_err(|e| dir_error("opendir", ObjectKind::MessageQueue, mq_dir, e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| dir_error("readdir", ObjectKind::MessageQueue, mq_dir, e))?;
            if let Some(file_name) = entry.file_name().to_str() {
                if let Some(object) = describe_queue(&format!("/{file_name}"), Some(mq_dir)) {
                    objects.push(object);
                }
            }
        }
    }
    sort(&mut objects);
    Ok(Listing {
        objects,
        mqueue_dir,
    })
}

/// Every object named `name`, of any kind (each kind has names of its own,
/// so `/jobs` may be a semaphore and a shared memory segment at once). A
/// message queue is found by name even when the mqueue file system is not
/// mounted.
///
/// ```
/// use namedipc::inventory;
///
/// assert!(inventory::find("/namedipc-doc-find-nothing")?.objects.is_empty());
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidName`] if `name` is not a valid name.
pub fn find(name: &str) -> Result<Listing> {
    check_name(name)?;
    let name = paths::canonical(name);
    let mut objects = Vec::new();
    for kind in [
        ObjectKind::Semaphore,
        ObjectKind::SharedMemory,
        ObjectKind::RobustSemaphore,
    ] {
        let Some((path, meaning)) = shm_file(kind, &name) else {
            continue;
        };
        if meaning != ShmFile::Named(kind, name.clone()) {
            // e.g. the segment "/sem.x" would be the file of the semaphore "/x".
            continue;
        }
        if let Some(object) = describe_shm_file(kind, &name, &path) {
            objects.push(object);
        }
    }
    let mqueue_dir = mqueue_dir();
    if let Some(object) = describe_queue(&name, mqueue_dir.as_deref()) {
        objects.push(object);
    }
    sort(&mut objects);
    Ok(Listing {
        objects,
        mqueue_dir,
    })
}

/// Checks a name given by a user, by the most permissive kind's rules (each
/// kind checks its own again).
fn check_name(name: &str) -> Result<()> {
    paths::to_c_name(ObjectKind::SharedMemory, name).map_err(|e| match e {
        Error::InvalidName { name, rule, .. } => {
            Error::InvalidArgument(format!("invalid name {name:?}: {rule}"))
        }
        other => other,
    })?;
    Ok(())
}

fn kind_rank(kind: ObjectKind) -> u8 {
    match kind {
        ObjectKind::Semaphore => 0,
        ObjectKind::SharedMemory => 1,
        ObjectKind::MessageQueue => 2,
        ObjectKind::RobustSemaphore => 3,
    }
}

fn sort(objects: &mut [Object]) {
    objects.sort_by(|a, b| {
        kind_rank(a.kind)
            .cmp(&kind_rank(b.kind))
            .then_with(|| a.name.cmp(&b.name))
    });
}

fn created(meta: &Metadata) -> Option<SystemTime> {
    meta.created().ok().or_else(|| {
        let secs = u64::try_from(meta.ctime()).ok()?;
        let nanos = u32::try_from(meta.ctime_nsec()).ok()?;
        UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
    })
}

fn unreadable(e: &io::Error) -> String {
    if matches!(e.kind(), io::ErrorKind::PermissionDenied) {
        "not readable by this user".to_owned()
    } else {
        format!("cannot be read: {e}")
    }
}

/// Describes the file `path` as an object of `kind`, or `None` if it is
/// not there or not a regular file.
fn describe_shm_file(kind: ObjectKind, name: &str, path: &Path) -> Option<Object> {
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_file() {
        return None;
    }
    let mut problem = None;
    let details = match kind {
        ObjectKind::Semaphore => {
            let (value, waiters) = read_semaphore(name, path).unwrap_or_else(|reason| {
                problem = Some(reason);
                (None, None)
            });
            Details::Semaphore { value, waiters }
        }
        ObjectKind::RobustSemaphore => match robust::inspect(name) {
            Ok(snapshot) => Details::RobustSemaphore(Some(snapshot)),
            Err(e) => {
                problem = Some(match e {
                    Error::PermissionDenied { .. } => "not readable by this user".to_owned(),
                    Error::Corrupt { reason, .. } => {
                        format!("not a valid robust semaphore: {reason}")
                    }
                    other => other.to_string(),
                });
                Details::RobustSemaphore(None)
            }
        },
        ObjectKind::SharedMemory | ObjectKind::MessageQueue => {
            Details::SharedMemory { size: meta.len() }
        }
    };
    Some(Object {
        kind,
        name: name.to_owned(),
        path: Some(path.to_owned()),
        uid: Some(meta.uid()),
        mode: Some(meta.mode() & 0o7777),
        created: created(&meta),
        details,
        problem,
    })
}

/// The value and the number of waiters of a glibc semaphore, read from its
/// file (only read permission is needed, and nothing is mapped).
fn read_semaphore(
    name: &str,
    path: &Path,
) -> std::result::Result<(Option<u32>, Option<u32>), String> {
    crate::semaphore::check_file(name)
        .map_err(|reason| format!("not a valid semaphore: {reason}"))?;
    if cfg!(not(all(
        target_os = "linux",
        target_env = "gnu",
        target_pointer_width = "64"
    ))) {
        // The field layout below is glibc's 64-bit one.
        return Ok((None, None));
    }
    let mut bytes = [0u8; 8];
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(|e| unreadable(&e))?;
    // glibc's `struct new_sem`: a u64 with the value in its low 32 bits and
    // the number of waiters in its high 32 bits.
    let word = u64::from_ne_bytes(bytes);
    Ok((Some((word & 0xffff_ffff) as u32), Some((word >> 32) as u32)))
}

/// Describes the message queue `name`, or `None` if there is none. With the
/// mqueue file system mounted at `mqueue_dir` its file gives the owner,
/// mode and bytes queued; the counters come from `mq_open` (read-only) and
/// `mq_getattr`.
fn describe_queue(name: &str, mqueue_dir: Option<&Path>) -> Option<Object> {
    let mut object = Object {
        kind: ObjectKind::MessageQueue,
        name: name.to_owned(),
        path: None,
        uid: None,
        mode: None,
        created: None,
        details: Details::MessageQueue {
            messages: None,
            max_messages: None,
            max_message_size: None,
            queued_bytes: None,
        },
        problem: None,
    };
    let Details::MessageQueue {
        messages,
        max_messages,
        max_message_size,
        queued_bytes,
    } = &mut object.details
    else {
        unreachable!("built as a message queue above");
    };
    if let Some(dir) = mqueue_dir {
        let path = dir.join(paths::body(name));
        let meta = fs::symlink_metadata(&path).ok()?;
        if !meta.file_type().is_file() {
            return None;
        }
        object.uid = Some(meta.uid());
        object.mode = Some(meta.mode() & 0o7777);
        object.created = created(&meta);
        // "QSIZE:12  NOTIFY:0  SIGNO:0  NOTIFY_PID:0"
        *queued_bytes = fs::read_to_string(&path).ok().and_then(|text| {
            text.split_whitespace()
                .find_map(|field| field.strip_prefix("QSIZE:"))
                .and_then(|n| n.parse().ok())
        });
        object.path = Some(path);
    }
    match MessageQueue::options()
        .existence(Existence::RaiseIfNotExists)
        .read(true)
        .write(false)
        .blocking(false)
        .open(name)
    {
        Ok(queue) => {
            *messages = queue.current_messages().ok().map(|n| n as u64);
            *max_messages = Some(queue.max_messages() as u64);
            *max_message_size = Some(queue.max_message_size() as u64);
        }
        Err(Error::NotFound { .. }) => return None,
        Err(Error::PermissionDenied { .. }) => {
            object.problem = Some("not readable by this user".to_owned());
        }
        Err(e) => object.problem = Some(e.to_string()),
    }
    Some(object)
}

/// Where the mqueue file system is mounted (usually `/dev/mqueue`), from
/// `/proc/self/mounts`; `None` if it is not mounted.
///
/// ```
/// if let Some(dir) = namedipc::inventory::mqueue_dir() {
///     assert!(dir.is_dir());
/// }
/// ```
#[must_use]
pub fn mqueue_dir() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_source, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "mqueue").then(|| PathBuf::from(unescape_mount_path(target)))
    })
}

/// Undoes the octal escapes (`\040` for a space) of a path in /proc/self/mounts.
fn unescape_mount_path(escaped: &str) -> String {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes the object `name` of `kind`, after checking that what is at the
/// name is such an object: a symbolic link, a directory or another special
/// file at the name is left alone, and so is a file that belongs to another
/// kind of object (the "segment" `/sem.x` is the file of the semaphore `/x`).
///
/// ```
/// use namedipc::{inventory, ObjectKind, Semaphore};
///
/// # let name = format!("/namedipc-doc-remove-{}", std::process::id());
/// let sem = Semaphore::create(&name, 0)?;
/// inventory::remove(ObjectKind::Semaphore, &name)?;
/// assert!(inventory::find(&name)?.objects.is_empty());
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidName`], [`Error::NotFound`], [`Error::Corrupt`] (not
/// such an object: nothing removed), [`Error::PermissionDenied`] or
/// [`Error::Os`].
pub fn remove(kind: ObjectKind, name: &str) -> Result<()> {
    check_name(name)?;
    if kind == ObjectKind::MessageQueue {
        // The mqueue file system holds nothing but queues.
        return crate::mqueue::unlink(name);
    }
    let not_this_kind = |reason: String| Error::Corrupt {
        kind,
        name: name.to_owned(),
        reason,
    };
    let Some((path, meaning)) = shm_file(kind, name) else {
        return Err(Error::NotFound {
            kind,
            name: name.to_owned(),
        });
    };
    match meaning {
        ShmFile::Named(other, _) if other == kind => {}
        ShmFile::Named(other, other_name) => {
            return Err(not_this_kind(format!(
                "{} is the file of the {other} '{other_name}', not a {kind}; remove it as that {other}",
                path.display()
            )))
        }
        ShmFile::RobustTemporary => {
            return Err(not_this_kind(format!(
                "{} is a robust semaphore being created, not a {kind}; `namedipc rm --stale` removes it once it is a minute old",
                path.display()
            )))
        }
    }
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_file() => {}
        Ok(meta) => {
            return Err(not_this_kind(format!(
                "{} is {}, not a {kind}; namedipc leaves it alone",
                path.display(),
                FileType::of(&meta).describe()
            )))
        }
        Err(e) => return Err(Error::from_os("stat", kind, &paths::canonical(name), e)),
    }
    match kind {
        ObjectKind::Semaphore => crate::semaphore::unlink(name),
        ObjectKind::RobustSemaphore => robust::unlink(name),
        ObjectKind::SharedMemory | ObjectKind::MessageQueue => crate::shm::unlink(name),
    }
}

/// Removes the files that creating a robust semaphore leaves behind when the
/// creating process dies between writing the file and linking it to its
/// name, once they are at least `min_age` old (creating one takes a few
/// system calls, so an old one is no longer being written). Returns the
/// paths removed.
///
/// ```
/// use std::time::Duration;
///
/// let removed = namedipc::inventory::remove_stale_temporaries(Duration::from_secs(60))?;
/// # let _ = removed;
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// # Errors
/// [`Error::Os`] if [`paths::SHM_DIR`] cannot be read or a file cannot be removed.
pub fn remove_stale_temporaries(min_age: Duration) -> Result<Vec<PathBuf>> {
    let dir = paths::shm_dir();
    let dir = dir.as_path();
    let kind = ObjectKind::RobustSemaphore;
    let entries = fs::read_dir(dir).map_err(|e| dir_error("opendir", kind, dir, e))?;
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| dir_error("readdir", kind, dir, e))?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if classify(&file_name) != Some(ShmFile::RobustTemporary) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let old_enough = created(&meta)
            .and_then(|at| SystemTime::now().duration_since(at).ok())
            .is_some_and(|age| age >= min_age);
        if meta.file_type().is_file() && old_enough {
            match fs::remove_file(&path) {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(dir_error("unlink", kind, &path, e)),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_classified_by_name() {
        assert_eq!(
            classify("sem.jobs"),
            Some(ShmFile::Named(ObjectKind::Semaphore, "/jobs".to_owned()))
        );
        assert_eq!(
            classify("namedipc-robust.jobs"),
            Some(ShmFile::Named(
                ObjectKind::RobustSemaphore,
                "/jobs".to_owned()
            ))
        );
        assert_eq!(
            classify("jobs"),
            Some(ShmFile::Named(ObjectKind::SharedMemory, "/jobs".to_owned()))
        );
        assert_eq!(
            classify(&format!("{}abc", paths::ROBUST_TEMP_PREFIX)),
            Some(ShmFile::RobustTemporary)
        );
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/dev/mqueue"), "/dev/mqueue");
        assert_eq!(unescape_mount_path("/mnt/my\\040queues"), "/mnt/my queues");
        assert_eq!(unescape_mount_path("/odd\\"), "/odd\\");
    }

    #[test]
    fn a_segment_name_that_is_a_semaphore_file_is_refused() {
        let err = remove(ObjectKind::SharedMemory, "/sem.namedipc-unit-nothing").unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("semaphore '/namedipc-unit-nothing'"),
            "{err}"
        );
    }
}
