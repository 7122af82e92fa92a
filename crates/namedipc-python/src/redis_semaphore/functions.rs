//! The module's functions beside the class: `unlink_redis_semaphore`, and
//! the unpickling helper that reopens a pickled handle.

use std::sync::Arc;
use std::time::Duration;

use namedipc::redis::RedisSemaphore;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyType;

use super::arguments::{connect_timeout_arg, url_arg};
use super::PyRedisSemaphore;
use crate::args;
use crate::errors::to_py_err;
use crate::exit;
use crate::pickling;

/// Unpickling helper: a `cls` instance on the semaphore `name` at `url`.
#[pyfunction]
pub(super) fn _reopen_redis_semaphore<'py>(
    cls: &Bound<'py, PyType>,
    name: &str,
    url: &str,
    slots: u32,
    lease: f64,
) -> PyResult<Bound<'py, PyAny>> {
    pickling::reopen(cls, |obj| {
        let py = obj.py();
        let this = obj.cast::<PyRedisSemaphore>()?.get();
        this.sem.ensure_unset()?;
        let lease = Duration::try_from_secs_f64(lease).map_err(|_| {
            PyValueError::new_err(format!(
                "lease must be a number of seconds > 0, not {lease}"
            ))
        })?;
        let sem = py
            .detach(|| {
                RedisSemaphore::options()
                    .url(url)
                    .initial_value(slots)
                    .lease(lease)
                    .open(name)
            })
            .map_err(to_py_err)?;
        this.sem.set(Arc::new(sem))?;
        exit::close_at_exit(obj)
    })
}

/// Removes the redis semaphore `name` from the server at `url` (default:
/// $NAMEDIPC_REDIS, then redis://127.0.0.1:6379/0); NotFoundError if it is
/// not there.
#[pyfunction]
#[pyo3(signature = (name, *, url = None, connect_timeout = None), text_signature = "(name, *, url=None, connect_timeout=5.0)")]
pub(super) fn unlink_redis_semaphore(
    py: Python<'_>,
    name: &Bound<'_, PyAny>,
    url: Option<&Bound<'_, PyAny>>,
    connect_timeout: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let name = args::name(name)?;
    let url = url_arg(url)?;
    let connect_timeout = connect_timeout_arg(connect_timeout)?;
    py.detach(|| namedipc::redis::unlink(&url, &name, connect_timeout))
        .map_err(to_py_err)
}
