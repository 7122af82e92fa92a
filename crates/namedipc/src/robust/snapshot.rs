//! Looking at a robust semaphore's file without mapping it, for `namedipc
//! ls`, `info` and `rm --stale`: the file is read with `pread` into a
//! buffer and the liveness locks are queried with `F_OFD_GETLK`, so that
//! nothing another process does to the file (truncate it, restore it,
//! replace it) can make the reader fault. What the buffer says is decoded
//! by the protocol's rules (protocol.rs: `holders`, `attached`), and the
//! unit tests below check both readings against each other.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::{Duration, UNIX_EPOCH};

use super::file::{checked_len, corrupt, marked_removed_reason, not_regular, os_error};
use super::layout::{
    self, FLAG_PERSISTENT, FLAG_REMOVED, H_FLAGS, H_HEADER_LEN, H_MAGIC, H_RECLAIMED, H_RECORDS,
    H_SLOTS, H_VERSION, LOCK_BASE, R_PID, R_STATE, R_UID, S_OWNER, S_SINCE,
};
use super::{Holder, KIND};
use crate::error::{Error, Result};
use crate::paths::{self, FileType, Identity};
use crate::sys::robust::{self as os, Lock};

/// How often a read that found the file changing size under it is tried
/// again before the reader gives up with [`Error::Contended`].
const READ_ATTEMPTS: usize = 3;

/// A semaphore file's bytes, read once with `pread`, and the open file
/// description they were read through (for the lock queries).
#[derive(Debug)]
pub(super) struct FileImage {
    /// The semaphore's name, with one leading slash.
    pub(super) name: String,
    pub(super) path: String,
    file: File,
    identity: Identity,
    /// From the checked header.
    pub(super) slots: u32,
    pub(super) records: u32,
    bytes: Vec<u8>,
}

impl FileImage {
    /// Opens the file at `path` (read-only unless `writable`), without
    /// following a symbolic link or blocking on a FIFO, and reads it whole;
    /// nothing in it is trusted before its header passes
    /// [`layout::check_header`] against the size fstat reports.
    pub(super) fn read(name: &str, path: &str, writable: bool) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| match FileType::at(path) {
                Some(file_type) if file_type != FileType::Regular => not_regular(name, file_type),
                _ => os_error(name, "open", e),
            })?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match read_checked(name, &file)? {
                Some(Checked {
                    identity,
                    slots,
                    records,
                    bytes,
                }) => {
                    return Ok(Self {
                        name: paths::canonical(name),
                        path: path.to_owned(),
                        file,
                        identity,
                        slots,
                        records,
                        bytes,
                    })
                }
                None if attempts < READ_ATTEMPTS => {}
                None => {
                    return Err(Error::Contended {
                        kind: KIND,
                        name: paths::canonical(name),
                        what: "its file changed size while it was read".to_owned(),
                    })
                }
            }
        }
    }

    fn u64_at(&self, offset: usize) -> u64 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.bytes[offset..offset + 8]);
        u64::from_ne_bytes(word)
    }

    fn u32_at(&self, offset: usize) -> u32 {
        let mut word = [0u8; 4];
        word.copy_from_slice(&self.bytes[offset..offset + 4]);
        u32::from_ne_bytes(word)
    }

    /// The header's flags word, as read.
    pub(super) fn flags(&self) -> u32 {
        self.u32_at(H_FLAGS)
    }

    /// Slots given back after their holders died, as read.
    pub(super) fn reclaimed(&self) -> u64 {
        self.u64_at(H_RECLAIMED)
    }

    /// Whether the file stays when its last process detaches.
    pub(super) fn persistent(&self) -> bool {
        self.flags() & FLAG_PERSISTENT != 0
    }

    /// Whether another open file description holds record `r`'s lock byte
    /// now (a query, which takes no lock and maps nothing). Any error
    /// counts as locked, as protocol.rs counts it: never call a process
    /// dead on doubt.
    fn record_locked_by_other(&self, r: u32) -> bool {
        os::ofd_locked_by_other(self.file.as_fd(), LOCK_BASE + u64::from(r)).unwrap_or(true)
    }

    /// The live processes registered in the file: records whose state says
    /// in use and whose lock byte another description holds.
    pub(super) fn attached(&self) -> u32 {
        let attached = (0..self.records)
            .filter(|&r| {
                self.u64_at(layout::record(r) + R_STATE) & 1 == 1 && self.record_locked_by_other(r)
            })
            .count();
        u32::try_from(attached).unwrap_or(u32::MAX)
    }

    /// Who holds slots, by the rules of `MappedFile::holders`: a slot's
    /// token names a record and a generation; its holder is alive if that
    /// record is still registered in that generation and its lock byte is
    /// held. Each record's lock is queried once.
    pub(super) fn holders(&self) -> Vec<Holder> {
        let mut locked: HashMap<u32, bool> = HashMap::new();
        let mut holders = Vec::new();
        for i in 0..self.slots {
            let slot = layout::slot(self.records, i);
            let token = self.u64_at(slot + S_OWNER);
            if token == 0 {
                continue;
            }
            let since = UNIX_EPOCH + Duration::from_nanos(self.u64_at(slot + S_SINCE));
            let (r, generation) = layout::split_token(token);
            let Some(r) = u32::try_from(r).ok().filter(|&r| r < self.records) else {
                holders.push(Holder {
                    pid: 0,
                    uid: 0,
                    since,
                    alive: false,
                });
                continue;
            };
            let rec = layout::record(r);
            let registered = self.u64_at(rec + R_STATE) == (generation << 1 | 1);
            holders.push(Holder {
                pid: self.u32_at(rec + R_PID),
                uid: self.u32_at(rec + R_UID),
                since,
                alive: registered
                    && *locked
                        .entry(r)
                        .or_insert_with(|| self.record_locked_by_other(r)),
            });
        }
        holders
    }

    /// Fails with [`Error::Corrupt`] if this file is still at the name and
    /// marked removed (a leftover nothing can use), as `inspect` always did.
    pub(super) fn check_not_marked_removed(&self) -> Result<()> {
        let removed = self.flags() & FLAG_REMOVED != 0;
        if removed
            && Identity::at(&self.path).map_err(|e| os_error(&self.name, "stat", e))?
                == Some(self.identity)
        {
            return Err(corrupt(&self.name, marked_removed_reason(&self.name)));
        }
        Ok(())
    }

    /// Removes the name if no live process is attached to the file and
    /// the name still refers to it, by the protocol of
    /// `MappedFile::remove_if_unused`: the lock bytes of all records at
    /// once through this description (granted only if no other description
    /// holds any of them), the name checked and removed, the file marked
    /// removed, the locks dropped. The mark is written with `pwrite`, and
    /// only while the file still has the size its header gives (so that a
    /// file someone truncated meanwhile is not grown back). Needs an image
    /// read `writable`.
    pub(super) fn remove_if_unused(&self) -> Result<bool> {
        let fd = self.file.as_fd();
        let span = u64::from(self.records);
        let locked = os::ofd_lock_range(fd, LOCK_BASE, span, Lock::Exclusive)
            .map_err(|e| os_error(&self.name, "fcntl", e))?;
        if !locked {
            return Ok(false);
        }
        let result = (|| {
            if Identity::at(&self.path).map_err(|e| os_error(&self.name, "stat", e))?
                != Some(self.identity)
            {
                return Ok(false);
            }
            fs::remove_file(&self.path).map_err(|e| os_error(&self.name, "unlink", e))?;
            self.mark_removed();
            Ok(true)
        })();
        let _ = os::ofd_lock_range(fd, LOCK_BASE, span, Lock::Unlock);
        result
    }

    /// Sets the header's removed flag in the file (best effort: handles
    /// attached to it would notice its removal by their inode check anyway).
    pub(super) fn mark_removed(&self) {
        let expected = layout::file_len(self.slots, self.records) as u64;
        if self.file.metadata().map(|m| m.len()).ok() != Some(expected) {
            return;
        }
        let mut word = [0u8; 4];
        if self.file.read_exact_at(&mut word, H_FLAGS as u64).is_ok() {
            let flags = u32::from_ne_bytes(word) | FLAG_REMOVED;
            let _ = self.file.write_all_at(&flags.to_ne_bytes(), H_FLAGS as u64);
        }
    }
}

/// What one read of the whole file found.
struct Checked {
    identity: Identity,
    slots: u32,
    records: u32,
    bytes: Vec<u8>,
}

/// One read of the whole file: its identity, checked header and bytes;
/// `None` if it changed size while being read (try again).
fn read_checked(name: &str, file: &File) -> Result<Option<Checked>> {
    let meta = file.metadata().map_err(|e| os_error(name, "fstat", e))?;
    let file_type = FileType::of(&meta);
    if file_type != FileType::Regular {
        return Err(not_regular(name, file_type));
    }
    let len = meta.len();
    let mut bytes = vec![0u8; checked_len(name, len)?];
    match file.read_exact_at(&mut bytes, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(os_error(name, "pread", e)),
    }
    // One byte more than fstat said: the file grew meanwhile.
    if file
        .read_at(&mut [0u8; 1], len)
        .map_err(|e| os_error(name, "pread", e))?
        != 0
    {
        return Ok(None);
    }
    let word32 = |offset: usize| {
        let mut word = [0u8; 4];
        word.copy_from_slice(&bytes[offset..offset + 4]);
        u32::from_ne_bytes(word)
    };
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&bytes[H_MAGIC..H_MAGIC + 8]);
    let (slots, records) = layout::check_header(
        len,
        u64::from_ne_bytes(magic),
        word32(H_VERSION),
        word32(H_HEADER_LEN),
        word32(H_SLOTS),
        word32(H_RECORDS),
    )
    .map_err(|reason| corrupt(name, reason))?;
    Ok(Some(Checked {
        identity: Identity::of(&meta),
        slots,
        records,
        bytes,
    }))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::file::{self, checked_path};
    use super::super::RobustSemaphore;
    use super::*;

    fn unique(label: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!(
            "/namedipc-utest-snapshot-{}-{nanos}-{label}",
            std::process::id()
        )
    }

    /// Removes the file when the test ends, pass or fail.
    struct Planted(String);

    impl Drop for Planted {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }

    #[test]
    fn the_image_says_what_the_mapping_says() {
        let name = unique("same");
        let path = checked_path(&name).unwrap();
        let _planted = Planted(path.clone());
        let sem = RobustSemaphore::options()
            .initial_value(3)
            .persistent(true)
            .open(&name)
            .unwrap();
        sem.acquire().unwrap();
        sem.acquire().unwrap();
        let image = FileImage::read(&name, &path, false).unwrap();
        let mapped = file::open(&name, &path, false).unwrap();
        assert_eq!((image.slots, image.records), (mapped.slots, mapped.records));
        assert_eq!(image.holders(), mapped.holders(None));
        assert_eq!(image.attached(), mapped.attached());
        assert_eq!(image.attached(), 1);
        assert!(image.holders().iter().all(|h| h.alive));
        assert_eq!(image.holders().len(), 2);
        assert!(image.persistent());
        assert_eq!(image.reclaimed(), 0);
        // In use: kept.
        let writable = FileImage::read(&name, &path, true).unwrap();
        assert!(!writable.remove_if_unused().unwrap());
        sem.release_many(2).unwrap();
        drop(sem);
        let image = FileImage::read(&name, &path, true).unwrap();
        assert_eq!(image.attached(), 0);
        assert!(image.holders().is_empty());
        assert!(image.remove_if_unused().unwrap());
        assert!(Identity::at(&path).unwrap().is_none());
        // The mark, written with pwrite.
        let mut word = [0u8; 4];
        image.file.read_exact_at(&mut word, H_FLAGS as u64).unwrap();
        assert_ne!(u32::from_ne_bytes(word) & FLAG_REMOVED, 0);
    }

    #[test]
    fn dead_holders_and_orphans_read_the_same_as_through_the_mapping() {
        let name = unique("dead");
        let path = checked_path(&name).unwrap();
        let _planted = Planted(path.clone());
        let copy_name = unique("dead-copy");
        let copy_path = checked_path(&copy_name).unwrap();
        let _copy = Planted(copy_path.clone());
        let sem = RobustSemaphore::options()
            .initial_value(4)
            .open(&name)
            .unwrap();
        sem.acquire().unwrap();
        sem.acquire().unwrap();
        // A copy of the file: its record says registered, but nobody holds
        // the copy's lock bytes (the holder died). One slot gets a token of
        // no record, one a token of an ended generation (an orphan).
        let mut bytes = fs::read(&path).unwrap();
        let records = FileImage::read(&name, &path, false).unwrap().records;
        let state = u64::from_ne_bytes(bytes[layout::record(0)..][..8].try_into().unwrap());
        let ended = layout::token(0, (state >> 1).wrapping_sub(1));
        let nowhere = layout::token(records + 7, 1);
        bytes[layout::slot(records, 2)..][..8].copy_from_slice(&ended.to_ne_bytes());
        bytes[layout::slot(records, 3)..][..8].copy_from_slice(&nowhere.to_ne_bytes());
        fs::write(&copy_path, &bytes).unwrap();
        let image = FileImage::read(&copy_name, &copy_path, false).unwrap();
        let mapped = file::open(&copy_name, &copy_path, false).unwrap();
        let holders = image.holders();
        assert_eq!(holders, mapped.holders(None));
        assert_eq!(holders.len(), 4);
        assert!(holders.iter().all(|h| !h.alive), "{holders:?}");
        assert_eq!(holders[3].pid, 0);
        assert_eq!(holders[0].pid, std::process::id());
        assert_eq!((image.attached(), mapped.attached()), (0, 0));
        sem.release_many(2).unwrap();
    }

    #[test]
    fn a_short_or_garbled_file_is_corrupt_never_a_fault() {
        let name = unique("short");
        let path = checked_path(&name).unwrap();
        let _planted = Planted(path.clone());
        fs::write(&path, b"").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let said = FileImage::read(&name, &path, false).unwrap_err();
        assert!(
            matches!(&said, Error::Corrupt { reason, .. } if reason.contains("fewer than")),
            "{said}"
        );
        fs::write(&path, vec![0u8; layout::file_len(1, 1)]).unwrap();
        let said = FileImage::read(&name, &path, false).unwrap_err();
        assert!(
            matches!(&said, Error::Corrupt { reason, .. } if reason.contains("magic")),
            "{said}"
        );
        // A header that claims more than the file holds.
        let mut bytes = vec![0u8; layout::file_len(1, 1)];
        bytes[H_MAGIC..H_MAGIC + 8].copy_from_slice(&layout::MAGIC.to_ne_bytes());
        bytes[H_VERSION..H_VERSION + 4].copy_from_slice(&layout::VERSION.to_ne_bytes());
        bytes[H_HEADER_LEN..H_HEADER_LEN + 4]
            .copy_from_slice(&layout::HEADER_LEN_FIELD.to_ne_bytes());
        bytes[H_SLOTS..H_SLOTS + 4].copy_from_slice(&1000u32.to_ne_bytes());
        bytes[H_RECORDS..H_RECORDS + 4].copy_from_slice(&1u32.to_ne_bytes());
        fs::write(&path, &bytes).unwrap();
        let said = FileImage::read(&name, &path, false).unwrap_err();
        assert!(
            matches!(&said, Error::Corrupt { reason, .. } if reason.contains("needs exactly")),
            "{said}"
        );
        // Put right, it reads.
        bytes[H_SLOTS..H_SLOTS + 4].copy_from_slice(&1u32.to_ne_bytes());
        fs::write(&path, &bytes).unwrap();
        let image = FileImage::read(&name, &path, false).unwrap();
        assert_eq!((image.slots, image.records, image.attached()), (1, 1, 0));
    }

    #[test]
    fn a_fifo_at_the_name_is_refused_without_blocking() {
        let name = unique("fifo");
        let path = checked_path(&name).unwrap();
        let _planted = Planted(path.clone());
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let said = FileImage::read(&name, &path, false).unwrap_err();
        assert!(
            matches!(&said, Error::Corrupt { reason, .. } if reason.contains("FIFO")),
            "{said}"
        );
    }
}
