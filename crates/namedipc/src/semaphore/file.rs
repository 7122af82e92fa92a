//! The file glibc keeps behind a semaphore's name (where [`paths::file_path`]
//! says): which file it is, and a check of it before sem_open maps it, as
//! glibc maps whatever file is there and touching a truncated one kills the
//! process with SIGBUS.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use crate::error::ObjectKind;
use crate::paths::{self, FileType, Identity};
use crate::sys;

/// The identity of the file behind the semaphore `name`, where this
/// platform keeps one and something is there.
pub(super) fn identity(name: &str) -> Option<Identity> {
    let path = paths::file_path(ObjectKind::Semaphore, name)?;
    Identity::at(&path).ok().flatten()
}

/// Checks the file behind the semaphore `name` before it is mapped.
/// `Err(reason)` says what is wrong; a missing or unreadable file, or a
/// platform that keeps no file, is left for sem_open to report.
pub(crate) fn check_file(name: &str) -> Result<(), String> {
    let Some(path) = paths::file_path(ObjectKind::Semaphore, name) else {
        return Ok(());
    };
    let Ok(mut file) = fs::OpenOptions::new()
        .read(true)
        // O_NONBLOCK: a FIFO planted at the name must not block the open.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
    else {
        // A socket cannot be opened at all (ENXIO), and sem_open would say
        // only that; anything else (missing, unreadable, a symbolic link) is
        // sem_open's to report.
        return match FileType::at(&path) {
            Some(FileType::Socket) => Err(format!("{path} is a socket, not a regular file")),
            _ => Ok(()),
        };
    };
    let Ok(meta) = file.metadata() else {
        return Ok(());
    };
    let file_type = FileType::of(&meta);
    if file_type != FileType::Regular {
        return Err(format!(
            "{path} is {}, not a regular file",
            file_type.describe()
        ));
    }
    if meta.len() != sys::sem::FILE_LEN {
        return Err(format!(
            "{path} is {} bytes long; a semaphore's file is {} bytes",
            meta.len(),
            sys::sem::FILE_LEN
        ));
    }
    let mut bytes = [0u8; sys::sem::FILE_WORDS_LEN];
    if file.read_exact(&mut bytes).is_err() {
        return Ok(());
    }
    match sys::sem::decode_file(&bytes) {
        Some(words) if !words.plausible() => Err(format!(
            "{path} does not hold a valid semaphore (value field {}, sharing field {})",
            words.value, words.private
        )),
        // Valid, or a layout this build does not know: the size check must do.
        _ => Ok(()),
    }
}
