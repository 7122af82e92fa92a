//! The one place where namedipc errors become Python exceptions. The
//! exception classes are defined in `namedipc/_errors.py`, where multiple
//! inheritance (ExistsError is also a FileExistsError) is natural.

use namedipc::Error;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The Python exception classes, by the name they have in `namedipc._errors`.
#[derive(Clone, Copy)]
pub(crate) enum Class {
    Error,
    Existential,
    Exists,
    NotFound,
    Permissions,
    Busy,
    Signal,
    Corrupt,
}

impl Class {
    fn attr(self) -> &'static str {
        match self {
            Self::Error => "Error",
            Self::Existential => "ExistentialError",
            Self::Exists => "ExistsError",
            Self::NotFound => "NotFoundError",
            Self::Permissions => "PermissionsError",
            Self::Busy => "BusyError",
            Self::Signal => "SignalError",
            Self::Corrupt => "CorruptError",
        }
    }
}

static ERRORS_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Builds an exception of `class` with `message`; `errno` is set on the
/// classes that derive from OSError, so `e.errno` works as users expect.
pub(crate) fn new_error(
    py: Python<'_>,
    class: Class,
    message: String,
    errno: Option<i32>,
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let module = ERRORS_MODULE
            .get_or_try_init(py, || py.import("namedipc._errors").map(Bound::unbind))?;
        let cls = module
            .bind(py)
            .getattr(class.attr())?
            .cast_into::<PyType>()?;
        let exc = cls.call1((message.clone(),))?;
        if let Some(errno) = errno {
            if exc.is_instance_of::<pyo3::exceptions::PyOSError>() {
                exc.setattr("errno", errno)?;
            }
        }
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// Converts a core error into the matching Python exception.
pub(crate) fn to_py_err(err: Error) -> PyErr {
    Python::attach(|py| {
        let errno = err.errno();
        let message = err.to_string();
        let class = match &err {
            Error::AlreadyExists { .. } => Class::Exists,
            Error::NotFound { .. } => Class::NotFound,
            Error::PermissionDenied { .. } => Class::Permissions,
            Error::Busy { .. } => Class::Busy,
            Error::Interrupted { .. } => Class::Signal,
            Error::Corrupt { .. } => Class::Corrupt,
            Error::InvalidName { .. } | Error::InvalidArgument(_) | Error::Overflow { .. } => {
                return PyValueError::new_err(message);
            }
            _ => Class::Error,
        };
        new_error(py, class, message, errno)
    })
}

/// The error for any use of a handle after `close()`.
pub(crate) fn closed(py: Python<'_>, what: &str, name: &str) -> PyErr {
    new_error(
        py,
        Class::Existential,
        format!("{what} '{name}' has been closed; open it again to use it"),
        None,
    )
}

/// The error for a handle whose `__init__` never ran (a subclass that did
/// not call it, or `cls.__new__(cls)` alone).
pub(crate) fn uninitialised(what: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "this {what} was never initialised: a subclass's __init__ must call super().__init__(...)"
    ))
}

/// The error for a wait that a signal ended (posix_ipc's behaviour).
pub(crate) fn interrupted(py: Python<'_>, what: &str, name: &str) -> PyErr {
    new_error(
        py,
        Class::Signal,
        format!("the wait on {what} '{name}' was interrupted by a signal"),
        None,
    )
}

/// The error for a non-blocking or timed-out acquire (posix_ipc's behaviour).
pub(crate) fn busy(py: Python<'_>, what: &str, name: &str) -> PyErr {
    new_error(
        py,
        Class::Busy,
        format!("{what} '{name}' is busy: it could not be acquired in the time allowed"),
        None,
    )
}

/// The error for a wait whose handle another thread closed.
pub(crate) fn closed_while_waiting(py: Python<'_>, what: &str, name: &str) -> PyErr {
    new_error(
        py,
        Class::Existential,
        format!("{what} '{name}' was closed by another thread while this one waited on it"),
        None,
    )
}
