//! Clean-up at a normal end of the program. A creating `NamedSemaphore`
//! removes its name, and a `RobustSemaphore` detaches (the last user
//! removing the file), when it is closed or collected; but at exit a handle
//! can still be referenced — by a daemon thread blocked in `acquire()`, or
//! by the asyncio glue's waiter thread — and then is never collected. Such
//! handles are registered here (weakly) and closed by `atexit`, which the
//! package registers.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyList;

/// A `weakref.WeakSet` of the handles to close at exit.
static AT_EXIT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn handles(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    let set = AT_EXIT.get_or_try_init(py, || {
        py.import("weakref")?
            .getattr("WeakSet")?
            .call0()
            .map(Bound::unbind)
    })?;
    Ok(set.bind(py))
}

/// Closes `handle` at exit unless it is closed or collected first.
pub(crate) fn close_at_exit(handle: &Bound<'_, PyAny>) -> PyResult<()> {
    handles(handle.py())?
        .call_method1("add", (handle,))
        .map(drop)
}

/// `_close_all_at_exit()`: closes every registered handle still alive.
/// A failure to close one does not stop the others.
#[pyfunction]
pub(crate) fn _close_all_at_exit(py: Python<'_>) -> PyResult<()> {
    // Nothing was ever registered: nothing to do, and no weakref to import.
    let Some(registered) = AT_EXIT.get(py) else {
        return Ok(());
    };
    let alive = PyList::new(
        py,
        registered
            .bind(py)
            .try_iter()?
            .collect::<PyResult<Vec<_>>>()?,
    )?;
    for handle in alive.iter() {
        let _ = handle.call_method0("close");
    }
    Ok(())
}
