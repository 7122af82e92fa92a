//! Name rules shared by every kind of object, and random names drawn from
//! the OS's CSPRNG (never from the clock, so processes started in the same
//! second do not pick the same name).

use std::ffi::CString;

use crate::error::{Error, ObjectKind, Result};
use crate::sys;

/// The longest name glibc accepts for a semaphore (NAME_MAX less "sem.").
const SEMAPHORE_NAME_MAX: usize = 251;
/// The longest name for a shared memory segment or message queue (NAME_MAX).
const NAME_MAX: usize = 255;
/// The longest name for a robust semaphore: NAME_MAX less its file prefix.
pub(crate) const ROBUST_NAME_MAX: usize = NAME_MAX - crate::robust::FILE_PREFIX.len();

const RANDOM_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Checks `name` and returns it as a C string.
///
/// A name is one or more leading slashes (by convention exactly one) and
/// then 1 to N bytes, none of them `/` or NUL. Like glibc, a name without
/// a leading slash is accepted and means the same.
pub(crate) fn to_c_name(kind: ObjectKind, name: &str) -> Result<CString> {
    let max = match kind {
        ObjectKind::Semaphore => SEMAPHORE_NAME_MAX,
        ObjectKind::SharedMemory | ObjectKind::MessageQueue => NAME_MAX,
        ObjectKind::RobustSemaphore => ROBUST_NAME_MAX,
    };
    let invalid = || Error::InvalidName {
        kind,
        name: name.to_owned(),
        rule: format!(
            "a name is '/' followed by 1 to {max} bytes, none of them '/' or NUL, e.g. '/jobs'"
        ),
    };
    let body = name.trim_start_matches('/');
    if body.is_empty() || body.len() > max || body.contains('/') || name.contains('\0') {
        return Err(invalid());
    }
    CString::new(name).map_err(|_| invalid())
}

/// A fresh random name: `prefix` and 16 characters of `[a-z0-9]` (about 82
/// bits), taken from the OS's CSPRNG.
pub(crate) fn random_name(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 16];
    sys::fill_random(&mut bytes).map_err(|e| {
        Error::InvalidArgument(format!("cannot read random bytes from the OS: {e}"))
    })?;
    let mut name = String::with_capacity(prefix.len() + bytes.len());
    name.push_str(prefix);
    name.extend(
        bytes
            .iter()
            .map(|b| char::from(RANDOM_ALPHABET[usize::from(*b) % RANDOM_ALPHABET.len()])),
    );
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_conventional_and_slashless_names() {
        assert!(to_c_name(ObjectKind::Semaphore, "/jobs").is_ok());
        assert!(to_c_name(ObjectKind::Semaphore, "jobs").is_ok());
        assert!(to_c_name(ObjectKind::Semaphore, &format!("/{}", "x".repeat(251))).is_ok());
    }

    #[test]
    fn rejects_bad_names_with_the_rule() {
        for bad in [
            "",
            "/",
            "//",
            "/a/b",
            "/a\0b",
            &format!("/{}", "x".repeat(252)),
        ] {
            let err = to_c_name(ObjectKind::Semaphore, bad).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}: {err}");
            assert!(
                err.to_string().contains("followed by 1 to 251 bytes"),
                "{err}"
            );
        }
    }

    #[test]
    fn random_names_differ_and_are_valid() {
        let a = random_name("/namedipc-").unwrap();
        let b = random_name("/namedipc-").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), "/namedipc-".len() + 16);
        assert!(to_c_name(ObjectKind::Semaphore, &a).is_ok());
    }
}
