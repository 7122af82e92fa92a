//! The `namedipc` command for the Python package's entry points
//! (`namedipc` on PATH, `python -m namedipc`): the core's implementation,
//! run with the interpreter lock released.

use std::ffi::OsString;

use pyo3::prelude::*;

/// Runs the `namedipc` command with `argv` (the program name first) and
/// returns its exit code. Arguments are converted as `os.fsencode` does.
#[pyfunction]
pub(crate) fn _cli_main(py: Python<'_>, argv: Vec<OsString>) -> i32 {
    py.detach(|| namedipc::cli::main(argv))
}
