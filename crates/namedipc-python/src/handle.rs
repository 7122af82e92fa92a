//! The state behind a Python semaphore handle, and the one blocking-wait
//! loop. The semaphore opened by `__init__` stays mapped for the life of the
//! Python object, so a thread that waits on it can never touch freed memory;
//! `close()` only marks the handle closed (and gives up a creator's name),
//! which every later call, and every waiter when it wakes, checks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use namedipc::Semaphore;
use pyo3::prelude::*;

use crate::args::Timeout;
use crate::errors;

/// A wait with a deadline sleeps at most this long at a time, then checks,
/// with the interpreter attached, whether its handle was closed or a signal
/// arrived unnoticed (one that landed between the free-slot check and the
/// wait). Waits without a deadline sleep in one piece: a timed sleep costs a
/// kernel timer each time the thread blocks, which shows in ping-pong.
const WAIT_SLICE: Duration = Duration::from_millis(20);

/// What a signal that interrupts a wait does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OnSignal {
    /// Run the Python handlers, then raise SignalError (posix_ipc).
    Raise,
    /// Run the Python handlers, then wait for the time that is left (PEP 475).
    Resume,
}

struct Opened {
    sem: Semaphore,
    mode: u32,
}

/// A handle's state: what `__init__` opened, and whether it is still open.
pub(crate) struct SemSlot {
    opened: OnceLock<Opened>,
    open: AtomicBool,
    /// "semaphore", for messages.
    what: &'static str,
}

impl SemSlot {
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            opened: OnceLock::new(),
            open: AtomicBool::new(false),
            what,
        }
    }

    /// Refuses a second `__init__` before it opens (or creates) anything.
    pub(crate) fn ensure_uninitialised(&self) -> PyResult<()> {
        match self.opened.get() {
            None => Ok(()),
            Some(_) => Err(errors::already_initialised(self.what)),
        }
    }

    /// Installs the semaphore `__init__` opened; a handle is initialised once.
    pub(crate) fn install(&self, sem: Semaphore, mode: u32) -> PyResult<()> {
        self.ensure_uninitialised()?;
        self.opened
            .set(Opened { sem, mode })
            .map_err(|_| errors::already_initialised(self.what))?;
        self.open.store(true, Ordering::Release);
        Ok(())
    }

    /// Closes the handle (a creator also gives up the name, if it owns it);
    /// `false` if it was already closed.
    pub(crate) fn close(&self) -> bool {
        let was_open = self.open.swap(false, Ordering::AcqRel);
        if was_open {
            if let Some(opened) = self.opened.get() {
                opened.sem.unlink_if_owner();
            }
        }
        was_open
    }

    /// The name, or a TypeError if `__init__` never ran.
    pub(crate) fn name(&self) -> PyResult<&str> {
        Ok(self.opened()?.sem.name())
    }

    pub(crate) fn mode(&self) -> PyResult<u32> {
        Ok(self.opened()?.mode)
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    fn opened(&self) -> PyResult<&Opened> {
        self.opened
            .get()
            .ok_or_else(|| errors::uninitialised(self.what))
    }

    /// Runs `f` on the semaphore if the handle is open.
    pub(crate) fn with<R>(&self, py: Python<'_>, f: impl FnOnce(&Semaphore) -> R) -> PyResult<R> {
        let opened = self.opened()?;
        if self.is_open() {
            Ok(f(&opened.sem))
        } else {
            Err(errors::closed(py, self.what, opened.sem.name()))
        }
    }

    /// Takes one slot: at once if one is free, else waiting as `timeout`
    /// says, detached from the interpreter. `Ok(false)` when the time is up.
    pub(crate) fn acquire(
        &self,
        py: Python<'_>,
        timeout: Timeout,
        on_signal: OnSignal,
    ) -> PyResult<bool> {
        let sem = &self.opened()?.sem;
        if self
            .with(py, |sem| sem.try_wait())?
            .map_err(errors::to_py_err)?
        {
            return Ok(true);
        }
        let limit = match timeout {
            Timeout::NoWait => return Ok(false),
            Timeout::For(d) => Instant::now().checked_add(d),
            Timeout::Forever => None,
        };
        loop {
            // No deadline (or one beyond what the clock holds): sleep in one piece.
            let slice =
                limit.map(|at| at.saturating_duration_since(Instant::now()).min(WAIT_SLICE));
            match py.detach(|| sem.wait_interruptible(slice)) {
                Ok(true) => break,
                Ok(false) => {}
                Err(namedipc::Error::Interrupted { .. }) => {
                    py.check_signals()?;
                    if let OnSignal::Raise = on_signal {
                        return Err(errors::interrupted(py, self.what, sem.name()));
                    }
                }
                Err(e) => return Err(errors::to_py_err(e)),
            }
            py.check_signals()?;
            if !self.is_open() {
                return Err(errors::closed_while_waiting(py, self.what, sem.name()));
            }
            if limit.is_some_and(|at| Instant::now() >= at) {
                return Ok(false);
            }
        }
        if !self.is_open() {
            // Taken through a handle that was closed meanwhile: nobody could
            // release it through this handle, so give it back.
            sem.post().map_err(errors::to_py_err)?;
            return Err(errors::closed_while_waiting(py, self.what, sem.name()));
        }
        Ok(true)
    }
}
