//! Finds the named IPC objects on this machine — POSIX semaphores, shared
//! memory segments and message queues, and robust semaphores — for the
//! `namedipc` command's `ls`, `info` and `rm`. POSIX has no call that lists
//! them; on Linux they are files, which this module reads without opening
//! an object for use (only a message queue's counters need `mq_open`).
//!
//! ```
//! use namedipc::inventory;
//!
//! for object in inventory::list()?.objects {
//!     println!("{} {} {:?}", object.kind, object.name, object.details);
//! }
//! # Ok::<(), namedipc::Error>(())
//! ```

// The rooms: this file (what an object and a listing are, which file is
// which object's, listing and finding), `describe` (reading each kind of
// object's state from its file), `remove` (removing an object, and what a
// crashed creation left behind).
mod describe;
mod remove;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Error, ObjectKind, Result};
use crate::paths;
use crate::robust::Snapshot;

pub use describe::mqueue_dir;
use describe::{describe_queue, describe_shm_file};
pub use remove::{remove, remove_stale_temporaries};

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
/// let listing = namedipc::inventory::list()?;
/// println!("{} objects", listing.objects.len());
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// # Errors
/// [`Error::Os`] if [`paths::SHM_DIR`] or the mqueue directory cannot be read.
pub fn list() -> Result<Listing> {
    list_of(None)
}

/// The objects of `kind` that [`list`] would list. Files of other kinds are
/// told apart by their names alone: none of them is opened or read (so a
/// file of another kind that cannot be read, or changes under the reader,
/// cannot slow down or disturb the listing).
///
/// ```
/// use namedipc::{inventory, ObjectKind};
///
/// let listing = inventory::list_kind(ObjectKind::Semaphore)?;
/// assert!(listing.objects.iter().all(|o| o.kind == ObjectKind::Semaphore));
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// # Errors
/// As [`list`].
pub fn list_kind(kind: ObjectKind) -> Result<Listing> {
    list_of(Some(kind))
}

/// [`list`] with only the objects of `only` (every kind for `None`).
fn list_of(only: Option<ObjectKind>) -> Result<Listing> {
    let wanted = |kind: ObjectKind| only.is_none_or(|k| k == kind);
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
        if !wanted(kind) {
            continue;
        }
        if let Some(object) = describe_shm_file(kind, &name, &entry.path()) {
            objects.push(object);
        }
    }
    let mqueue_dir = mqueue_dir();
    if let Some(mq_dir) = mqueue_dir
        .as_ref()
        .filter(|_| wanted(ObjectKind::MessageQueue))
    {
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
/// for object in namedipc::inventory::find("/jobs")?.objects {
///     println!("/jobs is a {}", object.kind);
/// }
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] if `name` is not a valid name.
pub fn find(name: &str) -> Result<Listing> {
    find_of(name, None)
}

/// The object `name` of `kind`, if there is one, as [`find`] finds it; the
/// files of other kinds at the name are not opened.
///
/// ```
/// use namedipc::{inventory, ObjectKind};
///
/// let found = inventory::find_kind("/jobs", ObjectKind::RobustSemaphore)?;
/// assert!(found.objects.len() <= 1);
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// # Errors
/// As [`find`].
pub fn find_kind(name: &str, kind: ObjectKind) -> Result<Listing> {
    find_of(name, Some(kind))
}

/// [`find`] with only the objects of `only` (every kind for `None`).
fn find_of(name: &str, only: Option<ObjectKind>) -> Result<Listing> {
    check_name(name)?;
    let wanted = |kind: ObjectKind| only.is_none_or(|k| k == kind);
    let name = paths::canonical(name);
    let mut objects = Vec::new();
    for kind in [
        ObjectKind::Semaphore,
        ObjectKind::SharedMemory,
        ObjectKind::RobustSemaphore,
    ] {
        if !wanted(kind) {
            continue;
        }
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
    if wanted(ObjectKind::MessageQueue) {
        if let Some(object) = describe_queue(&name, mqueue_dir.as_deref()) {
            objects.push(object);
        }
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
        ObjectKind::RedisSemaphore => 4,
    }
}

fn sort(objects: &mut [Object]) {
    objects.sort_by(|a, b| {
        kind_rank(a.kind)
            .cmp(&kind_rank(b.kind))
            .then_with(|| a.name.cmp(&b.name))
    });
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
}
