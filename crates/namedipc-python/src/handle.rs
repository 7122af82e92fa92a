//! The state behind a Python semaphore handle, and the one blocking-wait
//! loop. A handle can be closed by one thread while another waits on it, so
//! the open semaphore is shared through an `Arc`: a waiter keeps it mapped
//! until its wait ends, and notices the close within one wait slice.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use namedipc::Semaphore;
use pyo3::prelude::*;

use crate::args::Timeout;
use crate::errors;

/// How long one blocking wait lasts before the waiter checks, with the
/// interpreter attached, whether its handle was closed or a signal arrived
/// unnoticed (one that landed between the free-slot check and the wait).
const WAIT_SLICE: Duration = Duration::from_millis(20);

/// What a signal that interrupts a wait does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OnSignal {
    /// Run the Python handlers, then raise SignalError (posix_ipc).
    Raise,
    /// Run the Python handlers, then wait for the time that is left (PEP 475).
    Resume,
}

#[derive(Default)]
struct State {
    /// The open semaphore; `None` once closed.
    sem: Option<Arc<Semaphore>>,
    /// The name given to `__init__`; `None` until it has run.
    name: Option<String>,
    mode: u32,
}

/// A handle's state: what `__init__` opened, until `close()`.
pub(crate) struct SemSlot {
    state: RwLock<State>,
    /// "Semaphore" or "NamedSemaphore", for messages.
    what: &'static str,
}

impl SemSlot {
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            state: RwLock::default(),
            what,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Installs a newly opened semaphore, closing any earlier one.
    pub(crate) fn install(&self, sem: Semaphore, mode: u32) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.name = Some(sem.name().to_owned());
        state.mode = mode;
        state.sem = Some(Arc::new(sem));
    }

    /// Closes the handle; `false` if it was already closed.
    pub(crate) fn close(&self) -> bool {
        let taken = self
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .sem
            .take();
        taken.is_some()
    }

    /// The name, or a TypeError if `__init__` never ran.
    pub(crate) fn name(&self) -> PyResult<String> {
        self.read()
            .name
            .clone()
            .ok_or_else(|| errors::uninitialised(self.what))
    }

    pub(crate) fn mode(&self) -> u32 {
        self.read().mode
    }

    pub(crate) fn is_open(&self) -> bool {
        self.read().sem.is_some()
    }

    /// Runs `f` on the open semaphore without taking a reference count: the
    /// fast path for operations that never block.
    pub(crate) fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Arc<Semaphore>) -> R,
    ) -> PyResult<R> {
        let state = self.read();
        match (&state.sem, &state.name) {
            (Some(sem), _) => Ok(f(sem)),
            (None, Some(name)) => Err(errors::closed(py, self.what, name)),
            (None, None) => Err(errors::uninitialised(self.what)),
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
        let sem = self.with(py, Arc::clone)?;
        loop {
            let slice = limit.map_or(WAIT_SLICE, |at| {
                at.saturating_duration_since(Instant::now()).min(WAIT_SLICE)
            });
            match py.detach(|| sem.wait_interruptible(Some(slice))) {
                Ok(true) => return Ok(true),
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
    }
}
