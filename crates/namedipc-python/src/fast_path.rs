//! The hottest methods of the posix_ipc classes as the interpreter calls
//! them, through `pyo3::ffi`. `Semaphore.acquire()` and `release()`: in an
//! uncontended acquire+release pair, PyO3's own call path (its argument
//! extraction, trampoline and thread-local attach count) cost as much as
//! the two semaphore operations. Here the call that takes a free slot, or
//! gives one back, goes straight to the core; every other call (arguments,
//! a wait, an error, a closed handle) takes the same Rust code as before,
//! with PyO3 attached as usual. The no-argument `close()`, `close_fd()` and
//! `unlink()` of Semaphore, SharedMemory and MessageQueue, which every
//! open-and-close pays once: plain `METH_NOARGS` functions running the
//! same bodies, attached through PyO3 only where a body needs it. And the
//! three classes' constructors, `Semaphore(...)`, `SharedMemory(...)` and
//! `MessageQueue(...)`, as the types' own vectorcalls, which make the
//! object and run `__init__`'s body without PyO3's `__new__` and
//! `__init__` slots in between (a subclass is made as before). The one
//! module of the bindings with `unsafe`, each block saying why it holds
//! (tests/test_layering.py checks both).
#![allow(unsafe_code)]

use std::any::Any;
use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyNone, PyString, PyTuple, PyType};
use pyo3::PyTypeInfo;

use crate::errors;
use crate::init::Handle;
use crate::message_queue::PyMessageQueue;
use crate::semaphore::PySemaphore;
use crate::shared_memory::PySharedMemory;

/// namedipc.Semaphore, as `install` found it: a call on an instance of
/// exactly this type needs no subclass check (PyO3's cast asks for the
/// type object each time; this is one load and one compare).
static SEMAPHORE_TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());
/// namedipc.SharedMemory, as `install_shared_memory` found it.
static SHARED_MEMORY_TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());
/// namedipc.MessageQueue, as `install_message_queue` found it.
static MESSAGE_QUEUE_TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());

/// Puts this module's `acquire`, `release`, `close` and `unlink` in the
/// place of PyO3's on `cls` (namedipc.Semaphore), with the same name,
/// signature and docs.
pub(crate) fn install(cls: &Bound<'_, PyType>) -> PyResult<()> {
    // The module holds the type for the life of the process.
    SEMAPHORE_TYPE.store(cls.as_type_ptr(), Ordering::Relaxed);
    constructor(cls, &SEMAPHORE_SLOTS, semaphore_new);
    noargs(cls, "close", semaphore_close)?;
    noargs(cls, "unlink", semaphore_unlink)?;
    let acquire = ffi::PyMethodDefPointer {
        PyCFunctionFastWithKeywords: acquire,
    };
    let release = ffi::PyMethodDefPointer {
        PyCFunction: release,
    };
    replace(
        cls,
        "acquire",
        acquire,
        ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
    )?;
    replace(cls, "release", release, ffi::METH_NOARGS)
}

/// Puts this module's `close_fd`, `close` and `unlink` in the place of
/// PyO3's on `cls` (namedipc.SharedMemory), once.
pub(crate) fn install_shared_memory(cls: &Bound<'_, PyType>) -> PyResult<()> {
    if !first_time(&SHARED_MEMORY_TYPE, cls) {
        return Ok(());
    }
    constructor(cls, &SHARED_MEMORY_SLOTS, shared_memory_new);
    noargs(cls, "close_fd", shared_memory_close_fd)?;
    noargs(cls, "close", shared_memory_close)?;
    noargs(cls, "unlink", shared_memory_unlink)
}

/// Puts this module's `close` and `unlink` in the place of PyO3's on
/// `cls` (namedipc.MessageQueue), once.
pub(crate) fn install_message_queue(cls: &Bound<'_, PyType>) -> PyResult<()> {
    if !first_time(&MESSAGE_QUEUE_TYPE, cls) {
        return Ok(());
    }
    constructor(cls, &MESSAGE_QUEUE_SLOTS, message_queue_new);
    noargs(cls, "close", message_queue_close)?;
    noargs(cls, "unlink", message_queue_unlink)
}

/// Records `cls` as the type of `exact`: false if it was recorded already
/// (the module made the class again after `del`; its methods are ours).
fn first_time(exact: &AtomicPtr<ffi::PyTypeObject>, cls: &Bound<'_, PyType>) -> bool {
    exact.swap(cls.as_type_ptr(), Ordering::Relaxed).is_null()
}

/// Replaces the no-argument method `name` of `cls` with `meth`.
fn noargs(
    cls: &Bound<'_, PyType>,
    name: &str,
    meth: unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> *mut ffi::PyObject,
) -> PyResult<()> {
    let meth = ffi::PyMethodDefPointer { PyCFunction: meth };
    replace(cls, name, meth, ffi::METH_NOARGS)
}

/// Replaces the method `name` of `cls` with one that calls `meth`.
fn replace(
    cls: &Bound<'_, PyType>,
    name: &str,
    meth: ffi::PyMethodDefPointer,
    flags: std::ffi::c_int,
) -> PyResult<()> {
    let py = cls.py();
    let old = cls.getattr(name)?;
    // PyO3's docstring format, which the interpreter turns back into
    // __text_signature__ and __doc__ (and inspect.signature, stubtest, help()).
    let signature: String = old.getattr("__text_signature__")?.extract()?;
    let doc: Option<String> = old.getattr("__doc__")?.extract()?;
    let doc = format!("{name}{signature}\n--\n\n{}", doc.unwrap_or_default());
    let to_c = |text: String| {
        CString::new(text).map_err(|_| PyValueError::new_err("a method's name or docs hold a NUL"))
    };
    // The method table lives as long as the type, which lives as long as
    // the process: leaked on purpose, once per method.
    let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: to_c(name.to_owned())?.into_raw().cast_const(),
        ml_meth: meth,
        ml_flags: flags,
        ml_doc: to_c(doc)?.into_raw().cast_const(),
    }));
    // SAFETY: `cls` is a live type object; `def` is a valid method table
    // that is never freed, as PyDescr_NewMethod requires; the call returns a
    // new reference or NULL with an exception set, which from_owned_ptr_or_err
    // takes over.
    let descriptor = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(cls.as_type_ptr(), def))?
    };
    cls.setattr(name, descriptor)
}

/// `Semaphore.acquire(timeout=None)`.
unsafe extern "C" fn acquire(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: the interpreter calls a method with the thread attached.
    let py = unsafe { Python::assume_attached() };
    guarded(py, || {
        // SAFETY: `slf` is the call's borrowed, live reference to the
        // instance (the method descriptor checked it is a Semaphore).
        let slf = unsafe { Borrowed::from_ptr(py, slf) };
        let Some(this) = semaphore(slf) else {
            return Python::attach(|_| {
                Err(PyTypeError::new_err(
                    "Semaphore.acquire() needs a Semaphore",
                ))
            });
        };
        let this = this.get();
        // acquire(), acquire(None), and the polling idiom acquire(0) or
        // acquire(timeout=0): whether the call must not wait, if it is one
        // of those.
        // SAFETY: the arguments are as the vectorcall protocol has them.
        let no_wait = match unsafe { arguments(nargs, args, kwnames) } {
            Arguments::Other => None,
            Arguments::None => Some(false),
            Arguments::Timeout(timeout) if timeout == PyNone::get(py).as_ptr() => Some(false),
            Arguments::Timeout(timeout) => is_int_zero(timeout).then_some(true),
        };
        if let (Some(no_wait), Some(sem)) = (no_wait, this.open_semaphore()) {
            match sem.try_acquire() {
                Ok(true) => return signals_after_taking(py, sem),
                Ok(false) if no_wait => {
                    if let (Some(class), Some(message)) =
                        (errors::busy_class_if_made(py), this.made_busy_message(py))
                    {
                        // SAFETY: the thread is attached; both are live
                        // objects, which PyErr_SetObject takes references to.
                        unsafe { ffi::PyErr_SetObject(class.as_ptr(), message.as_ptr()) };
                        return Ok(std::ptr::null_mut());
                    }
                    // The first BusyError of this handle: the full path makes it.
                }
                // No slot free and no timeout: wait, without the second
                // try at once that the full path would make first. It runs
                // as the interpreter called the method, without PyO3's
                // count of attachment raised, as a constructor's body does
                // (see `constructor!`: `Python::attach` would pay for
                // `PyGILState_Ensure` and `PyGILState_Release` on every
                // acquire that sleeps). The wait drops no `Py` on its way
                // to the slot; an error is raised attached (`guarded`).
                Ok(false) => {
                    this.acquire_forever_after_try(py)?;
                    return Ok(none(py));
                }
                Err(e) => return Python::attach(|_| Err(errors::to_py_err(e))),
            }
        }
        // Other arguments (a timeout, most often), a closed or
        // uninitialised handle: the full path, which checks and says
        // everything. It too runs without PyO3's count of attachment
        // raised, as the wait above does, and an error is raised attached
        // (`guarded`). On its way to success it drops no `Py` but, in a
        // timed wait, the error of a failed lookup of the main thread
        // (`wait::is_main_thread`), which PyO3 then releases when the
        // wait's `detach` ends, a moment later.
        let len = usize::try_from(nargs).unwrap_or(0);
        // SAFETY: the arguments are as the vectorcall protocol has them.
        let (values, keywords) = unsafe { call_values(py, args, len, kwnames) }?;
        let timeout = timeout_argument(py, values, len, keywords.as_ref())?;
        this.acquire(py, timeout.as_ref())?;
        Ok(none(py))
    })
}

/// `slf` as a Semaphore (or an instance of a subclass), if it is one.
fn semaphore<'a, 'py>(slf: Borrowed<'a, 'py, PyAny>) -> Option<Borrowed<'a, 'py, PySemaphore>> {
    instance(slf, &SEMAPHORE_TYPE)
}

/// `slf` as a `T` (or an instance of a subclass), if it is one; `exact`
/// holds `T`'s type object, or NULL before it was recorded.
fn instance<'a, 'py, T: PyTypeInfo>(
    slf: Borrowed<'a, 'py, PyAny>,
    exact: &AtomicPtr<ffi::PyTypeObject>,
) -> Option<Borrowed<'a, 'py, T>> {
    // SAFETY: `slf` is a live object, whose type pointer may be read.
    if unsafe { ffi::Py_TYPE(slf.as_ptr()) } == exact.load(Ordering::Relaxed) {
        // SAFETY: its type is exactly the one recorded for `T`, which is
        // never NULL here (an object's type pointer is not).
        return Some(unsafe { slf.cast_unchecked::<T>() });
    }
    slf.cast::<T>().ok()
}

/// A no-argument method (METH_NOARGS) of a class of the bindings: `$body`
/// runs on `$this: &$class` with the thread attached, as the interpreter
/// calls it; PyO3 attaches (`Python::attach`) only where the body asks,
/// and any `Py<T>` the body drops must be dropped there.
macro_rules! noargs_method {
    ($(#[$doc:meta])* $fn:ident, $class:ty, $exact:ident, $what:literal,
     |$py:ident, $this:ident| $body:expr) => {
        $(#[$doc])*
        unsafe extern "C" fn $fn(
            slf: *mut ffi::PyObject,
            _unused: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: the interpreter calls a method with the thread attached.
            let $py = unsafe { Python::assume_attached() };
            guarded($py, || {
                // SAFETY: `slf` is the call's borrowed, live reference to
                // the instance (the method descriptor checked its type).
                let slf = unsafe { Borrowed::from_ptr($py, slf) };
                let Some($this) = instance::<$class>(slf, &$exact) else {
                    return Python::attach(|_| {
                        Err(PyTypeError::new_err(concat!($what, " needs an instance of its class")))
                    });
                };
                let $this = $this.get();
                let result: PyResult<()> = $body;
                result.map(|()| none($py))
            })
        }
    };
}

noargs_method!(
    /// `Semaphore.close()`.
    semaphore_close, PySemaphore, SEMAPHORE_TYPE, "Semaphore.close()",
    |py, this| this.close()
);

noargs_method!(
    /// `Semaphore.unlink()`.
    semaphore_unlink, PySemaphore, SEMAPHORE_TYPE, "Semaphore.unlink()",
    |py, this| this.unlink()
);

noargs_method!(
    /// `SharedMemory.close_fd()`.
    shared_memory_close_fd, PySharedMemory, SHARED_MEMORY_TYPE, "SharedMemory.close_fd()",
    |py, this| this.close_fd(py)
);

noargs_method!(
    /// `SharedMemory.close()`: at once if `.buf` was never made, else the
    /// full path (closing the mapping calls into Python).
    shared_memory_close, PySharedMemory, SHARED_MEMORY_TYPE, "SharedMemory.close()",
    |py, this| match this.close_unmapped(py) {
        Some(()) => Ok(()),
        None => Python::attach(|py| this.close(py)),
    }
);

noargs_method!(
    /// `SharedMemory.unlink()`.
    shared_memory_unlink, PySharedMemory, SHARED_MEMORY_TYPE, "SharedMemory.unlink()",
    |py, this| this.unlink(py)
);

noargs_method!(
    /// `MessageQueue.close()`: at once for a queue no call shared, else
    /// attached (ending waits and callbacks drops Python objects).
    message_queue_close, PyMessageQueue, MESSAGE_QUEUE_TYPE, "MessageQueue.close()",
    |py, this| match this.take_queue()? {
        None => Ok(()),
        Some(queue) => Python::attach(|_| {
            this.close_shared(queue);
            Ok(())
        }),
    }
);

noargs_method!(
    /// `MessageQueue.unlink()`.
    message_queue_unlink, PyMessageQueue, MESSAGE_QUEUE_TYPE, "MessageQueue.unlink()",
    |py, this| this.unlink(py)
);

/// The `timeout` that `acquire` was called with, checked as PyO3 checks a
/// `signature = (timeout = None)`: `None` if not given or given as None.
fn timeout_argument<'py>(
    py: Python<'py>,
    values: &[*mut ffi::PyObject],
    positional: usize,
    keywords: Option<&Borrowed<'_, 'py, PyTuple>>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if positional > 1 {
        return Err(PyTypeError::new_err(format!(
            "Semaphore.acquire() takes from 0 to 1 positional arguments but {positional} were given"
        )));
    }
    let mut timeout = values.first().filter(|_| positional == 1).copied();
    if let Some(keywords) = keywords {
        for (index, keyword) in keywords.iter().enumerate() {
            let keyword = keyword.cast_into::<PyString>()?;
            if keyword.to_cow()? != "timeout" {
                return Err(PyTypeError::new_err(format!(
                    "Semaphore.acquire() got an unexpected keyword argument '{keyword}'"
                )));
            }
            if timeout.is_some() {
                return Err(PyTypeError::new_err(
                    "Semaphore.acquire() got multiple values for argument 'timeout'",
                ));
            }
            timeout = Some(values[positional + index]);
        }
    }
    Ok(timeout
        // SAFETY: each value is a live reference borrowed for the call;
        // to_owned takes a reference of its own.
        .map(|value| unsafe { Borrowed::from_ptr(py, value) }.to_owned())
        .filter(|value| !value.is_none()))
}

/// A vectorcall's values (the positional ones, then one per keyword name)
/// and its keyword names, if any.
///
/// # Safety
/// `nargs` positional values at `args`, followed by one per name in
/// `kwnames` (a tuple of str, or NULL), all borrowed for the call, which
/// outlives `'a`.
unsafe fn call_values<'a>(
    py: Python<'_>,
    args: *const *mut ffi::PyObject,
    nargs: usize,
    kwnames: *mut ffi::PyObject,
) -> PyResult<(&'a [*mut ffi::PyObject], Option<Borrowed<'a, '_, PyTuple>>)> {
    let keywords = if kwnames.is_null() {
        None
    } else {
        // SAFETY: a non-NULL kwnames is a live tuple of str, borrowed for
        // the call.
        Some(unsafe { Borrowed::from_ptr(py, kwnames) }.cast::<PyTuple>()?)
    };
    let given = nargs + keywords.as_ref().map_or(0, |k| k.len());
    // With no arguments, `args` may be NULL: it is not read then.
    let values: &[*mut ffi::PyObject] = if given == 0 {
        &[]
    } else {
        // SAFETY: `args` holds `nargs` positional values followed by one
        // per keyword name, all borrowed for the call.
        unsafe { std::slice::from_raw_parts(args, given) }
    };
    Ok((values, keywords))
}

/// After a slot was taken without waiting: runs any signal handler that
/// is due, giving the slot back if one raises (what the full path does,
/// wait.rs), else returns None.
fn signals_after_taking(py: Python<'_>, sem: &namedipc::Semaphore) -> PyResult<*mut ffi::PyObject> {
    // SAFETY: the thread is attached.
    if unsafe { ffi::PyErr_CheckSignals() } == 0 {
        return Ok(none(py));
    }
    // A handler raised: its exception is set.
    Python::attach(|py| {
        let raised = PyErr::fetch(py);
        sem.release().map_err(errors::to_py_err)?;
        Err(raised)
    })
}

/// What an `acquire` call was given, as far as its fast path cares.
enum Arguments {
    /// No argument.
    None,
    /// Only `timeout`, by position or by keyword.
    Timeout(*mut ffi::PyObject),
    /// Anything else.
    Other,
}

/// What an `acquire` call was given.
///
/// # Safety
/// The arguments are a vectorcall's: `nargs` positional values at `args`,
/// followed by one per name in `kwnames` (a tuple of str, or NULL).
unsafe fn arguments(
    nargs: ffi::Py_ssize_t,
    args: *const *mut ffi::PyObject,
    kwnames: *mut ffi::PyObject,
) -> Arguments {
    match (nargs, kwnames.is_null()) {
        (0, true) => Arguments::None,
        // SAFETY: there is one positional argument.
        (1, true) => Arguments::Timeout(unsafe { *args }),
        // SAFETY: kwnames is a live tuple; with one name, there is one value at args.
        (0, false) => unsafe {
            let timeout = ffi::PyTuple_Size(kwnames) == 1
                && ffi::PyUnicode_CompareWithASCIIString(
                    ffi::PyTuple_GetItem(kwnames, 0),
                    c"timeout".as_ptr(),
                ) == 0;
            if timeout {
                Arguments::Timeout(*args)
            } else {
                Arguments::Other
            }
        },
        _ => Arguments::Other,
    }
}

/// Whether `value` is exactly the int 0 (not a subclass, not 0.0).
fn is_int_zero(value: *mut ffi::PyObject) -> bool {
    let mut overflow = 0;
    // SAFETY: `value` is a live reference borrowed for the call; reading
    // an exact int's value cannot fail (an overflow is reported in
    // `overflow`, with no exception set).
    unsafe {
        ffi::PyLong_CheckExact(value) != 0
            && ffi::PyLong_AsLongAndOverflow(value, &raw mut overflow) == 0
            && overflow == 0
    }
}

/// `Semaphore.release()`.
unsafe extern "C" fn release(
    slf: *mut ffi::PyObject,
    _unused: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: the interpreter calls a method with the thread attached.
    let py = unsafe { Python::assume_attached() };
    guarded(py, || {
        // SAFETY: as in `acquire`.
        let slf = unsafe { Borrowed::from_ptr(py, slf) };
        let Some(this) = semaphore(slf) else {
            return Python::attach(|_| {
                Err(PyTypeError::new_err(
                    "Semaphore.release() needs a Semaphore",
                ))
            });
        };
        let this = this.get();
        if let Some(sem) = this.open_semaphore() {
            return match sem.release() {
                Ok(()) => Ok(none(py)),
                Err(e) => Python::attach(|_| Err(errors::to_py_err(e))),
            };
        }
        // Closed, or never initialised: the full path says so.
        Python::attach(|_| this.release())?;
        Ok(none(py))
    })
}

/// A new reference to None.
fn none(py: Python<'_>) -> *mut ffi::PyObject {
    py.None().into_ptr()
}

/// Runs a method's body: its result as the interpreter wants it (a new
/// reference, or NULL with the exception set: `body` may return either),
/// and a panic as PyO3 reports
/// one (PanicException), never unwinding into the interpreter.
fn guarded(
    py: Python<'_>,
    body: impl FnOnce() -> PyResult<*mut ffi::PyObject>,
) -> *mut ffi::PyObject {
    let outcome =
        catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| Err(panicked(&*payload)));
    match outcome {
        Ok(result) => result,
        Err(e) => {
            Python::attach(|_| e.restore(py));
            std::ptr::null_mut()
        }
    }
}

/// The PanicException for a panic's payload.
fn panicked(payload: &(dyn Any + Send)) -> PyErr {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a payload that is not a string".to_owned());
    PanicException::new_err(message)
}

/// A class's `__new__` and `__init__` slots as PyO3 made them, recorded
/// when its constructor was installed: if either is replaced later (a
/// `__new__` or `__init__` assigned to the class), a call takes the
/// interpreter's path, which calls the new one.
struct Slots {
    new: AtomicUsize,
    init: AtomicUsize,
}

impl Slots {
    const fn new() -> Self {
        Self {
            new: AtomicUsize::new(0),
            init: AtomicUsize::new(0),
        }
    }

    /// The two slots of `tp`, as addresses (0 for none).
    ///
    /// # Safety
    /// `tp` is a live type object.
    unsafe fn of(tp: *mut ffi::PyTypeObject) -> (usize, usize) {
        // SAFETY: as the caller promises; the two fields are plain reads.
        unsafe {
            (
                (*tp).tp_new.map_or(0, |f| f as usize),
                (*tp).tp_init.map_or(0, |f| f as usize),
            )
        }
    }

    /// Whether `tp` still has the slots recorded.
    ///
    /// # Safety
    /// `tp` is a live type object.
    unsafe fn unchanged(&self, tp: *mut ffi::PyTypeObject) -> bool {
        // SAFETY: as the caller promises.
        let (new, init) = unsafe { Self::of(tp) };
        new == self.new.load(Ordering::Relaxed) && init == self.init.load(Ordering::Relaxed)
    }
}

static SEMAPHORE_SLOTS: Slots = Slots::new();
static SHARED_MEMORY_SLOTS: Slots = Slots::new();
static MESSAGE_QUEUE_SLOTS: Slots = Slots::new();

/// Makes `call` the way `cls(...)` itself is called (the type's
/// vectorcall), and records `cls`'s slots in `slots`. A subclass does not
/// inherit it (CPython never copies `tp_vectorcall` to a subclass): its
/// instances are made as before, by `__new__` and `__init__`.
fn constructor(cls: &Bound<'_, PyType>, slots: &Slots, call: ffi::vectorcallfunc) {
    let tp = cls.as_type_ptr();
    // SAFETY: `cls` is a live type object that this module just made, with
    // the thread attached; `tp_vectorcall` is the field that says how a
    // type is called, and writing it is how CPython's own types get theirs.
    unsafe {
        let (new, init) = Slots::of(tp);
        slots.new.store(new, Ordering::Relaxed);
        slots.init.store(init, Ordering::Relaxed);
        (*tp).tp_vectorcall = Some(call);
    }
}

/// A constructor call's values in the order of `parameters` (NULL where
/// not given), if it is a call the fast path makes: `callable` is the
/// class `exact` holds, with the slots `slots` recorded, and the
/// arguments bind plainly (the first parameter given, no more positional
/// values than parameters, each keyword one of the parameters and given
/// once). Anything else is for the interpreter's path to judge and report.
///
/// # Safety
/// The arguments are a vectorcall's: `callable` a live type object,
/// `nargsf` positional values at `args`, followed by one per name in
/// `kwnames` (a tuple of str, or NULL).
unsafe fn fast_call<const N: usize>(
    callable: *mut ffi::PyObject,
    exact: &AtomicPtr<ffi::PyTypeObject>,
    slots: &Slots,
    parameters: &[&str; N],
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> Option<[*mut ffi::PyObject; N]> {
    let tp = callable.cast::<ffi::PyTypeObject>();
    // SAFETY: `callable` is a live type object.
    if tp != exact.load(Ordering::Relaxed) || !unsafe { slots.unchanged(tp) } {
        return None;
    }
    // SAFETY: a vectorcall's count.
    let nargs = usize::try_from(unsafe { ffi::PyVectorcall_NARGS(nargsf) }).ok()?;
    if nargs > N {
        return None;
    }
    let mut given = [std::ptr::null_mut(); N];
    // One test per parameter, which the compiler unrolls (N is the class's
    // count): a loop up to `nargs` became a call to `memcpy`, some ten
    // times the cost for the common call's one or few values.
    for (index, value) in given.iter_mut().enumerate() {
        if index < nargs {
            // SAFETY: there are `nargs` positional values at `args`.
            *value = unsafe { *args.add(index) };
        }
    }
    if !kwnames.is_null() {
        // SAFETY: a non-NULL kwnames is a live tuple of str.
        let count = unsafe { ffi::PyTuple_GET_SIZE(kwnames) };
        for (position, item) in (0..count).enumerate() {
            // SAFETY: `item` is within the tuple; its items are str.
            let keyword = unsafe { utf8(ffi::PyTuple_GET_ITEM(kwnames, item)) }?;
            let index = parameters.iter().position(|p| p.as_bytes() == keyword)?;
            if !given[index].is_null() {
                return None;
            }
            // SAFETY: one value per keyword name follows the positional ones.
            given[index] = unsafe { *args.add(nargs + position) };
        }
    }
    (!given[0].is_null()).then_some(given)
}

/// The UTF-8 text of the str `text`, or None (and no exception) if it has
/// none (a lone surrogate).
///
/// # Safety
/// `text` is a live str, which outlives the bytes returned.
unsafe fn utf8<'a>(text: *mut ffi::PyObject) -> Option<&'a [u8]> {
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: `text` is a live str; the bytes live as long as it does.
    unsafe {
        let bytes = ffi::PyUnicode_AsUTF8AndSize(text, &raw mut len);
        if bytes.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        Some(std::slice::from_raw_parts(
            bytes.cast::<u8>(),
            usize::try_from(len).ok()?,
        ))
    }
}

/// `callable(...)` as the interpreter calls a type without a vectorcall:
/// its metaclass's `tp_call` (`type.__call__`: `__new__`, then
/// `__init__`), given the arguments as a tuple and a dict.
///
/// # Safety
/// As for `fast_call`.
unsafe fn call_type(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    Python::attach(|py| {
        // SAFETY: a vectorcall's count.
        let nargs = usize::try_from(unsafe { ffi::PyVectorcall_NARGS(nargsf) }).unwrap_or(0);
        // SAFETY: as the caller promises.
        let (values, keywords) = unsafe { call_values(py, args, nargs, kwnames) }?;
        // SAFETY: each value is a live reference borrowed for the call.
        let value = |value: *mut ffi::PyObject| unsafe { Borrowed::from_ptr(py, value) };
        let positional = PyTuple::new(py, values[..nargs].iter().map(|&v| value(v)))?;
        let kwargs = match keywords {
            None => None,
            Some(keywords) => {
                let kwargs = PyDict::new(py);
                for (keyword, &v) in keywords.iter().zip(&values[nargs..]) {
                    kwargs.set_item(keyword, value(v))?;
                }
                Some(kwargs)
            }
        };
        // SAFETY: `callable` is a live object, whose type is a live type.
        let Some(call) = (unsafe { (*ffi::Py_TYPE(callable)).tp_call }) else {
            return Err(PyTypeError::new_err("the class cannot be called"));
        };
        let kwargs = kwargs.as_ref().map_or(std::ptr::null_mut(), Bound::as_ptr);
        // SAFETY: `call` is the metaclass's tp_call, given a live tuple and
        // a dict or NULL; it returns a new reference or NULL with an
        // exception set, which the caller passes on as it is.
        Ok(unsafe { call(callable, positional.as_ptr(), kwargs) })
    })
}

/// A class's constructor as its vectorcall: `Class(name, ...)` runs
/// `__init__`'s body on a new handle and makes it the object (`$init`, with
/// `$this` a `&mut` to the handle, not yet an object, the first parameter a
/// `&Bound<PyAny>` and each other an `Option<&Bound<PyAny>>`, `None` where
/// not given or given as None, as PyO3's extraction makes it; a body that
/// gets `&mut` stores what it opened without taking the handle's lock,
/// `init::Handle::New`), without the tuple and dict that
/// `type.__call__` builds for PyO3's `__new__` and `__init__`, their two
/// trampolines and their argument extraction. A call the fast path does
/// not take (see `fast_call`) goes the interpreter's way, which judges it
/// and words every error as before.
///
/// `$init` runs as the interpreter called the type, attached, but without
/// PyO3's own count of attachment raised (`Python::attach` would pay for
/// `PyGILState_Ensure` and `PyGILState_Release`, some 100 instructions,
/// here): a `Bound` it drops is released at once, a `Py` it drops at
/// PyO3's next attachment. The bodies drop no `Py` on their way to
/// success; an error is raised attached (`guarded`), which releases
/// anything that making it dropped.
macro_rules! constructor {
    ($(#[$doc:meta])* $fn:ident, $class:ty, $exact:ident, $slots:ident,
     |$py:ident, $this:ident, $name:ident $(, $param:ident)*| $init:expr) => {
        $(#[$doc])*
        unsafe extern "C" fn $fn(
            callable: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargsf: usize,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            const PARAMETERS: &[&str; [stringify!($name) $(, stringify!($param))*].len()] =
                &[stringify!($name) $(, stringify!($param))*];
            // SAFETY: the interpreter calls a type with the thread attached.
            let py = unsafe { Python::assume_attached() };
            guarded(py, || {
                // SAFETY: the arguments are as the vectorcall protocol has them.
                let given = unsafe {
                    fast_call(callable, &$exact, &$slots, PARAMETERS, args, nargsf, kwnames)
                };
                let Some(given) = given else {
                    // SAFETY: as above.
                    return unsafe { call_type(callable, args, nargsf, kwnames) };
                };
                let $py = py;
                let mut values = given.into_iter().map(|value| {
                    // SAFETY: each non-NULL value is a live reference
                    // borrowed for the call.
                    unsafe { Borrowed::from_ptr_or_opt($py, value) }
                });
                let Some($name) = values.next().flatten() else {
                    // `fast_call` asked for the name already, so this never
                    // happens; leaving that check to this one alone measured
                    // 10 instructions a cycle more (bench/instructions.py).
                    // SAFETY: as above.
                    return unsafe { call_type(callable, args, nargsf, kwnames) };
                };
                // An optional parameter given as None is one not given, as
                // PyO3 extracts an `Option` (the first is passed as it is).
                $(let $param = values.next().flatten().filter(|value| !value.is_none());)*
                // Opened before it becomes a Python object, so that no other
                // thread can reach it yet (`init::Handle::New`), and moved
                // into the object once, as the handle `__new__` makes is.
                // If making the object fails (MemoryError), the handle is
                // dropped as any unreferenced one is: its descriptor closes,
                // and what it created stays at its name.
                let mut value = <$class>::unopened();
                {
                    let $this = &mut value;
                    let $name = &*$name;
                    $(let $param = $param.as_deref();)*
                    $init?;
                }
                Ok(Bound::new($py, value)?.into_ptr())
            })
        }
    };
}

constructor!(
    /// `Semaphore(name, flags=0, mode=0o600, initial_value=0)`.
    semaphore_new, PySemaphore, SEMAPHORE_TYPE, SEMAPHORE_SLOTS,
    |py, this, name, flags, mode, initial_value| this.__init__(name, flags, mode, initial_value)
);

constructor!(
    /// `SharedMemory(name, flags=0, mode=0o600, size=0, read_only=False)`.
    shared_memory_new, PySharedMemory, SHARED_MEMORY_TYPE, SHARED_MEMORY_SLOTS,
    |py, this, name, flags, mode, size, read_only| PySharedMemory::init(Handle::New(this), py, name, flags, mode, size, read_only)
);

constructor!(
    /// `MessageQueue(name, flags=0, mode=0o600, max_messages, max_message_size, read=True, write=True)`.
    message_queue_new, PyMessageQueue, MESSAGE_QUEUE_TYPE, MESSAGE_QUEUE_SLOTS,
    |py, this, name, flags, mode, max_messages, max_message_size, read, write| PyMessageQueue::init(Handle::New(this), py, name, flags, mode, max_messages, max_message_size, read, write)
);
