//! What a message is on the way in and out: a str as UTF-8, any bytes-like
//! object as its bytes, and the writable buffer `receive_into` fills.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMemoryView, PyString};

use crate::args::type_name;

/// The bytes of a bytes-like object other than bytes itself.
pub(super) fn bytes_like<'py>(message: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let view = PyMemoryView::from(message).map_err(|e| {
        if e.is_instance_of::<PyTypeError>(message.py()) {
            PyTypeError::new_err(format!(
                "message must be bytes, a str (sent as UTF-8) or another bytes-like object such as a bytearray or memoryview, not {}",
                type_name(message)
            ))
        } else {
            e
        }
    })?;
    // tobytes() copies any layout, contiguous or not, in C order.
    Ok(view.call_method0("tobytes")?.cast_into::<PyBytes>()?)
}

/// `message` as bytes (a str as UTF-8), copied now, for a send that happens later.
pub(super) fn message_bytes<'py>(message: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    if let Ok(b) = message.cast::<PyBytes>() {
        Ok(b.clone())
    } else if let Ok(s) = message.cast::<PyString>() {
        Ok(PyBytes::new(message.py(), s.to_str()?.as_bytes()))
    } else {
        bytes_like(message)
    }
}

/// `buffer` as a flat, writable memoryview of bytes, at least `needed` long.
pub(super) fn writable_view<'py>(
    buffer: &Bound<'py, PyAny>,
    needed: usize,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let allowed =
        "buffer must be a writable bytes-like object such as a bytearray or a memoryview of one";
    let view = PyMemoryView::from(buffer).map_err(|e| {
        if e.is_instance_of::<PyTypeError>(buffer.py()) {
            PyTypeError::new_err(format!("{allowed}, not {}", type_name(buffer)))
        } else {
            e
        }
    })?;
    if view.getattr("readonly")?.is_truthy()? {
        return Err(PyTypeError::new_err(format!(
            "{allowed}; this {} is read-only",
            type_name(buffer)
        )));
    }
    if !view.getattr("c_contiguous")?.is_truthy()? {
        return Err(PyValueError::new_err(format!(
            "{allowed}, contiguous in memory; this {} is not",
            type_name(buffer)
        )));
    }
    let nbytes: usize = view.getattr("nbytes")?.extract()?;
    if nbytes < needed {
        return Err(PyValueError::new_err(format!(
            "a buffer of {nbytes} bytes is too small for message queue '{name}': receive_into needs at least max_message_size ({needed}) bytes"
        )));
    }
    let flat = view.getattr("format")?.extract::<String>()? == "B"
        && view.getattr("ndim")?.extract::<usize>()? == 1;
    if flat {
        Ok(view.into_any())
    } else {
        view.call_method1("cast", ("B",))
    }
}
