//! The one place where namedipc errors become Python exceptions, and where
//! the exception classes are made. They are made here, on first use, with
//! Python's `type()`, because under the stable ABI a class defined in Rust
//! cannot have two bases and ours must (ExistsError is also a
//! FileExistsError); defining them in the Python package instead would make
//! the bindings import the package above them.

use std::time::Duration;

use namedipc::{Error, ObjectKind};
use pyo3::exceptions::{
    PyBufferError, PyConnectionError, PyException, PyFileExistsError, PyFileNotFoundError,
    PyOSError, PyPermissionError, PyTimeoutError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

/// The Python exception classes, in the order they are made (a class's
/// namedipc base comes before it).
#[derive(Clone, Copy)]
enum Class {
    Error,
    Signal,
    Permissions,
    Existential,
    Exists,
    NotFound,
    Busy,
    Corrupt,
    SystemCall,
    Overflow,
    // RedisSemaphore's.
    LeaseLost,
    Unavailable,
}

const CLASSES: [Class; 12] = [
    Class::Error,
    Class::Signal,
    Class::Permissions,
    Class::Existential,
    Class::Exists,
    Class::NotFound,
    Class::Busy,
    Class::Corrupt,
    Class::SystemCall,
    Class::Overflow,
    Class::LeaseLost,
    Class::Unavailable,
];

/// The classes' names, in `CLASSES`' order.
pub(crate) const CLASS_NAMES: [&str; CLASSES.len()] = {
    let mut names = [""; CLASSES.len()];
    let mut i = 0;
    while i < CLASSES.len() {
        names[i] = CLASSES[i].name();
        i += 1;
    }
    names
};

impl Class {
    const fn name(self) -> &'static str {
        match self {
            Self::Error => "Error",
            Self::Existential => "ExistentialError",
            Self::Exists => "ExistsError",
            Self::NotFound => "NotFoundError",
            Self::Permissions => "PermissionsError",
            Self::Busy => "BusyError",
            Self::Signal => "SignalError",
            Self::Corrupt => "CorruptError",
            Self::SystemCall => "SystemCallError",
            Self::Overflow => "OverflowValueError",
            Self::LeaseLost => "LeaseLost",
            Self::Unavailable => "UnavailableError",
        }
    }

    fn doc(self) -> &'static str {
        match self {
            Self::Error => "Base class of every namedipc error.",
            Self::Signal => "A signal interrupted a wait (posix_ipc's Semaphore.acquire).",
            Self::Permissions => "The OS refused access to the object, or namedipc refused an existing object whose owner or mode it does not trust.",
            Self::Existential => {
                "The object does or does not exist, or the handle has been closed."
            }
            Self::Exists => "The object was to be created, but its name is taken.",
            Self::NotFound => "The object was to be opened, but nothing has its name.",
            Self::Busy => "A wait ended at its deadline, or a call that does not wait found no slot, no message or no room.",
            Self::Corrupt => {
                "The file behind the name is not a valid object of the kind asked for."
            }
            Self::SystemCall => {
                "An OS call failed with an errno that has no class of its own; also an OSError, with errno set."
            }
            Self::Overflow => {
                "A release would pass the semaphore's maximum value: a ValueError, and, as in posix_ipc, an OSError with errno EOVERFLOW."
            }
            Self::LeaseLost => {
                "The lease of a RedisSemaphore slot was lost (expired by the server's clock, or not renewed in time): the slot may be another holder's now."
            }
            Self::Unavailable => {
                "The Redis server could not be reached, or refused the client (connect timeout, reset, failed authentication); also a ConnectionError."
            }
        }
    }

    /// The namedipc base class and the built-in this class also derives from.
    // `Python::get_type::<T>` itself is not general enough over lifetimes for
    // `BuiltinType`; the closures are.
    #[allow(clippy::redundant_closure_for_method_calls)]
    fn bases(self) -> (Option<Self>, Option<BuiltinType>) {
        match self {
            Self::Error => (None, Some(|py| py.get_type::<PyException>())),
            Self::Signal | Self::Existential | Self::Corrupt | Self::LeaseLost => {
                (Some(Self::Error), None)
            }
            Self::Permissions => (
                Some(Self::Error),
                Some(|py| py.get_type::<PyPermissionError>()),
            ),
            Self::Exists => (
                Some(Self::Existential),
                Some(|py| py.get_type::<PyFileExistsError>()),
            ),
            Self::NotFound => (
                Some(Self::Existential),
                Some(|py| py.get_type::<PyFileNotFoundError>()),
            ),
            Self::Busy => (
                Some(Self::Error),
                Some(|py| py.get_type::<PyTimeoutError>()),
            ),
            Self::SystemCall => (Some(Self::Error), Some(|py| py.get_type::<PyOSError>())),
            Self::Overflow => (
                Some(Self::SystemCall),
                Some(|py| py.get_type::<PyValueError>()),
            ),
            Self::Unavailable => (
                Some(Self::Error),
                Some(|py| py.get_type::<PyConnectionError>()),
            ),
        }
    }
}

/// How to get a built-in exception type, e.g. `Python::get_type::<PyTimeoutError>`.
type BuiltinType = for<'py> fn(Python<'py>) -> Bound<'py, PyType>;

static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

/// The exception classes, made the first time one is needed (the module's
/// `__getattr__`, or an error to raise): ten calls of `type()` cost more
/// than the rest of the module's import, and a program that never meets an
/// error or names a class never pays for them. Each is `namedipc.<name>`
/// (its `__module__`, so it pickles by that name).
fn types(py: Python<'_>) -> PyResult<&[Py<PyType>]> {
    let made = TYPES.get_or_try_init(py, || -> PyResult<Vec<Py<PyType>>> {
        let type_of_types = py.get_type::<PyType>();
        let mut made: Vec<Py<PyType>> = Vec::with_capacity(CLASSES.len());
        for class in CLASSES {
            let (ours, builtin) = class.bases();
            let mut bases: Vec<Bound<'_, PyType>> = Vec::new();
            if let Some(ours) = ours {
                bases.push(made[ours as usize].bind(py).clone());
            }
            if let Some(builtin) = builtin {
                bases.push(builtin(py));
            }
            let namespace = PyDict::new(py);
            namespace.set_item("__module__", "namedipc")?;
            namespace.set_item("__doc__", class.doc())?;
            let cls = type_of_types
                .call1((class.name(), PyTuple::new(py, bases)?, namespace))?
                .cast_into::<PyType>()?;
            made.push(cls.unbind());
        }
        Ok(made)
    })?;
    Ok(made)
}

/// The exception class `name` (`"BusyError"`, ...), if there is one by that name.
pub(crate) fn class_named<'py>(
    py: Python<'py>,
    name: &str,
) -> PyResult<Option<Bound<'py, PyType>>> {
    match CLASS_NAMES.iter().position(|&class| class == name) {
        Some(index) => Ok(Some(types(py)?[index].bind(py).clone())),
        None => Ok(None),
    }
}

/// Builds an exception of `class` with `message`; `errno` is set on the
/// classes that derive from OSError, so `e.errno` works as users expect.
fn new_error(py: Python<'_>, class: Class, message: &str, errno: Option<i32>) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let exc = types(py)?[class as usize].bind(py).call1((message,))?;
        if let Some(errno) = errno {
            if exc.is_instance_of::<PyOSError>() {
                exc.setattr("errno", errno)?;
            }
        }
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// Converts a core error into the matching Python exception.
#[allow(clippy::needless_pass_by_value)] // by value, so that `.map_err(to_py_err)` reads
pub(crate) fn to_py_err(err: Error) -> PyErr {
    Python::attach(|py| {
        let errno = err.errno();
        let message = err.to_string();
        let class = match &err {
            Error::AlreadyExists { .. } => Class::Exists,
            Error::NotFound { .. } => Class::NotFound,
            // A refused owner or mode is a refused access, as the OS's own.
            Error::PermissionDenied { .. } | Error::Untrusted { .. } => Class::Permissions,
            Error::Busy { .. } => Class::Busy,
            Error::Interrupted { .. } => Class::Signal,
            Error::Corrupt { .. } => Class::Corrupt,
            // posix_ipc's choice for any use of a closed handle.
            Error::Closed { .. } => Class::Existential,
            Error::Overflow { .. } => Class::Overflow,
            Error::LeaseLost { .. } => Class::LeaseLost,
            Error::Unavailable { .. } => Class::Unavailable,
            // A release without a slot held, as threading.BoundedSemaphore's.
            Error::NotHeld { .. } => return PyValueError::new_err(message),
            // Worded as args::name words it, for the names the core alone checks.
            Error::InvalidName { name, .. } if name.contains('\0') => return nul_in_name(name),
            Error::InvalidName { .. } | Error::InvalidArgument(_) => {
                return PyValueError::new_err(message);
            }
            // An OS failure with an errno and no class of its own.
            _ if errno.is_some() => Class::SystemCall,
            _ => Class::Error,
        };
        new_error(py, class, &message, errno)
    })
}

/// The error for a name with a NUL in it, whether the binding or the core
/// found it.
pub(crate) fn nul_in_name(name: &str) -> PyErr {
    PyValueError::new_err(format!("name must not contain NUL characters: {name:?}"))
}

/// The error for any use of a handle after `close()`: the core's message.
pub(crate) fn closed(kind: ObjectKind, name: &str) -> PyErr {
    to_py_err(Error::Closed {
        kind,
        name: name.to_owned(),
    })
}

/// The error for a second `__init__` on a handle.
pub(crate) fn already_initialised(kind: ObjectKind) -> PyErr {
    PyTypeError::new_err(format!(
        "this {kind} handle is already initialised; create a new object instead of calling __init__ again"
    ))
}

/// The error for a handle whose `__init__` never ran (a subclass that did
/// not call it, or `cls.__new__(cls)` alone).
pub(crate) fn uninitialised(kind: ObjectKind) -> PyErr {
    PyTypeError::new_err(format!(
        "this {kind} was never initialised: a subclass's __init__ must call super().__init__(...)"
    ))
}

/// The error for a wait that a signal ended (posix_ipc's behaviour): the core's message.
pub(crate) fn interrupted(kind: ObjectKind, name: &str) -> PyErr {
    to_py_err(Error::Interrupted {
        kind,
        name: name.to_owned(),
    })
}

/// The message of the BusyError that a non-blocking or timed-out acquire
/// raises (posix_ipc's behaviour): the core's. A handle makes it once and
/// keeps it, since it raises it again and again in a polling loop.
pub(crate) fn busy_message(py: Python<'_>, kind: ObjectKind, name: &str) -> Py<PyString> {
    let err = Error::Busy {
        kind,
        name: name.to_owned(),
        reason: namedipc::BusyReason::NoSlot,
    };
    PyString::new(py, &err.to_string()).unbind()
}

/// The BusyError with `message` (from `busy_message`), made only when it
/// is raised, as the interpreter makes a C extension's exception.
pub(crate) fn busy_with(py: Python<'_>, message: &Py<PyString>) -> PyErr {
    match types(py) {
        Ok(types) => PyErr::from_type(
            types[Class::Busy as usize].bind(py).clone(),
            message.clone_ref(py),
        ),
        Err(e) => e,
    }
}

/// The BusyError class, if the classes are made already: what
/// `fast_path.rs` raises with a handle's `busy_message`, without PyO3.
pub(crate) fn busy_class_if_made(py: Python<'_>) -> Option<&Py<PyType>> {
    TYPES.get(py).map(|types| &types[Class::Busy as usize])
}

/// The error for a wait whose handle another thread closed.
pub(crate) fn closed_while_waiting(py: Python<'_>, kind: ObjectKind, name: &str) -> PyErr {
    new_error(
        py,
        Class::Existential,
        &format!("{kind} '{name}' was closed by another thread while this one waited on it"),
        None,
    )
}

/// The error for a use of a shared memory segment that needs the descriptor
/// `close_fd()` gave up; `consequence` says what cannot be done.
pub(crate) fn fd_closed(py: Python<'_>, kind: ObjectKind, name: &str, consequence: &str) -> PyErr {
    new_error(
        py,
        Class::Existential,
        &format!(
            "the file descriptor of {kind} '{name}' was closed by close_fd(), so {consequence}; open the segment again"
        ),
        None,
    )
}

/// The error for `.uid`, `.gid` or `.file_mode` of a posix_ipc-style
/// segment or queue after `closed_by` (`close()`, `close_fd()`), when they
/// were not read before: they are read from the descriptor when first asked.
pub(crate) fn owner_not_read(
    py: Python<'_>,
    kind: ObjectKind,
    name: &str,
    closed_by: &str,
) -> PyErr {
    new_error(
        py,
        Class::Existential,
        &format!(
            "the owner of {kind} '{name}' cannot be read after {closed_by}: .uid, .gid and \
             .file_mode are read from the open descriptor when first asked (as posix_ipc's open, \
             this one reads nothing it does not need); read one of them before {closed_by} to \
             keep them"
        ),
        None,
    )
}

/// The error for `close()` on a shared memory segment whose `.buf` is still
/// exported; `cause` is the BufferError that mmap raised.
pub(crate) fn views_alive(py: Python<'_>, kind: ObjectKind, name: &str, cause: PyErr) -> PyErr {
    let refused = PyBufferError::new_err(format!(
        "cannot close {kind} '{name}': memoryviews of its .buf (or objects made from them, \
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
        &format!("message queue '{name}' is {state} {detail}"),
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
        &format!(
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
        &format!(
            "message queue '{name}' already notifies another process; the OS keeps one notification request per queue"
        ),
        None,
    )
}
