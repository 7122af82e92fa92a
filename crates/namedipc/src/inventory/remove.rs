//! Removing an object by name, after checking that the file at the name is
//! such an object, and removing what a robust semaphore's creation left
//! behind when it crashed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::describe::created;
use super::{check_name, classify, dir_error, shm_file, ShmFile};
use crate::error::{Error, ObjectKind, Result};
use crate::paths::{self, FileType};
use crate::robust;

/// Removes the object `name` of `kind`, after checking that what is at the
/// name is such an object: a symbolic link, a directory or another special
/// file at the name is left alone, and so is a file that belongs to another
/// kind of object (the "segment" `/sem.x` is the file of the semaphore `/x`).
///
/// ```
/// use namedipc::{inventory, ObjectKind, Semaphore};
///
/// # let name = format!("/namedipc-doc-remove-{}", std::process::id());
/// # let _sem = Semaphore::create(&name, 0)?;
/// inventory::remove(ObjectKind::Semaphore, &name)?;
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] (not a name), [`Error::NotFound`], [`Error::Corrupt`] (not
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
        ObjectKind::RedisSemaphore => Err(Error::InvalidArgument(format!(
            "redis semaphore '{}' lives on a server, not in a file; remove it with redis::unlink",
            paths::canonical(name)
        ))),
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
/// for path in namedipc::inventory::remove_stale_temporaries(Duration::from_secs(60))? {
///     println!("removed {}", path.display());
/// }
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// # Errors
/// [`Error::Os`] if [`paths::SHM_DIR`] cannot be read or a file cannot be removed.
pub fn remove_stale_temporaries(min_age: Duration) -> Result<Vec<PathBuf>> {
    remove_stale_in(&paths::shm_dir(), min_age, SystemTime::now())
}

/// [`remove_stale_temporaries`] in `dir`, with `now` for the clock.
fn remove_stale_in(dir: &Path, min_age: Duration, now: SystemTime) -> Result<Vec<PathBuf>> {
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
            .and_then(|at| now.duration_since(at).ok())
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
    fn only_old_temporaries_that_are_regular_files_are_removed() {
        let dir = std::env::temp_dir().join(format!(
            "namedipc-unit-stale-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        fs::create_dir(&dir).unwrap();
        let temporary = dir.join(format!("{}abc", paths::ROBUST_TEMP_PREFIX));
        let other = dir.join("jobs");
        let directory = dir.join(format!("{}dir", paths::ROBUST_TEMP_PREFIX));
        fs::write(&temporary, b"").unwrap();
        fs::write(&other, b"").unwrap();
        fs::create_dir(&directory).unwrap();
        let min_age = Duration::from_secs(60);
        let young = remove_stale_in(&dir, min_age, SystemTime::now());
        let later = SystemTime::now() + 2 * min_age;
        let old = remove_stale_in(&dir, min_age, later);
        let left = (temporary.exists(), other.exists(), directory.exists());
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(young.unwrap(), Vec::<PathBuf>::new());
        assert_eq!(old.unwrap(), vec![temporary]);
        assert_eq!(left, (false, true, true));
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
