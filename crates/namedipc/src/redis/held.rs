//! The grants a handle holds and the keep-alive thread that renews them.
//!
//! Each grant carries a local deadline on the monotonic clock: the send
//! time of the last request that renewed it (or acquired it), plus the
//! lease the server granted from then, less a margin. When it passes the
//! grant is lost, whether or not the server could be asked; a grant the
//! server refuses to renew is lost at once.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::keys::Keys;
use super::scripts::scripts;
use super::server::{Link, Server};
use super::Grant;

/// The part of a lease the local deadline leaves unused, for the rates of
/// the two clocks to differ and a reply to be slow: a twentieth.
pub(crate) fn margin(lease: Duration) -> Duration {
    (lease / 20).max(Duration::from_millis(1))
}

/// One grant held.
#[derive(Debug)]
struct Entry {
    grant: Grant,
    /// When the lease was last renewed (the request's send time).
    renewed: Instant,
    /// Past this, the grant is lost.
    deadline: Instant,
    /// The server refused to renew it.
    refused: bool,
}

impl Entry {
    fn is_lost(&self, now: Instant) -> bool {
        self.refused || now >= self.deadline
    }
}

#[derive(Debug, Default)]
struct State {
    entries: Vec<Entry>,
    stop: bool,
    /// When the keep-alive thread means to wake next (None: not before it
    /// is told).
    planned: Option<Instant>,
    started: bool,
}

/// The grants of one handle, shared with its keep-alive thread.
#[derive(Debug)]
pub(crate) struct Held {
    state: Mutex<State>,
    changed: Condvar,
    lease: Duration,
}

/// What a release finds.
pub(crate) enum Found {
    /// The grant is held; `lost` if its lease is already lost.
    Held { lost: bool },
    /// This handle does not hold it.
    NotHeld,
}

impl Held {
    pub(crate) fn new(lease: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            lease,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a new grant whose lease, by the server, runs `remaining` from
    /// a point after `sent`. Returns true if the keep-alive thread is to be
    /// started.
    pub(crate) fn add(&self, grant: Grant, sent: Instant, remaining: Duration) -> bool {
        let mut state = self.lock();
        let deadline = (sent + remaining)
            .checked_sub(margin(self.lease))
            .unwrap_or(sent);
        state.entries.push(Entry {
            grant,
            renewed: sent,
            deadline,
            refused: false,
        });
        let due = sent + self.lease / 3;
        if state.planned.is_none_or(|planned| planned > due) {
            self.changed.notify_all();
        }
        let start = !state.started && !state.stop;
        state.started = true;
        start
    }

    /// Whether `grant` is held, and lost.
    pub(crate) fn find(&self, grant: Grant) -> Found {
        let now = Instant::now();
        self.lock()
            .entries
            .iter()
            .find(|e| e.grant == grant)
            .map_or(Found::NotHeld, |e| Found::Held {
                lost: e.is_lost(now),
            })
    }

    /// Forgets `grant`.
    pub(crate) fn remove(&self, grant: Grant) {
        self.lock().entries.retain(|e| e.grant != grant);
    }

    /// The grants held, oldest first.
    pub(crate) fn grants(&self) -> Vec<Grant> {
        self.lock().entries.iter().map(|e| e.grant).collect()
    }

    /// Forgets every grant and returns them.
    pub(crate) fn take_all(&self) -> Vec<Grant> {
        let mut state = self.lock();
        state.entries.drain(..).map(|e| e.grant).collect()
    }

    /// Whether `grant` is held and lost.
    pub(crate) fn is_lost(&self, grant: Grant) -> bool {
        matches!(self.find(grant), Found::Held { lost: true })
    }

    /// Stops the keep-alive thread.
    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.changed.notify_all();
    }

    /// The holder ids due for renewal now, waiting until there are some;
    /// None when the thread is to stop.
    fn due(&self) -> Option<Vec<Grant>> {
        let mut state = self.lock();
        loop {
            if state.stop {
                return None;
            }
            let now = Instant::now();
            let next = state
                .entries
                .iter()
                .filter(|e| !e.is_lost(now))
                .map(|e| e.renewed + self.lease / 3)
                .min();
            state.planned = next;
            match next {
                None => {
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Some(at) if at <= now => {
                    state.planned = None;
                    let live = state
                        .entries
                        .iter()
                        .filter(|e| !e.is_lost(now))
                        .map(|e| e.grant)
                        .collect();
                    return Some(live);
                }
                Some(at) => {
                    state = self
                        .changed
                        .wait_timeout(state, at - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    /// Applies the answer to a renewal sent at `sent`: `renewed[i]` for
    /// `grants[i]`.
    fn renewed(&self, grants: &[Grant], renewed: &[bool], sent: Instant) {
        let mut state = self.lock();
        let now = Instant::now();
        for (grant, ok) in grants.iter().zip(renewed) {
            if let Some(entry) = state.entries.iter_mut().find(|e| e.grant == *grant) {
                if entry.is_lost(now) {
                    // Lost stays lost: the holder may have been told.
                    continue;
                }
                if *ok {
                    entry.renewed = sent;
                    entry.deadline = entry
                        .deadline
                        .max(sent + self.lease.saturating_sub(margin(self.lease)));
                } else {
                    entry.refused = true;
                }
            }
        }
    }

    /// Marks that a renewal failed: the next try comes a little later.
    fn failed(&self, grants: &[Grant], retry_at: Instant) {
        let mut state = self.lock();
        let back = retry_at.checked_sub(self.lease / 3).unwrap_or(retry_at);
        for entry in state
            .entries
            .iter_mut()
            .filter(|e| grants.contains(&e.grant))
        {
            entry.renewed = entry.renewed.max(back);
        }
    }
}

/// Starts the keep-alive thread of a handle: it renews every grant in
/// `held` each lease/3, on a connection of its own, until told to stop.
pub(crate) fn start(held: Arc<Held>, server: Arc<Server>, keys: Keys, name: String) {
    let lease = held.lease;
    // A renewal that takes longer than a third of the lease is given up and
    // tried again: a reply that late would leave little of the lease.
    let io_timeout = (lease / 3).max(Duration::from_millis(5));
    let spawned = thread::Builder::new()
        .name("namedipc-redis-keepalive".to_owned())
        .spawn(move || {
            let mut link = Link::new(io_timeout);
            let lease_us = u64::try_from(lease.as_micros()).unwrap_or(u64::MAX);
            while let Some(grants) = held.due() {
                let sent = Instant::now();
                let answer = link.call(&server, &name, |con| {
                    let mut invocation = scripts().renew.prepare_invoke();
                    for key in keys.all() {
                        invocation.key(key);
                    }
                    invocation.arg(lease_us);
                    for grant in &grants {
                        invocation.arg(grant.holder_id());
                    }
                    invocation.invoke::<Vec<i64>>(con)
                });
                match answer {
                    Ok(flags) if flags.len() == grants.len() => {
                        let ok: Vec<bool> = flags.iter().map(|f| *f == 1).collect();
                        held.renewed(&grants, &ok, sent);
                    }
                    _ => held.failed(
                        &grants,
                        Instant::now() + (lease / 12).max(Duration::from_millis(1)),
                    ),
                }
            }
        });
    if spawned.is_err() {
        // Without the thread nothing renews: every grant runs out at its
        // local deadline and is reported lost, as when the server is away.
    }
}
