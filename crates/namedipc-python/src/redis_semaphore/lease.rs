//! `namedipc.Lease`: one holder as the server describes it, a named tuple.

use std::time::UNIX_EPOCH;

use namedipc::redis::Lease;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

static LEASE_CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The fields of `namedipc.Lease`, with their docs.
const LEASE_FIELDS: [(&str, &str); 6] = [
    ("host", "Host name of the holder's machine."),
    ("pid", "Process id of the holder on its host."),
    (
        "since",
        "When the slot was taken, in seconds since the epoch, by the server's clock.",
    ),
    (
        "expires_in",
        "Seconds the lease has left, by the server's clock, at the time of the call.",
    ),
    (
        "fence",
        "The grant's fencing token: larger than every token given before.",
    ),
    ("slot", "The slot held, 0 to slots - 1."),
];

/// `namedipc.Lease`, a named tuple made on first use (so that importing
/// namedipc imports no `collections`).
fn lease_class(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    let cls = LEASE_CLASS.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("module", "namedipc")?;
        let fields: Vec<&str> = LEASE_FIELDS.iter().map(|(field, _)| *field).collect();
        let cls = py
            .import("collections")?
            .getattr("namedtuple")?
            .call(("Lease", fields), Some(&kwargs))?
            .cast_into::<PyType>()?;
        cls.setattr(
            "__doc__",
            "One holder of a RedisSemaphore at the time of the call: Lease(host, pid, since, expires_in, fence, slot).",
        )?;
        for (field, doc) in LEASE_FIELDS {
            cls.getattr(field)?.setattr("__doc__", doc)?;
        }
        Ok(cls.unbind())
    })?;
    Ok(cls.bind(py))
}

/// `_lease_class()`: `namedipc.Lease` (the package's `__getattr__` asks for it).
#[pyfunction]
pub(super) fn _lease_class(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    lease_class(py).cloned()
}

pub(super) fn lease_tuple<'py>(py: Python<'py>, lease: &Lease) -> PyResult<Bound<'py, PyAny>> {
    let since = lease
        .since
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    lease_class(py)?.call1((
        lease.host.as_str(),
        lease.pid,
        since,
        lease.expires_in.as_secs_f64(),
        lease.fence,
        lease.slot,
    ))
}
