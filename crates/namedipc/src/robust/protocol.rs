//! The protocol's transitions on a mapped semaphore file
//! (docs/robust-semaphore.md, "Transitions"): register, acquire, release,
//! wait, reclaim, detach, and reading who holds what. Each transition is a
//! compare-and-swap or a store on one word; `crash_point!` marks the steps
//! that tests/robust_crash.rs kills a process at. What a process keeps
//! between transitions (its registration, where it last found a free slot)
//! is the caller's, in attachment.rs.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use super::crash;
use super::file::{AtName, MappedFile};
use super::layout::{
    self, FLAG_PERSISTENT, GEN_MASK, H_RECLAIMED, H_SEQ, H_WAITERS, LOCK_BASE, R_PID, R_PIDNS,
    R_STATE, R_UID, S_OWNER, S_SINCE,
};
use super::{Holder, KIND};
use crate::error::{Error, Result};
use crate::sys::coarse_realtime_now;
use crate::sys::pidfd::pid_namespace;
use crate::sys::robust::{self as os, Lock};

/// How long a waiter sleeps at most when the kernel refuses the futex wait
/// (a seccomp filter, say): it then polls, never spins.
const NO_FUTEX_SLEEP: Duration = Duration::from_millis(1);

/// How a [`MappedFile::sleep`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slept {
    /// Woken, timed out, or `seq` had moved on already: look again.
    Returned,
    /// A signal handler ran.
    Interrupted,
}

/// A process record with a live registration (as far as the file says)
/// that holds at least one slot: what a watcher watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HeldBy {
    pub(super) record: u32,
    /// The record's `state` word: its registration.
    pub(super) state: u64,
    /// The pid the registrant wrote, in its own PID namespace.
    pub(super) pid: u32,
    /// That PID namespace ([`crate::sys::pidfd::pid_namespace`]; 0: not known).
    pub(super) pid_namespace: u64,
}

/// One registration of a process record: the record, and the token that
/// the slots taken under it carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Registration {
    pub(super) record: u32,
    pub(super) token: u64,
}

/// Why [`MappedFile::register`] did not register.
#[derive(Debug)]
pub(super) enum RegisterError {
    /// The name was removed (or replaced) between opening the file and
    /// registering in it: open the name again.
    Stale,
    Failed(Error),
}

impl From<Error> for RegisterError {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

/// A set of process records (at most [`layout::MAX_RECORDS`]: 8 KiB), so
/// that a pass over the slots learns each record once, whatever the slots
/// say: every scan over the file stays linear in its size. Allocates on the
/// first insert only.
#[derive(Debug)]
pub(super) struct RecordSet {
    records: u32,
    words: Vec<u64>,
    len: u32,
}

impl RecordSet {
    pub(super) fn new(records: u32) -> Self {
        Self {
            records,
            words: Vec::new(),
            len: 0,
        }
    }

    /// Adds record `r` (below the file's number of records).
    pub(super) fn insert(&mut self, r: u32) {
        debug_assert!(r < self.records);
        if self.words.is_empty() {
            self.words = vec![0; self.records.div_ceil(64) as usize];
        }
        let (word, bit) = (r as usize / 64, r % 64);
        if self.words[word] & (1 << bit) == 0 {
            self.words[word] |= 1 << bit;
            self.len += 1;
        }
    }

    pub(super) fn contains(&self, r: u32) -> bool {
        self.words
            .get(r as usize / 64)
            .is_some_and(|word| word & (1 << (r % 64)) != 0)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The records in the set, in increasing order.
    pub(super) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let base = u32::try_from(w * 64).unwrap_or(u32::MAX);
            (0..64u32)
                .filter(move |bit| word & (1 << bit) != 0)
                .map(move |bit| base + bit)
        })
    }

    /// The runs of neighbouring records in the set: (first, how many).
    pub(super) fn runs(&self) -> Vec<(u32, u32)> {
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for r in self.iter() {
            match runs.last_mut() {
                Some((first, count)) if *first + *count == r => *count += 1,
                _ => runs.push((r, 1)),
            }
        }
        runs
    }
}

/// The coarse wall clock in ns since the Unix epoch: no syscall.
#[inline]
pub(super) fn wall_clock_ns() -> u64 {
    u64::try_from(coarse_realtime_now().as_nanos()).unwrap_or(u64::MAX)
}

impl MappedFile {
    fn state(&self, r: u32) -> &AtomicU64 {
        self.map.u64_at(layout::record(r) + R_STATE)
    }

    fn owner(&self, i: u32) -> &AtomicU64 {
        self.map.u64_at(layout::slot(self.records, i) + S_OWNER)
    }

    fn seq(&self) -> &AtomicU32 {
        self.map.u32_at(H_SEQ)
    }

    fn waiters(&self) -> &AtomicU32 {
        self.map.u32_at(H_WAITERS)
    }

    fn lock_byte(&self, r: u32, op: Lock) -> std::io::Result<bool> {
        os::ofd_lock(self.file.as_fd(), LOCK_BASE + u64::from(r), op)
    }

    /// Whether another open file description holds record `r`'s lock byte:
    /// whether a live process is registered in it (or a reclaimer looks at
    /// it for a moment). Any error counts as alive: never reclaim on doubt.
    fn record_locked_by_other(&self, r: u32) -> bool {
        os::ofd_locked_by_other(self.file.as_fd(), LOCK_BASE + u64::from(r)).unwrap_or(true)
    }

    /// **Register**: takes a free process record, one whose lock byte
    /// nobody holds, and keeps its lock. The caller serialises the
    /// registrations of its process.
    pub(super) fn register(&self) -> std::result::Result<Registration, RegisterError> {
        self.register_through(self.file.as_fd())
    }

    /// **Register** through `fd`, an open file description of this file
    /// (checked by the caller: same device and inode), which then carries
    /// the record's lock: a forking process registers its child so, before
    /// the fork, through a description only the child keeps.
    pub(super) fn register_through(
        &self,
        fd: BorrowedFd<'_>,
    ) -> std::result::Result<Registration, RegisterError> {
        let lock_byte = |r: u32, op: Lock| os::ofd_lock(fd, LOCK_BASE + u64::from(r), op);
        for r in 0..self.records {
            // A lock we get is a record nobody lives in (or a reclaimer
            // briefly holds: then we move on).
            if !lock_byte(r, Lock::Exclusive).map_err(|e| self.os_error("fcntl", e))? {
                continue;
            }
            crash::crash_point!("register.locked");
            // A remover unlinks the name only while it holds every record's
            // byte; now that we hold one, the name stays as it is until we
            // let go. If it no longer refers to this file, start again.
            // If it is still at the name but marked removed, opening the
            // name again would find it again: that is no race to retry.
            let at_name = self.at_name();
            if !matches!(at_name, Ok(AtName::Itself)) {
                let _ = lock_byte(r, Lock::Unlock);
                return Err(match at_name {
                    Err(e) => RegisterError::Failed(e),
                    Ok(AtName::MarkedRemoved) => RegisterError::Failed(self.marked_removed()),
                    Ok(_) => RegisterError::Stale,
                });
            }
            let state = self.state(r).load(Ordering::Acquire);
            let generation = state >> 1;
            if state & 1 == 1 {
                // Its last owner died: give back what it held.
                self.free_owner(r, generation);
            }
            let generation = (generation + 1) & GEN_MASK;
            let rec = layout::record(r);
            self.map
                .u32_at(rec + R_PID)
                .store(std::process::id(), Ordering::Relaxed);
            self.map
                .u32_at(rec + R_UID)
                .store(os::uid(), Ordering::Relaxed);
            self.map
                .u64_at(rec + R_PIDNS)
                .store(pid_namespace(), Ordering::Relaxed);
            self.state(r).store(generation << 1 | 1, Ordering::Release);
            crash::crash_point!("register.done");
            return Ok(Registration {
                record: r,
                token: layout::token(r, generation),
            });
        }
        Err(RegisterError::Failed(self.records_full()))
    }

    /// Writes this process's pid into record `r`, which a registration of
    /// this process holds: a forked child's record was registered by its
    /// parent, before the fork.
    pub(super) fn set_pid(&self, r: u32) {
        let rec = layout::record(r);
        self.map
            .u32_at(rec + R_PID)
            .store(std::process::id(), Ordering::Relaxed);
        // The child's own: a parent that left its PID namespace
        // (unshare(CLONE_NEWPID)) forks children into another.
        self.map
            .u64_at(rec + R_PIDNS)
            .store(pid_namespace(), Ordering::Relaxed);
    }

    /// Every process record is in use: not the caller's argument, and not
    /// a wait that could end; "no room" now, which trying again after other
    /// processes close can cure.
    fn records_full(&self) -> Error {
        Error::Busy {
            kind: KIND,
            name: self.name.clone(),
            reason: crate::error::BusyReason::NoRecord,
        }
    }

    /// Bumps `seq` and wakes *every* waiter, of every process: each one
    /// looks again, and a waiting process learns this way of every change
    /// of holders, which its watcher must see (docs/robust-semaphore.md,
    /// "Waiting").
    pub(super) fn wake(&self) {
        self.seq().fetch_add(1, Ordering::SeqCst);
        // A wake-up that fails is caught by the waiters' watchers' backstop.
        let _ = os::futex_wake(self.seq(), i32::MAX);
    }

    /// Wakes every waiter if anybody waits (the count is a hint that errs
    /// on the high side): a handle closed under a waiter of this process.
    pub(super) fn wake_if_waited(&self) {
        if self.waiters().load(Ordering::SeqCst) != 0 {
            self.wake();
        }
    }

    /// Frees every slot that holds `token`. Returns how many.
    fn free_token(&self, token: u64) -> u32 {
        let mut freed = 0;
        for i in 0..self.slots {
            // SeqCst: a thread of a detaching process that takes a slot
            // after this pass looked at it sees the detach (attachment.rs).
            if self
                .owner(i)
                .compare_exchange(token, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                freed += 1;
            }
        }
        freed
    }

    /// Frees the slots of record `r`'s registration `generation`, whose
    /// owner is dead (the caller holds `r`'s lock byte).
    fn free_owner(&self, r: u32, generation: u64) -> u32 {
        let freed = self.free_token(layout::token(r, generation));
        if freed > 0 {
            self.map
                .u64_at(H_RECLAIMED)
                .fetch_add(u64::from(freed), Ordering::Relaxed);
            self.wake();
        }
        freed
    }

    /// Frees slot `i` if it still holds `token`, a token of no live
    /// registration; the caller counts and wakes. Returns how many (0 or 1).
    fn free_orphan(&self, i: u32, token: u64) -> u32 {
        u32::from(
            self.owner(i)
                .compare_exchange(token, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok(),
        )
    }

    /// **Reclaim**: gives back the slots of dead holders: of registrations
    /// that ended (orphans: a slot taken by a thread racing its process's
    /// detach), and of records whose owner died (their lock byte can be
    /// taken). Looks only at records that hold a slot, never at `mine`.
    /// Returns how many slots it freed.
    ///
    /// Linear in the file's size, whatever the file holds: one pass over
    /// the slots finds the records that hold one (a set of records), one
    /// lock attempt per such record finds the dead ones, and one more pass
    /// frees their slots while this description holds all their locks.
    pub(super) fn reclaim(&self, mine: Registration) -> u32 {
        let mut freed = 0;
        let mut holding = RecordSet::new(self.records);
        for i in 0..self.slots {
            let token = self.owner(i).load(Ordering::Acquire);
            if token == 0 || token == mine.token {
                continue;
            }
            match self.registration_of(token) {
                // A token naming no record, or of a registration that has
                // ended: nobody can ever release it.
                None => freed += self.free_orphan(i, token),
                Some(r) if r == mine.record => {}
                Some(r) => holding.insert(r),
            }
        }
        // Of those, the dead: whose lock byte this description can take.
        // Their locks stay taken until their slots are freed and their
        // records ended, so that no registrant reuses one meanwhile.
        let mut dead = RecordSet::new(self.records);
        for r in holding.iter() {
            // An error is treated like a live owner: never reclaim on doubt.
            if !self.lock_byte(r, Lock::Exclusive).unwrap_or(false) {
                continue;
            }
            crash::crash_point!("reclaim.locked");
            if self.state(r).load(Ordering::Acquire) & 1 == 1 {
                dead.insert(r);
            } else {
                let _ = self.lock_byte(r, Lock::Unlock);
            }
        }
        if !dead.is_empty() {
            freed += self.free_dead(&dead);
        }
        if freed > 0 {
            self.map
                .u64_at(H_RECLAIMED)
                .fetch_add(u64::from(freed), Ordering::Relaxed);
            self.wake();
        }
        freed
    }

    /// The record whose current registration a slot's `token` names (as
    /// the file says), or `None` for a token of no record or of an ended
    /// registration: an orphan.
    fn registration_of(&self, token: u64) -> Option<u32> {
        let (r, generation) = layout::split_token(token);
        let r = u32::try_from(r).ok().filter(|&r| r < self.records)?;
        (self.state(r).load(Ordering::Acquire) == (generation << 1 | 1)).then_some(r)
    }

    /// Frees every slot of the registrations of `dead`, records whose
    /// lock bytes this description holds and whose owners died, in one
    /// pass over the slots; then ends those registrations (free, a new
    /// generation) and drops their locks. Returns how many slots it freed.
    fn free_dead(&self, dead: &RecordSet) -> u32 {
        let mut freed = 0;
        for i in 0..self.slots {
            let owner = self.owner(i);
            let token = owner.load(Ordering::Acquire);
            if token == 0 {
                continue;
            }
            let Some(r) = self.registration_of(token) else {
                continue;
            };
            if dead.contains(r)
                && owner
                    .compare_exchange(token, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                freed += 1;
            }
        }
        crash::crash_point!("reclaim.freed");
        for r in dead.iter() {
            let state = self.state(r).load(Ordering::Acquire);
            self.state(r)
                .store((((state >> 1) + 1) & GEN_MASK) << 1, Ordering::Release);
        }
        // One unlock per run of neighbouring records (this description's
        // locks on neighbouring bytes are one range in the kernel).
        for (first, count) in dead.runs() {
            let _ = os::ofd_lock_range(
                self.file.as_fd(),
                LOCK_BASE + u64::from(first),
                u64::from(count),
                Lock::Unlock,
            );
        }
        freed
    }

    /// **Acquire**: takes a free slot with one CAS, if there is one,
    /// starting at `hint` (where the last one was found, which it updates);
    /// `now` (the coarse wall clock, ns) goes into the slot's `since`.
    #[inline]
    pub(super) fn try_take(&self, token: u64, now: u64, hint: &AtomicU32) -> bool {
        let start = hint.load(Ordering::Relaxed);
        for k in 0..self.slots {
            let i = (start + k) % self.slots;
            let owner = self.owner(i);
            if owner.load(Ordering::Relaxed) == 0
                && owner
                    .compare_exchange(0, token, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                crash::crash_point!("acquire.taken");
                self.map
                    .u64_at(layout::slot(self.records, i) + S_SINCE)
                    .store(now, Ordering::Relaxed);
                if i != start {
                    hint.store(i, Ordering::Relaxed);
                }
                return true;
            }
        }
        false
    }

    /// **Wait**, its first step: checks that the name still refers to this
    /// file and counts one more waiter (see [`Self::end_wait`]).
    pub(super) fn begin_wait(&self) -> Result<()> {
        self.check_named()?;
        self.waiters().fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// **Wait**, its last step: one waiter fewer.
    pub(super) fn end_wait(&self) {
        self.waiters().fetch_sub(1, Ordering::SeqCst);
    }

    /// The futex word now: read it before looking for a free slot, and
    /// sleep on the value read ([`Self::sleep`]), so that a wake-up between
    /// the look and the sleep is not lost.
    pub(super) fn wake_seq(&self) -> u32 {
        self.seq().load(Ordering::SeqCst)
    }

    /// **Wait**, one sleep: until `seq` moves on from `seen` (every free and
    /// every [`Self::wake`] moves it), at most `timeout` (`None`: no limit),
    /// or until a signal handler runs.
    pub(super) fn sleep(&self, seen: u32, timeout: Option<Duration>) -> Slept {
        match os::futex_wait(self.seq(), seen, timeout) {
            Ok(os::FutexWait::Returned) => Slept::Returned,
            Ok(os::FutexWait::Interrupted) => Slept::Interrupted,
            Err(_) => {
                // No futex here (a seccomp filter, say): sleep instead,
                // never spin.
                std::thread::sleep(timeout.map_or(NO_FUTEX_SLEEP, |t| t.min(NO_FUTEX_SLEEP)));
                Slept::Returned
            }
        }
    }

    /// The records, other than `mine`, whose current registration holds a
    /// slot, each once.
    pub(super) fn held_by(&self, mine: Registration) -> Vec<HeldBy> {
        let mut held: Vec<HeldBy> = Vec::new();
        let mut seen = RecordSet::new(self.records);
        for i in 0..self.slots {
            let token = self.owner(i).load(Ordering::Acquire);
            if token == 0 || token == mine.token {
                continue;
            }
            let (r, generation) = layout::split_token(token);
            let Some(r) = u32::try_from(r)
                .ok()
                .filter(|&r| r < self.records && r != mine.record)
            else {
                continue;
            };
            let state = self.state(r).load(Ordering::Acquire);
            if state != (generation << 1 | 1) || seen.contains(r) {
                continue;
            }
            seen.insert(r);
            let rec = layout::record(r);
            held.push(HeldBy {
                record: r,
                state,
                pid: self.map.u32_at(rec + R_PID).load(Ordering::Relaxed),
                pid_namespace: self.map.u64_at(rec + R_PIDNS).load(Ordering::Relaxed),
            });
        }
        held
    }

    /// Whether `held`'s registration is still the record's, and another
    /// open file description still holds the record's lock (any error
    /// counts as held).
    pub(super) fn still_held(&self, held: HeldBy) -> bool {
        self.state(held.record).load(Ordering::Acquire) == held.state
            && self.record_locked_by_other(held.record)
    }

    /// **Release**: gives back up to `n` slots holding `token`, starting
    /// at `hint`, one CAS each, and wakes as many waiters. Returns how many
    /// it gave back.
    #[inline]
    pub(super) fn give_back(&self, token: u64, n: u32, hint: &AtomicU32) -> u32 {
        let start = hint.load(Ordering::Relaxed);
        let mut freed = 0;
        for k in 0..self.slots {
            let i = (start + k) % self.slots;
            let owner = self.owner(i);
            if owner.load(Ordering::Relaxed) == token
                && owner
                    .compare_exchange(token, 0, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                crash::crash_point!("release.freed");
                freed += 1;
                if freed == n {
                    break;
                }
            }
        }
        if freed > 0 && self.waiters().load(Ordering::SeqCst) != 0 {
            self.wake();
        }
        freed
    }

    /// How many slots hold `token`, counting up to `at_most`.
    pub(super) fn count_held(&self, token: u64, at_most: u32) -> u32 {
        let mut held = 0;
        for i in 0..self.slots {
            if held == at_most {
                break;
            }
            if self.owner(i).load(Ordering::Acquire) == token {
                held += 1;
            }
        }
        held
    }

    /// **Detach**: gives back every slot of `mine` and frees its record;
    /// unless the semaphore is persistent, removes the name if no other
    /// process is attached ([`Self::remove_if_unused`]); then drops the
    /// record's lock.
    pub(super) fn detach(&self, mine: Registration) {
        let freed = self.free_token(mine.token);
        crash::crash_point!("close.freed");
        let (_, generation) = layout::split_token(mine.token);
        self.state(mine.record)
            .store(((generation + 1) & GEN_MASK) << 1, Ordering::Release);
        if self.flags() & FLAG_PERSISTENT == 0 {
            let _ = self.remove_if_unused();
        }
        let _ = self.lock_byte(mine.record, Lock::Unlock);
        if freed > 0 {
            self.wake();
        }
    }

    /// The number of free slots now.
    pub(super) fn value(&self) -> u32 {
        let free = (0..self.slots)
            .filter(|&i| {
                self.map
                    .load_u64(layout::slot(self.records, i) + S_OWNER, Ordering::Acquire)
                    == 0
            })
            .count();
        u32::try_from(free).unwrap_or(u32::MAX)
    }

    /// The live processes registered in the file now, other than through
    /// this open file description. (Inspection reads the file without a
    /// mapping, snapshot.rs; its tests check it against this.)
    #[cfg(test)]
    pub(super) fn attached(&self) -> u32 {
        let attached = (0..self.records)
            .filter(|&r| {
                self.map
                    .load_u64(layout::record(r) + R_STATE, Ordering::Acquire)
                    & 1
                    == 1
                    && self.record_locked_by_other(r)
            })
            .count();
        u32::try_from(attached).unwrap_or(u32::MAX)
    }

    /// Who holds slots now; `mine` (if this process is registered) counts
    /// as alive without a look at its lock, which this description holds.
    pub(super) fn holders(&self, mine: Option<Registration>) -> Vec<Holder> {
        let mut holders = Vec::new();
        // Each record's lock is looked at once, however many slots it holds.
        let (mut looked_at, mut locked) =
            (RecordSet::new(self.records), RecordSet::new(self.records));
        let mut locked_by_other = |r: u32| {
            if !looked_at.contains(r) {
                looked_at.insert(r);
                if self.record_locked_by_other(r) {
                    locked.insert(r);
                }
            }
            locked.contains(r)
        };
        for i in 0..self.slots {
            let slot = layout::slot(self.records, i);
            let token = self.map.load_u64(slot + S_OWNER, Ordering::Acquire);
            if token == 0 {
                continue;
            }
            let since = UNIX_EPOCH
                + Duration::from_nanos(self.map.load_u64(slot + S_SINCE, Ordering::Relaxed));
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
            let registered =
                self.map.load_u64(rec + R_STATE, Ordering::Acquire) == (generation << 1 | 1);
            holders.push(Holder {
                pid: self.map.load_u32(rec + R_PID, Ordering::Relaxed),
                uid: self.map.load_u32(rec + R_UID, Ordering::Relaxed),
                since,
                alive: registered && (mine.is_some_and(|m| m.token == token) || locked_by_other(r)),
            });
        }
        holders
    }
}

#[cfg(test)]
mod tests {
    use super::RecordSet;

    #[test]
    fn a_record_set_holds_each_record_once_and_finds_its_runs() {
        let mut set = RecordSet::new(200);
        assert!(set.is_empty() && !set.contains(0) && set.runs().is_empty());
        for r in [5, 3, 4, 63, 64, 65, 199, 4] {
            set.insert(r);
        }
        assert!(!set.is_empty() && set.contains(64) && !set.contains(6));
        assert_eq!(set.iter().collect::<Vec<_>>(), [3, 4, 5, 63, 64, 65, 199]);
        assert_eq!(set.runs(), [(3, 3), (63, 3), (199, 1)]);
    }
}
