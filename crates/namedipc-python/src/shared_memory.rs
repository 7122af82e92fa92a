//! `namedipc.SharedMemory`: posix_ipc 1.3's SharedMemory, plus `.buf`.

use pyo3::prelude::*;

/// Adds the shared memory classes, functions and constants to the module.
pub(crate) fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
