//! Each kind of object's state, read from its file without opening the
//! object for use (only a message queue's counters need `mq_open`): a
//! semaphore's value, a segment's size, a queue's counters, a robust
//! semaphore's snapshot.

use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Details, Object};
use crate::error::{Error, ObjectKind};
use crate::existence::Existence;
use crate::mqueue::MessageQueue;
use crate::paths;
use crate::robust;

/// When the file was made: its birth time where the file system keeps one,
/// else its last status change (creation, chmod, chown).
pub(super) fn created(meta: &Metadata) -> Option<SystemTime> {
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
pub(super) fn describe_shm_file(kind: ObjectKind, name: &str, path: &Path) -> Option<Object> {
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
                    Error::Corrupt { reason, .. }
                        if reason == robust::marked_removed_reason(name) =>
                    {
                        format!(
                            "marked removed: a leftover that nothing can use; remove it: namedipc rm {}",
                            paths::canonical(name)
                        )
                    }
                    Error::Corrupt { reason, .. } => {
                        format!("not a valid robust semaphore: {reason}")
                    }
                    other => other.to_string(),
                });
                Details::RobustSemaphore(None)
            }
        },
        // Lives on a server, never in a file.
        ObjectKind::RedisSemaphore => return None,
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
pub(super) fn describe_queue(name: &str, mqueue_dir: Option<&Path>) -> Option<Object> {
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
/// match namedipc::inventory::mqueue_dir() {
///     Some(dir) => println!("message queues are files in {}", dir.display()),
///     None => println!("no mqueue file system is mounted"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/dev/mqueue"), "/dev/mqueue");
        assert_eq!(unescape_mount_path("/mnt/my\\040queues"), "/mnt/my queues");
        assert_eq!(unescape_mount_path("/odd\\"), "/odd\\");
    }
}
