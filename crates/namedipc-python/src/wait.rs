//! The one blocking-wait loop, shared by semaphore acquires and message
//! queue sends and receives: try at once with the interpreter attached,
//! then wait detached from it, in one piece or in slices, handling
//! signals, a `close()` from another thread, and the deadline.

use std::time::{Duration, Instant};

use namedipc::ObjectKind;
use pyo3::prelude::*;

use crate::args::Timeout;
use crate::errors;

/// A wait with a deadline sleeps in slices, then checks, with the
/// interpreter attached, whether its handle was closed or a signal arrived
/// unnoticed. A signal delivered to the waiting thread ends its sleep at
/// once (CPython installs its handlers without `SA_RESTART`, so the kernel
/// returns EINTR); the slice is only the backstop for a signal that landed
/// just before the thread fell asleep, or on another thread, and for a
/// `close()` that cannot wake the sleep. Waits without a deadline sleep in
/// one piece: a timed sleep costs a kernel timer each time the thread
/// blocks, which shows in ping-pong.
///
/// On the main thread, where Python runs signal handlers, the slice grows
/// with the wait, from [`FIRST_SLICE`] to [`WAIT_SLICE`]: a slice lasts as
/// long as the wait has lasted so far. A signal that lands just before the
/// first sleep (a Ctrl-C right as the wait begins, the likeliest moment for
/// it) is seen within 10 ms, and a long idle wait wakes twice a second
/// (each wake-up costs some 50-150 µs of CPU on a VM, most of it the
/// wake-up itself, so fewer is what keeps an idle wait cheap). Other
/// threads run no handlers: they sleep 500 ms slices from the start.
///
/// Except a wait that raises on a signal ([`OnSignal::Raise`], posix_ipc's
/// classes) on the main thread: it sleeps until its deadline in one piece,
/// as posix_ipc's single `sem_timedwait` does. A signal that lands as a
/// slice times out is handled on the way out of that sleep, which then
/// reports the timeout: the wait could not tell it from a signal that came
/// between two slices, and would go on where posix_ipc raises SignalError.
/// Such a wait shares posix_ipc's race (a signal just before the sleep is
/// handled at its end), and notices a `close()` from another thread when
/// it is next woken, as a wait without a deadline does.
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(500);

/// The first slice of a wait; see [`WAIT_SLICE`].
pub(crate) const FIRST_SLICE: Duration = Duration::from_millis(10);

/// The slices of one wait (see [`WAIT_SLICE`]).
pub(crate) struct Slices {
    started: Instant,
    /// Whether the waiting thread is the one that runs signal handlers.
    grow: bool,
}

impl Slices {
    /// The slices of a wait that begins now on the calling thread.
    pub(crate) fn begin(py: Python<'_>) -> Self {
        Self::on_thread(is_main_thread(py))
    }

    /// The slices of a wait that begins now on the main thread or another.
    fn on_thread(main: bool) -> Self {
        Self {
            started: Instant::now(),
            grow: main,
        }
    }

    /// The slices of a wait with a deadline that begins now on the calling
    /// thread and does `on_signal`; `None` when it sleeps in one piece (see
    /// [`WAIT_SLICE`]).
    fn for_wait(py: Python<'_>, on_signal: OnSignal) -> Option<Self> {
        let main = is_main_thread(py);
        match on_signal {
            OnSignal::Raise if main => None,
            OnSignal::Raise | OnSignal::Resume => Some(Self::on_thread(main)),
        }
    }

    /// Slices that do not grow, for a thread that cannot ask whether it is
    /// the main thread.
    pub(crate) fn fixed() -> Self {
        Self::on_thread(false)
    }

    /// The longest the wait sleeps next.
    pub(crate) fn next(&self) -> Duration {
        if self.grow {
            self.started.elapsed().clamp(FIRST_SLICE, WAIT_SLICE)
        } else {
            WAIT_SLICE
        }
    }
}

/// Whether the calling thread is the interpreter's main thread (the one
/// that runs signal handlers); on doubt, yes (the slices grow: a few more
/// wake-ups, never a late signal).
fn is_main_thread(py: Python<'_>) -> bool {
    let check = || -> PyResult<bool> {
        let threading = py.import("threading")?;
        let main = threading.call_method0("main_thread")?;
        Ok(main.is(&threading.call_method0("current_thread")?))
    };
    check().unwrap_or(true)
}

/// What a signal that interrupts a wait does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OnSignal {
    /// Run the Python handlers, then raise SignalError (posix_ipc).
    Raise,
    /// Run the Python handlers, then wait for the time that is left (PEP 475).
    Resume,
}

/// One try, as a wait asks its `attempt` closure for it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Attempt {
    /// Without blocking, with the interpreter attached.
    Now,
    /// Blocking at most this long (`None`: as long as it takes), detached
    /// from the interpreter. EINTR ends it early with `Error::Interrupted`.
    Wait(Option<Duration>),
}

/// What a wait does with what it took when the caller would never learn
/// that it took it: a signal handler that runs right after the wait raises
/// (a timeout signal, a KeyboardInterrupt), or, on waking, another thread
/// had closed the handle meanwhile.
pub(crate) enum Undo<G> {
    /// Nothing: it cannot be undone (a message sent or received has moved).
    /// The handler runs at the caller's next bytecode, as for any call.
    Never,
    /// If a handler raises, give it back with `G` before the exception
    /// propagates (a closed handle is the core's to deal with).
    IfHandlerRaises(G),
    /// Give it back with `G` if a handler raises, and also if the handle was
    /// closed (nobody could release it through the closed handle), then
    /// raise the "closed while waiting" error.
    IfHandlerRaisesOrClosed(G),
}

impl<T> Undo<fn(T) -> namedipc::Result<()>> {
    /// [`Undo::Never`], with a type for the give-back it never calls.
    pub(crate) const NEVER: Self = Self::Never;
}

/// A wait on one handle. Build it with the handle's details, then [`Wait::run`] it.
pub(crate) struct Wait<'a, O, F, G> {
    /// The kind of object, for messages.
    pub(crate) kind: ObjectKind,
    /// The object's name, for messages.
    pub(crate) name: &'a str,
    pub(crate) on_signal: OnSignal,
    /// Whether the handle is still open, asked after each wake.
    pub(crate) is_open: O,
    /// The Python exception for an error that ends the wait, other than a
    /// signal's.
    pub(crate) fail: F,
    pub(crate) undo: Undo<G>,
}

impl<O, F, G> Wait<'_, O, F, G>
where
    O: Fn() -> bool,
    F: Fn(namedipc::Error) -> PyErr,
{
    /// Runs `attempt` until it takes something (`Ok(Some(taken))`): at once
    /// if it can, else waiting as `timeout` says. `Ok(None)` when the time
    /// is up (at once for `Timeout::NoWait`). The caller checks beforehand
    /// that the handle is open.
    #[inline]
    pub(crate) fn run<T: Send>(
        self,
        py: Python<'_>,
        timeout: Timeout,
        mut attempt: impl FnMut(Attempt) -> namedipc::Result<Option<T>> + Send,
    ) -> PyResult<Option<T>>
    where
        G: FnOnce(T) -> namedipc::Result<()>,
    {
        if let Some(taken) = attempt(Attempt::Now).map_err(&self.fail)? {
            // The caller checked that the handle is open.
            return self.taken(py, taken, false);
        }
        self.run_after_try(py, timeout, attempt)
    }

    /// [`Wait::run`] for a caller that has just tried at once itself and
    /// found nothing: waits as `timeout` says without trying at once again.
    #[inline]
    pub(crate) fn run_after_try<T: Send>(
        self,
        py: Python<'_>,
        timeout: Timeout,
        attempt: impl FnMut(Attempt) -> namedipc::Result<Option<T>> + Send,
    ) -> PyResult<Option<T>>
    where
        G: FnOnce(T) -> namedipc::Result<()>,
    {
        let limit = match timeout {
            Timeout::NoWait => return Ok(None),
            Timeout::For(d) => Instant::now().checked_add(d),
            Timeout::Forever => None,
        };
        self.blocking(py, limit, attempt)
    }

    /// The waiting part of [`Wait::run`], until `limit` (`None`: no limit);
    /// out of line, so that the path that takes at once stays small.
    #[inline(never)]
    fn blocking<T: Send>(
        self,
        py: Python<'_>,
        limit: Option<Instant>,
        mut attempt: impl FnMut(Attempt) -> namedipc::Result<Option<T>> + Send,
    ) -> PyResult<Option<T>>
    where
        G: FnOnce(T) -> namedipc::Result<()>,
    {
        let slices = limit.and_then(|_| Slices::for_wait(py, self.on_signal));
        loop {
            // No deadline (or one beyond what the clock holds): sleep in one
            // piece; with one, until it or the end of the slice.
            let slice = limit.map(|at| {
                let left = at.saturating_duration_since(Instant::now());
                slices
                    .as_ref()
                    .map_or(left, |slices| left.min(slices.next()))
            });
            match py.detach(|| attempt(Attempt::Wait(slice))) {
                Ok(Some(taken)) => return self.taken(py, taken, true),
                Ok(None) => {}
                Err(namedipc::Error::Interrupted { .. }) => {
                    py.check_signals()?;
                    if let OnSignal::Raise = self.on_signal {
                        return Err(errors::interrupted(self.kind, self.name));
                    }
                }
                Err(e) => return Err((self.fail)(e)),
            }
            py.check_signals()?;
            if !(self.is_open)() {
                return Err(errors::closed_while_waiting(py, self.kind, self.name));
            }
            if limit.is_some_and(|at| Instant::now() >= at) {
                return Ok(None);
            }
        }
    }

    /// What a wait that took `taken` returns, as `undo` says. Signal
    /// handlers run here, with what was taken still in hand: a signal that
    /// arrived meanwhile would otherwise raise in the caller right after this
    /// returns, before it could learn what it holds, and the slot were lost.
    /// `after_waiting`: the handle may have been closed while it waited.
    #[inline]
    fn taken<T>(self, py: Python<'_>, taken: T, after_waiting: bool) -> PyResult<Option<T>>
    where
        G: FnOnce(T) -> namedipc::Result<()>,
    {
        let (give_back, if_closed) = match self.undo {
            Undo::Never => return Ok(Some(taken)),
            Undo::IfHandlerRaises(give_back) => (give_back, false),
            Undo::IfHandlerRaisesOrClosed(give_back) => (give_back, after_waiting),
        };
        if let Err(raised) = py.check_signals() {
            give_back(taken).map_err(&self.fail)?;
            return Err(raised);
        }
        if if_closed && !(self.is_open)() {
            give_back(taken).map_err(&self.fail)?;
            return Err(errors::closed_while_waiting(py, self.kind, self.name));
        }
        Ok(Some(taken))
    }
}
