//! The state behind a Python semaphore handle. The semaphore opened by
//! `__init__` stays mapped for the life of the Python object, so a thread
//! that waits on it can never touch freed memory; `close()` only marks the
//! handle closed (and gives up a creator's name), which every later call,
//! and every waiter when it wakes (see `wait.rs`), checks.

use std::sync::atomic::{AtomicBool, Ordering};

use namedipc::{ObjectKind, Owner, Semaphore};
use pyo3::prelude::*;

use crate::args::Timeout;
use crate::errors;
use crate::init::InitOnce;
use crate::wait::{Attempt, OnSignal, Undo, Wait};

struct Opened {
    sem: Semaphore,
    mode: u32,
}

/// A handle's state: what `__init__` opened, and whether it is still open.
pub(crate) struct SemSlot {
    opened: InitOnce<Opened>,
    open: AtomicBool,
    /// "semaphore", for messages.
    kind: ObjectKind,
}

impl SemSlot {
    pub(crate) fn new(kind: ObjectKind) -> Self {
        Self {
            opened: InitOnce::new(kind),
            open: AtomicBool::new(false),
            kind,
        }
    }

    /// Refuses a second `__init__` before it opens (or creates) anything.
    pub(crate) fn ensure_uninitialised(&self) -> PyResult<()> {
        self.opened.ensure_unset()
    }

    /// Installs the semaphore `__init__` opened; a handle is initialised once.
    pub(crate) fn install(&self, sem: Semaphore, mode: u32) -> PyResult<()> {
        self.ensure_uninitialised()?;
        self.opened.set(Opened { sem, mode })?;
        self.open.store(true, Ordering::Release);
        Ok(())
    }

    /// Closes the handle (a creator also gives up the name, if it owns it);
    /// `false` if it was already closed.
    pub(crate) fn close(&self) -> bool {
        let was_open = self.open.swap(false, Ordering::AcqRel);
        if was_open {
            if let Some(opened) = self.opened.try_get() {
                opened.sem.unlink_if_owner();
            }
        }
        was_open
    }

    /// The name, or a TypeError if `__init__` never ran.
    pub(crate) fn name(&self) -> PyResult<&str> {
        Ok(self.opened()?.sem.name())
    }

    /// Whether this handle created the semaphore (readable after close, too).
    pub(crate) fn created(&self) -> PyResult<bool> {
        Ok(self.opened()?.sem.created())
    }

    /// The mode the handle reports as `.mode`: posix_ipc's Semaphore the
    /// one asked for, NamedSemaphore the object's.
    pub(crate) fn mode(&self) -> PyResult<u32> {
        Ok(self.opened()?.mode)
    }

    /// The semaphore's owner and mode at open (readable after close, too).
    pub(crate) fn owner(&self) -> PyResult<Owner> {
        Ok(self.opened()?.sem.owner())
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    fn opened(&self) -> PyResult<&Opened> {
        self.opened.get()
    }

    /// The semaphore, if the handle is open.
    fn sem(&self) -> PyResult<&Semaphore> {
        let opened = self.opened()?;
        if self.is_open() {
            Ok(&opened.sem)
        } else {
            Err(errors::closed(self.kind, opened.sem.name()))
        }
    }

    /// The semaphore if the handle is open, without making the Python error
    /// that says why not.
    pub(crate) fn open_semaphore(&self) -> Option<&Semaphore> {
        let opened = self.opened.try_get()?;
        self.is_open().then_some(&opened.sem)
    }

    /// Runs `f` on the semaphore if the handle is open.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Semaphore) -> R) -> PyResult<R> {
        Ok(f(self.sem()?))
    }

    /// Gives one slot back.
    pub(crate) fn release(&self) -> PyResult<()> {
        self.with(Semaphore::release)?.map_err(errors::to_py_err)
    }

    /// Free slots now.
    pub(crate) fn value(&self) -> PyResult<u32> {
        self.with(Semaphore::value)?.map_err(errors::to_py_err)
    }

    /// Removes the semaphore's name; handles already open keep working.
    pub(crate) fn unlink(&self) -> PyResult<()> {
        namedipc::semaphore::unlink(self.name()?).map_err(errors::to_py_err)
    }

    /// Takes one slot: at once if one is free, else waiting as `timeout`
    /// says, detached from the interpreter. `Ok(false)` when the time is up.
    pub(crate) fn acquire(
        &self,
        py: Python<'_>,
        timeout: Timeout,
        on_signal: OnSignal,
    ) -> PyResult<bool> {
        self.acquire_with(py, timeout, on_signal, false)
    }

    /// [`Self::acquire`] for a caller that has just found no slot free with
    /// its own try: waits without trying at once again.
    pub(crate) fn acquire_after_try(
        &self,
        py: Python<'_>,
        timeout: Timeout,
        on_signal: OnSignal,
    ) -> PyResult<bool> {
        self.acquire_with(py, timeout, on_signal, true)
    }

    fn acquire_with(
        &self,
        py: Python<'_>,
        timeout: Timeout,
        on_signal: OnSignal,
        tried: bool,
    ) -> PyResult<bool> {
        let sem = self.sem()?;
        let wait = Wait {
            kind: self.kind,
            name: sem.name(),
            on_signal,
            is_open: || self.is_open(),
            fail: errors::to_py_err,
            // Taken, but the caller would never learn it (a signal handler
            // raised, or the handle was closed meanwhile and nobody could
            // release through it): give it back.
            undo: Undo::IfHandlerRaisesOrClosed(|()| sem.release()),
        };
        let attempt = |attempt| {
            let taken = match attempt {
                Attempt::Now => sem.try_acquire(),
                Attempt::Wait(limit) => sem.acquire_interruptible(limit),
            };
            taken.map(|taken| taken.then_some(()))
        };
        let taken = if tried {
            wait.run_after_try(py, timeout, attempt)?
        } else {
            wait.run(py, timeout, attempt)?
        };
        Ok(taken.is_some())
    }
}
