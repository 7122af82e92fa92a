//! The semaphore's file: creating it complete, opening and checking it
//! before anything in it is trusted, telling whether its name still refers
//! to it, and removing it. The transitions of the protocol on an open file
//! are in protocol.rs.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::sync::atomic::Ordering;

use super::layout::{
    self, FLAG_PERSISTENT, FLAG_REMOVED, HEADER_LEN, HEADER_LEN_FIELD, H_FLAGS, H_HEADER_LEN,
    H_MAGIC, H_RECORDS, H_SLOTS, H_VERSION, LOCK_BASE, MAGIC, MAX_RECORDS, MAX_SLOTS, VERSION,
};
use super::{crash, KIND};
use crate::error::{Error, Result};
use crate::ownership::{NewObject, Owner, Trust};
use crate::paths::{self, FileType, Identity, ROBUST_TEMP_PREFIX};
use crate::sys::robust::{self as os, Lock, SharedMap};

/// An open, checked semaphore file, mapped.
#[derive(Debug)]
pub(super) struct MappedFile {
    /// The semaphore's name, with one leading slash.
    pub(super) name: String,
    /// Where its file is.
    pub(super) path: String,
    /// Its open file description, which carries the liveness lock of the
    /// process record registered through it.
    pub(super) file: File,
    pub(super) map: SharedMap,
    /// The number of slots and of process records, read once from the
    /// checked header: every offset is computed from these copies.
    pub(super) slots: u32,
    pub(super) records: u32,
    /// The file this was opened from.
    pub(super) identity: Identity,
    /// Its owner and mode, from the fstat at open (or after creating it).
    pub(super) owner: Owner,
}

/// Why an existing file is refused whose group or others may read it
/// without writing it ([`Error::Untrusted`]'s reason).
pub(crate) const READER_CAN_FAKE: &str =
    "users who may not write it may read it: such a reader can fake a holder's liveness";
/// Why an existing file is refused whose owner may not read and write it.
pub(crate) const OWNER_CANNOT_USE: &str = "its owner may not read and write it";

/// Whether one class's permission bits (`rw` in bits 2 and 1, as `mode`
/// holds "other"'s) grant exactly one of read and write.
fn half_access(bits: u32) -> bool {
    let (read, write) = (bits & 0o4 != 0, bits & 0o2 != 0);
    read != write
}

/// Why a robust semaphore's file may not have `mode`, if it may not: its
/// owner needs read and write (so that it can use it), and whoever may
/// read it must be able to write it too, since a reader can take read
/// locks on the liveness bytes and so fake live processes (block every
/// record, keep a dead holder's slot, stop removal).
pub(super) fn mode_problem(mode: u32) -> Option<&'static str> {
    if mode & 0o600 != 0o600 {
        Some(OWNER_CANNOT_USE)
    } else if (mode & 0o040 != 0 && mode & 0o020 == 0) || (mode & 0o004 != 0 && mode & 0o002 == 0) {
        Some(READER_CAN_FAKE)
    } else {
        None
    }
}

/// Checks a mode asked for a new file: the owner gets read and write, and
/// the group and others each read and write or nothing.
pub(super) fn check_new_mode(name: &str, mode: u32, what: &str) -> Result<()> {
    if mode & 0o600 == 0o600 && !half_access(mode >> 3) && !half_access(mode) {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "{what} {mode:#05o} for robust semaphore '{}': its owner needs read and write, and its group and others each get read and write or nothing, such as 0o600, 0o660 or 0o666 (one who may only read it could fake a holder's liveness)",
        paths::canonical(name)
    )))
}

impl MappedFile {
    /// The header's flags word.
    pub(super) fn flags(&self) -> u32 {
        self.map.load_u32(H_FLAGS, Ordering::Acquire)
    }

    pub(super) fn os_error(&self, operation: &'static str, e: io::Error) -> Error {
        os_error(&self.name, operation, e)
    }

    pub(super) fn corrupt(&self, reason: impl Into<String>) -> Error {
        corrupt(&self.name, reason)
    }

    pub(super) fn not_found(&self) -> Error {
        Error::NotFound {
            kind: KIND,
            name: self.name.clone(),
        }
    }

    /// Fails if the name no longer refers to this file: [`Error::NotFound`]
    /// once it was removed (by namedipc: the header's flag, no syscall; or
    /// behind its back: one `lstat`), [`Error::Corrupt`] if another file
    /// was created at the name meanwhile.
    pub(super) fn check_named(&self) -> Result<()> {
        if self.flags() & FLAG_REMOVED != 0 {
            return Err(self.not_found());
        }
        match Identity::at(&self.path).map_err(|e| self.os_error("stat", e))? {
            Some(id) if id == self.identity => Ok(()),
            Some(_) => Err(self.corrupt(
                "the name now refers to another file than the one this handle opened (it was removed and created again); open it again",
            )),
            None => Err(self.not_found()),
        }
    }

    /// What is at the name now, compared with this file. The flag is read
    /// before the name is looked at: namedipc sets it only after removing
    /// the name, so a flag seen first on a file that is still at the name
    /// afterwards is no removal in progress, but a file that can never be
    /// used (a copy of a removed semaphore's file, or a corrupt one).
    pub(super) fn at_name(&self) -> Result<AtName> {
        let removed = self.flags() & FLAG_REMOVED != 0;
        Ok(
            match Identity::at(&self.path).map_err(|e| self.os_error("stat", e))? {
                Some(id) if id == self.identity && removed => AtName::MarkedRemoved,
                Some(id) if id == self.identity => AtName::Itself,
                _ => AtName::Elsewhere,
            },
        )
    }

    /// [`Error::Corrupt`]: the file at the name is marked removed
    /// ([`AtName::MarkedRemoved`]).
    pub(super) fn marked_removed(&self) -> Error {
        self.corrupt(marked_removed_reason(&self.name))
    }

    /// Removes the name if no live process is attached to the file and the
    /// name still refers to it. Through this file's open file description
    /// it takes the lock bytes of all records at once, which is granted
    /// only if no other description holds any of them (its own merge), so
    /// no process can register meanwhile; one that opened the file but has
    /// not registered yet finds the name gone when it does, and starts
    /// again. All of this description's record locks are dropped on return
    /// if the range was granted. Returns whether the name was removed.
    pub(super) fn remove_if_unused(&self) -> Result<bool> {
        let fd = self.file.as_fd();
        let span = u64::from(self.records);
        let locked = os::ofd_lock_range(fd, LOCK_BASE, span, Lock::Exclusive)
            .map_err(|e| self.os_error("fcntl", e))?;
        if !locked {
            return Ok(false);
        }
        let result = (|| {
            if Identity::at(&self.path).map_err(|e| self.os_error("stat", e))?
                != Some(self.identity)
            {
                return Ok(false);
            }
            crash::crash_point!("remove.locked");
            fs::remove_file(&self.path).map_err(|e| self.os_error("unlink", e))?;
            mark_removed(&self.map);
            Ok(true)
        })();
        let _ = os::ofd_lock_range(fd, LOCK_BASE, span, Lock::Unlock);
        result
    }
}

/// What the name refers to now, seen from an open file ([`MappedFile::at_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AtName {
    /// This file, not marked removed.
    Itself,
    /// This file, whose header says it was removed: nothing can use it, and
    /// opening the name again finds it again.
    MarkedRemoved,
    /// Nothing, or another file: this one was removed (or replaced) meanwhile.
    Elsewhere,
}

/// The reason of the [`Error::Corrupt`] for a file at the name that is
/// marked removed ([`AtName::MarkedRemoved`]).
pub(crate) fn marked_removed_reason(name: &str) -> String {
    format!(
        "the file at the name is marked removed (its header's removed flag is set: a copy of a removed semaphore's file, or a leftover), so no process can use it; remove it with `namedipc rm {}`",
        paths::canonical(name)
    )
}

/// The file of the semaphore `name`, after checking the name.
pub(super) fn checked_path(name: &str) -> Result<String> {
    paths::to_c_name(KIND, name)?;
    Ok(paths::file_path(KIND, name).expect("a robust semaphore always has a file"))
}

/// The length of a file that may be a robust semaphore's, as a `usize`: at
/// least a header, and no more than the largest file the layout allows.
/// Nothing is read from a file before this passes.
pub(super) fn checked_len(name: &str, len: u64) -> Result<usize> {
    let max = layout::file_len(MAX_SLOTS, MAX_RECORDS) as u64;
    if len < HEADER_LEN as u64 {
        return Err(corrupt(
            name,
            format!("the file has {len} bytes, fewer than the {HEADER_LEN}-byte header"),
        ));
    }
    if len > max {
        return Err(corrupt(
            name,
            format!("the file has {len} bytes, more than any robust semaphore"),
        ));
    }
    usize::try_from(len).map_err(|_| corrupt(name, "the file is too large"))
}

pub(super) fn os_error(name: &str, operation: &'static str, e: io::Error) -> Error {
    Error::from_os(operation, KIND, name, e)
}

pub(super) fn corrupt(name: &str, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        kind: KIND,
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// The name is not a regular file, so not a robust semaphore.
pub(super) fn not_regular(name: &str, file_type: FileType) -> Error {
    corrupt(
        name,
        format!("the name is {}, not a regular file", file_type.describe()),
    )
}

/// What a new file looks like.
pub(super) struct NewFile {
    pub(super) slots: u32,
    pub(super) records: u32,
    /// Its mode and group (set before the file is linked to the name).
    pub(super) object: NewObject,
    pub(super) persistent: bool,
}

/// Creates the file complete under a temporary name, then links it to
/// `path`, so that no process ever sees a half-written file at the name.
/// [`Error::AlreadyExists`] if the name is taken.
pub(super) fn create(name: &str, path: &str, new: &NewFile) -> Result<MappedFile> {
    let dir = paths::shm_dir().join(ROBUST_TEMP_PREFIX);
    let tmp = paths::random_name(KIND, &dir.to_string_lossy())?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(new.object.mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&tmp)
        .map_err(|e| os_error(name, "open", e))?;
    let result = (|| {
        // Group and exact mode before anybody can open it by its name.
        let (owner, _) = new.object.settle(file.as_fd(), KIND, name)?;
        if new.object.apply_umask {
            check_new_mode(name, owner.mode, "the umask left mode")?;
        }
        let len = layout::file_len(new.slots, new.records);
        file.set_len(len as u64)
            .map_err(|e| os_error(name, "ftruncate", e))?;
        let map = SharedMap::new(file.as_fd(), len).map_err(|e| os_error(name, "mmap", e))?;
        map.u32_at(H_VERSION).store(VERSION, Ordering::Relaxed);
        map.u32_at(H_HEADER_LEN)
            .store(HEADER_LEN_FIELD, Ordering::Relaxed);
        map.u32_at(H_SLOTS).store(new.slots, Ordering::Relaxed);
        map.u32_at(H_RECORDS).store(new.records, Ordering::Relaxed);
        let flags = if new.persistent { FLAG_PERSISTENT } else { 0 };
        map.u32_at(H_FLAGS).store(flags, Ordering::Relaxed);
        map.u64_at(H_MAGIC).store(MAGIC, Ordering::Release);
        crash::crash_point!("create.before_link");
        // link(2) fails with EEXIST if the name is taken: exclusive create.
        fs::hard_link(&tmp, path).map_err(|e| os_error(name, "link", e))?;
        let identity = Identity::of(&file.metadata().map_err(|e| os_error(name, "fstat", e))?);
        Ok(MappedFile {
            name: paths::canonical(name),
            path: path.to_owned(),
            file,
            map,
            slots: new.slots,
            records: new.records,
            identity,
            owner,
        })
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// Opens the existing file at `path` and checks its size and header before
/// trusting anything in it. `writable: false` maps it read-only (for looking
/// at a semaphore one may not use). Its owner is not checked: for looking
/// at it and removing it; a handle that is to use it opens it with
/// [`open_trusted`].
pub(super) fn open(name: &str, path: &str, writable: bool) -> Result<MappedFile> {
    open_checked(name, path, writable, None)
}

/// Opens the existing file at `path` for use, read-write: as [`open`], and
/// before it is mapped, its owner and mode must pass `trust`
/// ([`Trust::check`]) and, unless `trust` is [`Trust::anyone`], its mode
/// must not let anybody read it who may not write it, nor keep its owner
/// from reading and writing it ([`mode_problem`]): [`Error::Untrusted`].
pub(super) fn open_trusted(name: &str, path: &str, trust: &Trust) -> Result<MappedFile> {
    open_checked(name, path, true, Some(trust))
}

fn open_checked(
    name: &str,
    path: &str,
    writable: bool,
    trust: Option<&Trust>,
) -> Result<MappedFile> {
    // O_NOFOLLOW: a symlink at the name is refused (ELOOP -> Corrupt);
    // O_NONBLOCK: a FIFO planted at the name cannot block the open.
    let file = OpenOptions::new()
        .read(true)
        .write(writable)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match FileType::at(path) {
            // A socket (ENXIO), a device on a `nodev` mount (EACCES), a
            // symlink (ELOOP), a directory (EISDIR): say what is there.
            Some(file_type) if file_type != FileType::Regular => not_regular(name, file_type),
            _ => os_error(name, "open", e),
        })?;
    let meta = file.metadata().map_err(|e| os_error(name, "fstat", e))?;
    let file_type = FileType::of(&meta);
    if file_type != FileType::Regular {
        return Err(not_regular(name, file_type));
    }
    let owner = Owner {
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
    };
    if let Some(trust) = trust {
        let name = paths::canonical(name);
        trust.check(KIND, &name, owner)?;
        if let Some(reason) = mode_problem(owner.mode).filter(|_| !trust.is_anyone()) {
            return Err(Error::Untrusted {
                kind: KIND,
                name,
                owner,
                reason: reason.to_owned(),
            });
        }
    }
    let len = meta.len();
    let map_len = checked_len(name, len)?;
    let map = if writable {
        SharedMap::new(file.as_fd(), map_len)
    } else {
        SharedMap::new_read_only(file.as_fd(), map_len)
    }
    .map_err(|e| os_error(name, "mmap", e))?;
    let (slots, records) = layout::check_header(
        len,
        map.load_u64(H_MAGIC, Ordering::Acquire),
        map.load_u32(H_VERSION, Ordering::Relaxed),
        map.load_u32(H_HEADER_LEN, Ordering::Relaxed),
        map.load_u32(H_SLOTS, Ordering::Relaxed),
        map.load_u32(H_RECORDS, Ordering::Relaxed),
    )
    .map_err(|reason| corrupt(name, reason))?;
    Ok(MappedFile {
        name: paths::canonical(name),
        path: path.to_owned(),
        file,
        map,
        slots,
        records,
        identity: Identity::of(&meta),
        owner,
    })
}

/// Removes the name unconditionally, then marks the file that was there as
/// removed, so that handles still attached to it notice at their next
/// acquire. (In that order: a crash in between leaves at most a removed
/// file without the mark — found by the handles' inode check when they
/// next wait — never a marked file at the name.)
pub(super) fn remove(name: &str, path: &str) -> Result<()> {
    // Whatever we open here is off the name once the unlink succeeds (it
    // was either unlinked by us or replaced before), so it may be marked.
    let opened = open(name, path, true).ok();
    fs::remove_file(path).map_err(|e| os_error(name, "unlink", e))?;
    if let Some(opened) = &opened {
        mark_removed(&opened.map);
    }
    Ok(())
}

/// Sets the header's "removed" flag.
fn mark_removed(map: &SharedMap) {
    map.u32_at(H_FLAGS).fetch_or(FLAG_REMOVED, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::robust::protocol::RegisterError;

    /// Removes the file when the test ends, pass or fail.
    struct Planted(String);

    impl Drop for Planted {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }

    #[test]
    fn a_removal_while_opening_is_retried_but_a_marked_file_at_the_name_is_corrupt() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "/namedipc-utest-robust-{}-{nanos}-at-name",
            std::process::id()
        );
        let path = checked_path(&name).unwrap();
        let _planted = Planted(path.clone());
        let new = NewFile {
            slots: 1,
            records: 2,
            object: NewObject {
                mode: 0o600,
                group: None,
                apply_umask: false,
            },
            persistent: true,
        };
        let first = create(&name, &path, &new).unwrap();
        assert_eq!(first.at_name().unwrap(), AtName::Itself);
        // Removed (and marked) by another process while this one opened it,
        // then created again: a race, open the name again.
        remove(&name, &path).unwrap();
        assert_ne!(first.flags() & FLAG_REMOVED, 0);
        assert_eq!(first.at_name().unwrap(), AtName::Elsewhere);
        assert!(matches!(first.register(), Err(RegisterError::Stale)));
        let second = create(&name, &path, &new).unwrap();
        assert_eq!(first.at_name().unwrap(), AtName::Elsewhere);
        assert!(matches!(first.register(), Err(RegisterError::Stale)));
        drop(second);
        // The removed file copied back to the name: opening it again finds
        // the same marked file, so it is corrupt, not a race.
        fs::remove_file(&path).unwrap();
        let mut bytes = Vec::new();
        (&first.file).read_to_end(&mut bytes).unwrap();
        fs::write(&path, &bytes).unwrap();
        let leftover = open(&name, &path, true).unwrap();
        assert_eq!(leftover.at_name().unwrap(), AtName::MarkedRemoved);
        match leftover.register() {
            Err(RegisterError::Failed(Error::Corrupt { reason, .. })) => {
                assert_eq!(reason, marked_removed_reason(&name));
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
