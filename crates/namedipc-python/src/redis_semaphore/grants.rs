//! The grants a Python handle took and who took them (thread and asyncio
//! task), so that `fence`, `slot`, `lost` and `release()` speak of the
//! caller's own slot; and the detached wait that runs signal handlers.

use std::sync::{Arc, MutexGuard, PoisonError};
use std::thread::ThreadId;
use std::time::Duration;

use namedipc::redis::{Grant, RedisSemaphore};
use namedipc::Error;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use super::{PyRedisSemaphore, KIND};
use crate::args::Timeout;
use crate::errors::{self, to_py_err};

/// Who took a grant: the thread, and the asyncio task it ran in (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Owner {
    thread: ThreadId,
    task: usize,
}

impl PyRedisSemaphore {
    pub(super) fn sem(&self) -> PyResult<&Arc<RedisSemaphore>> {
        self.sem.get()
    }

    /// The semaphore, or ExistentialError if the handle is closed.
    pub(super) fn open_sem(&self) -> PyResult<&Arc<RedisSemaphore>> {
        let sem = self.sem()?;
        if sem.is_closed() {
            return Err(errors::closed(KIND, sem.name()));
        }
        Ok(sem)
    }

    pub(super) fn owners(&self) -> MutexGuard<'_, Vec<(Owner, Grant)>> {
        self.owners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers `grant` as the caller's latest.
    pub(super) fn adopt(&self, py: Python<'_>, grant: Grant) {
        let owner = owner(py);
        self.owners().push((owner, grant));
    }

    pub(super) fn forget(&self, grant: Grant) {
        self.owners().retain(|(_, g)| *g != grant);
    }

    /// The caller's latest grant still held; else as `fallback` says.
    pub(super) fn current(
        &self,
        py: Python<'_>,
        sem: &RedisSemaphore,
        fallback: Fallback,
    ) -> Option<Grant> {
        let held = sem.held();
        if held.is_empty() {
            self.owners().clear();
            return None;
        }
        let me = owner(py);
        let mut owners = self.owners();
        owners.retain(|(_, g)| held.contains(g));
        if let Some((_, grant)) = owners.iter().rev().find(|(o, _)| *o == me) {
            return Some(*grant);
        }
        match fallback {
            Fallback::OnlyOne if held.len() == 1 => Some(held[0]),
            Fallback::OnlyOne => None,
            Fallback::Oldest => Some(held[0]),
        }
    }

    /// Takes a slot: at once, or waiting as `timeout` says, detached.
    pub(super) fn acquire_for(&self, py: Python<'_>, timeout: Timeout) -> PyResult<bool> {
        let sem = self.open_sem()?;
        let grant = match timeout {
            Timeout::NoWait => py.detach(|| sem.try_acquire()).map_err(to_py_err)?,
            Timeout::For(limit) => wait(py, sem, Some(limit))?,
            Timeout::Forever => wait(py, sem, None)?,
        };
        let Some(grant) = grant else {
            return Ok(false);
        };
        // A signal that came meanwhile would raise in the caller before it
        // learns what it holds: its handler runs here, and if it raises, the
        // slot goes back first.
        if let Err(raised) = py.check_signals() {
            let _ = py.detach(|| sem.release(grant));
            return Err(raised);
        }
        self.adopt(py, grant);
        Ok(true)
    }

    /// Gives back `grant` (the caller checked that the handle holds it).
    pub(super) fn release_grant(
        &self,
        py: Python<'_>,
        sem: &RedisSemaphore,
        grant: Grant,
    ) -> PyResult<()> {
        let released = py.detach(|| sem.release(grant));
        match released {
            // Lost or not held: either way it is no longer this handle's.
            Ok(()) | Err(Error::LeaseLost { .. } | Error::NotHeld { .. }) => self.forget(grant),
            // Unreachable: the handle still holds it; a later release may work.
            Err(_) => {}
        }
        released.map_err(to_py_err)
    }

    /// Gives back a grant nobody will learn of (best effort).
    pub(super) fn give_back(&self, py: Python<'_>, grant: Grant) -> PyResult<()> {
        let sem = self.sem()?;
        let _ = py.detach(|| sem.release(grant));
        self.forget(grant);
        Ok(())
    }

    pub(super) fn nothing_held(sem: &RedisSemaphore) -> PyErr {
        PyValueError::new_err(format!(
            "redis semaphore '{}': this handle holds no slot to release (released more often than acquired)",
            sem.name()
        ))
    }
}

/// What `current` falls back on when the caller holds no grant of its own.
#[derive(Clone, Copy)]
pub(super) enum Fallback {
    /// The handle's grant if it holds exactly one (for the properties).
    OnlyOne,
    /// The handle's oldest grant (for `release()`).
    Oldest,
}

/// Waits for a slot up to `timeout`, detached; signal handlers run at least
/// every 50 ms (the core's `keep_waiting`), and one that raises ends the
/// wait with its exception and no slot taken.
fn wait(
    py: Python<'_>,
    sem: &RedisSemaphore,
    timeout: Option<Duration>,
) -> PyResult<Option<Grant>> {
    let mut raised: Option<PyErr> = None;
    let outcome = py.detach(|| {
        sem.acquire_while(timeout, &mut || {
            !sem.is_closed()
                && Python::attach(|py| match py.check_signals() {
                    Ok(()) => true,
                    Err(e) => {
                        raised = Some(e);
                        false
                    }
                })
        })
    });
    match outcome {
        Ok(grant) => Ok(grant),
        Err(Error::Interrupted { .. }) => Err(raised.unwrap_or_else(|| {
            if sem.is_closed() {
                errors::closed_while_waiting(py, KIND, sem.name())
            } else {
                errors::interrupted(KIND, sem.name())
            }
        })),
        Err(e) => Err(to_py_err(e)),
    }
}

/// The caller: this thread, and the asyncio task running in it, if any.
fn owner(py: Python<'_>) -> Owner {
    Owner {
        thread: std::thread::current().id(),
        task: current_task(py),
    }
}

/// `id()` of the asyncio task running in this thread, 0 if none. Only a
/// program that imported asyncio can be in a task, so nothing is imported here.
fn current_task(py: Python<'_>) -> usize {
    static MODULES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    let find = || -> PyResult<usize> {
        let modules = MODULES.get_or_try_init(py, || {
            py.import("sys")?
                .getattr("modules")?
                .cast_into::<PyDict>()
                .map(Bound::unbind)
                .map_err(PyErr::from)
        })?;
        let Some(asyncio) = modules.bind(py).get_item("asyncio")? else {
            return Ok(0);
        };
        let running = asyncio.call_method0("_get_running_loop")?;
        if running.is_none() {
            return Ok(0);
        }
        let task = asyncio.call_method1("current_task", (running,))?;
        Ok(if task.is_none() {
            0
        } else {
            task.as_ptr() as usize
        })
    };
    find().unwrap_or(0)
}
