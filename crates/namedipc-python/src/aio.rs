//! The asyncio faces of the handles (`acquire_async`, `async with`,
//! `send_async`, `receive_async`): the methods check their arguments here,
//! with the sync API's rules and messages, then return a coroutine of the
//! pure-Python glue in `namedipc._aio`, where the event loop lives.
//!
//! The bindings do not import the package above them: `namedipc/__init__.py`
//! hands the glue down with `_install_asyncio_glue(loader)`, a callable that
//! imports it, called the first time an async method is used (so that a
//! program that never awaits never imports asyncio).

use pyo3::call::PyCallArgs;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyString;

use crate::args::{self, Negative, Timeout};

/// The callable that imports the glue, as the package handed it down.
static GLUE_LOADER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// The glue, once loaded.
static GLUE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `_install_asyncio_glue(loader)`: `loader()` returns the module with the
/// asyncio glue (`namedipc._aio`). Called once, by `namedipc/__init__.py`.
#[pyfunction]
pub(crate) fn _install_asyncio_glue(loader: &Bound<'_, PyAny>) -> PyResult<()> {
    GLUE_LOADER
        .set(loader.py(), loader.clone().unbind())
        .map_err(|_| {
            pyo3::exceptions::PyRuntimeError::new_err(
                "namedipc's asyncio glue is already installed",
            )
        })
}

/// The coroutine `<glue>.<function>(*args)`.
pub(crate) fn coroutine<'py>(
    function: &Bound<'py, PyString>,
    args: impl PyCallArgs<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = function.py();
    let glue = GLUE.get_or_try_init(py, || {
        let loader = GLUE_LOADER.get(py).ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err(
                "namedipc's asyncio glue is not installed: import namedipc, not namedipc._namedipc alone",
            )
        })?;
        loader.bind(py).call0().map(Bound::unbind)
    })?;
    glue.bind(py).getattr(function)?.call1(args)
}

/// `acquire_async(timeout=None)` of a semaphore handle `sem`: checks the
/// timeout now, with the sync rules, and returns the glue's coroutine.
pub(crate) fn acquire_async<'py>(
    sem: &Bound<'py, PyAny>,
    timeout: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let timeout = seconds(args::timeout(timeout, Negative::NoWait)?);
    coroutine(intern!(sem.py(), "acquire_async"), (sem, timeout))
}

/// `async with sem`: the coroutines of `__aenter__` and `__aexit__`.
pub(crate) fn aenter<'py>(sem: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    coroutine(intern!(sem.py(), "aenter"), (sem,))
}

pub(crate) fn aexit<'py>(sem: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    coroutine(intern!(sem.py(), "aexit"), (sem,))
}

/// A checked timeout as the glue takes it: None (no limit) or seconds >= 0.
pub(crate) fn seconds(timeout: Timeout) -> Option<f64> {
    match timeout {
        Timeout::NoWait => Some(0.0),
        Timeout::For(d) => Some(d.as_secs_f64()),
        Timeout::Forever => None,
    }
}
