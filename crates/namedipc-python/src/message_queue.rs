//! `namedipc.MessageQueue`: posix_ipc 1.3's MessageQueue, without its crashes.

use pyo3::prelude::*;

/// Adds the message queue classes, functions and constants to the module.
pub(crate) fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
