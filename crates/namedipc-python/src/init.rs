//! What `__init__` opened, set once for the life of a Python handle. The
//! rules are the same for every handle class: a second `__init__` is refused
//! before it opens anything, and a handle whose `__init__` never ran (a
//! subclass that forgot `super().__init__`) raises TypeError instead of
//! touching nothing.
//!
//! A class whose opened object is read without a lock (the semaphores, the
//! Redis semaphore) keeps it in an [`InitOnce`]. A class that has a mutex
//! for its state anyway (SharedMemory, MessageQueue, whose opens and closes
//! are hot) keeps what `__init__` opened in that one mutex, as an
//! `Option` that is `None` until then, and words the same two errors with
//! [`errors::already_initialised`] and [`errors::uninitialised`]: a
//! set-once cell beside the mutex costs every open about 120 instructions.
//! Those two store what they opened under the mutex when `__init__` is
//! called (another thread may call it on the same handle at the same time),
//! and without taking it when the constructor's fast path has just made the
//! handle and no other thread can reach it ([`Handle`]): each taking is two
//! atomic read-modify-writes, some 10 ns on the development machine, where
//! posix_ipc's whole open and close of a segment take 700.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use namedipc::ObjectKind;
use pyo3::prelude::*;

use crate::errors;

/// The handle that `__init__`'s body stores what it opened in.
pub(crate) enum Handle<'a, T> {
    /// A Python object other threads may reach: its state is locked.
    Shared(&'a T),
    /// One only this thread holds, not yet a Python object.
    New(&'a mut T),
}

impl<'a, T> Handle<'a, T> {
    /// The handle's state, the `Mutex` that `field` picks out of it:
    /// taken with `lock` if other threads may reach the handle, else
    /// reached through `&mut`, without its lock.
    pub(crate) fn state<S>(
        self,
        lock: impl FnOnce(&'a T) -> MutexGuard<'a, S>,
        field: impl FnOnce(&'a mut T) -> &'a mut Mutex<S>,
    ) -> State<'a, S> {
        match self {
            Self::Shared(this) => State::Locked(lock(this)),
            Self::New(this) => State::Unshared(
                field(this)
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner),
            ),
        }
    }
}

/// A handle's state as [`Handle::state`] reaches it.
pub(crate) enum State<'a, S> {
    Locked(MutexGuard<'a, S>),
    Unshared(&'a mut S),
}

impl<S> Deref for State<'_, S> {
    type Target = S;

    fn deref(&self) -> &S {
        match self {
            Self::Locked(guard) => guard,
            Self::Unshared(state) => state,
        }
    }
}

impl<S> DerefMut for State<'_, S> {
    fn deref_mut(&mut self) -> &mut S {
        match self {
            Self::Locked(guard) => guard,
            Self::Unshared(state) => state,
        }
    }
}

/// A value `__init__` sets once; `kind` names the handle in messages.
pub(crate) struct InitOnce<T> {
    cell: OnceLock<T>,
    kind: ObjectKind,
}

impl<T> InitOnce<T> {
    pub(crate) const fn new(kind: ObjectKind) -> Self {
        Self {
            cell: OnceLock::new(),
            kind,
        }
    }

    /// Refuses a second `__init__`: call before opening or creating anything.
    pub(crate) fn ensure_unset(&self) -> PyResult<()> {
        match self.cell.get() {
            None => Ok(()),
            Some(_) => Err(errors::already_initialised(self.kind)),
        }
    }

    /// Stores what `__init__` opened (refused if another `__init__` won a race).
    pub(crate) fn set(&self, value: T) -> PyResult<&T> {
        self.cell
            .set(value)
            .map_err(|_| errors::already_initialised(self.kind))?;
        self.get()
    }

    /// What `__init__` opened, or TypeError if it never ran.
    pub(crate) fn get(&self) -> PyResult<&T> {
        self.cell
            .get()
            .ok_or_else(|| errors::uninitialised(self.kind))
    }

    /// What `__init__` opened, if it ran (for teardown paths that must not raise).
    pub(crate) fn try_get(&self) -> Option<&T> {
        self.cell.get()
    }
}
