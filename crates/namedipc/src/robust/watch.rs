//! The watcher: a thread per attachment, running while threads of this
//! process wait on it (and a moment after), that learns of a holder's death
//! from the kernel instead of polling for it. It `poll`s a pidfd for each
//! record that holds a slot; a pidfd that becomes readable is only the
//! alarm clock: the watcher then runs the Reclaim transition, which frees
//! a record's slots only through its lock byte (never on doubt) and wakes
//! the waiters. A waiter that is woken and finds no free slot tells the
//! watcher (the holders changed), which then looks at them again. Holders
//! it cannot watch so (no pidfd for their pid: another PID namespace; or
//! its process ended and the lock lives on) are looked at again on a short
//! back-off, and every held slot at least every [`BACKSTOP`].

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use super::attachment::Attachment;
use super::protocol::{HeldBy, Registration};
use crate::sys::monotonic_now;
use crate::sys::pidfd;

/// Every held slot is looked at this often while somebody waits, whatever
/// the pidfds say: what catches a holder whose lock went away while its
/// process lives on (it `exec`ed without handing its descriptor on) or a
/// holder whose pid names another process here (another PID namespace).
pub(super) const BACKSTOP: Duration = Duration::from_secs(1);
/// [`BACKSTOP`], which debug builds let tests stretch (to the seconds that
/// `NAMEDIPC_WATCH_BACKSTOP_S` says), so that a test can tell a death seen
/// through its pidfd from one the backstop found.
fn backstop() -> Duration {
    #[cfg(debug_assertions)]
    {
        static STRETCHED: OnceLock<Option<Duration>> = OnceLock::new();
        if let Some(stretched) = *STRETCHED.get_or_init(|| {
            std::env::var("NAMEDIPC_WATCH_BACKSTOP_S")
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Duration::from_secs)
        }) {
            return stretched;
        }
    }
    BACKSTOP
}

/// A holder that cannot be watched through a pidfd is looked at again
/// after this, then after twice as long each time, up to [`SUSPECT_MAX`].
const SUSPECT_FIRST: Duration = Duration::from_millis(1);
const SUSPECT_MAX: Duration = Duration::from_millis(250);
/// A watcher with no waiters left stays this long for the next one.
const LINGER: Duration = Duration::from_secs(1);
/// The watcher's stack: it calls no deep code.
const STACK: usize = 128 * 1024;

/// What the watcher and the waiters of one attachment share.
#[derive(Debug)]
pub(super) struct Shared {
    /// Written to wake the watcher.
    kick: OwnedFd,
    /// Set by a waiter that wants a new look at the holders, cleared by
    /// the watcher just before it looks.
    kick_pending: AtomicBool,
    /// Waiters past their grace that count on this watcher; changed only
    /// under the registry's lock, so that the watcher's decision to end
    /// cannot cross a new waiter's arrival.
    pub(super) engaged: AtomicUsize,
}

impl Shared {
    /// Asks the watcher to look at the holders again.
    pub(super) fn kick(&self) {
        if !self.kick_pending.swap(true, Ordering::SeqCst) {
            // A watcher that cannot be woken still has its backstop.
            let _ = pidfd::eventfd_signal(self.kick.as_fd());
        }
    }
}

/// Whether this kernel (and its seccomp filter, if any) lets a process
/// have pidfds: without them waiters poll, as they did before watchers.
pub(super) fn supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| pidfd::pidfd_open(std::process::id()).is_ok())
}

/// A new watcher for `attachment`, counting one engaged waiter, started.
/// The caller holds the registry's lock.
pub(super) fn start(attachment: &Arc<Attachment>) -> std::io::Result<Arc<Shared>> {
    let shared = Arc::new(Shared {
        kick: pidfd::eventfd()?,
        kick_pending: AtomicBool::new(true),
        engaged: AtomicUsize::new(1),
    });
    let weak = Arc::downgrade(attachment);
    let theirs = Arc::clone(&shared);
    pidfd::spawn_with_signals_blocked("namedipc-watch", STACK, move || run(&weak, &theirs))?;
    Ok(shared)
}

/// A holder watched through the pidfd of its process.
struct Watched {
    held: HeldBy,
    pidfd: OwnedFd,
}

/// A holder looked at again at `next` (monotonic).
struct Suspect {
    held: HeldBy,
    next: Duration,
    backoff: Duration,
}

/// The watcher's own state between polls.
#[derive(Default)]
struct Watch {
    watched: Vec<Watched>,
    suspects: Vec<Suspect>,
    next_backstop: Duration,
    /// This process's PID namespace: a holder that says it lives in
    /// another has a pid that means nothing here.
    pid_namespace: u64,
}

impl Watch {
    fn clear(&mut self) {
        self.watched.clear();
        self.suspects.clear();
    }

    /// Reclaims what is dead, then brings the set of watched holders up to
    /// date; `fired[i]`: the pidfd of `watched[i]` became readable.
    fn look(&mut self, attachment: &Attachment, mine: Registration, fired: &[bool], now: Duration) {
        let file = attachment.file();
        file.reclaim(mine);
        // By record (held_by names each once): a look is linear in the
        // number of holders, however many there are.
        let mut before: HashMap<u32, (Watched, bool)> = std::mem::take(&mut self.watched)
            .into_iter()
            .enumerate()
            .map(|(i, w)| (w.held.record, (w, fired.get(i).copied() == Some(true))))
            .collect();
        let mut suspected: HashMap<u32, Suspect> = std::mem::take(&mut self.suspects)
            .into_iter()
            .map(|s| (s.held.record, s))
            .collect();
        let mut watched = Vec::new();
        let mut suspects = Vec::new();
        for held in file.held_by(mine) {
            if let Some((known, fired)) = before
                .remove(&held.record)
                .filter(|(known, _)| known.held == held)
            {
                if !fired {
                    watched.push(known);
                    continue;
                }
                // Its process ended, yet the registration stands and the
                // lock is held: a reclaimer at work, or the description
                // lives on in another process. Looked at again soon.
                suspects.push(Suspect {
                    held,
                    next: now + SUSPECT_FIRST,
                    backoff: SUSPECT_FIRST,
                });
                continue;
            }
            if let Some(mut suspect) = suspected
                .remove(&held.record)
                .filter(|suspect| suspect.held == held)
            {
                if suspect.next <= now {
                    suspect.backoff = (suspect.backoff * 2).min(SUSPECT_MAX);
                    suspect.next = now + suspect.backoff;
                }
                suspects.push(suspect);
                continue;
            }
            // A holder of another PID namespace: its pid means nothing here.
            let here = held.pid_namespace == 0 || held.pid_namespace == self.pid_namespace;
            match here.then(|| pidfd::pidfd_open(held.pid).ok()).flatten() {
                // Opened while the registration stood and its lock was held
                // (checked after the open): the pidfd is of the process
                // that holds it, unless its pid names another process here.
                Some(pidfd) if file.still_held(held) => watched.push(Watched { held, pidfd }),
                _ => suspects.push(Suspect {
                    held,
                    next: now + SUSPECT_FIRST,
                    backoff: SUSPECT_FIRST,
                }),
            }
        }
        self.watched = watched;
        self.suspects = suspects;
    }

    /// How long the next poll may sleep.
    fn timeout(&self, now: Duration) -> Duration {
        self.suspects
            .iter()
            .map(|s| s.next)
            .chain(std::iter::once(self.next_backstop))
            .min()
            .map_or(backstop(), |next| next.saturating_sub(now))
    }
}

fn run(weak: &Weak<Attachment>, shared: &Arc<Shared>) {
    let mut watch = Watch {
        pid_namespace: pidfd::pid_namespace(),
        ..Watch::default()
    };
    let mut fired: Vec<bool> = Vec::new();
    let mut idle_since: Option<Duration> = None;
    loop {
        let now = monotonic_now();
        let timeout = {
            let Some(attachment) = weak.upgrade() else {
                return;
            };
            // Cleared before anything is looked at, and whether or not
            // there are waiters: the next kick must write the eventfd.
            let kicked = shared.kick_pending.swap(false, Ordering::SeqCst);
            if shared.engaged.load(Ordering::SeqCst) == 0 {
                let since = *idle_since.get_or_insert(now);
                watch.clear();
                if now.saturating_sub(since) >= LINGER && attachment.stop_watching(shared) {
                    return;
                }
                LINGER.saturating_sub(now.saturating_sub(since))
            } else {
                if idle_since.take().is_some() {
                    watch.next_backstop = Duration::ZERO;
                }
                let due =
                    now >= watch.next_backstop || watch.suspects.iter().any(|s| s.next <= now);
                if kicked || due || fired.iter().any(|&f| f) {
                    if let Ok(mine) = attachment.registration() {
                        if now >= watch.next_backstop {
                            watch.next_backstop = now + backstop();
                        }
                        watch.look(&attachment, mine, &fired, now);
                    } else {
                        // Detached (its waiters are leaving): nothing to
                        // watch, and no readable pidfd to spin on.
                        watch.clear();
                    }
                }
                watch.timeout(now)
            }
        };
        let fds: Vec<BorrowedFd<'_>> = std::iter::once(shared.kick.as_fd())
            .chain(watch.watched.iter().map(|w| w.pidfd.as_fd()))
            .collect();
        if pidfd::poll_readable(&fds, Some(timeout), &mut fired).is_err() {
            // Cannot poll (out of memory, say): the backstop's pace.
            std::thread::sleep(timeout.min(BACKSTOP));
            fired.clear();
        }
        if fired.first().copied() == Some(true) {
            pidfd::eventfd_drain(shared.kick.as_fd());
        }
        if !fired.is_empty() {
            fired.remove(0);
        }
    }
}
