//! PyO3 bindings: `namedipc._namedipc`. Converts arguments, manages the
//! interpreter lock around waits, and maps errors in one place
//! (`errors.rs`); everything else lives in the `namedipc` core crate.

mod aio;
mod args;
mod cli;
mod errors;
mod exit;
mod fast_path;
mod handle;
mod init;
mod message_queue;
mod named_semaphore;
mod pickling;
mod redis_semaphore;
mod robust_semaphore;
mod semaphore;
mod shared_memory;
mod wait;

// The unwinder is linked into the module (libgcc's libgcc_eh.a, what
// `gcc -static-libgcc` does) instead of loaded from libgcc_s.so.1: that
// library's constructor probes the CPU with a series of `cpuid`
// instructions, each a trap to the hypervisor on a virtual machine, and
// loading it took a quarter of `import namedipc`. Panics never leave the
// module (PyO3 turns them into Python exceptions at every entry point), so
// the module's own unwinder is all they meet; `prime_unwinder` below makes
// it ready for the one unwind that comes from outside.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[link(name = "gcc_eh", kind = "static", modifiers = "-bundle")]
extern "C" {}

use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyType};

/// Removes the semaphore `name`; ExistentialError if there is none.
#[pyfunction]
fn unlink_semaphore(name: &Bound<'_, PyAny>) -> PyResult<()> {
    namedipc::semaphore::unlink(&args::name(name)?).map_err(errors::to_py_err)
}

/// The module's attributes made on first use (PEP 562's `__getattr__`):
/// each needs work that would otherwise be paid by every import, and most
/// programs never ask for it. A value, once made, is stored on the module.
#[pyfunction]
#[pyo3(name = "__getattr__", pass_module)]
fn module_getattr<'py>(m: &Bound<'py, PyModule>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let py = m.py();
    let value = if name == "Holder" {
        robust_semaphore::holder_class(py)?.clone().into_any()
    } else if let Some(class) = lazy_class(py, name)? {
        class.into_any()
    } else if let Some(class) = errors::class_named(py, name)? {
        class.into_any()
    } else if let Some(value) = message_queue::lazy_constant(py, name)? {
        value
    } else {
        return Err(PyAttributeError::new_err(format!(
            "module 'namedipc._namedipc' has no attribute '{name}'"
        )));
    };
    m.setattr(name, &value)?;
    Ok(value)
}

/// Classes a plain Semaphore user does not need, made on first use: each
/// costs its share of an import.
const LAZY_CLASSES: [&str; 5] = [
    "NamedSemaphore",
    "SharedMemory",
    "MessageQueue",
    "RobustSemaphore",
    "RedisSemaphore",
];

/// What the package hands down to make `namedipc.Flags`: a callable that
/// returns it (importing enum the first time).
static FLAGS_LOADER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `_install_flags_attribute(loader)`: `loader()` returns `namedipc.Flags`,
/// the `Flags` class attribute of NamedSemaphore and RobustSemaphore, which
/// they get as their types are made, however that happens (through the
/// module, or an unpickled handle). Called once, by `namedipc/__init__.py`.
#[pyfunction]
fn _install_flags_attribute(py: Python<'_>, loader: Py<PyAny>) -> PyResult<()> {
    FLAGS_LOADER
        .set(py, loader)
        .map_err(|_| PyTypeError::new_err("the Flags attribute is installed already"))
}

/// `NamedSemaphore.Flags` and `RobustSemaphore.Flags`: a descriptor that
/// returns `namedipc.Flags`, asking the package's loader the first time it is
/// read. It lives here rather than in the package so that `import namedipc`
/// makes no class for it.
#[pyclass(frozen, module = "namedipc._namedipc", name = "_FlagsAttribute")]
struct FlagsAttribute;

#[pymethods]
impl FlagsAttribute {
    fn __get__(
        _slf: &Bound<'_, Self>,
        py: Python<'_>,
        _instance: Option<&Bound<'_, PyAny>>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        static FLAGS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        FLAGS
            .get_or_try_init(py, || match FLAGS_LOADER.get(py) {
                Some(loader) => loader.call0(py),
                None => Ok(py.None()),
            })
            .map(|flags| flags.clone_ref(py))
    }
}

/// What NamedSemaphore's and RobustSemaphore's `Flags` class attribute
/// is: the descriptor above (None where the bindings are used without the
/// package).
pub(crate) fn flags_attribute(py: Python<'_>) -> Py<PyAny> {
    if FLAGS_LOADER.get(py).is_none() {
        return py.None();
    }
    Py::new(py, FlagsAttribute).map_or_else(|_| py.None(), Py::into_any)
}

/// The class `name` of `LAZY_CLASSES`, made the first time (with the
/// posix_ipc classes' no-argument methods from `fast_path`).
fn lazy_class<'py>(py: Python<'py>, name: &str) -> PyResult<Option<Bound<'py, PyType>>> {
    Ok(Some(match name {
        "NamedSemaphore" => py.get_type::<named_semaphore::PyNamedSemaphore>(),
        "SharedMemory" => {
            let class = py.get_type::<shared_memory::PySharedMemory>();
            fast_path::install_shared_memory(&class)?;
            class
        }
        "MessageQueue" => {
            let class = py.get_type::<message_queue::PyMessageQueue>();
            fast_path::install_message_queue(&class)?;
            class
        }
        "RobustSemaphore" => py.get_type::<robust_semaphore::PyRobustSemaphore>(),
        "RedisSemaphore" => py.get_type::<redis_semaphore::PyRedisSemaphore>(),
        _ => return Ok(None),
    }))
}

/// Every name `module_getattr` makes.
fn lazy_names() -> impl Iterator<Item = &'static str> {
    std::iter::once("Holder")
        .chain(LAZY_CLASSES)
        .chain(errors::CLASS_NAMES)
        .chain(message_queue::LAZY_CONSTANTS)
}

/// `dir()` of the module lists the names made on first use, too.
#[pyfunction]
#[pyo3(name = "__dir__", pass_module)]
fn module_dir<'py>(m: &Bound<'py, PyModule>) -> PyResult<Bound<'py, PyList>> {
    let names = PyList::new(m.py(), lazy_names())?;
    for name in m.dict().keys() {
        if !names.contains(&name)? {
            names.append(name)?;
        }
    }
    names.sort()?;
    Ok(names)
}

/// Makes the module's unwinder ready for an unwind that another one started.
///
/// A thread that the interpreter ends while it is inside the module (a
/// daemon thread taking the interpreter lock back at exit, which CPython
/// ends with `pthread_exit`) is unwound by glibc's libgcc_s, which calls the
/// module's personality routine for the module's frames. That routine sets
/// the landing pad's registers with the module's copy of `_Unwind_SetGR`,
/// which reads a table of register sizes that the copy fills in the first
/// time it starts an unwind of its own, and aborts the process while the
/// table is empty. One unwind, caught here (no panic hook runs for it),
/// fills it. tests/test_exit_cleanup.py and tests/test_import_cost.py end
/// programs that way.
fn prime_unwinder() {
    let _ = std::panic::catch_unwind(|| std::panic::resume_unwind(Box::new(())));
}

// The module relies on the interpreter lock (fast_path.rs installs its
// slots and reads its statics under it): a free-threaded interpreter,
// which a build for the full API could now load it into, is told so and
// keeps the lock on.
#[pymodule(gil_used = true)]
fn _namedipc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    use namedipc::flags;

    prime_unwinder();
    // `__all__` made first: the first `add` would otherwise look for it,
    // fail, and take that AttributeError, which costs more than the rest of
    // the module's setting up (PyO3 checks a taken error against its
    // PanicException type, making that type then).
    let all = PyList::empty(m.py());
    m.setattr("__all__", &all)?;
    // setattr, not add_function: neither is an export (`__all__`).
    m.setattr("__getattr__", wrap_pyfunction!(module_getattr, m)?)?;
    m.setattr("__dir__", wrap_pyfunction!(module_dir, m)?)?;
    m.add_class::<semaphore::PySemaphore>()?;
    fast_path::install(&m.py().get_type::<semaphore::PySemaphore>())?;
    m.add_function(wrap_pyfunction!(_install_flags_attribute, m)?)?;
    m.add_function(wrap_pyfunction!(unlink_semaphore, m)?)?;
    m.add_function(wrap_pyfunction!(semaphore::_reopen_semaphore, m)?)?;
    m.add_function(wrap_pyfunction!(
        named_semaphore::_reopen_named_semaphore,
        m
    )?)?;
    m.add_function(wrap_pyfunction!(cli::_cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(aio::_install_asyncio_glue, m)?)?;
    m.add_function(wrap_pyfunction!(exit::_close_all_at_exit, m)?)?;
    shared_memory::register(m)?;
    message_queue::register(m)?;
    robust_semaphore::register(m)?;
    redis_semaphore::register(m)?;

    m.add("O_CREAT", flags::O_CREAT)?;
    m.add("O_EXCL", flags::O_EXCL)?;
    m.add("O_CREX", flags::O_CREX)?;
    m.add("O_TRUNC", flags::O_TRUNC)?;
    m.add("O_RDONLY", flags::O_RDONLY)?;
    m.add("O_WRONLY", flags::O_WRONLY)?;
    m.add("O_RDWR", flags::O_RDWR)?;
    m.add("O_NONBLOCK", flags::O_NONBLOCK)?;
    m.add("PAGE_SIZE", namedipc::page_size())?;
    m.add("SEMAPHORE_TIMEOUT_SUPPORTED", true)?;
    m.add("SEMAPHORE_VALUE_SUPPORTED", true)?;
    m.add("SEMAPHORE_VALUE_MAX", namedipc::semaphore::VALUE_MAX)?;
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    // Exported, though made on first use.
    for name in lazy_names() {
        all.append(name)?;
    }
    Ok(())
}
