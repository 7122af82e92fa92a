//! What to do when a named object does, or does not, exist, and the one
//! race-free implementation of those rules that every kind of object (a
//! semaphore, a shared memory segment, a message queue) opens through.
//!
//! A kind of object supplies its own steps as closures — create exclusively,
//! open what exists, remove the name — and keeps its special cases (checks
//! of what was opened, clean-up after a failed create) to itself. The
//! module also holds what creating any object shares: the loop over random
//! names and the check of permission bits.

use crate::error::{Error, ObjectKind, Result};
use crate::paths;

/// How many times a racing open-or-create, unlink-and-create or random-name
/// create is retried before giving up. Each retry means another process
/// removed or created the name in between.
const RACE_RETRIES: usize = 1000;

/// What to do when an object with the name does, or does not, exist. The
/// same rules serve every kind of named object.
///
/// ```
/// use namedipc::{Existence, Semaphore, SharedMemory};
///
/// # let name = format!("/namedipc-doc-existence-{}", std::process::id());
/// let sem = Semaphore::options().existence(Existence::RaiseIfExists).open(&name)?;
/// let shm = SharedMemory::options().existence(Existence::LinkOrCreate).open(&name)?;
/// assert!(sem.created() && shm.created()); // each kind of object has names of its own
/// # sem.unlink()?;
/// # shm.unlink()?;
/// # Ok::<(), namedipc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existence {
    /// Create it; fail with [`Error::AlreadyExists`] if the name is taken.
    RaiseIfExists,
    /// Open it if it exists, else create it. Race-free: when several
    /// processes do this at once, exactly one creates it.
    #[default]
    LinkOrCreate,
    /// Open it; fail with [`Error::NotFound`] if it does not exist.
    RaiseIfNotExists,
    /// Remove any object of the same kind with the name, then create a new one.
    UnlinkAndCreate,
}

/// The steps one kind of object offers for one name, which
/// [`Object::open`] combines as an [`Existence`] says.
pub(crate) struct Object<'a, Create, Open, Unlink> {
    /// The kind of object, for error messages.
    pub(crate) kind: ObjectKind,
    /// The name as given, for error messages.
    pub(crate) name: &'a str,
    /// Creates the object; [`Error::AlreadyExists`] if the name is taken.
    pub(crate) create: Create,
    /// Opens the existing object; [`Error::NotFound`] if nothing has the name.
    pub(crate) open: Open,
    /// Removes the name; [`Error::NotFound`] if nothing has it.
    pub(crate) unlink: Unlink,
}

impl<Create, Open, Unlink> Object<'_, Create, Open, Unlink> {
    /// Opens or creates the object as `existence` says; returns it and
    /// whether this call created it.
    pub(crate) fn open<T>(mut self, existence: Existence) -> Result<(T, bool)>
    where
        Create: FnMut() -> Result<T>,
        Open: FnMut() -> Result<T>,
        Unlink: FnMut() -> Result<()>,
    {
        match existence {
            Existence::RaiseIfNotExists => Ok(((self.open)()?, false)),
            Existence::RaiseIfExists => Ok(((self.create)()?, true)),
            Existence::LinkOrCreate => self.link_or_create(),
            Existence::UnlinkAndCreate => Ok((self.unlink_and_create()?, true)),
        }
    }

    fn link_or_create<T>(&mut self) -> Result<(T, bool)>
    where
        Create: FnMut() -> Result<T>,
        Open: FnMut() -> Result<T>,
    {
        // Open first, as glibc's sem_open does with O_CREAT: an object that
        // exists (the common case, as one process creates what many open)
        // costs one call. Only when nothing has the name does an exclusive
        // create follow, so that `created` is known for certain (plain
        // O_CREAT would not say whether it created the object).
        for _ in 0..RACE_RETRIES {
            match (self.open)() {
                // Nothing has the name: create it.
                Err(Error::NotFound { .. }) => {}
                other => return other.map(|object| (object, false)),
            }
            match (self.create)() {
                Ok(object) => return Ok((object, true)),
                // Created by another process between our open and our create: try again.
                Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::Contended {
            kind: self.kind,
            name: self.name.to_owned(),
            what: format!(
                "created and removed by other processes {RACE_RETRIES} times while opening it"
            ),
        })
    }

    fn unlink_and_create<T>(&mut self) -> Result<T>
    where
        Create: FnMut() -> Result<T>,
        Unlink: FnMut() -> Result<()>,
    {
        for _ in 0..RACE_RETRIES {
            match (self.unlink)() {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            match (self.create)() {
                // Another process created it after our unlink: go round again.
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
        }
        Err(Error::Contended {
            kind: self.kind,
            name: self.name.to_owned(),
            what: format!("re-created by other processes {RACE_RETRIES} times after each removal"),
        })
    }
}

/// Creates an object under a fresh random name, `prefix` followed by 16
/// random characters taken from the OS's CSPRNG: calls `create` with one
/// name after another until one is free.
pub(crate) fn create_random<T>(
    kind: ObjectKind,
    prefix: &str,
    mut create: impl FnMut(&str) -> Result<T>,
) -> Result<T> {
    for _ in 0..RACE_RETRIES {
        let name = paths::random_name(kind, prefix)?;
        match create(&name) {
            Err(Error::AlreadyExists { .. }) => {}
            other => return other,
        }
    }
    Err(Error::Contended {
        kind,
        name: prefix.to_owned(),
        what: format!("found no free random name with this prefix in {RACE_RETRIES} tries"),
    })
}

/// Checks the permission bits for a new object.
pub(crate) fn check_mode(mode: u32) -> Result<()> {
    if mode > 0o7777 {
        return Err(Error::InvalidArgument(format!(
            "mode must be permission bits between 0 and 0o7777, not {mode:#o}"
        )));
    }
    Ok(())
}
