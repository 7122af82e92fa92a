//! The one place where namedipc errors become Python exceptions. The
//! exception classes are defined in `namedipc/_errors.py`, where multiple
//! inheritance (ExistsError is also a FileExistsError) is natural.

use std::time::Duration;

use namedipc::Error;
use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The Python exception classes, by the name they have in `namedipc._errors`.
#[derive(Clone, Copy)]
enum Class {
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
fn new_error(py: Python<'_>, class: Class, message: String, errno: Option<i32>) -> PyErr {
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
            // posix_ipc's choice for any use of a closed handle.
            Error::Closed { .. } => Class::Existential,
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

/// The error for a second `__init__` on a handle.
pub(crate) fn already_initialised(what: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "this {what} handle is already initialised; create a new object instead of calling __init__ again"
    ))
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

/// The error for a use of a shared memory segment that needs the descriptor
/// `close_fd()` gave up; `consequence` says what cannot be done.
pub(crate) fn fd_closed(py: Python<'_>, what: &str, name: &str, consequence: &str) -> PyErr {
    new_error(
        py,
        Class::Existential,
        format!(
            "the file descriptor of {what} '{name}' was closed by close_fd(), so {consequence}; open the segment again"
        ),
        None,
    )
}

/// The error for `close()` on a shared memory segment whose `.buf` is still
/// exported; `cause` is the BufferError that mmap raised.
pub(crate) fn views_alive(py: Python<'_>, what: &str, name: &str, cause: PyErr) -> PyErr {
    let refused = PyBufferError::new_err(format!(
        "cannot close {what} '{name}': memoryviews of its .buf (or objects made from them, \
         such as numpy arrays) still exist; release them first (view.release() or del), \
         then call close() again"
    ));
    refused.set_cause(py, Some(cause));
    refused
}

/// Which way a message moves, for the wording of message queue errors.
#[derive(Clone, Copy)]
pub(crate) enum Direction {
    Send,
    Receive,
}

/// Why a send or receive gave up.
#[derive(Clone, Copy)]
pub(crate) enum GaveUp {
    /// timeout=0.
    NoWait,
    /// The timeout ran out.
    TimedOut(Duration),
    /// The handle does not block (block is False).
    NonBlocking,
}

/// The error for a send to a full queue or a receive from an empty one.
pub(crate) fn queue_busy(py: Python<'_>, name: &str, direction: Direction, why: GaveUp) -> PyErr {
    let state = match direction {
        Direction::Send => "full",
        Direction::Receive => "empty",
    };
    let detail = match why {
        GaveUp::NoWait => "and timeout=0 does not wait".to_owned(),
        GaveUp::TimedOut(timeout) => format!(
            "and stayed {state} for the whole timeout ({:.3} s)",
            timeout.as_secs_f64()
        ),
        GaveUp::NonBlocking => "and this handle does not wait (block is False)".to_owned(),
    };
    new_error(
        py,
        Class::Busy,
        format!("message queue '{name}' is {state} {detail}"),
        None,
    )
}

/// The error for a send through a handle opened with write=False, or a
/// receive through one opened with read=False.
pub(crate) fn queue_not_open_for(py: Python<'_>, name: &str, direction: Direction) -> PyErr {
    let (flag, verb) = match direction {
        Direction::Send => ("write", "send"),
        Direction::Receive => ("read", "receive"),
    };
    new_error(
        py,
        Class::Permissions,
        format!(
            "message queue '{name}' was opened with {flag}=False; open it with {flag}=True to {verb}"
        ),
        None,
    )
}

/// The error for a notification request on a queue for which another
/// process already has one.
pub(crate) fn queue_notification_taken(py: Python<'_>, name: &str) -> PyErr {
    new_error(
        py,
        Class::Busy,
        format!(
            "message queue '{name}' already notifies another process; the OS keeps one notification request per queue"
        ),
        None,
    )
}
