//! Taking and giving back slots: one acquire attempt is one script, a wait
//! repeats it whenever a wake token or the earliest lease's expiry says a
//! slot may be free, and a release frees the slot only under an unexpired
//! lease.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::held::{self, Found};
use super::scripts::scripts;
use super::wait::{Outcome, Pending};
use super::{invocation, Grant, RedisSemaphore, KIND};
use crate::error::{Error, Result};
use crate::sys;

/// How often a waiting caller looks at its `keep_waiting` at least.
const CHECK_EVERY: Duration = Duration::from_millis(20);

/// How long a waiter's registration on the server outlasts the wait it
/// announced, so that it is not dropped while it blocks.
const REGISTRATION_SLACK: Duration = Duration::from_secs(2);

/// What one acquire attempt found.
enum Attempt {
    Granted(Grant),
    /// No slot free; the earliest lease runs out this far ahead (None: no
    /// holder at all).
    Busy(Option<Duration>),
}

impl RedisSemaphore {
    /// Waits until a slot is free and takes it.
    pub fn acquire(&self) -> Result<Grant> {
        self.acquire_while(None, &mut || true)?
            .ok_or_else(|| self.busy())
    }

    /// Takes a slot if one is free now (one round trip).
    pub fn try_acquire(&self) -> Result<Option<Grant>> {
        self.check_open()?;
        let holder = new_holder()?;
        match self.attempt(holder, Duration::ZERO, false)? {
            Attempt::Granted(grant) => Ok(Some(grant)),
            Attempt::Busy(_) => Ok(None),
        }
    }

    /// Waits at most `timeout` for a slot.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Grant>> {
        self.acquire_while(Some(timeout), &mut || true)
    }

    /// Waits up to `timeout` (None: for ever). While it waits it calls
    /// `keep_waiting` at least every 20 ms (the rule for Python's waits),
    /// locally, sending no command to the server for it. When
    /// `keep_waiting` returns false the wait ends
    /// with `Error::Interrupted` and no slot is left taken (a wake-up it
    /// consumed goes to the next waiter).
    ///
    /// The wait is pushed: the caller blocks in BLPOP on the semaphore's
    /// wake list (on a connection of a waiter thread), woken by a release,
    /// and tries again by itself when the earliest lease runs out.
    pub fn acquire_while(
        &self,
        timeout: Option<Duration>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Option<Grant>> {
        self.check_open()?;
        let inner = &self.inner;
        let end = timeout.and_then(|t| Instant::now().checked_add(t));
        let holder = new_holder()?;
        // An idle waiter sends one BLPOP per this long at most.
        let cap = inner.lease;
        let mut pending: Option<Pending> = None;
        let mut registered = false;
        let outcome = 'wait: loop {
            let now = Instant::now();
            let left = end.map(|end| end.saturating_duration_since(now));
            let announce = if left == Some(Duration::ZERO) {
                Duration::ZERO
            } else {
                left.map_or(cap, |l| l.min(cap)) + REGISTRATION_SLACK
            };
            let attempt = self.attempt(holder, announce, registered);
            registered |= !announce.is_zero();
            let earliest = match attempt {
                Ok(Attempt::Granted(grant)) => break Ok(Some(grant)),
                Err(e) => break Err(e),
                Ok(Attempt::Busy(earliest)) => earliest,
            };
            if left == Some(Duration::ZERO) {
                break Ok(None);
            }
            let now = Instant::now();
            let mut wake_at = now + cap;
            if let Some(earliest) = earliest {
                // Tried again just after the earliest lease runs out.
                wake_at = wake_at.min(now + earliest + Duration::from_millis(1));
            }
            if let Some(end) = end {
                wake_at = wake_at.min(end);
            }
            if pending.is_none() {
                let block = left.map_or(cap, |l| l.min(cap));
                pending = Some(inner.pool.start(block, holder_hex(holder)));
            }
            loop {
                if !keep_waiting() {
                    break 'wait Err(Error::Interrupted {
                        kind: KIND,
                        name: inner.name.clone(),
                    });
                }
                if inner.closed.load(Ordering::SeqCst) {
                    break 'wait Err(self.closed_error());
                }
                let now = Instant::now();
                if now >= wake_at {
                    break;
                }
                let slice = CHECK_EVERY.min(wake_at - now);
                let Some(waiting) = &pending else {
                    std::thread::sleep(slice);
                    continue;
                };
                match waiting.poll(slice) {
                    Outcome::NotYet => {}
                    Outcome::Done(Ok(_)) => {
                        pending = None;
                        break;
                    }
                    Outcome::Done(Err(_)) => {
                        // The waiter's connection failed: wait on the
                        // local timer alone (at most a second) and let the
                        // next attempt say whether the server is there.
                        pending = None;
                        wake_at = wake_at.min(Instant::now() + Duration::from_secs(1));
                    }
                }
            }
        };
        let granted = matches!(outcome, Ok(Some(_)));
        // An unreachable server is not asked again: the registration runs
        // out by itself.
        let reachable = !matches!(outcome, Err(Error::Unavailable { .. }));
        let mut pass_on = registered && !granted && reachable;
        if let Some(waiting) = pending {
            let (took_token, unblock) = waiting.abandon();
            pass_on |= took_token;
            if let (Some(id), true) = (unblock, reachable) {
                let _ = self.with_main(|con| {
                    ::redis::cmd("CLIENT")
                        .arg("UNBLOCK")
                        .arg(id)
                        .query::<i64>(con)
                });
            }
        }
        if pass_on {
            let id = holder_hex(holder);
            let _ = self.with_main(|con| {
                invocation(&scripts().leave, &inner.keys)
                    .arg(&id)
                    .invoke::<i64>(con)
            });
        }
        outcome
    }

    /// One acquire attempt for `holder`, registering it as a waiter for
    /// `announce` if no slot is free (zero: not at all); `registered` if an
    /// earlier attempt of the same wait may have registered it.
    fn attempt(&self, holder: u128, announce: Duration, registered: bool) -> Result<Attempt> {
        let inner = &self.inner;
        let id = holder_hex(holder);
        let lease_us = micros(inner.lease);
        let wait_us = micros(announce);
        let sent = Instant::now();
        // A fresh id has no record yet, unless this very request was sent
        // before (the link resends after a lost reply) or an earlier
        // attempt of the wait got one.
        let mut flags = if registered { 3 } else { 0 };
        let answer = self.with_main(|con| {
            let this = flags;
            flags |= 1;
            invocation(&scripts().acquire, &inner.keys)
                .arg(&id)
                .arg(inner.slots)
                .arg(lease_us)
                .arg(inner.pid.load(Ordering::Relaxed))
                .arg(&inner.host)
                .arg(wait_us)
                .arg(this)
                .invoke::<Vec<i64>>(con)
        })?;
        match answer.as_slice() {
            [1, slot, fence, remaining] => {
                let (Ok(slot), Ok(fence)) = (u32::try_from(*slot), u64::try_from(*fence)) else {
                    return Err(self.corrupt("a grant has a negative slot or fence"));
                };
                let grant = Grant {
                    fence,
                    slot,
                    holder,
                };
                let remaining = Duration::from_micros(u64::try_from(*remaining).unwrap_or(0));
                if inner.held.add(grant, sent, remaining) {
                    held::start(
                        Arc::clone(&inner.held),
                        Arc::clone(&inner.server),
                        inner.keys.clone(),
                        inner.name.clone(),
                    );
                }
                if self.is_closed() {
                    // Closed by another thread meanwhile: close() may have
                    // given back the grants before this one was added.
                    inner.held.remove(grant);
                    let _ = self.with_main(|con| {
                        invocation(&scripts().release, &inner.keys)
                            .arg(&id)
                            .invoke::<i64>(con)
                    });
                    return Err(self.closed_error());
                }
                Ok(Attempt::Granted(grant))
            }
            [0, earliest] => Ok(Attempt::Busy(
                u64::try_from(*earliest).ok().map(Duration::from_micros),
            )),
            _ => Err(self.corrupt("the server's answer to an acquire has an unknown form")),
        }
    }

    /// Gives back `grant`. `LeaseLost` if its lease was lost (then nothing
    /// but its own record, if the server still had it, is freed);
    /// `NotHeld` if this handle does not hold it.
    pub fn release(&self, grant: Grant) -> Result<()> {
        self.check_open()?;
        let inner = &self.inner;
        let Found::Held { lost } = inner.held.find(grant) else {
            return Err(Error::NotHeld {
                kind: KIND,
                name: inner.name.clone(),
            });
        };
        let id = grant.holder_id();
        let mut sends = 0;
        let freed = self.with_main(|con| {
            sends += 1;
            invocation(&scripts().release, &inner.keys)
                .arg(&id)
                .invoke::<i64>(con)
        })?;
        // A resend (the first reply was lost with its connection) finds
        // nothing when the first one freed the slot: while the local
        // deadline has not passed, the lease was still good when it arrived.
        let resent_after_release = sends > 1 && !inner.held.is_lost(grant);
        inner.held.remove(grant);
        if (freed == 1 || resent_after_release) && !lost {
            Ok(())
        } else {
            Err(Error::LeaseLost {
                name: inner.name.clone(),
            })
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn holder_hex(holder: u128) -> String {
    format!("{holder:032x}")
}

/// A fresh holder id from the OS's CSPRNG: no two clients pick the same.
fn new_holder() -> Result<u128> {
    let mut bytes = [0u8; 16];
    sys::fill_random(&mut bytes).map_err(|source| Error::Os {
        operation: "getrandom",
        kind: KIND,
        name: String::new(),
        source,
    })?;
    Ok(u128::from_ne_bytes(bytes))
}
