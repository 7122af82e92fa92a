//! What `__init__` opened, set once for the life of a Python handle. Every
//! handle class keeps its opened object in an [`InitOnce`], so the rules are
//! the same everywhere: a second `__init__` is refused before it opens
//! anything, and a handle whose `__init__` never ran (a subclass that forgot
//! `super().__init__`) raises TypeError instead of touching nothing.

use std::sync::OnceLock;

use namedipc::ObjectKind;
use pyo3::prelude::*;

use crate::errors;

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
