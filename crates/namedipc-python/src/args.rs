//! Conversion of Python arguments, with messages that say what is allowed.
//! PyO3's own conversions would raise OverflowError or a generic TypeError.

use std::time::Duration;

use namedipc::flags::{O_CREAT, O_EXCL};
use namedipc::Existence;
use namedipc::ObjectKind;
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};

use crate::errors;

/// An object's name: a str, or bytes that are UTF-8.
pub(crate) fn name(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let name = if let Ok(s) = obj.cast::<PyString>() {
        s.to_str()?.to_owned()
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        String::from_utf8(b.as_bytes().to_vec())
            .map_err(|_| PyValueError::new_err("a bytes name must be valid UTF-8"))?
    } else {
        return Err(PyTypeError::new_err(format!(
            "name must be a str such as '/jobs', not {}",
            type_name(obj)
        )));
    };
    if name.as_bytes().contains(&0) {
        return Err(errors::nul_in_name(&name));
    }
    Ok(name)
}

/// An object's name as [`name`] takes it, kept as a Python str: the
/// caller's own str object (no copy), or one decoded from bytes.
pub(crate) fn name_str<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyString>> {
    let name = if let Ok(s) = obj.cast_exact::<PyString>() {
        s.clone()
    } else if let Ok(s) = obj.cast::<PyString>() {
        // A str subclass is copied to a plain str, as the name reads back.
        PyString::new(obj.py(), s.to_str()?)
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        let text = std::str::from_utf8(b.as_bytes())
            .map_err(|_| PyValueError::new_err("a bytes name must be valid UTF-8"))?;
        PyString::new(obj.py(), text)
    } else {
        return Err(PyTypeError::new_err(format!(
            "name must be a str such as '/jobs', not {}",
            type_name(obj)
        )));
    };
    // No scan for NUL here: the core checks every name it is given, and
    // errors::to_py_err words its refusal of one with a NUL as `name` does
    // (errors::nul_in_name).
    Ok(name)
}

/// A name that may be None (posix_ipc's "pick a random name" with O_CREX),
/// as [`name_str`] takes it.
pub(crate) fn optional_name<'py>(
    obj: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyString>>> {
    if obj.is_none() {
        Ok(None)
    } else {
        name_str(obj).map(Some)
    }
}

/// The text of a name [`name_str`] accepted (its UTF-8 is cached in the
/// str, so this copies nothing).
pub(crate) fn text<'a>(name: &'a Bound<'_, PyString>) -> PyResult<&'a str> {
    name.to_str()
}

/// Prefix of the names picked for `name=None, flags=O_CREX`.
pub(crate) const RANDOM_PREFIX: &str = "/namedipc-";

/// What posix_ipc's `name` and `flags` ask to open.
pub(crate) enum Target<N> {
    /// A new object under a random name starting with [`RANDOM_PREFIX`].
    Random,
    /// The object with this name, created or not as the flags say.
    Named(N, Existence),
}

/// Reads posix_ipc's `name` and `flags` (O_CREAT, O_EXCL); `kind`
/// names what O_CREX without a name creates, for the message.
pub(crate) fn target<N>(name: Option<N>, flags: i64, kind: ObjectKind) -> PyResult<Target<N>> {
    let create = flags & i64::from(O_CREAT) != 0;
    let exclusive = flags & i64::from(O_EXCL) != 0;
    match name {
        None if exclusive => Ok(Target::Random),
        None => Err(PyValueError::new_err(format!(
            "name can be None only with flags=O_CREX (a new {kind} under a random name)"
        ))),
        Some(name) => {
            let existence = match (create, exclusive) {
                (true, true) => Existence::RaiseIfExists,
                (true, false) => Existence::LinkOrCreate,
                (false, _) => Existence::RaiseIfNotExists,
            };
            Ok(Target::Named(name, existence))
        }
    }
}

/// posix_ipc's `flags` argument (O_CREAT, O_EXCL, ...): 0 when omitted.
/// Refuses `O_EXCL` without `O_CREAT`, which the OS would silently ignore
/// (posix_ipc passes it on); `kind` names the object, e.g. "segment".
pub(crate) fn require_creat_with_excl(flags: i64, kind: ObjectKind) -> PyResult<()> {
    let create = flags & i64::from(O_CREAT) != 0;
    let exclusive = flags & i64::from(O_EXCL) != 0;
    if exclusive && !create {
        return Err(PyValueError::new_err(format!(
            "O_EXCL must be combined with O_CREAT: pass flags=O_CREX to create a new {kind} and fail if the name is taken"
        )));
    }
    Ok(())
}

pub(crate) fn flags(obj: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
    int_or(obj, 0, "flags", 0, i64::from(i32::MAX))
}

/// A `mode` argument, the permission bits of a new object: 0o600 when omitted.
pub(crate) fn mode(obj: Option<&Bound<'_, PyAny>>) -> PyResult<u32> {
    let mode = int_or(obj, 0o600, "mode", 0, 0o7777)?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // range checked above
    Ok(mode as u32)
}

/// The largest uid or gid accepted: `u32::MAX` is `(uid_t)-1`, "no change" to chown.
const MAX_ID: i64 = u32::MAX as i64 - 1;

/// A user or group given as a name (str) or a number (int), as `what` in messages.
fn id(
    obj: &Bound<'_, PyAny>,
    what: &str,
    lookup: fn(&str) -> namedipc::Result<u32>,
) -> PyResult<u32> {
    if let Ok(s) = obj.cast::<PyString>() {
        return lookup(s.to_str()?).map_err(crate::errors::to_py_err);
    }
    if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
        let id = int_in_range(obj, what, 0, MAX_ID)?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // range checked above
        return Ok(id as u32);
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be a name (str) or a number between 0 and {MAX_ID} (int), not {}",
        type_name(obj)
    )))
}

/// A `group=` argument: None (no group asked for), a group name or a gid.
pub(crate) fn group(obj: &Bound<'_, PyAny>) -> PyResult<Option<u32>> {
    if obj.is_none() {
        return Ok(None);
    }
    id(obj, "group", namedipc::ownership::gid_of).map(Some)
}

/// A `trust_owners=` argument: an iterable of user names (str) or uids (int).
pub(crate) fn trust_owners(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
    let allowed = "trust_owners must be an iterable of user names (str) or uids (int), such as ['alice'] or (1001,)";
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        // A lone name would otherwise be read letter by letter.
        return Err(PyTypeError::new_err(format!(
            "{allowed}, not a single {}; put it in a list",
            type_name(obj)
        )));
    }
    let items = obj
        .try_iter()
        .map_err(|_| PyTypeError::new_err(format!("{allowed}, not {}", type_name(obj))))?;
    let mut uids = Vec::new();
    for item in items {
        let uid = id(&item?, "each of trust_owners", namedipc::ownership::uid_of)?;
        if !uids.contains(&uid) {
            uids.push(uid);
        }
    }
    Ok(uids)
}

/// A semaphore's `initial_value`: `default` when omitted.
pub(crate) fn initial_value(obj: Option<&Bound<'_, PyAny>>, default: u32) -> PyResult<u32> {
    count(obj, "initial_value", default)
}

/// The value a new POSIX semaphore starts with, passed as the argument
/// `what`: `default` when omitted.
pub(crate) fn count(obj: Option<&Bound<'_, PyAny>>, what: &str, default: u32) -> PyResult<u32> {
    let max = namedipc::semaphore::VALUE_MAX;
    let value = int_or(obj, default.into(), what, 0, max.into())?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // range checked above
    Ok(value as u32)
}

/// An optional int argument: `default` when omitted, else as [`int_in_range`].
pub(crate) fn int_or(
    obj: Option<&Bound<'_, PyAny>>,
    default: i64,
    what: &str,
    lo: i64,
    hi: i64,
) -> PyResult<i64> {
    obj.map_or(Ok(default), |obj| int_in_range(obj, what, lo, hi))
}

/// An int in `lo..=hi`; `what` names the argument in messages.
pub(crate) fn int_in_range(obj: &Bound<'_, PyAny>, what: &str, lo: i64, hi: i64) -> PyResult<i64> {
    if !obj.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be an int between {lo} and {hi}, not {}",
            type_name(obj)
        )));
    }
    let out_of_range =
        || PyValueError::new_err(format!("{what} must be between {lo} and {hi}, not {obj}"));
    match obj.extract::<i64>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        Ok(_) => Err(out_of_range()),
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => Err(out_of_range()),
        Err(e) => Err(e),
    }
}

/// A bool argument: True/False, or an int as posix_ipc accepts; False when
/// omitted.
#[inline]
pub(crate) fn flag(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<bool> {
    match obj {
        None => Ok(false),
        Some(obj) => flag_of(obj, what),
    }
}

/// [`flag`] of a value given.
fn flag_of(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<bool> {
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(b.is_true());
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.is_truthy();
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be True or False, not {}",
        type_name(obj)
    )))
}

/// How long a wait may last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// Never wait.
    NoWait,
    /// Wait at most this long.
    For(Duration),
    /// Wait as long as it takes.
    Forever,
}

/// What a negative timeout means.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Negative {
    /// posix_ipc: a TypeError.
    Reject,
    /// threading: do not wait.
    NoWait,
}

/// A timeout in seconds: None, or a finite real number. Absurdly large
/// finite values (beyond what a Duration holds) mean "wait forever".
pub(crate) fn timeout(obj: Option<&Bound<'_, PyAny>>, negative: Negative) -> PyResult<Timeout> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(Timeout::Forever);
    };
    let allowed =
        "timeout must be None (wait as long as it takes) or a finite number of seconds >= 0";
    if !(obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyInt>()) {
        // Other real numbers (Decimal, Fraction, numpy floats) convert through __float__.
        if !obj.hasattr("__float__")? {
            return Err(PyTypeError::new_err(format!(
                "{allowed}, not {}",
                type_name(obj)
            )));
        }
    }
    let seconds: f64 = match obj.extract() {
        Ok(s) => s,
        // An int too large for a float is a very long wait.
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => return Ok(Timeout::Forever),
        Err(e) => return Err(e),
    };
    if seconds.is_nan() || seconds.is_infinite() {
        return Err(PyValueError::new_err(format!("{allowed}, not {seconds}")));
    }
    if seconds < 0.0 {
        return match negative {
            Negative::Reject => Err(PyTypeError::new_err(format!("{allowed}, not {seconds}"))),
            Negative::NoWait => Ok(Timeout::NoWait),
        };
    }
    if seconds == 0.0 {
        return Ok(Timeout::NoWait);
    }
    Ok(Duration::try_from_secs_f64(seconds).map_or(Timeout::Forever, Timeout::For))
}

/// The wait of threading.Semaphore.acquire(blocking, timeout): a timeout
/// (None: no limit; negative: no wait) only with blocking=True.
pub(crate) fn threading_timeout(
    blocking: bool,
    timeout: Option<&Bound<'_, PyAny>>,
) -> PyResult<Timeout> {
    match (blocking, timeout.filter(|t| !t.is_none())) {
        (false, Some(_)) => Err(PyValueError::new_err(
            "can't specify timeout for non-blocking acquire",
        )),
        (false, None) => Ok(Timeout::NoWait),
        (true, t) => self::timeout(t, Negative::NoWait),
    }
}

/// The name of `obj`'s type, for messages ("?" if it has none).
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}
