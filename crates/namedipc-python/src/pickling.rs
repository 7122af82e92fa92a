//! Pickling by name, the same for every handle class: `__reduce__` returns
//! `(_reopen_x, (cls, name, ...), state)`, and `_reopen_x` opens the
//! existing object again in the unpickling process.

use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};

/// The `__reduce__` tuple of `obj`: unpickling calls `reopen` (a function
/// of `namedipc._namedipc`) with `obj`'s class followed by `args`, then
/// restores the instance's `__dict__`, if it has one, as its state.
pub(crate) fn reduce<'py>(
    obj: &Bound<'py, PyAny>,
    reopen: &str,
    args: impl IntoPyObject<'py, Target = PyTuple, Output = Bound<'py, PyTuple>, Error = PyErr>,
) -> PyResult<Bound<'py, PyTuple>> {
    let py = obj.py();
    let reopen = py.import("namedipc._namedipc")?.getattr(reopen)?;
    let cls = obj.get_type().into_any();
    let args: Vec<_> = std::iter::once(cls)
        .chain(args.into_pyobject(py)?)
        .collect();
    let args = PyTuple::new(py, args)?;
    (reopen, args, instance_dict(obj)?).into_pyobject(py)
}

/// What a `_reopen_x` function returns: a `cls` instance made by
/// `cls.__new__` alone (a subclass's `__init__` may take other arguments),
/// then opened by `open`.
pub(crate) fn reopen<'py>(
    cls: &Bound<'py, PyType>,
    open: impl FnOnce(&Bound<'py, PyAny>) -> PyResult<()>,
) -> PyResult<Bound<'py, PyAny>> {
    let obj = cls.call_method1("__new__", (cls,))?;
    open(&obj)?;
    Ok(obj)
}

/// `module.QualName` for reprs, so subclasses show their own name.
pub(crate) fn qualified_name(cls: &Bound<'_, PyType>) -> PyResult<String> {
    Ok(format!("{}.{}", cls.module()?, cls.qualname()?))
}

/// A subclass instance's `__dict__` (pickled as its state), or None.
fn instance_dict<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    match obj.getattr("__dict__") {
        Ok(d) if d.len()? > 0 => Ok(Some(d)),
        _ => Ok(None),
    }
}
