//! Waits with a deadline: the one loop behind every timed or interruptible
//! wait of the POSIX primitives (a semaphore's acquire, a queue's send and
//! receive). Deadlines are points on the monotonic clock, so that a change
//! of the wall clock neither shortens nor stretches a wait.

use std::io;
use std::time::Duration;

use crate::sys;

/// The point on the monotonic clock at which a wait gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline {
    at: Duration,
}

impl Deadline {
    /// `timeout` from now; a timeout too long for the clock saturates (a
    /// deadline centuries away is as good as none).
    pub(crate) fn after(timeout: Duration) -> Self {
        Self {
            at: sys::monotonic_now().saturating_add(timeout),
        }
    }

    /// The deadline as a time on the monotonic clock ([`sys::monotonic_now`]).
    pub(crate) fn at(self) -> Duration {
        self.at
    }

    /// Whether the monotonic clock has reached the deadline.
    pub(crate) fn has_passed(self) -> bool {
        sys::monotonic_now() >= self.at
    }
}

/// What a signal handler that runs during a wait does to it (the OS ends
/// the blocking call with EINTR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnSignal {
    /// Go on waiting, to the same deadline.
    KeepWaiting,
    /// End the wait with the EINTR error, so that the caller can act on the
    /// signal (a binding runs its signal handlers) and call again.
    Return,
}

/// Runs `attempt` until it succeeds, fails, or `deadline` (`None`: no limit)
/// has passed.
///
/// `attempt` is one blocking call that waits at most until the deadline it
/// is given: `Ok(Some(_))` when it got what it waited for, `Ok(None)` when
/// its wait timed out. A timeout before the deadline has passed on the
/// monotonic clock (an OS call that measures the wall clock, which jumped)
/// goes round again; EINTR does as `on_signal` says; any other error ends
/// the wait. `Ok(None)` means the time is up.
pub(crate) fn wait_until<T>(
    deadline: Option<Deadline>,
    on_signal: OnSignal,
    mut attempt: impl FnMut(Option<Deadline>) -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    loop {
        match attempt(deadline) {
            Ok(Some(done)) => return Ok(Some(done)),
            Ok(None) if deadline.is_some_and(|d| !d.has_passed()) => {}
            Ok(None) => return Ok(None),
            Err(e)
                if e.kind() == io::ErrorKind::Interrupted && on_signal == OnSignal::KeepWaiting => {
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interrupted() -> io::Error {
        io::Error::from_raw_os_error(libc::EINTR)
    }

    #[test]
    fn keeps_waiting_through_signals_or_returns_them() {
        let mut signals = 2;
        let got = wait_until(None, OnSignal::KeepWaiting, |_| {
            if signals == 0 {
                return Ok(Some("done"));
            }
            signals -= 1;
            Err(interrupted())
        });
        assert_eq!(got.unwrap(), Some("done"));

        let got = wait_until::<()>(None, OnSignal::Return, |_| Err(interrupted()));
        assert_eq!(got.unwrap_err().kind(), io::ErrorKind::Interrupted);
    }

    #[test]
    fn an_early_timeout_goes_round_until_the_deadline() {
        let deadline = Deadline::after(Duration::from_millis(20));
        let mut attempts = 0;
        // An attempt that times out at once, as if the wall clock had jumped.
        let got = wait_until::<()>(Some(deadline), OnSignal::KeepWaiting, |d| {
            assert_eq!(d, Some(deadline));
            attempts += 1;
            Ok(None)
        });
        assert_eq!(got.unwrap(), None);
        assert!(deadline.has_passed());
        assert!(attempts > 1, "{attempts}");
    }

    #[test]
    fn without_a_deadline_a_timeout_ends_the_wait() {
        let mut attempts = 0;
        let got = wait_until::<()>(None, OnSignal::KeepWaiting, |_| {
            attempts += 1;
            Ok(None)
        });
        assert_eq!((got.unwrap(), attempts), (None, 1));
    }

    #[test]
    fn other_errors_end_the_wait() {
        let got = wait_until::<()>(
            Some(Deadline::after(Duration::from_secs(60))),
            OnSignal::KeepWaiting,
            |_| Err(io::Error::from_raw_os_error(libc::EBADF)),
        );
        assert_eq!(got.unwrap_err().raw_os_error(), Some(libc::EBADF));
    }
}
