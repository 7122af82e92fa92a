//! Callback notifications: checking the `(callable, param)` a user asks
//! for, and running it in the thread the OS starts when a message arrives.

use std::sync::{Arc, Mutex};

use namedipc::mqueue::MessageQueue;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::args::type_name;

/// The parts of a (callable, param) notification.
pub(super) fn callback_and_param(
    notification: &Bound<'_, PyAny>,
) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
    let allowed = || {
        PyValueError::new_err(format!(
            "notification must be None (cancel), a signal number, or a (callable, param) tuple, not {}",
            notification
                .repr()
                .map_or_else(|_| type_name(notification), |r| r.to_string())
        ))
    };
    let tuple = notification.cast::<PyTuple>().map_err(|_| allowed())?;
    if tuple.len() != 2 {
        return Err(allowed());
    }
    let callable = tuple.get_item(0)?;
    if !callable.is_callable() {
        return Err(allowed());
    }
    Ok((callable.unbind(), tuple.get_item(1)?.unbind()))
}

/// What a thread notification runs, in the thread the OS started for it.
/// `queue` kept the handle's descriptor, and so the kernel's request, open
/// until now, even if the Python object was deleted (`close()` empties it).
pub(super) fn run_callback(
    callable: Py<PyAny>,
    param: Py<PyAny>,
    queue: Arc<Mutex<Option<Arc<MessageQueue>>>>,
) {
    // During interpreter shutdown nothing can run; the references are then
    // released whenever Python next runs, if ever.
    Python::try_attach(move |py| {
        if let Err(err) = callable.call1(py, (param,)) {
            report_callback_error(py, err, callable.bind(py));
        }
        // Released while attached, where dropping a reference is immediate.
        drop(callable);
        drop(queue);
    });
}

/// Reports an exception that a notification callback raised, as an
/// exception in a thread: through `threading.excepthook`, or, should that
/// fail, `sys.unraisablehook`.
fn report_callback_error(py: Python<'_>, err: PyErr, callable: &Bound<'_, PyAny>) {
    let hook = || -> PyResult<()> {
        let threading = py.import("threading")?;
        let hook_args = threading.getattr("ExceptHookArgs")?.call1(((
            err.get_type(py),
            err.value(py),
            err.traceback(py),
            py.None(),
        ),))?;
        threading.getattr("excepthook")?.call1((hook_args,))?;
        Ok(())
    };
    if let Err(hook_err) = hook() {
        err.write_unraisable(py, Some(callable));
        hook_err.write_unraisable(py, None);
    }
}
