//! PyO3 bindings: `namedipc._namedipc`. Converts arguments, manages the
//! interpreter lock around waits, and maps errors in one place
//! (`errors.rs`); everything else lives in the `namedipc` core crate.

mod aio;
mod args;
mod cli;
mod errors;
mod exit;
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

use pyo3::prelude::*;

/// Removes the semaphore `name`; ExistentialError if there is none.
#[pyfunction]
fn unlink_semaphore(name: &Bound<'_, PyAny>) -> PyResult<()> {
    namedipc::semaphore::unlink(&args::name(name)?).map_err(errors::to_py_err)
}

#[pymodule]
fn _namedipc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    use namedipc::flags;

    errors::register(m)?;
    m.add_class::<semaphore::PySemaphore>()?;
    m.add_class::<named_semaphore::PyNamedSemaphore>()?;
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
    Ok(())
}
