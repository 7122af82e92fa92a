//! How to open or create a robust semaphore: the options, and the open
//! itself, which applies the `Existence` rules to the file and attaches the
//! process to what it opened, starting again if the name was removed in
//! between.

use super::attachment::attach;
use super::file::{self, check_new_mode, checked_path, NewFile};
use super::protocol::RegisterError;
use super::{RobustSemaphore, KIND, MAX_RECORDS, MAX_SLOTS};
use crate::error::{Error, Result};
use crate::existence::{self, Existence, Object};
use crate::ownership::{NewObject, Trust};

/// How many times an open starts again because the name was removed (by a
/// last process detaching) between opening the file and registering in it.
const STALE_RETRIES: usize = 100;

/// How to open or create a [`RobustSemaphore`]: one setter per option,
/// ending in [`Self::open`].
///
/// ```
/// use namedipc::Existence;
/// use namedipc::robust::RobustSemaphore;
///
/// # let name = format!("/namedipc-doc-robust-options-{}", std::process::id());
/// let sem = RobustSemaphore::options()
///     .existence(Existence::RaiseIfExists)
///     .initial_value(3)
///     .records(16)
///     .mode(0o600)
///     .persistent(false)
///     .trust(namedipc::Trust::new())
///     .open(&name)?;
/// # Ok::<(), namedipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RobustSemaphoreOptions {
    existence: Existence,
    initial_value: u32,
    records: u32,
    mode: u32,
    group: Option<u32>,
    apply_umask: bool,
    trust: Trust,
    persistent: bool,
}

impl Default for RobustSemaphoreOptions {
    fn default() -> Self {
        Self {
            existence: Existence::LinkOrCreate,
            initial_value: 1,
            records: 128,
            mode: 0o600,
            group: None,
            apply_umask: false,
            trust: Trust::new(),
            persistent: false,
        }
    }
}

impl RobustSemaphoreOptions {
    /// What to do if the name does, or does not, exist (default
    /// [`Existence::LinkOrCreate`]).
    ///
    /// ```
    /// use namedipc::Existence;
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// let options = RobustSemaphore::options().existence(Existence::RaiseIfNotExists);
    /// ```
    #[must_use]
    pub fn existence(mut self, existence: Existence) -> Self {
        self.existence = existence;
        self
    }

    /// The number of slots of a new semaphore, all free at first: its
    /// initial and maximum value (1 to [`MAX_SLOTS`], default 1), which
    /// [`RobustSemaphore::slots`] reports. Ignored when an existing
    /// semaphore is opened: it keeps its own.
    ///
    /// ```
    /// let options = namedipc::robust::RobustSemaphore::options().initial_value(4);
    /// ```
    #[must_use]
    pub fn initial_value(mut self, initial_value: u32) -> Self {
        self.initial_value = initial_value;
        self
    }

    /// How many processes a new semaphore admits at once (1 to
    /// [`MAX_RECORDS`], default 128). Ignored when an existing semaphore is
    /// opened.
    ///
    /// ```
    /// let options = namedipc::robust::RobustSemaphore::options().records(1024);
    /// ```
    #[must_use]
    pub fn records(mut self, records: u32) -> Self {
        self.records = records;
        self
    }

    /// Permission bits of a new semaphore's file (default 0o600: the owner
    /// only), exactly: the umask does not narrow them unless
    /// [`Self::apply_umask`] says so; they are set before the file appears
    /// at the name. The owner needs read and write, and the group and
    /// others each get read and write or nothing (0o600, 0o660, 0o666...):
    /// a user who may read the file without writing it could fake live
    /// processes in it, so [`Self::open`] refuses such a mode
    /// ([`Error::InvalidArgument`]) — and such a file at the name
    /// ([`Error::Untrusted`]). An existing semaphore keeps its own mode.
    ///
    /// ```
    /// let options = namedipc::robust::RobustSemaphore::options().mode(0o660);
    /// ```
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Lets the kernel's umask narrow [`Self::mode`] (default `false`); a
    /// mode the umask narrows into one a robust semaphore may not have
    /// (0o660 under umask 0o022 is 0o640) is refused at creation
    /// ([`Error::InvalidArgument`]), before the file appears at the name.
    ///
    /// ```
    /// let options = namedipc::robust::RobustSemaphore::options().apply_umask(true);
    /// ```
    #[must_use]
    pub fn apply_umask(mut self, apply: bool) -> Self {
        self.apply_umask = apply;
        self
    }

    /// Gives a new semaphore's file the group `gid` (before it appears at
    /// the name), and trusts existing ones of that group ([`Trust::group`]):
    /// with mode 0o660, the members of the group share it. This process
    /// must be a member of the group, or root.
    ///
    /// ```
    /// let gid = namedipc::ownership::gid_of("root")?;
    /// let options = namedipc::robust::RobustSemaphore::options().mode(0o660).group(gid);
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    #[must_use]
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// Whom an existing semaphore may belong to (default [`Trust::new`]:
    /// this user or root, and not writable by others). Checked on every
    /// file the handle opens (not on one it creates), before anything in
    /// it is used: [`Error::Untrusted`] otherwise. Whatever the trust
    /// (unless [`Trust::anyone`]), a file that users who may not write it
    /// may read is refused too, as is one its owner may not read and write.
    ///
    /// ```
    /// use namedipc::Trust;
    ///
    /// let alice = 1001; // e.g. namedipc::ownership::uid_of("alice")?
    /// let options = namedipc::robust::RobustSemaphore::options().trust(Trust::new().owner(alice));
    /// ```
    #[must_use]
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// Whether a new semaphore stays when the last process detaches from it
    /// (default `false`: it is removed then, see
    /// [`RobustSemaphore::close`]). Ignored when an existing one is opened.
    ///
    /// ```
    /// let options = namedipc::robust::RobustSemaphore::options().persistent(true);
    /// ```
    #[must_use]
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// Opens or creates the semaphore `name` and attaches this process to it.
    ///
    /// Fails with [`Error::Untrusted`] if an existing file's owner or mode
    /// fails [`Self::trust`] (see there), with [`Error::Corrupt`] if the
    /// file at the name is not a valid robust semaphore of this version
    /// (its size and header are checked before any offset in it is used),
    /// with [`Error::Busy`] if all its process records are in use, and with
    /// [`Error::InvalidArgument`] for a mode a robust semaphore may not
    /// have ([`Self::mode`]) or a group this process may not give a file.
    ///
    /// ```
    /// use namedipc::robust::RobustSemaphore;
    ///
    /// # let name = format!("/namedipc-doc-robust-open-{}", std::process::id());
    /// let sem = RobustSemaphore::options().initial_value(2).open(&name)?;
    /// # Ok::<(), namedipc::Error>(())
    /// ```
    pub fn open(&self, name: &str) -> Result<RobustSemaphore> {
        let path = checked_path(name)?;
        if self.initial_value == 0 || self.initial_value > MAX_SLOTS {
            return Err(Error::InvalidArgument(format!(
                "the initial value (the number of slots) must be between 1 and {MAX_SLOTS}, not {}",
                self.initial_value
            )));
        }
        if self.records == 0 || self.records > MAX_RECORDS {
            return Err(Error::InvalidArgument(format!(
                "records must be between 1 and {MAX_RECORDS}, not {}",
                self.records
            )));
        }
        existence::check_mode(self.mode)?;
        if !self.apply_umask {
            check_new_mode(name, self.mode, "mode")?;
        }
        let object = NewObject {
            mode: self.mode,
            group: self.group,
            apply_umask: self.apply_umask,
        };
        object.check_group()?;
        let new = NewFile {
            slots: self.initial_value,
            records: self.records,
            object,
            persistent: self.persistent,
        };
        let trust = match self.group {
            Some(gid) => self.trust.clone().group(gid),
            None => self.trust.clone(),
        };
        for _ in 0..STALE_RETRIES {
            let (opened, created) = Object {
                kind: KIND,
                name,
                create: || file::create(name, &path, &new),
                open: || file::open_trusted(name, &path, &trust),
                unlink: || file::remove(name, &path),
            }
            .open(self.existence)?;
            let owner = opened.owner;
            match attach(opened) {
                Ok(attachment) => return Ok(RobustSemaphore::new(attachment, created, owner)),
                // Removed by its last user between our open and our
                // registration: the name is free again, start over.
                Err(RegisterError::Stale) => {}
                Err(RegisterError::Failed(e)) => return Err(e),
            }
        }
        Err(Error::Contended {
            kind: KIND,
            name: name.to_owned(),
            what: format!("removed {STALE_RETRIES} times while this process opened it"),
        })
    }
}
