//! Who owns a named object, and whom a handle trusts with one it did not
//! create: on a shared machine another user can create a name first and
//! decide what the victim gets (docs/security.md). The handles check an
//! existing object's [`Owner`] against a [`Trust`] before using it.
//!
//! ```
//! use namedipc::{ObjectKind, Owner, Trust};
//!
//! let me = namedipc::ownership::current_uid();
//! let mine = Owner { uid: me, gid: 0, mode: 0o600 };
//! assert!(Trust::new().check(ObjectKind::Semaphore, "/jobs", mine).is_ok());
//! let open_to_all = Owner { mode: 0o666, ..mine };
//! assert!(Trust::new().check(ObjectKind::Semaphore, "/jobs", open_to_all).is_err());
//! assert!(Trust::new().world_writable(true).check(ObjectKind::Semaphore, "/jobs", open_to_all).is_ok());
//! ```

use crate::error::{Error, ObjectKind, Result, FOREIGN_OWNER, OTHERS_MAY_WRITE};
use crate::sys;

pub use crate::error::Owner;

impl Owner {
    /// The owner of the open file `stat` describes.
    pub(crate) fn of_stat(stat: &sys::FileStat) -> Self {
        Self {
            uid: stat.uid,
            gid: stat.gid,
            mode: stat.mode & 0o7777,
        }
    }
}

/// What a new object is to get: exact permission bits (unless the umask is
/// to apply) and a group. The handles' options carry one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NewObject {
    /// The permission bits asked for.
    pub(crate) mode: u32,
    /// The group asked for, if any.
    pub(crate) group: Option<u32>,
    /// Keep what the kernel's umask left of `mode` (posix_ipc's way).
    pub(crate) apply_umask: bool,
}

impl NewObject {
    /// Checks what can be checked of the group before creating: one this
    /// process may give a file (its own, one of its supplementary groups, or
    /// any for root). The mode is the caller's to check.
    pub(crate) fn check_group(self) -> Result<()> {
        let Some(gid) = self.group else {
            return Ok(());
        };
        if sys::geteuid() == 0 || sys::getegid() == gid {
            return Ok(());
        }
        let groups = sys::getgroups().map_err(|e| {
            Error::InvalidArgument(format!("cannot check the groups of this process: {e}"))
        })?;
        if groups.contains(&gid) {
            return Ok(());
        }
        Err(Error::InvalidArgument(format!(
            "group={}: this process is not a member of that group, so it cannot give it a new \
             object (only members and root can); pick one of its groups or leave group unset",
            describe_group(gid)
        )))
    }

    /// Whether [`Self::settle`] has anything to do beyond reading the
    /// owner: a group to give, or a mode the umask must not narrow.
    pub(crate) fn needs_settling(&self) -> bool {
        self.group.is_some() || !self.apply_umask
    }

    /// Gives the new object open at `fd` its group and exact mode, where
    /// fstat shows they differ from what was asked for: one fstat, and a
    /// fchown or fchmod only when needed. Returns its owner afterwards, and
    /// what the fstat said (its identity; the mode as it was before).
    pub(crate) fn settle(
        self,
        fd: std::os::fd::BorrowedFd<'_>,
        kind: ObjectKind,
        name: &str,
    ) -> Result<(Owner, sys::FileStat)> {
        let os = |operation, e| Error::from_os(operation, kind, name, e);
        let stat = sys::fstat(fd).map_err(|e| os("fstat", e))?;
        let mut owner = Owner::of_stat(&stat);
        if let Some(gid) = self.group {
            if owner.gid != gid {
                sys::fchgrp(fd, gid).map_err(|e| os("fchown", e))?;
                owner.gid = gid;
                if owner.mode & 0o6000 != 0 {
                    // A change of group may clear the set-user-ID and set-group-ID bits.
                    owner.mode = sys::fstat(fd).map_err(|e| os("fstat", e))?.mode & 0o7777;
                }
            }
        }
        if !self.apply_umask && owner.mode != self.mode {
            sys::fchmod(fd, self.mode).map_err(|e| os("fchmod", e))?;
            owner.mode = self.mode;
        }
        Ok((owner, stat))
    }

    /// The owner of a new object where no descriptor shows it (a platform
    /// whose semaphores have no file): this process's ids and the mode asked for.
    pub(crate) fn assumed_owner(self) -> Owner {
        Owner {
            uid: sys::geteuid(),
            gid: self.group.unwrap_or_else(sys::getegid),
            mode: self.mode,
        }
    }
}

/// Whom an existing object may belong to before a handle uses it.
///
/// The default ([`Trust::new`]) accepts objects owned by this process's
/// effective uid or by root, and not writable by "other"; the builder
/// methods widen it for deliberate sharing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// No check at all.
    anyone: bool,
    /// Objects of this process's effective uid and of root pass. The uid is
    /// asked for when an object is checked, not when the trust is made (a
    /// process may change its uid in between; and most handles never check).
    own_and_root: bool,
    /// Other trusted owners (uids).
    owners: Vec<u32>,
    /// Trusted groups (gids), whoever owns the object.
    groups: Vec<u32>,
    /// Whether an object "other" may write passes.
    world_writable: bool,
}

impl Default for Trust {
    fn default() -> Self {
        Self::new()
    }
}

impl Trust {
    /// The default: objects owned by this process's effective uid or by root
    /// (uid 0), and not writable by "other" (`mode & 0o002 == 0`).
    #[must_use]
    pub fn new() -> Self {
        Self {
            anyone: false,
            own_and_root: true,
            owners: Vec::new(),
            groups: Vec::new(),
            world_writable: false,
        }
    }

    /// No check at all (posix_ipc's behaviour; the Python posix_ipc classes use this).
    #[must_use]
    pub fn anyone() -> Self {
        Self {
            anyone: true,
            own_and_root: true,
            owners: Vec::new(),
            groups: Vec::new(),
            world_writable: true,
        }
    }

    /// Also objects owned by `uid`.
    #[must_use]
    pub fn owner(mut self, uid: u32) -> Self {
        if !self.owners.contains(&uid) {
            self.owners.push(uid);
        }
        self
    }

    /// Also objects whose group is `gid`, whoever owns them (only members of
    /// a group, or root, can give a file that group).
    #[must_use]
    pub fn group(mut self, gid: u32) -> Self {
        if !self.groups.contains(&gid) {
            self.groups.push(gid);
        }
        self
    }

    /// Also objects that "other" may write (asked for by a caller that itself
    /// asks for a world-writable mode). `false` takes that back.
    #[must_use]
    pub fn world_writable(mut self, allow: bool) -> Self {
        self.world_writable = allow;
        self
    }

    /// Whether this is [`Trust::anyone`]: no check at all.
    #[must_use]
    pub fn is_anyone(&self) -> bool {
        self.anyone
    }

    /// `Ok` if `owner` passes; else [`Error::Untrusted`] naming `kind`,
    /// `name`, the owner and the reason.
    ///
    /// # Errors
    /// [`Error::Untrusted`] when the owner is neither trusted nor in a
    /// trusted group, or when "other" may write the object and that was not
    /// allowed.
    pub fn check(&self, kind: ObjectKind, name: &str, owner: Owner) -> Result<()> {
        if self.anyone {
            return Ok(());
        }
        let trusted_owner = (self.own_and_root && owner.uid == 0)
            || self.owners.contains(&owner.uid)
            || self.groups.contains(&owner.gid)
            || (self.own_and_root && owner.uid == sys::geteuid());
        let reason = if !trusted_owner {
            FOREIGN_OWNER
        } else if owner.mode & 0o002 != 0 && !self.world_writable {
            OTHERS_MAY_WRITE
        } else {
            return Ok(());
        };
        Err(Error::Untrusted {
            kind,
            name: name.to_owned(),
            owner,
            reason: reason.to_owned(),
        })
    }
}

/// A gid with its name, for messages: `1001 ('staff')` or `1001`.
fn describe_group(gid: u32) -> String {
    match group_name(gid) {
        Some(name) => format!("{gid} ('{name}')"),
        None => gid.to_string(),
    }
}

/// This process's effective user id: the owner of the objects it creates.
#[must_use]
pub fn current_uid() -> u32 {
    sys::geteuid()
}

/// The largest id accepted: `u32::MAX` is `(uid_t)-1`, which chown reads as
/// "leave unchanged", so no user or group has it.
const MAX_ID: u32 = u32::MAX - 1;

/// A number as an id, if `text` is all digits (then it must be in range).
fn numeric_id(text: &str, what: &str) -> Option<Result<u32>> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        text.parse::<u32>()
            .ok()
            .filter(|&id| id <= MAX_ID)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{what} id {text} is out of range: ids run from 0 to {MAX_ID}"
                ))
            }),
    )
}

/// Looks up a user by name; a string of digits is taken as the uid itself.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the user if there is no such user (or
/// the lookup itself failed), or the number is out of range.
pub fn uid_of(user: &str) -> Result<u32> {
    if let Some(id) = numeric_id(user, "user") {
        return id;
    }
    let unknown = |detail: String| {
        Error::InvalidArgument(format!(
            "unknown user {user:?}{detail}: give the name of a user of this machine, or a uid"
        ))
    };
    let name = sys::users::c_name(user).ok_or_else(|| unknown(String::new()))?;
    match sys::users::uid_by_name(&name) {
        Ok(Some(uid)) => Ok(uid),
        Ok(None) => Err(unknown(String::new())),
        Err(e) => Err(unknown(format!(" (the lookup failed: {e})"))),
    }
}

/// Looks up a group by name; a string of digits is taken as the gid itself.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the group if there is no such group
/// (or the lookup itself failed), or the number is out of range.
pub fn gid_of(group: &str) -> Result<u32> {
    if let Some(id) = numeric_id(group, "group") {
        return id;
    }
    let unknown = |detail: String| {
        Error::InvalidArgument(format!(
            "unknown group {group:?}{detail}: give the name of a group of this machine, or a gid"
        ))
    };
    let name = sys::users::c_name(group).ok_or_else(|| unknown(String::new()))?;
    match sys::users::gid_by_name(&name) {
        Ok(Some(gid)) => Ok(gid),
        Ok(None) => Err(unknown(String::new())),
        Err(e) => Err(unknown(format!(" (the lookup failed: {e})"))),
    }
}

/// The name of the user `uid`, for messages (`None` if the number has no name).
#[must_use]
pub fn user_name(uid: u32) -> Option<String> {
    sys::users::user_name(uid).ok().flatten()
}

/// The name of the group `gid`, for messages (`None` if the number has no name).
#[must_use]
pub fn group_name(gid: u32) -> Option<String> {
    sys::users::group_name(gid).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: ObjectKind = ObjectKind::Semaphore;

    fn owned_by(uid: u32, gid: u32, mode: u32) -> Owner {
        Owner { uid, gid, mode }
    }

    /// A uid that is neither root nor this process's.
    fn stranger() -> u32 {
        if current_uid() == 4_000_000 {
            4_000_001
        } else {
            4_000_000
        }
    }

    #[test]
    fn the_default_trusts_this_user_and_root_only() {
        let trust = Trust::new();
        let me = current_uid();
        assert!(trust.check(KIND, "/a", owned_by(me, 12345, 0o660)).is_ok());
        assert!(trust.check(KIND, "/a", owned_by(0, 0, 0o644)).is_ok());
        let err = trust
            .check(KIND, "/a", owned_by(stranger(), 12345, 0o600))
            .unwrap_err();
        match &err {
            Error::Untrusted {
                reason,
                owner,
                name,
                ..
            } => {
                assert_eq!(reason, FOREIGN_OWNER);
                assert_eq!(owner.uid, stranger());
                assert_eq!(name, "/a");
            }
            other => panic!("expected Untrusted, got {other:?}"),
        }
        assert_eq!(Trust::default(), trust);
    }

    #[test]
    fn the_default_refuses_what_others_may_write() {
        let me = current_uid();
        for mode in [0o666, 0o602, 0o1777] {
            let err = Trust::new()
                .check(KIND, "/a", owned_by(me, 0, mode))
                .unwrap_err();
            assert!(
                matches!(&err, Error::Untrusted { reason, .. } if reason == OTHERS_MAY_WRITE),
                "{err:?}"
            );
            assert!(Trust::new()
                .world_writable(true)
                .check(KIND, "/a", owned_by(me, 0, mode))
                .is_ok());
        }
        // Readable by others is no threat to a semaphore.
        assert!(Trust::new()
            .check(KIND, "/a", owned_by(me, 0, 0o644))
            .is_ok());
    }

    #[test]
    fn owners_and_groups_widen_the_trust() {
        let other = stranger();
        let theirs = owned_by(other, 4_000_100, 0o660);
        assert!(Trust::new().check(KIND, "/a", theirs).is_err());
        assert!(Trust::new().owner(other).check(KIND, "/a", theirs).is_ok());
        assert!(Trust::new()
            .group(4_000_100)
            .check(KIND, "/a", theirs)
            .is_ok());
        assert!(Trust::new()
            .group(4_000_101)
            .check(KIND, "/a", theirs)
            .is_err());
        // A trusted owner is still refused a mode others may write...
        let open = owned_by(other, 4_000_100, 0o666);
        assert!(Trust::new().owner(other).check(KIND, "/a", open).is_err());
        // ...unless asked for.
        assert!(Trust::new()
            .owner(other)
            .world_writable(true)
            .check(KIND, "/a", open)
            .is_ok());
        // Adding twice changes nothing.
        assert_eq!(
            Trust::new().owner(other).owner(other),
            Trust::new().owner(other)
        );
    }

    #[test]
    fn anyone_checks_nothing() {
        let trust = Trust::anyone();
        assert!(trust.is_anyone());
        assert!(!Trust::new().is_anyone());
        assert!(trust
            .check(KIND, "/a", owned_by(stranger(), 1, 0o777))
            .is_ok());
    }

    #[test]
    fn the_message_names_owner_group_mode_reason_and_the_way_out() {
        let err = Trust::new()
            .check(KIND, "/jobs", owned_by(0, 0, 0o666))
            .unwrap_err();
        let message = err.to_string();
        let root = user_name(0).unwrap_or_else(|| "0".to_owned());
        assert!(
            message.starts_with(&format!(
                "refusing the semaphore '/jobs': it belongs to uid 0 ({root}), group 0 ("
            )),
            "{message}"
        );
        assert!(
            message.contains("mode 0666, and users other than its owner and group may write it; "),
            "{message}"
        );
        assert!(message.ends_with("see docs/security.md"), "{message}");

        let other = stranger();
        let message = Trust::new()
            .check(KIND, "/jobs", owned_by(other, 4_000_200, 0o600))
            .unwrap_err()
            .to_string();
        // Numbers without a name stay numbers, in the hint too.
        assert!(
            message.contains(&format!(
                "it belongs to uid {other}, group 4000200, mode 0600, and another user who is not root owns it; \
                 if it is shared on purpose, trust its owner (trust_owners=[{other}], --trust-owner {other}) \
                 or its group (group=4000200, --group 4000200); see docs/security.md"
            )),
            "{message}"
        );
        assert_eq!(err.errno(), None);
        assert_eq!(err.name(), Some("/jobs"));
    }

    #[test]
    fn ids_by_name_and_by_number() {
        assert_eq!(uid_of("root").unwrap(), 0);
        assert_eq!(gid_of("root").unwrap(), 0);
        assert_eq!(uid_of("0").unwrap(), 0);
        assert_eq!(uid_of("4000000").unwrap(), 4_000_000);
        assert_eq!(gid_of("4294967294").unwrap(), u32::MAX - 1);
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert!(group_name(0).is_some());
        assert_eq!(user_name(4_000_321), None);
        assert_eq!(group_name(4_000_321), None);
        if let Some(me) = user_name(current_uid()) {
            assert_eq!(uid_of(&me).unwrap(), current_uid());
        }
    }

    #[test]
    fn unknown_or_out_of_range_ids_are_refused_by_name() {
        for (bad, needle) in [
            (
                "no-such-user-namedipc",
                "unknown user \"no-such-user-namedipc\"",
            ),
            ("", "unknown user \"\""),
            ("a\0b", "unknown user"),
            ("4294967295", "out of range"),
            ("99999999999999999999", "out of range"),
        ] {
            let err = uid_of(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
            assert!(err.to_string().contains(needle), "{err}");
        }
        let err = gid_of("no-such-group-namedipc").unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown group \"no-such-group-namedipc\""),
            "{err}"
        );
        assert!(err.to_string().contains("or a gid"), "{err}");
    }
}
