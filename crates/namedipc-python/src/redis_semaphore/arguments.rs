//! The constructor's and `unlink_redis_semaphore`'s own arguments: the
//! server's URL and durations in seconds, each checked with a message that
//! says what is allowed.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt, PyString};

use crate::args;

/// The environment variable naming the server when no `url` is given.
const URL_VARIABLE: &str = "NAMEDIPC_REDIS";

/// The largest slot count a new semaphore may have (the core's).
pub(super) const MAX_SLOTS: i64 = namedipc::redis::MAX_SLOTS as i64;

/// The bounds of `lease` and `connect_timeout`, in seconds: a lease much
/// shorter than a round trip could never be renewed, and one beyond a day
/// is a mistake rather than a plan.
pub(super) const MIN_LEASE: f64 = 0.01;
pub(super) const MAX_LEASE: f64 = 86_400.0;
pub(super) const MAX_CONNECT_TIMEOUT: f64 = 3_600.0;

/// The server's URL: `url` if given, else `$NAMEDIPC_REDIS`, else the default.
pub(super) fn url_arg(url: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
    let allowed = "url must be a str such as 'redis://127.0.0.1:6379/0' (or None: $NAMEDIPC_REDIS, then redis://127.0.0.1:6379/0)";
    let url = match url.filter(|u| !u.is_none()) {
        Some(url) => url
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("{allowed}, not {}", args::type_name(url))))?
            .to_str()?
            .to_owned(),
        None => match std::env::var(URL_VARIABLE) {
            Ok(url) if !url.is_empty() => url,
            _ => namedipc::redis::DEFAULT_URL.to_owned(),
        },
    };
    if url.contains('\0') {
        return Err(PyValueError::new_err(format!(
            "url must not contain NUL characters: {:?}",
            namedipc::redis::redacted(&url)
        )));
    }
    Ok(url)
}

/// `connect_timeout=`, as the constructor and `unlink_redis_semaphore` take it.
pub(super) fn connect_timeout_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Duration> {
    seconds_arg(
        obj,
        "connect_timeout",
        namedipc::redis::DEFAULT_CONNECT_TIMEOUT,
        MIN_LEASE,
        MAX_CONNECT_TIMEOUT,
    )
}

/// A duration in seconds, `what` in `min..=max` (a finite real number):
/// `default` when omitted.
pub(super) fn seconds_arg(
    obj: Option<&Bound<'_, PyAny>>,
    what: &str,
    default: Duration,
    min: f64,
    max: f64,
) -> PyResult<Duration> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(default);
    };
    let allowed = format!("{what} must be a number of seconds between {min} and {max}");
    let is_number = obj.is_instance_of::<PyFloat>()
        || obj.is_instance_of::<PyInt>()
        || obj.hasattr("__float__")?;
    if !is_number || obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{allowed}, not {}",
            args::type_name(obj)
        )));
    }
    let seconds: f64 = obj.extract().unwrap_or(f64::INFINITY); // an int too large for a float
    if !(min..=max).contains(&seconds) {
        return Err(PyValueError::new_err(format!(
            "{allowed}, not {}",
            obj.repr()?
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}
