//! What can be done with a robust semaphore by its name alone, without
//! attaching to it: look at it ([`inspect`], [`names`]) and remove it
//! ([`unlink`], [`remove_if_unused`]). Looking and removing if unused
//! read the file with `pread` (snapshot.rs), never through a mapping, so
//! that whatever another process does to the file cannot make them fault.

use super::file::checked_path;
use super::snapshot::FileImage;
use super::{Holder, KIND};
use crate::error::{Error, Result};
use crate::paths;
use std::fs;
use std::path::PathBuf;

/// What [`inspect`] found in a semaphore's file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The semaphore's name, with its leading slash.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// The number of slots (the most holders at once).
    pub slots: u32,
    /// The number of process records (the most processes attached at once).
    pub records: u32,
    /// Free slots.
    pub free: u32,
    /// Live processes attached to it now.
    pub attached: u32,
    /// Who holds slots.
    pub holders: Vec<Holder>,
    /// Whether it stays when the last process detaches.
    pub persistent: bool,
    /// Slots given back after their holders died, over the file's life.
    pub reclaimed: u64,
}

/// Looks at the semaphore `name` without attaching to it: its file is read
/// (read-only, with `pread`; nothing is mapped) and the liveness locks are
/// queried, so a file that another process truncates or rewrites meanwhile
/// gives an error, never a fault.
///
/// # Errors
/// [`Error::InvalidName`], [`Error::NotFound`], [`Error::PermissionDenied`],
/// [`Error::Corrupt`] (not a valid robust semaphore, or a file at the name
/// that is marked removed: a leftover to remove), [`Error::Contended`] (the
/// file kept changing size while it was read).
///
/// ```
/// use namedipc::robust::{self, RobustSemaphore};
///
/// # let name = format!("/namedipc-doc-robust-inspect-{}", std::process::id());
/// # let _sem = RobustSemaphore::options().open(&name)?;
/// let seen = robust::inspect(&name)?;
/// println!("{} of {} slots free, {} processes attached", seen.free, seen.slots, seen.attached);
/// # Ok::<(), namedipc::Error>(())
/// ```
pub fn inspect(name: &str) -> Result<Snapshot> {
    let path = checked_path(name)?;
    let image = FileImage::read(name, &path, false)?;
    image.check_not_marked_removed()?;
    let holders = image.holders();
    Ok(Snapshot {
        free: image.slots - u32::try_from(holders.len()).unwrap_or(image.slots),
        attached: image.attached(),
        holders,
        persistent: image.persistent(),
        reclaimed: image.reclaimed(),
        slots: image.slots,
        records: image.records,
        path: PathBuf::from(image.path),
        name: image.name,
    })
}

/// Removes the semaphore `name` without opening it, even while processes
/// use it: their handles keep working on the removed file, but their next
/// acquire fails with [`Error::NotFound`]. Compare [`remove_if_unused`].
///
/// ```
/// use namedipc::robust::{self, RobustSemaphore};
///
/// # let name = format!("/namedipc-doc-robust-unlink-{}", std::process::id());
/// # let _sem = RobustSemaphore::options().open(&name)?;
/// robust::unlink(&name)?;
/// # Ok::<(), namedipc::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidName`], [`Error::NotFound`], [`Error::PermissionDenied`].
pub fn unlink(name: &str) -> Result<()> {
    // As file::remove does it (the name first, then the mark on whatever
    // was there), but with the file read and marked through pread/pwrite:
    // `namedipc rm NAME` maps nothing either.
    let path = checked_path(name)?;
    let image = FileImage::read(name, &path, true).ok();
    fs::remove_file(&path).map_err(|e| Error::from_os("unlink", KIND, name, e))?;
    if let Some(image) = &image {
        image.mark_removed();
    }
    Ok(())
}

/// Removes the semaphore `name` only if no live process is attached to it;
/// returns whether it did. Race-free: a process that opens the name at the
/// same moment either attaches first (and the name stays) or finds it gone
/// and creates a new one; nobody is left using a removed file.
///
/// ```
/// use namedipc::robust::{self, RobustSemaphore};
///
/// # let name = format!("/namedipc-doc-robust-unused-{}", std::process::id());
/// # drop(RobustSemaphore::options().persistent(true).open(&name)?);
/// if robust::remove_if_unused(&name)? {
///     println!("removed {name}: nobody used it");
/// }
/// # Ok::<(), namedipc::Error>(())
/// ```
pub fn remove_if_unused(name: &str) -> Result<bool> {
    let path = checked_path(name)?;
    FileImage::read(name, &path, true)?.remove_if_unused()
}

/// The names (with a leading slash) of the robust semaphores in `/dev/shm`,
/// sorted.
///
/// # Errors
/// [`Error::Os`] if the directory cannot be read.
///
/// ```
/// for name in namedipc::robust::names()? {
///     println!("{name}");
/// }
/// # Ok::<(), namedipc::Error>(())
/// ```
pub fn names() -> Result<Vec<String>> {
    let entries = fs::read_dir(paths::shm_dir()).map_err(|e| Error::Os {
        operation: "opendir",
        kind: KIND,
        name: paths::SHM_DIR.to_owned(),
        source: e,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|file| paths::name_of_file(KIND, &file))
        .collect();
    names.sort();
    Ok(names)
}
